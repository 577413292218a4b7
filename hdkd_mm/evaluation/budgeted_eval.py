"""Budgeted batch classification of trained checkpoints (what
``tools/analysis/budgeted_eval.py`` runs).

Per model (config + checkpoint):

1. every exit's logits on the **held-out split** (``cfg.heldout_dataloader``,
   which the ``*_heldout.py`` data configs give the *test* pipeline; run
   unshuffled, without ``drop_last``) and on the **test split**
   (``cfg.test_dataloader``), plus the cumulative per-exit MFLOPs
   (:func:`~hdkd_mm.analysis.flops.exit_costs` on
   :func:`~hdkd_mm.analysis.flops.default_input_shape`).  These are cached in
   ``OUT/<name>_logits.npz`` and reused while the config's model/data
   settings and the checkpoint are unchanged (size and mtime, else SHA-256 of
   the file);
2. the MSDNet budgets (:func:`~hdkd_mm.evaluation.budgeted.evaluate_budgets`:
   thresholds fitted on the held-out confidences of the chosen measure,
   max-softmax by default, applied to the test split)
   and, for a target cost, :func:`~hdkd_mm.evaluation.budgeted.search_budget`.

:func:`budgeted_eval` does all models and writes ``OUT/budgeted.json`` and
``OUT/budgeted.png``.
"""
import copy
import hashlib
import json
import os
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .budgeted import evaluate_budgets, search_budget
from .confidence import DEFAULT_CONFIDENCE, check_confidence, topk_correct

__all__ = [
    'NO_HELDOUT_MSG', 'ExitLogits', 'heldout_loader_cfg', 'test_loader_cfg',
    'run_names', 'cached_exit_logits', 'evaluate_model', 'budgeted_eval',
    'budgets_table', 'target_table', 'plot_budgets'
]

CACHE_VERSION = 1
NO_HELDOUT_MSG = (
    '{config}: no held-out split to fit the thresholds on: add '
    'heldout_dataloader (see configs/_base_/datasets/*_heldout.py). The '
    'thresholds must be fitted on held-out images with the test pipeline, '
    'never on the test split.')


# --------------------------------------------------------------------------
# dataloaders
# --------------------------------------------------------------------------
def _unshuffled(loader) -> dict:
    loader = copy.deepcopy(dict(loader))
    loader['drop_last'] = False
    sampler = dict(loader.get('sampler') or dict(type='DefaultSampler'))
    sampler['shuffle'] = False
    loader['sampler'] = sampler
    return loader


def heldout_loader_cfg(cfg, config: str = 'config') -> dict:
    """``cfg.heldout_dataloader`` unshuffled and without ``drop_last``.

    Raises:
        ValueError: when the config has no held-out split.
    """
    loader = cfg.get('heldout_dataloader')
    if not loader:
        raise ValueError(NO_HELDOUT_MSG.format(config=config))
    return _unshuffled(loader)


def test_loader_cfg(cfg, config: str = 'config') -> dict:
    """``cfg.test_dataloader`` unshuffled and without ``drop_last``."""
    loader = cfg.get('test_dataloader')
    if not loader:
        raise ValueError(f'{config}: no test_dataloader to evaluate on.')
    return _unshuffled(loader)


def run_names(pairs: Sequence[Tuple[str, str]]) -> List[str]:
    """One unique, file-name-safe name per (config, checkpoint): the config's
    stem, with the checkpoint's stem appended when a config repeats."""
    stems = [osp.splitext(osp.basename(c))[0] for c, _ in pairs]
    names = []
    for (config, ckpt), stem in zip(pairs, stems):
        name = stem
        if stems.count(stem) > 1:
            name = f'{stem}__{osp.splitext(osp.basename(ckpt))[0]}'
        base, i = name, 2
        while name in names:
            name, i = f'{base}_{i}', i + 1
        names.append(name)
    return names


# --------------------------------------------------------------------------
# cached logits
# --------------------------------------------------------------------------
@dataclass
class ExitLogits:
    """Everything the threshold search needs for one model."""
    heldout_logits: np.ndarray  # (N_h, K, C) float32
    heldout_labels: np.ndarray  # (N_h,)
    test_logits: np.ndarray  # (N_t, K, C) float32
    test_labels: np.ndarray  # (N_t,)
    exit_mflops: np.ndarray  # (K,) cumulative
    input_shape: Tuple[int, int, int]
    reused: bool  # read from the cache


def _config_key(cfg) -> str:
    """Hash of what determines the logits: model and data settings."""
    keys = ('model', 'data_preprocessor', 'heldout_dataloader',
            'test_dataloader')
    payload = {}
    for key in keys:
        value = cfg.get(key)
        if hasattr(value, 'to_dict'):
            value = value.to_dict()
        payload[key] = value
    text = json.dumps(payload, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _read_cache(path: str, config_key: str, ckpt: str) -> Optional[Dict]:
    """The cached arrays if ``path`` matches the config and checkpoint."""
    if not osp.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays.pop('meta')))
    except Exception:  # unreadable/partial cache: recompute
        return None
    if meta.get('version') != CACHE_VERSION or \
            meta.get('config_key') != config_key:
        return None
    st = os.stat(ckpt)
    if (meta.get('ckpt_size'), meta.get('ckpt_mtime_ns')) != (
            st.st_size, st.st_mtime_ns):
        if meta.get('ckpt_size') != st.st_size or \
                meta.get('ckpt_sha256') != _sha256(ckpt):
            return None
    arrays['meta'] = meta
    return arrays


def _write_cache(path: str, arrays: Dict[str, np.ndarray], meta: Dict):
    tmp = path + '.tmp.npz'
    np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
    os.replace(tmp, path)


def cached_exit_logits(cfg,
                       config: str,
                       checkpoint: str,
                       cache_path: str,
                       check_costs: Optional[Callable[[np.ndarray],
                                                      None]] = None,
                       log: Callable[[str], None] = print) -> ExitLogits:
    """Held-out and test logits and per-exit MFLOPs of one model, from
    ``cache_path`` when it matches, else computed and cached.

    Args:
        cfg: the loaded (and prepared) config.
        config, checkpoint: paths (for messages and the cache key).
        cache_path: the ``.npz`` cache file.
        check_costs: called with the per-exit MFLOPs before the (slow)
            logits are computed, e.g. to validate a target budget early.
        log: where progress messages go.

    Raises:
        ValueError: no held-out split; a checkpoint whose number of exits
            differs from the config's model.
    """
    from hdkd_mm.analysis.flops import default_input_shape, exit_costs

    from .inference import build_model_from_checkpoint, collect_exit_logits
    held_cfg = heldout_loader_cfg(cfg, config)
    test_cfg = test_loader_cfg(cfg, config)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'Checkpoint {checkpoint!r} does not exist.')
    key = _config_key(cfg)
    cached = _read_cache(cache_path, key, checkpoint)
    if cached is not None:
        log(f'{config}: reusing cached logits {cache_path}')
        costs = cached['exit_mflops']
        if check_costs is not None:
            check_costs(costs)
        return ExitLogits(cached['heldout_logits'], cached['heldout_labels'],
                          cached['test_logits'], cached['test_labels'],
                          costs, tuple(cached['meta']['input_shape']), True)
    model = build_model_from_checkpoint(cfg, checkpoint)
    input_shape = tuple(int(s) for s in default_input_shape(cfg))
    costs = np.array([r['mflops'] for r in exit_costs(model, input_shape)])
    if check_costs is not None:
        check_costs(costs)
    log(f'{config}: computing the logits of the held-out and test splits')
    held_logits, held_labels = collect_exit_logits(model, held_cfg)
    test_logits, test_labels = collect_exit_logits(model, test_cfg)
    arrays = dict(heldout_logits=held_logits.numpy(),
                  heldout_labels=held_labels.numpy(),
                  test_logits=test_logits.numpy(),
                  test_labels=test_labels.numpy(),
                  exit_mflops=costs)
    st = os.stat(checkpoint)
    meta = dict(version=CACHE_VERSION, config=config, config_key=key,
                checkpoint=osp.abspath(checkpoint), ckpt_size=st.st_size,
                ckpt_mtime_ns=st.st_mtime_ns, ckpt_sha256=_sha256(checkpoint),
                input_shape=list(input_shape))
    os.makedirs(osp.dirname(osp.abspath(cache_path)), exist_ok=True)
    _write_cache(cache_path, arrays, meta)
    return ExitLogits(reused=False, input_shape=input_shape, **arrays)


# --------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------
def _budget_range_check(name: str, budget: float):
    def check(costs: np.ndarray) -> None:
        lo, hi = float(costs[0]), float(costs[-1])
        if not (np.isfinite(budget) and lo <= budget <= hi):
            raise ValueError(
                f'--budget {budget:g} MFLOPs is outside the valid range '
                f'[{lo:g}, {hi:g}] MFLOPs of {name} (cost of exit 1 to cost '
                f'of the last exit, exit {len(costs)}).')
    return check


def evaluate_model(config: str,
                   checkpoint: str,
                   out_dir: str,
                   name: Optional[str] = None,
                   num_budgets: int = 39,
                   budget: Optional[float] = None,
                   cfg_options=None,
                   log: Callable[[str], None] = print,
                   confidence: str = DEFAULT_CONFIDENCE) -> Dict:
    """Budgeted evaluation of one model (see the module doc), with the
    confidence measure ``confidence``
    (:data:`~hdkd_mm.evaluation.confidence.CONFIDENCES`).

    Returns a JSON-ready dict: ``name``, ``config``, ``checkpoint``,
    ``confidence``, ``exit_mflops``, ``num_heldout``, ``num_test``,
    ``fit_split``, ``cache``, ``cache_reused``, ``exits`` (anytime
    top-1/top-5 of every exit on the test split), ``budgets`` (one entry per budget: ``budget_index``, ``q``,
    ``thresholds``, ``exit_shares``, ``mflops``, ``top1``, ``top5``,
    ``heldout_mflops``, ``heldout_exit_shares``) and, with ``budget``,
    ``target`` (:func:`~hdkd_mm.evaluation.budgeted.search_budget`).
    """
    from hdkd_mm.launch import load_config, prepare_config
    name = name or run_names([(config, checkpoint)])[0]
    # (copies: MMEngine's merge pops ``_delete_`` from the options)
    cfg = prepare_config(
        load_config(config, copy.deepcopy(cfg_options)), config)
    heldout_loader_cfg(cfg, config)  # fail early without a held-out split
    cache = osp.join(out_dir, f'{name}_logits.npz')
    check = _budget_range_check(name, budget) if budget is not None \
        else None
    data = cached_exit_logits(cfg, config, checkpoint, cache, check, log)
    budgets = evaluate_budgets(data.heldout_logits, data.heldout_labels,
                               data.test_logits, data.test_labels,
                               data.exit_mflops, num_budgets, confidence)
    top1 = topk_correct(data.test_logits, data.test_labels, 1).mean(0)
    top5 = topk_correct(data.test_logits, data.test_labels, 5).mean(0)
    result = dict(
        name=name, config=config, checkpoint=checkpoint,
        confidence=confidence,
        exit_mflops=[float(c) for c in data.exit_mflops],
        input_shape=list(data.input_shape),
        num_heldout=int(data.heldout_labels.shape[0]),
        num_test=int(data.test_labels.shape[0]),
        fit_split='heldout_dataloader (test pipeline, unshuffled)',
        cache=cache, cache_reused=data.reused,
        exits=[dict(exit=k + 1, mflops=float(c), top1=100.0 * float(a),
                    top5=100.0 * float(b))
               for k, (c, a, b) in enumerate(zip(data.exit_mflops, top1,
                                                 top5))],
        budgets=budgets)
    if budget is not None:
        result['target'] = search_budget(
            data.heldout_logits, data.heldout_labels, data.test_logits,
            data.test_labels, data.exit_mflops, budget,
            confidence=confidence)
    return result


def budgeted_eval(pairs: Sequence[Tuple[str, str]],
                  out_dir: str,
                  num_budgets: int = 39,
                  budget: Optional[float] = None,
                  cfg_options=None,
                  log: Callable[[str], None] = print,
                  confidence: str = DEFAULT_CONFIDENCE) -> Dict:
    """Evaluate every (config, checkpoint) pair; write ``budgeted.json`` and
    ``budgeted.png`` in ``out_dir``. Returns the JSON's content, which
    records the ``confidence`` measure the thresholds were fitted with."""
    from hdkd_mm.launch import load_config
    check_confidence(confidence)
    if not pairs:
        raise ValueError('Give at least one CONFIG CHECKPOINT pair.')
    if int(num_budgets) != num_budgets or num_budgets < 1:
        raise ValueError(f'--num-budgets must be a positive integer; got '
                         f'{num_budgets}')
    # Fail before any inference on a config without a held-out split.
    for config, _ in pairs:
        heldout_loader_cfg(
            load_config(config, copy.deepcopy(cfg_options)), config)
    os.makedirs(out_dir, exist_ok=True)
    models = [
        evaluate_model(config, ckpt, out_dir, name, num_budgets, budget,
                       cfg_options, log, confidence)
        for (config, ckpt), name in zip(pairs, run_names(pairs))
    ]
    result = dict(num_budgets=int(num_budgets), target_mflops=budget,
                  confidence=confidence, models=models)
    with open(osp.join(out_dir, 'budgeted.json'), 'w') as f:
        json.dump(result, f, indent=1)
    plot_budgets(result, osp.join(out_dir, 'budgeted.png'))
    return result


# --------------------------------------------------------------------------
# reports
# --------------------------------------------------------------------------
def budgets_table(model: Dict) -> str:
    """Markdown table of one model's budgets."""
    costs = ' / '.join(f'{c:.2f}' for c in model['exit_mflops'])
    lines = [f"**{model['name']}** (thresholds fitted on "
             f"{model['num_heldout']} held-out images, evaluated on "
             f"{model['num_test']} test images; exit MFLOPs {costs})", '',
             '| p | q | MFLOPs | top-1 (%) | top-5 (%) | exit shares |',
             '|---:|---:|---:|---:|---:|:---|']
    for b in model['budgets']:
        shares = ' '.join(f'{s:.2f}' for s in b['exit_shares'])
        lines.append(f"| {b['budget_index']} | {b['q']:.2f} | "
                     f"{b['mflops']:.2f} | {b['top1']:.2f} | "
                     f"{b['top5']:.2f} | {shares} |")
    return '\n'.join(lines)


def target_table(result: Dict) -> str:
    """Markdown table of the ``--budget`` results of every model."""
    lines = ['| model | target MFLOPs | test MFLOPs | held-out MFLOPs | '
             'top-1 (%) | top-5 (%) | q |',
             '|:---|---:|---:|---:|---:|---:|---:|']
    for m in result['models']:
        t = m['target']
        lines.append(f"| {m['name']} | {t['target_mflops']:.2f} | "
                     f"{t['mflops']:.2f} | {t['heldout_mflops']:.2f} | "
                     f"{t['top1']:.2f} | {t['top5']:.2f} | {t['q']:.4g} |")
    return '\n'.join(lines)


def plot_budgets(result: Dict, path: str) -> None:
    """Top-1 and top-5 vs average test MFLOPs, one curve per model (in
    budget order), the single exits as faint crosses, the ``--budget``
    result as a star."""
    from hdkd_mm.analysis.plotting import new_figure
    fig, axes = new_figure(2)
    for i, model in enumerate(result['models']):
        color = f'C{i % 10}'
        x = [b['mflops'] for b in model['budgets']]
        for ax, key in zip(axes, ('top1', 'top5')):
            ax.plot(x, [b[key] for b in model['budgets']], '.-', color=color,
                    ms=4, lw=1.2, label=model['name'])
            ax.plot([e['mflops'] for e in model['exits']],
                    [e[key] for e in model['exits']], 'x', color=color,
                    alpha=0.5, ms=5)
            if 'target' in model:
                ax.plot([model['target']['mflops']], [model['target'][key]],
                        '*', color=color, ms=11, mec='k', mew=0.6)
    for ax, key in zip(axes, ('top-1', 'top-5')):
        ax.set_xlabel('average MFLOPs per test image')
        ax.set_ylabel(f'{key} accuracy (%)')
        ax.set_title(key)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc='best')
    fig.suptitle('Budgeted batch classification (thresholds fitted on the '
                 'held-out split; × single exits, ★ --budget)', fontsize=10)
    fig.savefig(path, dpi=110)
