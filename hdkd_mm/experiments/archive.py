"""A suite's finished runs, kept small enough to commit.

A run folder (``WORK_ROOT/<config>/<override>/seed<k>``) holds checkpoints and
logit caches (megabytes) beside the few kilobytes the tables and plots are
made of. With ``archive: DIR`` in the suite file, every finished run's small
files are copied to ``DIR/<run id>/``:

* ``run.json``, ``result.json``, ``timing.json``: the spec, the result
  marker with the per-exit accuracies, the wall times;
* ``anytime.json``, ``train_split.json``, ``budgeted/budgeted.json``: the
  evaluations the report reads;
* ``gamma.json``: the final learned loss weights ``{objective: γ}`` (runs
  with a learned γ), what a Fixed-γ run of another cell reads
  (``{needs_gamma}`` in a suite file);
* ``scalars.json``: the ``gamma/*`` series of the training log (the γ plots).

A later invocation, on another machine or in a fresh clone, restores an
archived run into its folder before planning: the run counts as finished and
is not trained again. So a suite whose work folders are lost (a new clone, a
session that ended) continues from its archive, and the archive in the
repository is the record the published tables were made from.
"""
import json
import os
import os.path as osp
import shutil
from typing import Callable, List, Optional

from .gamma import export_gamma, gamma_records
from .records import check_config_digest, read_json
from .suite import Run, SuiteError

__all__ = ['ARCHIVED_FILES', 'archive_run', 'restore_run', 'sync_archive']

#: Files of a finished run that the archive keeps (relative to the run).
ARCHIVED_FILES = ('run.json', 'result.json', 'timing.json', 'anytime.json',
                  'train_split.json', osp.join('budgeted', 'budgeted.json'),
                  'gamma.json')
#: Where a restored run's γ series goes: a folder the γ plots read like one
#: of MMEngine's timestamped log folders.
RESTORED_SCALARS = osp.join('archived', 'vis_data', 'scalars.json')


def _copy_if_present(src: str, dst: str) -> None:
    if osp.isfile(src):
        os.makedirs(osp.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)


def archive_run(run: Run, archive_dir: str) -> str:
    """Copy a finished run's small files to ``ARCHIVE/<run id>/``; returns
    that folder."""
    if not osp.isfile(osp.join(run.run_dir, 'result.json')):
        raise ValueError(f'{run.run_id} has not finished (no result.json).')
    export_gamma(run)
    target = osp.join(archive_dir, run.run_id)
    tmp = target + '.tmp'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for name in ARCHIVED_FILES:
        _copy_if_present(osp.join(run.run_dir, name), osp.join(tmp, name))
    records = gamma_records(run.run_dir)
    if records:
        with open(osp.join(tmp, 'scalars.json'), 'w') as f:
            f.write(''.join(json.dumps(r) + '\n' for r in records))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def restore_run(run: Run, archive_dir: str) -> bool:
    """Copy an archived run back into its (unfinished) run folder. Returns
    False if the archive has no finished run of that id.

    Raises:
        SuiteError: the archived run was made by another spec.
    """
    source = osp.join(archive_dir, run.run_id)
    if not osp.isfile(osp.join(source, 'result.json')):
        return False
    recorded = read_json(osp.join(source, 'run.json')) or {}
    spec = recorded.get('spec')
    if spec != json.loads(json.dumps(run.full_spec)):
        raise SuiteError(
            f'the archived run {source} was made by another run spec:\n  '
            f'there: {spec}\n  now:   {run.full_spec}\nDelete that archived '
            'run to train it again, or set another `archive`.')
    check_config_digest(run, recorded, f'the archived run {source}')
    # result.json last: it is the marker of a finished run
    copies = [(name, name) for name in ARCHIVED_FILES if name != 'result.json']
    copies += [('scalars.json', RESTORED_SCALARS),
               ('result.json', 'result.json')]
    for name, dst_name in copies:
        _copy_if_present(osp.join(source, name),
                         osp.join(run.run_dir, dst_name))
    return True


def same_result(kept: Optional[dict], result: Optional[dict]) -> bool:
    """Whether an archived ``result.json`` and a run folder's are the same
    result. A ``config_digest`` that only one of them has is not a
    difference: runs finished before digests were recorded got theirs
    added to the archive afterwards, and re-archiving the folder's copy
    would drop it."""
    if kept is None or result is None:
        return kept == result
    if ('config_digest' in kept) != ('config_digest' in result):
        kept = {k: v for k, v in kept.items() if k != 'config_digest'}
        result = {k: v for k, v in result.items() if k != 'config_digest'}
    return kept == result


def sync_archive(runs: List[Run], archive_dir: str,
                 log: Callable[[str], None] = print) -> None:
    """Restore the archived runs whose folders have not finished; archive the
    finished runs the archive lacks (or holds another result of)."""
    restored, archived = [], []
    for run in runs:
        result = osp.join(run.run_dir, 'result.json')
        kept = osp.join(archive_dir, run.run_id, 'result.json')
        if osp.isfile(result):
            if not same_result(read_json(kept), read_json(result)):
                archive_run(run, archive_dir)
                archived.append(run.run_id)
        elif restore_run(run, archive_dir):
            restored.append(run.run_id)
    if restored:
        log(f'archive {archive_dir}: restored {len(restored)} finished '
            f'run(s): {", ".join(restored)}')
    if archived:
        log(f'archive {archive_dir}: archived {len(archived)} finished '
            f'run(s): {", ".join(archived)}')
