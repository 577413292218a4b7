"""Anytime-prediction comparison across runs (what
``tools/analysis/compare_exits.py`` runs): the paper's Table 1/2 layout, rows
= exits with their cumulative MFLOPs, columns = schemes, mean ± std over the
seeds of a scheme.

Input: the JSON files of ``tools/analysis/anytime_eval.py --out`` (``{"config":
..., "exits": [{"exit", "top1", "top5", "mflops"}, ...]}``), given directly or
found recursively under work directories. A run's label (its scheme) is the
stem of the JSON's ``config`` (the file's parent folder when it has none), or
the ``--labels`` value given for its input; runs with the same label are the
seeds of one scheme.
"""
import glob
import json
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = [
    'is_anytime_result', 'find_anytime_jsons', 'load_runs', 'summarize',
    'compare_table', 'plot_compare'
]


def is_anytime_result(data) -> bool:
    """Whether a parsed JSON value looks like an anytime_eval result."""
    return (isinstance(data, dict) and isinstance(data.get('exits'), list)
            and bool(data['exits'])
            and all(isinstance(e, dict) and 'exit' in e and 'top1' in e
                    for e in data['exits']))


def _load_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def find_anytime_jsons(path: str) -> List[str]:
    """``path`` itself (a JSON file) or every anytime JSON under the
    directory ``path`` (recursively, sorted).

    Raises:
        FileNotFoundError: missing path, or a directory without any.
        ValueError: a file that is not an anytime result.
    """
    if osp.isfile(path):
        if not is_anytime_result(_load_json(path)):
            raise ValueError(
                f'{path} is not an anytime result (a JSON with an "exits" '
                'list written by tools/analysis/anytime_eval.py --out).')
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'{path} does not exist.')
    found = [p for p in sorted(glob.glob(osp.join(path, '**', '*.json'),
                                         recursive=True))
             if is_anytime_result(_load_json(p))]
    if not found:
        raise FileNotFoundError(
            f'No anytime results under {path}: write them with '
            'tools/analysis/anytime_eval.py CONFIG CKPT --out '
            f'{osp.join(path, "anytime.json")}.')
    return found


def _label(data: Dict, path: str) -> str:
    config = data.get('config')
    if config:
        return osp.splitext(osp.basename(str(config)))[0]
    return osp.basename(osp.dirname(osp.abspath(path)))


def load_runs(inputs: Sequence[str],
              labels: Optional[Sequence[str]] = None) -> List[Dict]:
    """Every run of every input: ``{label, path, exits}``.

    Args:
        inputs: JSON files and/or work directories.
        labels: one label per input (overrides the config names).
    """
    if labels is not None and len(labels) != len(inputs):
        raise ValueError(f'--labels needs one label per input: got '
                         f'{len(labels)} labels for {len(inputs)} inputs.')
    runs = []
    for i, item in enumerate(inputs):
        for path in find_anytime_jsons(item):
            data = _load_json(path)
            exits = sorted(data['exits'], key=lambda e: int(e['exit']))
            runs.append(dict(
                label=labels[i] if labels is not None else _label(data, path),
                path=path, exits=exits))
    return runs


def summarize(runs: Sequence[Dict], metric: str = 'top1') -> 'OrderedDict':
    """Per label (in order of first appearance): ``n``, ``mflops`` (per
    exit), ``mean`` and ``std`` (sample std, ddof = 1; ``nan`` for a single
    run) of ``metric`` per exit, and the ``paths``.

    Raises:
        ValueError: runs of one label with different exits or costs, or a
            run without ``metric``.
    """
    groups: 'OrderedDict[str, List[Dict]]' = OrderedDict()
    for run in runs:
        groups.setdefault(run['label'], []).append(run)
    out = OrderedDict()
    for label, members in groups.items():
        ref = members[0]
        ref_exits = [int(e['exit']) for e in ref['exits']]
        ref_cost = np.array([float(e.get('mflops', np.nan))
                             for e in ref['exits']])
        values = []
        for run in members:
            exits = [int(e['exit']) for e in run['exits']]
            cost = np.array([float(e.get('mflops', np.nan))
                             for e in run['exits']])
            if exits != ref_exits or not np.allclose(
                    cost, ref_cost, rtol=1e-3, equal_nan=True):
                raise ValueError(
                    f'Runs labelled {label!r} differ in their exits or '
                    f'costs ({ref["path"]}: exits {ref_exits}, MFLOPs '
                    f'{ref_cost.tolist()}; {run["path"]}: exits {exits}, '
                    f'MFLOPs {cost.tolist()}): they are not seeds of one '
                    'scheme; give them different --labels.')
            missing = [e['exit'] for e in run['exits'] if metric not in e]
            if missing:
                raise ValueError(f'{run["path"]}: no {metric!r} for exits '
                                 f'{missing}.')
            values.append([float(e[metric]) for e in run['exits']])
        values = np.array(values)
        n = len(members)
        out[label] = dict(
            n=n, exits=ref_exits, mflops=ref_cost.tolist(),
            mean=values.mean(0).tolist(),
            std=(values.std(0, ddof=1) if n > 1 else
                 np.full(values.shape[1], np.nan)).tolist(),
            paths=[m['path'] for m in members])
    return out


def _cell(mean: float, std: float, bold: bool) -> str:
    text = f'{mean:.2f}' if np.isnan(std) else f'{mean:.2f} ± {std:.2f}'
    return f'**{text}**' if bold else text


def compare_table(summary: 'OrderedDict', metric: str = 'top1') -> str:
    """Markdown table: rows = exits (with their MFLOPs), columns = schemes
    (with their numbers of seeds); the best mean of each row in bold."""
    labels = list(summary)
    num_exits = max(len(s['exits']) for s in summary.values())
    name = {'top1': 'Top-1', 'top5': 'Top-5'}.get(metric, metric)
    lines = [f'{name} accuracy (%) of every exit on the test split; mean ± '
             'std (sample, ddof = 1) over the n seeds of each scheme.', '',
             '| exit | MFLOPs | ' + ' | '.join(
                 f'{label} (n={summary[label]["n"]})' for label in labels)
             + ' |',
             '|---:|---:|' + '---:|' * len(labels)]
    mixed_costs = False
    for k in range(num_exits):
        cells, means, costs = [], [], []
        for label in labels:
            s = summary[label]
            if k < len(s['exits']):
                means.append(s['mean'][k])
                costs.append(s['mflops'][k])
            else:
                means.append(np.nan)
        best = np.nanmax(means) if not np.all(np.isnan(means)) else None
        for label, mean in zip(labels, means):
            s = summary[label]
            if np.isnan(mean):
                cells.append('–')
            else:
                cells.append(_cell(mean, s['std'][k],
                                   len(labels) > 1 and mean == best))
        costs = [c for c in costs if not np.isnan(c)]
        if not costs:
            cost = '–'
        elif np.allclose(costs, costs[0], rtol=1e-3):
            cost = f'{costs[0]:.2f}'
        else:
            mixed_costs = True
            cost = ' / '.join(f'{c:.2f}' for c in costs)
        lines.append(f'| {k + 1} | {cost} | ' + ' | '.join(cells) + ' |')
    if mixed_costs:
        lines += ['', 'MFLOPs differ between schemes: listed in column '
                  'order.']
    return '\n'.join(lines)


def plot_compare(summary: 'OrderedDict', path: str,
                 metric: str = 'top1') -> None:
    """Per-exit accuracy vs cumulative MFLOPs, one line per scheme, error
    bars = std over its seeds."""
    from .plotting import new_figure
    fig, (ax, ) = new_figure(1, width=6.5, height=4.5)
    for i, (label, s) in enumerate(summary.items()):
        x = s['mflops'] if not np.any(np.isnan(s['mflops'])) else s['exits']
        std = np.nan_to_num(np.array(s['std']), nan=0.0)
        ax.errorbar(x, s['mean'], yerr=std if s['n'] > 1 else None,
                    fmt='o-', ms=4, capsize=3, color=f'C{i % 10}',
                    label=f'{label} (n={s["n"]})')
    any_cost = any(not np.any(np.isnan(s['mflops']))
                   for s in summary.values())
    ax.set_xlabel('cumulative MFLOPs of the exit' if any_cost else 'exit')
    name = {'top1': 'top-1', 'top5': 'top-5'}.get(metric, metric)
    ax.set_ylabel(f'{name} accuracy (%)')
    ax.set_title(f'Anytime prediction: per-exit {name} (mean ± std over '
                 'seeds)', fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
