"""The markdown tables and PNG plots of a suite, from its finished runs
(``done``: the dicts of :func:`hdkd_mm.experiments.report.collect`); the
claims' verdicts come from :mod:`hdkd_mm.experiments.verdict`. What each
file holds is listed in :mod:`hdkd_mm.experiments.report`."""
import os.path as osp
import re
from typing import Dict, List

import numpy as np

from .progress import fmt_duration
from .spec import Suite
from .verdict import claim_effect

__all__ = ['safe_name', 'anytime_tables', 'regime_table', 'delta_table',
           'claims_table', 'budgeted_outputs', 'runs_table',
           'timing_table', 'rerun_table', 'ordered_labels',
           'runs_for_compare']


def safe_name(label: str) -> str:
    """A cell label as part of a file name."""
    return re.sub(r'[^A-Za-z0-9_.-]', '_', label)


def ordered_labels(suite: Suite, done: List[Dict]) -> List[str]:
    present = {d['label'] for d in done}
    return [label for label in suite.labels() if label in present]


def runs_for_compare(suite, done, key) -> List[Dict]:
    runs = []
    for label in ordered_labels(suite, done):
        for d in done:
            if d['label'] == label:
                runs.append(dict(label=label, path=d['run'].run_dir,
                                 exits=sorted(d[key],
                                              key=lambda e: int(e['exit']))))
    return runs


def _fmt(mean, std, digits=2, sign=False) -> str:
    f = f'{{:{"+" if sign else ""}.{digits}f}}'
    if mean is None or np.isnan(mean):
        return '–'
    text = f.format(mean)
    if std is not None and not np.isnan(std):
        text += f' ± {std:.{digits}f}'
    return text


def _mean_std(values):
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return np.nan, np.nan
    return (float(values.mean()),
            float(values.std(ddof=1)) if values.size > 1 else np.nan)


def anytime_tables(suite, done) -> Dict[str, str]:
    from hdkd_mm.analysis.compare import compare_table, summarize
    tables = {}
    for key, metric, name, caption in (
            ('test', 'top1', 'anytime_top1', None),
            ('test', 'top5', 'anytime_top5', None),
            ('train', 'top1', 'train_top1',
             'Top-1 accuracy (%) of every exit on the training subset the '
             'model was trained on (test pipeline, no augmentation); mean ± '
             'std (sample, ddof = 1) over the n seeds of each scheme.')):
        summary = summarize(runs_for_compare(suite, done, key), metric)
        table = compare_table(summary, metric)
        if caption:
            table = caption + table[table.index('\n'):]
        tables[name] = table
    return tables


def regime_table(suite, done) -> str:
    lines = ['Does each cell fit its training set, and how far apart are '
             'its exits? Top-1 (%), mean ± std over seeds; "gap" = train − '
             'test of the last exit.', '',
             '| cell | n | train exit 1 | train last | test exit 1 | '
             'test last | last − first (test) | gap (last) |',
             '|:---|---:|---:|---:|---:|---:|---:|---:|']
    for label in ordered_labels(suite, done):
        ds = [d for d in done if d['label'] == label]
        tr1 = [d['train'][0]['top1'] for d in ds]
        trl = [d['train'][-1]['top1'] for d in ds]
        te1 = [d['test'][0]['top1'] for d in ds]
        tel = [d['test'][-1]['top1'] for d in ds]
        spread = [b - a for a, b in zip(te1, tel)]
        gap = [a - b for a, b in zip(trl, tel)]
        cells = [_fmt(*_mean_std(v)) for v in (tr1, trl, te1, tel, spread,
                                                gap)]
        lines.append(f'| {label} | {len(ds)} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def delta_table(suite, done, baseline: str) -> str:
    """Paired (same seed) per-exit differences of each cell vs
    ``baseline``."""
    base = {d['seed']: d for d in done if d['label'] == baseline}
    labels = [label for label in ordered_labels(suite, done)
              if label != baseline]
    lines = [f'Test top-1 difference (percentage points) of each cell minus '
             f'**{baseline}**, paired by seed: mean ± std (sample) over the '
             'n common seeds; [k/n] = seeds with a positive difference.', '',
             '| exit | ' + ' | '.join(labels) + ' |',
             '|---:|' + '---:|' * len(labels)]
    num_exits = max(len(d['test']) for d in done)
    ns = []
    for k in range(num_exits):
        cells = []
        for label in labels:
            diffs = [d['test'][k]['top1'] - base[d['seed']]['test'][k]['top1']
                     for d in done if d['label'] == label
                     and d['seed'] in base and k < len(d['test'])
                     and k < len(base[d['seed']]['test'])]
            if k == 0:
                ns.append(len(diffs))
            if not diffs:
                cells.append('–')
                continue
            m, s = _mean_std(diffs)
            pos = sum(x > 0 for x in diffs)
            cells.append(f'{_fmt(m, s, sign=True)} [{pos}/{len(diffs)}]')
        lines.append(f'| {k + 1} | ' + ' | '.join(cells) + ' |')
    lines.append('| n | ' + ' | '.join(str(n) for n in ns) + ' |')
    return '\n'.join(lines)


def _num(value: float, digits: int = 2, sign: bool = False) -> str:
    if value is None or np.isnan(value):
        return '–'
    return f'{value:{"+" if sign else ""}.{digits}f}'


def claims_table(suite, done) -> str:
    """The claims with their effect, the room and power beside each, and
    the verdict of :func:`~hdkd_mm.experiments.verdict.claim_effect`."""
    lines = ['Each claim as a paired comparison (same seed) of test top-1, '
             'in percentage points: effect = a − b, mean ± std over the n '
             'common seeds, its 95 % t-interval and the per-seed '
             'differences. *detectable*: the smallest effect these seeds '
             'could show, the interval\'s half-width t₀.₉₇₅,ₙ₋₁ · std / √n. '
             '*power*: the chance that the interval lies on the claimed '
             'side of 0 if the true effect were the paper\'s (noncentral t, '
             'the observed std). '
             '*room*: b\'s last exit − first exit (test / training subset), '
             'mean over its seeds. *paper*: the paper\'s effect (top-5, its '
             'setting); after → the number the rule uses, the smallest in '
             "magnitude ('=' claims use their margin). Verdict "
             '(`hdkd_mm/experiments/verdict.py`): interval on the claimed '
             'side of 0 (for \'=\': within ± margin): reproduced; on the '
             'other side (outside): contradicted; else **not testable '
             'here** when detectable > |paper| (for \'=\': ≥ margin) or, at '
             'an exit before the last, room (test) < |paper|, the reason '
             'in brackets; else inconclusive; n = 1: one seed (no interval); '
             'n = 0: not run yet. Whatever '
             'the verdict, the table says when the paper\'s effect lies '
             'outside the interval.', '',
             '| claim | a − b | exit | expect | n | effect | 95 % interval '
             '| per seed | detectable | power | room of b (test / train) | '
             'paper | verdict |',
             '|:---|:---|:---:|:---:|---:|---:|:---:|:---|---:|---:|:---:|'
             ':---|:---|']
    for c in suite.claims:
        e = claim_effect(done, c)
        equal = c['expect'] == '='
        margin = c.get('margin', 1.0)
        expect = c['expect'] + (f' (±{margin:g})' if equal else '')
        interval = ('–' if np.isnan(e['lo']) else
                    f"[{e['lo']:+.2f}, {e['hi']:+.2f}]")
        per_seed = ' '.join(f'{x:+.2f}' for x in e['diffs']) or '–'
        power = ('–' if np.isnan(e['power']) else
                 f"{100 * e['power']:.0f} %")
        paper = str(c.get('paper', '')).strip()
        used = (f'±{margin:g}' if equal else
                '–' if e['paper'] is None else _num(e['paper'], sign=True))
        verdict = f"**{e['verdict']}**"
        if e['verdict'] == 'not testable here':
            verdict += f" ({', '.join(e['limits'])})"
        if e['paper_outside']:
            verdict += '; the paper\'s effect lies outside the interval'
        lines.append(
            f"| {c['claim']} | {c['a']} − {c['b']} | {c.get('exit', 'last')}"
            f" | {expect} | {e['n']} | {_fmt(e['mean'], e['std'], sign=True)}"
            f" | {interval} | {per_seed} | {_num(e['detectable'])} | {power}"
            f" | {_num(e['room_test'])} / {_num(e['room_train'])} | "
            f"{paper + ' → ' if paper else ''}{used} | {verdict} |")
    return '\n'.join(lines)


def _budget_curve(model: Dict, key: str = 'top1'):
    pts = sorted((b['mflops'], b[key]) for b in model['budgets'])
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def budgeted_outputs(suite, done, out_dir) -> str:
    from hdkd_mm.analysis.plotting import new_figure
    labels = [label for label in ordered_labels(suite, done)
              if any(d['budgeted'] for d in done if d['label'] == label)]
    if not labels:
        return 'No budgeted results.'
    points = list(suite.budget_points)
    if not points:  # default: 4 points across the range of the first run
        first = next(d['budgeted'] for d in done if d['budgeted'])
        lo, hi = first['exit_mflops'][0], first['exit_mflops'][-1]
        points = [round(lo + f * (hi - lo), 2) for f in (0.1, 0.3, 0.5,
                                                         0.8)]
    lines = ['Budgeted batch classification: test top-1 (%) at an average '
             'cost of B MFLOPs per image (thresholds fitted on the held-out '
             'split; each run\'s 39-budget curve interpolated at B), mean ± '
             'std over seeds; – = B outside the run\'s range.', '',
             '| B (MFLOPs) | ' + ' | '.join(labels) + ' |',
             '|---:|' + '---:|' * len(labels)]
    for p in points:
        cells = []
        for label in labels:
            vals = []
            for d in done:
                if d['label'] != label or not d['budgeted']:
                    continue
                x, y = _budget_curve(d['budgeted'])
                vals.append(np.interp(p, x, y) if x[0] <= p <= x[-1]
                            else np.nan)
            vals = [v for v in vals if not np.isnan(v)]
            cells.append(_fmt(*_mean_std(vals)))
        lines.append(f'| {p:g} | ' + ' | '.join(cells) + ' |')
    fig, (ax, ) = new_figure(1, width=6.5, height=4.5)
    for i, label in enumerate(labels):
        curves = [d['budgeted'] for d in done
                  if d['label'] == label and d['budgeted']]
        n = min(len(c['budgets']) for c in curves)
        xs = np.array([[c['budgets'][j]['mflops'] for j in range(n)]
                       for c in curves]).mean(0)
        ys = np.array([[c['budgets'][j]['top1'] for j in range(n)]
                       for c in curves])
        order = np.argsort(xs)
        mean = ys.mean(0)[order]
        ax.plot(xs[order], mean, '.-', ms=3, lw=1.2, color=f'C{i % 10}',
                label=f'{label} (n={len(curves)})')
        if len(curves) > 1:
            std = ys.std(0, ddof=1)[order]
            ax.fill_between(xs[order], mean - std, mean + std, alpha=0.15,
                            color=f'C{i % 10}')
    ax.set_xlabel('average MFLOPs per test image')
    ax.set_ylabel('top-1 accuracy (%)')
    ax.set_title('Budgeted batch classification (mean ± std over seeds)',
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(osp.join(out_dir, 'budgeted.png'), dpi=110)
    return '\n'.join(lines)


def runs_table(suite, done, failed: Dict[str, str]) -> str:
    lines = ['| cell | seed | run | test top-1 exit 1 | test top-1 last | '
             'train top-1 last | train wall | eval wall | threads |',
             '|:---|---:|:---|---:|---:|---:|---:|---:|---:|']
    for d in done:
        r = d['result']
        lines.append(
            f"| {d['label']} | {d['seed']} | `{d['run'].run_id}` | "
            f"{d['test'][0]['top1']:.2f} | {d['test'][-1]['top1']:.2f} | "
            f"{d['train'][-1]['top1']:.2f} | "
            f"{fmt_duration(r['train_wall_s'])}"
            f"{' (resumed)' if r.get('resumed') else ''} | "
            f"{fmt_duration(r['eval_wall_s'])} | {r.get('threads', '?')} |")
    for run in suite.runs:
        if run.run_id in failed:
            lines.append(f'| {run.label} | {run.seed} | `{run.run_id}` | '
                         f'failed: {failed[run.run_id]} | | | | | |')
        elif not any(d['run'] is run for d in done):
            lines.append(f'| {run.label} | {run.seed} | `{run.run_id}` | '
                         'not run | | | | | |')
    return '\n'.join(lines)


def _layouts(results: List[Dict]) -> str:
    """'NCHW', 'NHWC' or 'NCHW 1, NHWC 2': the memory layouts the runs
    trained in (runs recorded before ``channels_last`` existed: NCHW)."""
    nhwc = sum(bool(r.get('channels_last', False)) for r in results)
    counts = [('NCHW', len(results) - nhwc), ('NHWC', nhwc)]
    used = [(name, n) for name, n in counts if n]
    if len(used) == 1:
        return used[0][0]
    return ', '.join(f'{name} {n}' for name, n in used)


def timing_table(suite, done) -> str:
    lines = ['Measured wall time per run (training + evaluation), mean per '
             'cell, with the OpenMP threads each run had; layout: the memory '
             'layout the runs trained in (NHWC: `model.channels_last`).', '',
             '| cell | n | layout | train (min) | eval (min) | total (min) |',
             '|:---|---:|:---|---:|---:|---:|']
    total = 0.0
    for label in ordered_labels(suite, done):
        ds = [d for d in done if d['label'] == label]
        tr = [d['result']['train_wall_s'] / 60 for d in ds]
        ev = [d['result']['eval_wall_s'] / 60 for d in ds]
        total += sum(tr) + sum(ev)
        layout = _layouts([d['result'] for d in ds])
        lines.append(f'| {label} | {len(ds)} | {layout} | {np.mean(tr):.1f} '
                     f'| {np.mean(ev):.1f} | {np.mean(tr) + np.mean(ev):.1f} '
                     '|')
    lines += ['', f'Sum over the {len(done)} finished runs: {total:.0f} '
              f'run-minutes = {total / 60:.2f} h; at {suite.parallel} runs '
              f'at a time about {total / 60 / suite.parallel:.2f} h of wall '
              'time (the runs of this suite that were reused from another '
              'suite are counted too).']
    return '\n'.join(lines)


def rerun_table(suite: Suite, kept: List[Dict], rerun: List[Dict]) -> str:
    """The same runs trained twice (same config, seed and data; e.g. the
    archive and a re-run on another machine), as markdown: per run, the
    test top-1 of the first and last exit both times, the largest change
    over the exits and the training minutes; then per claim of the suite,
    the paired difference a − b of the kept runs and of the re-run at the
    seeds the re-run has, beside the verdict of the kept runs."""
    by_id = {d['run'].run_id: d for d in kept}
    lines = ['Test top-1 (%) of the same runs trained twice: the kept '
             '(archived) run and the re-run; Δ = re-run − kept.', '',
             '| run | exit 1 kept | exit 1 re-run | last kept | last re-run '
             '| max abs Δ over exits | train min kept → re-run |',
             '|:---|---:|---:|---:|---:|---:|---:|']
    deltas = []
    for d in rerun:
        k = by_id.get(d['run'].run_id)
        if k is None:
            continue
        new = [e['top1'] for e in d['test']]
        old = [e['top1'] for e in k['test']]
        worst = max(abs(a - b) for a, b in zip(new, old))
        deltas.append(worst)
        minutes = [r['result'].get('train_wall_s', float('nan')) / 60
                   for r in (k, d)]
        lines.append(f"| {d['run'].run_id} | {old[0]:.2f} | {new[0]:.2f} | "
                     f"{old[-1]:.2f} | {new[-1]:.2f} | {worst:.2f} | "
                     f'{minutes[0]:.1f} → {minutes[1]:.1f} |')
    if not deltas:
        return 'No run of the re-run folder is among the kept runs.'
    lines += ['', f'Largest change of an exit: {max(deltas):.2f} points over '
              f'{len(deltas)} run(s).']
    seeds = sorted({d['seed'] for d in rerun})
    if suite.claims:
        lines += ['', "Each claim's paired difference a − b (points) at "
                  "the re-run's seeds, from the kept runs and from the "
                  "re-run; the verdict is the kept runs' (all their seeds).",
                  '',
                  '| claim | a − b | exit | ' + ' | '.join(
                      f'seed {s} kept | seed {s} re-run' for s in seeds)
                  + ' | verdict (kept) |',
                  '|:---|:---|:---:|' + '---:|---:|' * len(seeds) + ':---|']
        for c in suite.claims:
            verdict = claim_effect(kept, c)['verdict']
            cells = []
            for s in seeds:
                for runs in (kept, rerun):
                    e = claim_effect([d for d in runs if d['seed'] == s], c)
                    cells.append(_fmt(e['mean'], None, sign=True))
            lines.append(f"| {c['claim']} | {c['a']} − {c['b']} | "
                         f"{c.get('exit', 'last')} | " + ' | '.join(cells)
                         + f' | {verdict} |')
    return '\n'.join(lines)
