"""Running a suite: every run as subprocesses of the repository's tools,
N at a time, resumable.

Per run (folder ``WORK_ROOT/<config stem>/<override>/seed<k>``):

1. ``tools/train.py CONFIG --work-dir RUN --resume --cfg-options ...``
   (``--resume`` without a value resumes from the run's latest checkpoint if
   an earlier attempt was interrupted, and starts afresh otherwise); the
   final checkpoint is then linked as ``RUN/final.pth``;
2. ``python -m hdkd_mm.experiments.evaluate`` (one process): the anytime
   evaluation (:mod:`hdkd_mm.evaluation.anytime`) → ``RUN/anytime.json``
   (test split), the training subset through the test pipeline →
   ``RUN/train_split.json``, and the budgeted evaluation of
   ``tools/analysis/budgeted_eval.py`` → ``RUN/budgeted/budgeted.json``;
3. ``RUN/gamma.json`` (runs with learned loss weights: the final γ, what a
   Fixed-γ cell reads) and ``RUN/result.json``: the marker of a finished run
   (skipped next time), with the wall times and the per-exit accuracies;
4. with ``archive`` in the suite file, the run's small files are copied to
   ``ARCHIVE/<run id>/`` (:mod:`hdkd_mm.experiments.archive`), from where a
   fresh clone restores them instead of training again.

Each step whose output exists is skipped, so an interrupted suite continues
where it stopped. Every subprocess gets ``OMP_NUM_THREADS`` (and
``MKL_NUM_THREADS``) = the suite's ``threads``; its output goes to
``RUN/logs/<step>.log``; its ``--cfg-options`` have ``{data_root}`` replaced
by the suite's data folder (the recorded spec keeps the placeholder).
Every attempt of a step is in ``RUN/timing.json``, recorded before it
starts; one cut off with a runner killed outright is settled by the next
runner (:func:`settle_interrupted`), so a resumed run's wall time keeps the
work done before. A runner stopped by SIGTERM or Ctrl-C stops its
trainings first, and a run folder is worked on by one runner at a time
(:mod:`~hdkd_mm.experiments.children`).

Progress (:mod:`~hdkd_mm.experiments.progress`): MMEngine's ``ProgressBar``
over the runs of the invocation (its ETA counts runs as equal), and after
each finished run the time left by ``estimate_left``, which weighs each run
by its cost (a bilevel run costs ``BILEVEL_COST`` plain runs) and the
``parallel`` slots.
"""
import concurrent.futures as futures
import datetime
import json
import os
import os.path as osp
import shutil
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

from .archive import archive_run, sync_archive
from .children import (REPO, child_env, run_child, run_lock,
                       stopping_children)
from .gamma import export_gamma
from .progress import LogLines, estimate_left, fmt_duration, status_line
from .options import epoch_options, format_options
from .records import (check_config_digest, config_digest, read_json,
                      write_json)
from .spec import Run, Suite, SuiteError

__all__ = ['REPO', 'run_state', 'plan_runs', 'execute_run', 'run_suite',
           'is_bilevel', 'check_data_root', 'settle_interrupted']

BILEVEL_COST = 2.3  # HDKD-type run / plain run (measured, docs/results.md)


def run_state(run: Run) -> str:
    """``done`` (result.json), ``trained`` (final.pth), ``partial`` (a
    checkpoint of an interrupted attempt) or ``new``."""
    if osp.isfile(osp.join(run.run_dir, 'result.json')):
        return 'done'
    if osp.isfile(osp.join(run.run_dir, 'final.pth')):
        return 'trained'
    if osp.isfile(osp.join(run.run_dir, 'last_checkpoint')):
        return 'partial'
    return 'new'


def is_bilevel(cfg) -> bool:
    """Whether a config trains γ by the bilevel iteration, which costs
    ``BILEVEL_COST`` plain runs: its head's loss scheme learns the
    objective weights (``Scheme.learned`` of
    :data:`hdkd_mm.models.losses.SCHEMES`, so a new learned scheme is
    costed as one) and γ is not frozen (``loss_weights.init='fixed'``)."""
    from hdkd_mm.models.losses import get_scheme
    loss = cfg.model.get('head', {}).get('loss') or {}
    if loss.get('type') != 'DenseKDLoss':
        return False
    weights = cfg.model.get('loss_weights') or {}
    return (get_scheme(loss.get('scheme', 'msdnet')).learned
            and weights.get('init', 'ds_like') != 'fixed')


def check_data_root(runs: List[Run]) -> None:
    """Refuse to start runs whose options need a data folder that is not
    given, or given and missing.

    Raises:
        SuiteError: naming the run, the option and the fix.
    """
    for run in runs:
        if not run.uses_data_root():
            continue
        run.command_options(run.options)  # raises without a folder
        if not osp.isdir(run.data_root):
            raise SuiteError(
                f'the data folder {run.data_root!r} (--data-root or the '
                f"suite file's data_root) does not exist, and run "
                f'{run.run_id} reads its data from it: give the folder that '
                'holds the data set.')


def _load_cfg(run: Run, train_options: Dict):
    from hdkd_mm.launch import load_config
    return load_config(run.config, dict(train_options))


def plan_runs(suite: Suite, log: Callable[[str], None] = print
              ) -> List[Run]:
    """Fill in every run's training options (seed, epochs) and cost; check
    that existing run folders were made by the same spec; with an
    ``archive``, restore the archived runs and archive the finished ones.

    Raises:
        SuiteError: a run folder (or archived run) holding another spec; a
            config that does not load.
    """
    for run in suite.runs:
        run.train_options = dict(run.options)
        try:
            cfg = _load_cfg(run, run.options)
        except Exception as err:  # a config error names the file
            raise SuiteError(f'{suite.path}: config {run.config} with the '
                             f'options of {run.run_id} does not load: '
                             f'{type(err).__name__}: {err}') from None
        run.config_digest = config_digest(cfg)
        run.channels_last = bool(cfg.model.get('channels_last', False))
        if suite.epochs is not None:
            run.train_options.update(epoch_options(cfg, suite.epochs))
            run.max_epochs = suite.epochs
        else:
            run.max_epochs = int(cfg.train_cfg.max_epochs)
        run.cost = (BILEVEL_COST if is_bilevel(cfg) else 1.0) * \
            run.max_epochs
        spec = run.spec()
        spec['max_epochs'] = run.max_epochs
        run.full_spec = spec
        old = read_json(osp.join(run.run_dir, 'run.json'))
        if old is not None and old.get('spec') != json.loads(
                json.dumps(spec)):
            raise SuiteError(
                f'{run.run_dir} was made by another run spec:\n  there: '
                f'{old.get("spec")}\n  now:   {spec}\nUse another work_root '
                'or delete that folder.')
        check_config_digest(run, old, run.run_dir)
    if suite.archive:
        sync_archive(suite.runs, suite.archive, log)
    return suite.runs


class _Step:
    def __init__(self, name, cmd, output):
        self.name, self.cmd, self.output = name, cmd, output


def _python() -> str:
    return sys.executable


def _steps(run: Run) -> List[_Step]:
    d = run.run_dir
    final = osp.join(d, 'final.pth')
    opts = format_options(run.command_options(run.options))
    cfg_opts = ['--cfg-options'] + opts if opts else []
    train_opts = format_options(run.command_options(run.train_options))
    return [
        _Step('train', [_python(), osp.join(REPO, 'tools', 'train.py'),
                        run.config, '--work-dir', d, '--resume'] +
              (['--cfg-options'] + train_opts if train_opts else []),
              final),
        _Step('eval', [_python(), '-m', 'hdkd_mm.experiments.evaluate',
                       run.config, final, '--run-dir', d] + cfg_opts,
              osp.join(d, 'budgeted', 'budgeted.json')),
    ]


def _link_final(run: Run) -> str:
    """``RUN/final.pth`` = the checkpoint of the last epoch."""
    ckpt = osp.join(run.run_dir, f'epoch_{run.max_epochs}.pth')
    if not osp.isfile(ckpt):
        raise RuntimeError(f'training ended without {ckpt}')
    final = osp.join(run.run_dir, 'final.pth')
    tmp = final + '.tmp'
    if osp.exists(tmp):
        os.remove(tmp)
    try:
        os.link(ckpt, tmp)
    except OSError:
        shutil.copyfile(ckpt, tmp)
    os.replace(tmp, final)
    return final


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds).isoformat(
        timespec='seconds')


def settle_interrupted(timing: Dict, run_dir: str) -> List[Dict]:
    """Close the attempts of ``timing`` (a run's ``timing.json``) that have
    no end: their runner was killed outright (SIGKILL, a machine that went
    away) while the step ran. Such an attempt gets ``interrupted: True``,
    ``rc: None`` and the wall time from its start to the last write to its
    step's log (training logs every few dozen iterations), so the run's
    wall time keeps the work done before the resume. Returns them."""
    settled = []
    for a in timing['attempts']:
        if 'ended' in a:
            continue
        log = osp.join(run_dir, 'logs', f"{a['step']}.log")
        start = a['started_s']
        end = max(osp.getmtime(log), start) if osp.isfile(log) else start
        a.update(wall_s=round(end - start, 2), rc=None, interrupted=True,
                 ended=_iso(end))
        settled.append(a)
    return settled


def execute_run(run: Run, threads: int,
                archive: Optional[str] = None) -> Dict:
    """Run (or finish) one run, holding its folder's lock
    (:func:`~hdkd_mm.experiments.children.run_lock`, handed to its
    subprocesses); returns its result dict (and archives the run when
    ``archive`` is given). Raises RuntimeError with the log path when a step
    fails, :class:`~hdkd_mm.experiments.children.RunBusy` when another
    process holds the folder."""
    os.makedirs(osp.join(run.run_dir, 'logs'), exist_ok=True)
    with run_lock(run.run_dir) as lock_fd:
        return _execute_locked(run, threads, archive, lock_fd)


def _execute_locked(run: Run, threads: int, archive: Optional[str],
                    lock_fd: Optional[int]) -> Dict:
    info = dict(spec=run.full_spec, label=run.label, run_id=run.run_id,
                config_digest=run.config_digest)
    write_json(osp.join(run.run_dir, 'run.json'), info)
    for dep in run.needs_files:
        if not osp.isfile(dep):
            raise RuntimeError(
                f'needs {dep} of run {run.needs}, which does not exist yet: '
                'run the suite that trains it first.')
    timing_path = osp.join(run.run_dir, 'timing.json')
    timing = read_json(timing_path) or dict(attempts=[])
    settle_interrupted(timing, run.run_dir)
    env = child_env(threads)
    for step in _steps(run):
        if osp.isfile(step.output):
            continue
        log = osp.join(run.run_dir, 'logs', f'{step.name}.log')
        t0 = time.time()
        # recorded before it runs: a runner killed outright leaves the
        # attempt without an end, which the next runner settles
        attempt = dict(step=step.name, threads=threads, started_s=round(t0, 2))
        timing['attempts'].append(attempt)
        write_json(timing_path, timing)
        with open(log, 'a') as f:
            f.write(f'\n# {_iso(t0)} OMP_NUM_THREADS={threads}\n# ' +
                    ' '.join(step.cmd) + '\n')
            f.flush()
            returncode = run_child(step.cmd, env=env, stdout=f,
                                   cwd=os.getcwd(), pass_fds=(lock_fd,))
        t1 = time.time()
        attempt.update(wall_s=round(t1 - t0, 2), rc=returncode,
                       ended=_iso(t1))
        write_json(timing_path, timing)
        if returncode != 0:
            raise RuntimeError(f'step {step.name} failed (exit code '
                               f'{returncode}); see {log}')
        if step.name == 'train':
            _link_final(run)
    walls: Dict[str, float] = {}
    for a in timing['attempts']:
        walls[a['step']] = walls.get(a['step'], 0.0) + a['wall_s']
    anytime = read_json(osp.join(run.run_dir, 'anytime.json'))
    train = read_json(osp.join(run.run_dir, 'train_split.json'))
    result = dict(
        info, finished=datetime.datetime.now().isoformat(timespec='seconds'),
        threads=threads, channels_last=run.channels_last,
        train_wall_s=round(walls.get('train', 0.0), 1),
        eval_wall_s=round(sum(v for k, v in walls.items() if k != 'train'),
                          1),
        resumed=sum(a['step'] == 'train' for a in timing['attempts']) > 1,
        test_top1=[e['top1'] for e in anytime['exits']],
        train_top1=[e['top1'] for e in train['train_exits']],
        mflops=[e['mflops'] for e in anytime['exits']])
    export_gamma(run)
    write_json(osp.join(run.run_dir, 'result.json'), result)
    if archive:
        archive_run(run, archive)
    return result


def _print(msg: str) -> None:
    print(msg, flush=True)


def run_suite(suite: Suite, log: Callable[[str], None] = _print,
              dry_run: bool = False) -> Dict[str, Dict]:
    """Run every unfinished run of ``suite`` (``parallel`` at a time);
    returns ``{run_id: result}`` of the finished runs and
    ``{run_id: {'error': ...}}`` of the failed ones."""
    plan_runs(suite, log)
    results: Dict[str, Dict] = {}
    todo: List[Run] = []
    for run in suite.runs:
        state = run_state(run)
        if state == 'done':
            results[run.run_id] = read_json(osp.join(run.run_dir,
                                                      'result.json'))
        else:
            todo.append(run)
    ids = {r.run_id for r in todo}
    log(f'suite {suite.name}: {len(suite.runs)} runs, '
        f'{len(suite.runs) - len(todo)} already done, {len(todo)} to run, '
        f'{suite.parallel} at a time with OMP_NUM_THREADS={suite.threads}; '
        f'runs in {suite.work_root}')
    if dry_run:  # the commands; their data folder need not exist here
        for run in todo:
            try:
                cmd = ' '.join(_steps(run)[0].cmd[1:])
            except SuiteError as err:
                cmd = f'(no command yet: {err})'
            log(f'  {run.run_id} ({run_state(run)}): {cmd}')
        return results
    check_data_root(todo)
    # Order: longest first (less idle time at the end), a run's dependency
    # before it.
    pending = sorted(todo, key=lambda r: (-r.cost, r.run_id))
    from mmengine.utils import ProgressBar
    bar = ProgressBar(len(todo), bar_width=30, file=LogLines(log))
    running: Dict[futures.Future, Tuple[Run, float]] = {}  # run, start
    failed: Dict[str, str] = {}
    cost_done = run_seconds = 0.0  # of the runs finished by this call

    def ready(run: Run) -> Optional[bool]:
        """True: can start; False: wait; None: its dependency failed."""
        if not run.needs or run.needs not in ids:
            return True
        if run.needs in failed:
            return None
        return run.needs in results

    # stopping_children inside the pool: on SIGTERM/Ctrl-C the trainings
    # stop before the pool waits for its threads
    with futures.ThreadPoolExecutor(max_workers=suite.parallel) as pool, \
            stopping_children():
        while pending or running:
            for run in list(pending):
                if len(running) >= suite.parallel:
                    break
                ok = ready(run)
                if ok is None:
                    pending.remove(run)
                    failed[run.run_id] = f'its dependency {run.needs} failed'
                    log(status_line(run, None, failed[run.run_id]))
                    bar.update()
                elif ok:
                    pending.remove(run)
                    log(f'start {run.run_id}')
                    fut = pool.submit(execute_run, run, suite.threads,
                                      suite.archive)
                    running[fut] = (run, time.time())
            if not running:
                if pending:  # only waiting runs left: cannot happen
                    raise SuiteError('unresolvable run dependencies: ' +
                                     ', '.join(r.run_id for r in pending))
                break
            finished, _ = futures.wait(list(running),
                                       return_when=futures.FIRST_COMPLETED)
            for fut in finished:
                run, run_start = running.pop(fut)
                now = time.time()
                try:
                    results[run.run_id] = fut.result()
                    log(status_line(run, results[run.run_id], None))
                    cost_done += run.cost  # the rate: successful runs only
                    run_seconds += now - run_start
                except Exception as err:  # report, go on with the rest
                    failed[run.run_id] = str(err)
                    log(status_line(run, None, str(err)))
                bar.update()
                if (pending or running) and cost_done:
                    left = estimate_left(
                        [r.cost for r in pending],
                        [(r.cost, now - t) for r, t in running.values()],
                        run_seconds / cost_done, suite.parallel)
                    log(f'about {fmt_duration(left)} left (runs weighed by '
                        f'their cost, {suite.parallel} at a time)')
    for run_id, err in failed.items():
        results[run_id] = dict(error=err)
    return results
