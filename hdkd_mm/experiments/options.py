"""A run's options as command-line text (``--cfg-options key=value``), and
the options that change a config's schedule to another number of epochs."""
from typing import Any, Dict, List

__all__ = ['format_value', 'format_options', 'epoch_options']


def format_value(value) -> str:
    """A value as MMEngine's ``DictAction`` reads it back from the command
    line (``key=value``)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if not value or any(c in value for c in ',[]()"\'= '):
            raise ValueError(
                f'the string {value!r} cannot be passed as a command-line '
                'config option (empty, or has a comma, bracket, quote, '
                'space or "=").')
        if value.lower() in ('true', 'false', 'none'):
            raise ValueError(f'the string {value!r} would be read back as '
                             'a bool/None.')
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError(f'the string {value!r} would be read back as a '
                         'number.')
    if isinstance(value, (list, tuple)):
        inner = ','.join(format_value(v) for v in value)
        if isinstance(value, tuple):
            return f'({inner},)' if len(value) == 1 else f'({inner})'
        return f'[{inner}]'
    raise ValueError(
        f'{type(value).__name__} values cannot be passed as command-line '
        'config options: use one dotted key per leaf '
        '(e.g. model.loss_weights.init: rand).')


def format_options(options: Dict[str, Any]) -> List[str]:
    """``['key=value', ...]`` for ``--cfg-options``."""
    return [f'{k}={format_value(v)}' for k, v in options.items()]


def epoch_options(cfg, epochs: int) -> Dict[str, Any]:
    """Dotted options that change a loaded config's schedule to ``epochs``
    epochs with validation only at the end: ``train_cfg.max_epochs``,
    ``train_cfg.val_interval``, every epoch-based scheduler ``end`` equal to
    the old ``max_epochs`` (or unset), and ``MultiStepLR`` milestones scaled
    in proportion."""
    old = int(cfg.train_cfg.get('max_epochs'))
    opts: Dict[str, Any] = {'train_cfg.max_epochs': int(epochs),
                            'train_cfg.val_interval': int(epochs)}
    sched = cfg.get('param_scheduler')
    groups = []
    if isinstance(sched, dict) and 'type' not in sched:
        groups = [(f'param_scheduler.{k}', v) for k, v in sched.items()]
    elif sched is not None:
        groups = [('param_scheduler', sched)]
    for prefix, items in groups:
        if isinstance(items, dict):
            items, single = [items], True
        else:
            single = False
        for i, s in enumerate(items):
            key = prefix if single else f'{prefix}.{i}'
            if not s.get('by_epoch', True):
                continue
            end = s.get('end')
            if end is not None and int(end) == old:
                opts[f'{key}.end'] = int(epochs)
            if s.get('type') == 'MultiStepLR' and s.get('milestones'):
                opts[f'{key}.milestones'] = [
                    max(1, round(m * epochs / old)) for m in s['milestones']]
    return opts
