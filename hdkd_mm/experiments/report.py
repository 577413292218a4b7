"""The tables and plots of a suite, from its finished runs, written under the
suite's ``out_dir`` as markdown/PNG files that ``docs/results.md`` includes
(:func:`publish` copies them between its ``<!-- BEGIN suite:NAME/FILE -->``
and ``<!-- END suite:NAME/FILE -->`` markers).

Files (``OUT`` = the suite's ``out_dir``):

* ``anytime_top1.md/.png``, ``anytime_top5.md``: per-exit test accuracy,
  mean ± std over seeds per cell (the comparison tool's
  :func:`~hdkd_mm.analysis.compare.compare_table` / ``plot_compare``);
* ``train_top1.md``: the same on the training subset (test pipeline);
* ``regime.md``: train vs test top-1 of the first and last exit per cell;
* ``deltas_vs_<baseline>.md``: per-exit paired differences (cell − baseline,
  same seed), mean ± std and the number of seeds with a positive difference;
* ``claims.md``: the suite's claims as paired effects with a 95 %
  t-interval over seeds and a rule-based verdict (:func:`claim_effect`);
* ``budgeted.md/.png``: budgeted batch classification, top-1 at the suite's
  ``budget_points`` (linear interpolation of each run's 39-budget curve) and
  the curves averaged over seeds;
* ``gamma_<label>.png``: γ over training of the first seed of every cell
  that learns γ (``tools/analysis/plot_run.py``);
* ``runs.md``, ``timing.md``, ``summary.json``, ``report.md`` (all of it).
"""
import json
import os
import os.path as osp
import re
import shutil
from collections import OrderedDict
from typing import Dict, List, Optional

import numpy as np

from .archive import read_json
from .suite import Suite

__all__ = ['collect', 'write_report', 'publish', 'collect_from',
           'rerun_table']


def safe_name(label: str) -> str:
    """A cell label as part of a file name."""
    return re.sub(r'[^A-Za-z0-9_.-]', '_', label)


def _finished_run(run, folder: str) -> Optional[Dict]:
    """A finished run's result and per-exit test accuracies, read from
    ``folder`` (None unless both ``result.json`` and ``anytime.json`` are
    there)."""
    result = read_json(osp.join(folder, 'result.json'))
    anytime = read_json(osp.join(folder, 'anytime.json'))
    if result is None or anytime is None:
        return None
    return dict(run=run, label=run.label, seed=run.seed, result=result,
                test=anytime['exits'])


def collect(suite: Suite) -> List[Dict]:
    """Every finished run of the suite (``result.json`` present)."""
    out = []
    for run in suite.runs:
        done = _finished_run(run, run.run_dir)
        if done is None:
            continue
        train = read_json(osp.join(run.run_dir, 'train_split.json'))
        budgeted = read_json(osp.join(run.run_dir, 'budgeted',
                                       'budgeted.json'))
        done.update(train=train['train_exits'],
                    budgeted=budgeted['models'][0] if budgeted else None)
        out.append(done)
    return out


def _ordered_labels(suite: Suite, done: List[Dict]) -> List[str]:
    present = {d['label'] for d in done}
    return [label for label in suite.labels() if label in present]


def _runs_for_compare(suite, done, key) -> List[Dict]:
    runs = []
    for label in _ordered_labels(suite, done):
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
        summary = summarize(_runs_for_compare(suite, done, key), metric)
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
    for label in _ordered_labels(suite, done):
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
    labels = [label for label in _ordered_labels(suite, done)
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


# two-sided 95 % Student t quantiles, df = 1..30 (df > 30: 1.96)
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262,
        2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101,
        2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052,
        2.048, 2.045, 2.042]


def t95(df: int) -> float:
    return _T95[df - 1] if df <= len(_T95) else 1.96


def claim_effect(done, claim) -> Dict:
    """Paired (same seed) differences a − b of test top-1 at the claim's
    exit ('first', 'last', 'mean' over exits, or a 1-based exit number),
    their mean, sample std, 95 % t-interval and the verdict:

    * expect '+' / '-': **reproduced** when the whole interval lies on the
      claimed side of 0, **contradicted** when it lies on the other side,
      else **inconclusive**;
    * expect '=' (no difference): **reproduced** when the interval lies in
      (−margin, +margin), **contradicted** when it lies outside, else
      **inconclusive**.
    With one common seed (no interval) the verdict is inconclusive; with
    none (a cell not run yet) it is **not run yet**."""
    a = {d['seed']: d for d in done if d['label'] == claim['a']}
    b = {d['seed']: d for d in done if d['label'] == claim['b']}
    seeds = sorted(set(a) & set(b))
    ex = claim.get('exit', 'last')

    def value(d):
        acc = [e['top1'] for e in d['test']]
        if ex == 'first':
            return acc[0]
        if ex == 'last':
            return acc[-1]
        if ex == 'mean':
            return float(np.mean(acc))
        return acc[int(ex) - 1]

    diffs = np.array([value(a[s]) - value(b[s]) for s in seeds])
    n = len(diffs)
    out = dict(n=n, diffs=diffs.tolist(), mean=np.nan, std=np.nan,
               lo=np.nan, hi=np.nan, verdict='inconclusive')
    if n == 0:
        out['verdict'] = 'not run yet'
        return out
    mean = float(diffs.mean())
    out['mean'] = mean
    if n < 2:
        return out
    std = float(diffs.std(ddof=1))
    half = t95(n - 1) * std / np.sqrt(n)
    lo, hi = mean - half, mean + half
    out.update(std=std, lo=lo, hi=hi)
    margin = float(claim.get('margin', 1.0))
    expect = claim['expect']
    if expect == '+':
        verdict = ('reproduced' if lo > 0 else
                   'contradicted' if hi < 0 else 'inconclusive')
    elif expect == '-':
        verdict = ('reproduced' if hi < 0 else
                   'contradicted' if lo > 0 else 'inconclusive')
    else:
        verdict = ('reproduced' if -margin < lo and hi < margin else
                   'contradicted' if lo >= margin or hi <= -margin
                   else 'inconclusive')
    out['verdict'] = verdict
    return out


def claims_table(suite, done) -> str:
    lines = ['Each claim as a paired comparison (same seed) of test top-1: '
             'effect = a − b in percentage points, mean ± std over the n '
             'common seeds, its 95 % t-interval, the per-seed differences, '
             'and the verdict of the fixed rule (interval on the claimed '
             "side of 0: reproduced; on the other side: contradicted; "
             "else inconclusive; for '=' the interval must lie within "
             '± margin; n = 0: not run yet). The paper\'s effect (top-5, '
             'its setting) is given for scale only.', '',
             '| claim | a − b | exit | expect | n | effect | 95 % interval '
             '| per seed | verdict | paper |',
             '|:---|:---|:---:|:---:|---:|---:|:---:|:---|:---|:---|']
    for c in suite.claims:
        e = claim_effect(done, c)
        expect = c['expect'] + (f" (±{c.get('margin', 1.0):g})"
                                if c['expect'] == '=' else '')
        interval = ('–' if np.isnan(e['lo']) else
                    f"[{e['lo']:+.2f}, {e['hi']:+.2f}]")
        per_seed = ' '.join(f'{x:+.2f}' for x in e['diffs']) or '–'
        lines.append(
            f"| {c['claim']} | {c['a']} − {c['b']} | {c.get('exit', 'last')}"
            f" | {expect} | {e['n']} | {_fmt(e['mean'], e['std'], sign=True)}"
            f" | {interval} | {per_seed} | **{e['verdict']}** | "
            f"{c.get('paper', '')} |")
    return '\n'.join(lines)


def _budget_curve(model: Dict, key: str = 'top1'):
    pts = sorted((b['mflops'], b[key]) for b in model['budgets'])
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def budgeted_outputs(suite, done, out_dir) -> str:
    from hdkd_mm.analysis.plotting import new_figure
    labels = [label for label in _ordered_labels(suite, done)
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


def gamma_plots(suite, done, out_dir) -> List[str]:
    """γ trajectories (``plot_run``) of the first seed of every cell that
    logged γ; returns the file names written."""
    from hdkd_mm.analysis.run_plots import gamma_series, plot_gamma

    from .archive import gamma_records
    written = []
    for label in _ordered_labels(suite, done):
        ds = sorted((d for d in done if d['label'] == label),
                    key=lambda d: d['seed'])
        # every training attempt of the run (a resumed run has several
        # log folders; iterations redone after a resume keep the last)
        series = gamma_series(gamma_records(ds[0]['run'].run_dir))
        if not series:
            continue
        name = f'gamma_{safe_name(label)}.png'
        plot_gamma(series, osp.join(out_dir, name),
                   title=f'{label}, seed {ds[0]["seed"]}: γ over training')
        written.append(name)
    return written


def runs_table(suite, done, failed: Dict[str, str]) -> str:
    lines = ['| cell | seed | run | test top-1 exit 1 | test top-1 last | '
             'train top-1 last | train wall | eval wall | threads |',
             '|:---|---:|:---|---:|---:|---:|---:|---:|---:|']
    from .runner import fmt_duration
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


def timing_table(suite, done) -> str:
    lines = ['Measured wall time per run (training + evaluation), mean per '
             'cell, with the OpenMP threads each run had.', '',
             '| cell | n | train (min) | eval (min) | total (min) |',
             '|:---|---:|---:|---:|---:|']
    total = 0.0
    for label in _ordered_labels(suite, done):
        ds = [d for d in done if d['label'] == label]
        tr = [d['result']['train_wall_s'] / 60 for d in ds]
        ev = [d['result']['eval_wall_s'] / 60 for d in ds]
        total += sum(tr) + sum(ev)
        lines.append(f'| {label} | {len(ds)} | {np.mean(tr):.1f} | '
                     f'{np.mean(ev):.1f} | {np.mean(tr) + np.mean(ev):.1f} |')
    lines += ['', f'Sum over the {len(done)} finished runs: {total:.0f} '
              f'run-minutes = {total / 60:.2f} h; at {suite.parallel} runs '
              f'at a time about {total / 60 / suite.parallel:.2f} h of wall '
              'time (the runs of this suite that were reused from another '
              'suite are counted too).']
    return '\n'.join(lines)


def collect_from(suite: Suite, root: str) -> List[Dict]:
    """The suite's finished runs kept under ``root/<run id>/`` (the layout
    of a suite's ``archive``): their ``result.json`` and ``anytime.json``,
    as :func:`collect` gives them, without the training-subset and
    budgeted parts."""
    runs = (_finished_run(run, osp.join(root, run.run_id))
            for run in suite.runs)
    return [done for done in runs if done is not None]


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


def write_report(suite: Suite, failed: Optional[Dict[str, str]] = None,
                 log=print) -> Dict[str, str]:
    """Write every table/plot of the suite; returns ``{file name: path}``
    (with ``report_by: override``: ``{OVERRIDE/file name: path}``, one
    report per override set, cells labelled by config name). Cells with
    unfinished runs are reported with the seeds they have."""
    if suite.report_by == 'override':
        import copy
        files: Dict[str, str] = OrderedDict()
        for name in suite.overrides:
            runs = [r for r in suite.runs if r.override == name]
            if not runs:
                continue
            sub = copy.copy(suite)
            sub.report_by = None
            sub.name = f'{suite.name}/{name}'
            sub.out_dir = osp.join(suite.out_dir, name)
            sub.runs = []
            for r in runs:
                r = copy.copy(r)
                r.label = r.stem
                sub.runs.append(r)
            for key, path in write_report(sub, failed, log).items():
                files[f'{name}/{key}'] = path
        return files
    from hdkd_mm.analysis.compare import plot_compare, summarize
    failed = failed or {}
    done = collect(suite)
    out_dir = suite.out_dir
    os.makedirs(out_dir, exist_ok=True)
    files: 'OrderedDict[str, str]' = OrderedDict()
    if not done:
        log(f'suite {suite.name}: no finished runs, no report.')
        return files

    def put(name, text):
        path = osp.join(out_dir, name)
        with open(path, 'w') as f:
            f.write(text.rstrip('\n') + '\n')
        files[name] = path

    tables = anytime_tables(suite, done)
    put('anytime_top1.md', tables['anytime_top1'])
    plot_compare(summarize(_runs_for_compare(suite, done, 'test'), 'top1'),
                 osp.join(out_dir, 'anytime_top1.png'), 'top1')
    files['anytime_top1.png'] = osp.join(out_dir, 'anytime_top1.png')
    put('anytime_top5.md', tables['anytime_top5'])
    put('train_top1.md', tables['train_top1'])
    put('regime.md', regime_table(suite, done))
    labels = _ordered_labels(suite, done)
    for b in suite.baselines:
        if b in labels:
            put(f'deltas_vs_{safe_name(b)}.md', delta_table(suite, done, b))
    if suite.claims:
        put('claims.md', claims_table(suite, done))
    put('budgeted.md', budgeted_outputs(suite, done, out_dir))
    if osp.isfile(osp.join(out_dir, 'budgeted.png')):
        files['budgeted.png'] = osp.join(out_dir, 'budgeted.png')
    for name in gamma_plots(suite, done, out_dir):
        files[name] = osp.join(out_dir, name)
    put('runs.md', runs_table(suite, done, failed))
    put('timing.md', timing_table(suite, done))
    complete = len(done) == len(suite.runs)
    summary = dict(
        suite=suite.name, suite_file=suite.path, complete=complete,
        num_runs=len(suite.runs), num_done=len(done), failed=failed,
        runs=[dict(label=d['label'], seed=d['seed'],
                   run_id=d['run'].run_id, test_top1=d['result']['test_top1'],
                   train_top1=d['result']['train_top1'],
                   mflops=d['result']['mflops'],
                   train_wall_s=d['result']['train_wall_s'],
                   eval_wall_s=d['result']['eval_wall_s']) for d in done])
    with open(osp.join(out_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    files['summary.json'] = osp.join(out_dir, 'summary.json')
    parts = [f'# Suite `{suite.name}`', '',
             f'Suite file: `{suite.path}`. {len(done)} of {len(suite.runs)} '
             'runs finished' + ('.' if complete else
                                ' (INCOMPLETE: the tables use the finished '
                                'runs only).'), '']
    if suite.description:
        parts += [suite.description, '']
    for name in files:
        if name.endswith('.md'):
            with open(files[name]) as f:
                parts += [f'## {name[:-3]}', '', f.read(), '']
        elif name.endswith('.png'):
            parts += [f'![{name[:-4]}]({name})', '']
    put('report.md', '\n'.join(parts))
    return files


_BLOCK = re.compile(r'(<!-- BEGIN suite:([A-Za-z0-9_.+-]+)/([^ ]+) -->\n)'
                    r'(.*?)'
                    r'(<!-- END suite:\2/\3 -->)', re.S)


def publish(suite: Suite, files: Dict[str, str], doc: str,
            log=print) -> int:
    """Replace the blocks of ``doc`` marked for this suite by the generated
    files (markdown inlined; PNGs copied to ``<doc dir>/results/<suite>/``
    and linked). Returns the number of blocks filled."""
    with open(doc) as f:
        text = f.read()
    asset_dir = osp.join(osp.dirname(osp.abspath(doc)), 'results', suite.name)
    count = 0
    missing = []

    def fill(m):
        nonlocal count
        name, fname = m.group(2), m.group(3)
        if name != suite.name:
            return m.group(0)
        if fname not in files:
            missing.append(fname)
            return m.group(0)
        count += 1
        if fname.endswith('.png'):
            target = osp.join(asset_dir, fname)
            os.makedirs(osp.dirname(target), exist_ok=True)
            shutil.copyfile(files[fname], target)
            body = f'![{suite.name} {fname[:-4]}](results/{suite.name}/' \
                   f'{fname})\n'
        else:
            with open(files[fname]) as f:
                body = f.read().rstrip('\n') + '\n'
        return m.group(1) + body + m.group(5)

    text = _BLOCK.sub(fill, text)
    with open(doc, 'w') as f:
        f.write(text)
    if missing:
        log(f'{doc}: no generated file for block(s) {missing} of suite '
            f'{suite.name} (left as they were).')
    log(f'{doc}: filled {count} block(s) of suite {suite.name}.')
    return count
