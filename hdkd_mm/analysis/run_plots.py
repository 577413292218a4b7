"""Training curves from a work directory (what ``tools/analysis/plot_run.py``
runs): the objective weights γ over iterations (harmonized schemes) and every
exit's validation top-1 over epochs.

MMEngine's ``LocalVisBackend`` writes ``<work_dir>/<timestamp>/vis_data/
scalars.json``, one JSON dict per line: training lines carry ``iter``,
``epoch``, ``step`` (= iter), ``lr`` (θ's; γ's is ``gamma.lr``), ``loss``
and what the model logs (``gamma/ce1``, ``gamma/kd5-2``, ... for learned γ);
validation lines carry ``multi-exit/exit{k}/top1``
(:class:`~hdkd_mm.evaluation.MultiExitAccuracy`; logs written before the
metric had its prefix say ``exit{k}/top1``) and ``step`` (= epoch with the
default ``log_metric_by_epoch``). Loss and learning-rate curves: MMPretrain's
``tools/analysis_tools/analyze_logs.py plot_curve SCALARS --keys loss lr``.
"""
import glob
import json
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, List, Tuple

from ..evaluation.metrics.multi_exit_accuracy import EXIT_TOP1_KEY

__all__ = [
    'find_scalars', 'read_scalars', 'gamma_series', 'val_top1_series',
    'plot_gamma', 'plot_val_top1', 'plot_run'
]

_GAMMA = re.compile(r'^gamma/([A-Za-z_]*)')


def _has_training_lines(path: str) -> bool:
    with open(path) as f:
        return any('"loss"' in line or '"lr"' in line for line in f)


def find_scalars(path: str) -> str:
    """``scalars.json`` of the latest training run under ``path``.

    ``path`` may be the file itself, a run folder (``<timestamp>``, with
    ``vis_data/scalars.json``) or a work dir with run folders; the latest run
    is the newest ``scalars.json`` among those with training lines (a later
    ``tools/test.py`` run in the same work dir is skipped), or the newest
    one if none has.
    """
    if osp.isfile(path):
        return path
    if not osp.isdir(path):
        raise FileNotFoundError(f'{path} does not exist.')
    found = glob.glob(osp.join(path, 'vis_data', 'scalars.json')) + \
        glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json'))
    if not found:
        raise FileNotFoundError(
            f'No vis_data/scalars.json under {path}: is it a work dir of '
            'tools/train.py (LocalVisBackend)?')
    found.sort(key=os.path.getmtime)
    training = [p for p in found if _has_training_lines(p)]
    return (training or found)[-1]


def read_scalars(path: str) -> List[Dict]:
    """The JSON dicts of a ``scalars.json`` (blank or broken lines, e.g. a
    line cut by a crash, are skipped)."""
    records = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                records.append(value)
    return records


def gamma_series(records: List[Dict]) -> 'OrderedDict[str, Tuple]':
    """``{'ce1': (iters, values), 'kd5-2': ...}`` from the ``gamma/*`` keys
    (x = ``iter``, else ``step``)."""
    out: 'OrderedDict[str, Tuple[List, List]]' = OrderedDict()
    for r in records:
        x = r.get('iter', r.get('step'))
        for key, value in r.items():
            if key.startswith('gamma/') and x is not None:
                xs, ys = out.setdefault(key[len('gamma/'):], ([], []))
                xs.append(x)
                ys.append(value)
    return out


def val_top1_series(records: List[Dict]) -> 'OrderedDict[int, Tuple]':
    """``{k: (epochs, top1)}`` from the ``[prefix/]exit{k}/top1`` keys (x =
    ``epoch`` if the line has it, else ``step``), exits in order."""
    out: Dict[int, Tuple[List, List]] = {}
    for r in records:
        x = r.get('epoch', r.get('step'))
        for key, value in r.items():
            m = EXIT_TOP1_KEY.match(key)
            if m and x is not None:
                xs, ys = out.setdefault(int(m.group(1)), ([], []))
                xs.append(x)
                ys.append(value)
    return OrderedDict(sorted(out.items()))


def plot_gamma(series: 'OrderedDict[str, Tuple]', path: str,
               title: str = '') -> None:
    """One panel per objective kind (``ce``, ``kd``, ...), one line per
    objective."""
    from .plotting import new_figure
    kinds: 'OrderedDict[str, List[str]]' = OrderedDict()
    for name in series:
        m = _GAMMA.match('gamma/' + name)
        kinds.setdefault(m.group(1) or 'γ', []).append(name)
    fig, axes = new_figure(len(kinds), width=5.5, height=4.2)
    for ax, (kind, names) in zip(axes, kinds.items()):
        for i, name in enumerate(names):
            xs, ys = series[name]
            ax.plot(xs, ys, lw=1.0, color=f'C{i % 10}',
                    ls='-' if i < 10 else '--', label=name)
        ax.set_xlabel('iteration')
        ax.set_ylabel('γ')
        ax.set_title(f'γ of the {kind} objectives' if kind != 'γ' else 'γ')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6 if len(names) > 8 else 8,
                  ncol=1 + len(names) // 12)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)


def plot_val_top1(series: 'OrderedDict[int, Tuple]', path: str,
                  title: str = '') -> None:
    """Validation top-1 of every exit over epochs."""
    from .plotting import new_figure
    fig, (ax, ) = new_figure(1, width=6.0, height=4.2)
    for i, (k, (xs, ys)) in enumerate(series.items()):
        ax.plot(xs, ys, 'o-', ms=3, lw=1.2, color=f'C{i % 10}',
                label=f'exit {k}')
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel('epoch')
    ax.set_ylabel('validation top-1 (%)')
    ax.set_title('Per-exit validation top-1' + (f'\n{title}' if title
                                                 else ''), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)


def plot_run(path: str, out_dir: str, log=print) -> Dict[str, str]:
    """Write ``out_dir/gamma.png`` (when the run logged γ) and
    ``out_dir/val_top1.png`` (when it validated) for the latest run under
    ``path``. Returns ``{'scalars': ..., 'gamma': ..., 'val_top1': ...}``
    (the plots that were written)."""
    scalars = find_scalars(path)
    records = read_scalars(scalars)
    os.makedirs(out_dir, exist_ok=True)
    # <work dir>/<run>, the folders above vis_data/scalars.json
    parts = osp.abspath(scalars).split(os.sep)
    title = '/'.join(parts[-4:-2])
    written = dict(scalars=scalars)
    gammas = gamma_series(records)
    if gammas:
        written['gamma'] = osp.join(out_dir, 'gamma.png')
        plot_gamma(gammas, written['gamma'], title)
    else:
        log(f'{scalars}: no gamma/* values (a scheme with fixed objective '
            'weights): no γ plot.')
    vals = val_top1_series(records)
    if vals:
        written['val_top1'] = osp.join(out_dir, 'val_top1.png')
        plot_val_top1(vals, written['val_top1'], title)
    else:
        log(f'{scalars}: no exit{{k}}/top1 values (no validation): no '
            'validation plot.')
    return written
