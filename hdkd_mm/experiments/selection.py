"""Choices made on the held-out split only: a small grid of training runs
scored per exit on the held-out images, and a rule, fixed before any run,
that picks one of them (``tools/experiments/select_on_heldout.py``).

A selection file (YAML)::

    name: cifar10_regime                # names the output folder
    config: configs/experiments/...py   # what every candidate trains
    work_root: work_dirs/selection/cifar10_regime
    data_root: null                     # or --data-root; fills {data_root}
    options: {train_dataloader.dataset.dataset.data_root: '{data_root}'}
    heldout_split: {val_dataloader.dataset.split: heldout}
    candidates:                         # in the order the rule reads them
      lingrow6: {model.backbone.nBlocks: 6}
      lingrow7: {model.backbone.nBlocks: 7}
    rule: {type: min_room, min_room: 8.0}   # or {type: best_mean, tie: 0.3}

Every candidate is trained once with ``tools/train.py`` and validated only
at its last epoch, on the held-out split (the options of ``heldout_split``
point the validation loader there): no test image is read. The rules:

* ``min_room``: the first candidate (file order; list the cheapest first)
  whose room, held-out top-1 of the last exit minus that of the first, is at
  least ``min_room`` points; if none has, the one with the largest room,
  flagged ``met: false``. Candidates after the chosen one are not trained
  (they could not change the choice); the table lists them as not needed.
* ``best_mean``: the largest mean over exits of held-out top-1; candidates
  within ``tie`` points of it count as equal, and among them the one whose
  γ travelled farthest (L1 distance from the initial to the final γ) wins,
  so that a γ that moves is preferred when it costs nothing.
"""
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

from ..evaluation.metrics.multi_exit_accuracy import EXIT_TOP1_KEY, exit_top1
from .children import (REPO, child_env, run_child, run_lock,
                       stopping_children)
from .gamma import initial_gamma_of, logged_travel
from .options import format_options
from .spec import SuiteError

RULES = ('min_room', 'best_mean')


def load_selection(path: str, data_root: Optional[str] = None) -> Dict:
    """Read and check a selection file; ``data_root`` (the command line)
    wins over the file's."""
    import yaml
    if not osp.isfile(path):
        raise SuiteError(f'Selection file {path!r} does not exist.')
    with open(path) as f:
        sel = yaml.safe_load(f)
    for key in ('name', 'config', 'candidates', 'rule'):
        if key not in (sel or {}):
            raise SuiteError(f'{path}: `{key}` is required.')
    rule = dict(sel['rule'])
    if rule.get('type') not in RULES:
        raise SuiteError(f'{path}: rule.type must be one of {RULES}, got '
                         f'{rule.get("type")!r}.')
    if not isinstance(sel['candidates'], dict) or not sel['candidates']:
        raise SuiteError(f'{path}: candidates must be a non-empty mapping '
                         'of names to option sets.')
    root = data_root or sel.get('data_root')
    options = dict(sel.get('options') or {})
    options.update(sel.get('heldout_split') or {})
    uses_root = any('{data_root}' in str(v) for v in options.values())
    if uses_root and not root:
        raise SuiteError(f'{path}: the options read {{data_root}}; give '
                         '--data-root DIR or `data_root:` in the file.')
    options = {k: (v.replace('{data_root}', root) if isinstance(v, str)
                   else v) for k, v in options.items()}
    sel.update(options=options, rule=rule, path=path,
               work_root=sel.get('work_root') or osp.join(
                   'work_dirs', 'selection', sel['name']))
    return sel


def final_heldout_metrics(work_dir: str) -> Optional[Dict[str, float]]:
    """The last validation metrics MMEngine logged in ``work_dir`` (the
    newest ``<timestamp>/vis_data/scalars.json`` holding per-exit top-1,
    :data:`~hdkd_mm.evaluation.metrics.multi_exit_accuracy.EXIT_TOP1_KEY`)."""
    if not osp.isdir(work_dir):
        return None
    last = None
    for stamp in sorted(os.listdir(work_dir)):
        path = osp.join(work_dir, stamp, 'vis_data', 'scalars.json')
        if not osp.isfile(path):
            continue
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if any(EXIT_TOP1_KEY.match(k) for k in row):
                    last = row
    return last


def choose(rows: List[Dict], rule: Dict) -> Dict:
    """Apply the selection rule to scored candidates (each row: ``name``,
    ``heldout_top1`` list, ``gamma_travel``); returns ``{choice, met,
    why}``."""
    if rule['type'] == 'min_room':
        need = float(rule['min_room'])
        for row in rows:
            if row['room'] >= need:
                return dict(choice=row['name'], met=True,
                            why=f'first candidate with room >= {need:g}')
        best = max(rows, key=lambda r: r['room'])
        return dict(choice=best['name'], met=False,
                    why=f'no candidate reached room {need:g}: the largest')
    tie = float(rule.get('tie', 0.0))
    top = max(r['mean'] for r in rows)
    close = [r for r in rows if r['mean'] >= top - tie]
    best = max(close, key=lambda r: (r['gamma_travel'] or 0.0, r['mean']))
    return dict(choice=best['name'], met=True,
                why=f'best held-out mean top-1 (ties within {tie:g} points: '
                'the γ that travelled farthest)')


def train_candidate(sel: Dict, name: str, threads: int = 1,
                    log=print) -> Dict[str, float]:
    """Train one candidate unless it is trained (an interrupted run
    resumes); returns its final held-out metrics."""
    options = dict(sel['options'], **(sel['candidates'][name] or {}))
    work_dir = osp.join(sel['work_root'], name)
    metrics = final_heldout_metrics(work_dir)
    if metrics is not None:
        return metrics
    log(f'[{name}] training in {work_dir}')
    os.makedirs(work_dir, exist_ok=True)
    log_path = osp.join(work_dir, 'train.log')
    with run_lock(work_dir) as lock_fd, open(log_path, 'a') as out, \
            stopping_children():
        returncode = run_child(
            [sys.executable, osp.join(REPO, 'tools', 'train.py'),
             sel['config'], '--work-dir', work_dir, '--resume',
             '--cfg-options'] + format_options(options),
            env=child_env(threads), stdout=out, pass_fds=(lock_fd,))
    if returncode != 0:
        raise RuntimeError(f'training candidate {name} failed (exit code '
                           f'{returncode}); see {log_path}')
    return final_heldout_metrics(work_dir)


def run_selection(sel: Dict, threads: int = 1, log=print) -> Dict:
    """Train every candidate the rule needs that is not trained yet, score
    it, apply the rule; writes ``WORK_ROOT/selection.json`` and returns it.
    (To train candidates side by side, call :func:`train_candidate` for
    each in its own process first.)"""
    rows = []
    for name, extra in sel['candidates'].items():
        if sel['rule']['type'] == 'min_room' and any(
                r['room'] >= float(sel['rule']['min_room']) for r in rows):
            log(f'[{name}] not trained: an earlier candidate meets the rule')
            continue
        options = dict(sel['options'], **(extra or {}))
        work_dir = osp.join(sel['work_root'], name)
        metrics = train_candidate(sel, name, threads, log)
        top1 = exit_top1(metrics)
        init = initial_gamma_of(sel['config'], options)
        travel = logged_travel(work_dir, init[1] if init else None)
        rows.append(dict(name=name, options=extra or {}, heldout_top1=top1,
                         room=top1[-1] - top1[0],
                         mean=sum(top1) / len(top1), gamma_travel=travel))
        log(f'[{name}] held-out top-1 {top1}, room {rows[-1]["room"]:.2f}')
    skipped = [n for n in sel['candidates'] if n not in
               {r['name'] for r in rows}]
    result = dict(name=sel['name'], config=sel['config'], rule=sel['rule'],
                  candidates=rows, not_needed=skipped,
                  **choose(rows, sel['rule']))
    with open(osp.join(sel['work_root'], 'selection.json'), 'w') as f:
        json.dump(result, f, indent=1)
    return result


def selection_table(result: Dict) -> str:
    """Markdown table of a selection result, the choice in bold."""
    k = max(len(r['heldout_top1']) for r in result['candidates'])
    head = ('| candidate | ' + ' | '.join(f'exit {i + 1}' for i in range(k))
            + ' | room | mean | γ travel (L1) |')
    lines = [head, '|---|' + '---:|' * (k + 3)]
    for r in result['candidates']:
        name = (f"**{r['name']}**" if r['name'] == result['choice']
                else r['name'])
        travel = ('–' if r['gamma_travel'] is None
                  else f"{r['gamma_travel']:.3f}")
        lines.append(f'| {name} | ' + ' | '.join(
            f'{v:.2f}' for v in r['heldout_top1']) +
            f" | {r['room']:.2f} | {r['mean']:.2f} | {travel} |")
    for name in result.get('not_needed', []):
        lines.append(f'| {name} | ' + ' | '.join(['–'] * k) +
                     ' | not trained: not needed by the rule | | |')
    return '\n'.join(lines)
