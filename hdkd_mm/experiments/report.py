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
  t-interval over seeds, the room and the detectable effect beside each,
  and the verdict of the rule fixed in :mod:`hdkd_mm.experiments.verdict`;
* ``budgeted.md/.png``: budgeted batch classification, top-1 at the suite's
  ``budget_points`` (linear interpolation of each run's 39-budget curve) and
  the curves averaged over seeds;
* ``gamma_<label>.png``: γ over training of the first seed of every cell
  that learns γ (``tools/analysis/plot_run.py``);
* ``gamma_travel.md``: how far γ moved from its initialisation in every run
  that learned it (L1 distance, relative, logged path length);
* ``runs.md``, ``timing.md``, ``summary.json``, ``report.md`` (all of it).

The tables are made in :mod:`hdkd_mm.experiments.tables`; this module
collects the finished runs, writes the files and publishes them.
"""
import json
import os
import os.path as osp
import re
import shutil
from collections import OrderedDict
from typing import Dict, List, Optional

from . import gamma, tables
from .records import read_json
from .spec import Suite

__all__ = ['collect', 'write_report', 'publish', 'collect_from']


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


def collect_from(suite: Suite, root: str) -> List[Dict]:
    """The suite's finished runs kept under ``root/<run id>/`` (the layout
    of a suite's ``archive``): their ``result.json`` and ``anytime.json``,
    as :func:`collect` gives them, without the training-subset and
    budgeted parts."""
    runs = (_finished_run(run, osp.join(root, run.run_id))
            for run in suite.runs)
    return [done for done in runs if done is not None]


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

    anytime = tables.anytime_tables(suite, done)
    put('anytime_top1.md', anytime['anytime_top1'])
    plot_compare(summarize(tables.runs_for_compare(suite, done, 'test'),
                           'top1'),
                 osp.join(out_dir, 'anytime_top1.png'), 'top1')
    files['anytime_top1.png'] = osp.join(out_dir, 'anytime_top1.png')
    put('anytime_top5.md', anytime['anytime_top5'])
    put('train_top1.md', anytime['train_top1'])
    put('regime.md', tables.regime_table(suite, done))
    labels = tables.ordered_labels(suite, done)
    for b in suite.baselines:
        if b in labels:
            put(f'deltas_vs_{tables.safe_name(b)}.md',
                tables.delta_table(suite, done, b))
    if suite.claims:
        put('claims.md', tables.claims_table(suite, done))
    put('budgeted.md', tables.budgeted_outputs(suite, done, out_dir))
    if osp.isfile(osp.join(out_dir, 'budgeted.png')):
        files['budgeted.png'] = osp.join(out_dir, 'budgeted.png')
    for name in gamma.gamma_plots(suite, done, out_dir):
        files[name] = osp.join(out_dir, name)
    travel = gamma.gamma_travel_table(suite, done)
    if travel is not None:
        put('gamma_travel.md', travel)
    put('runs.md', tables.runs_table(suite, done, failed))
    put('timing.md', tables.timing_table(suite, done))
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
