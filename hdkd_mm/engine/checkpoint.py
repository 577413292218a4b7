"""Checkpoints that a killed process never leaves half-written, and the
checkpoint ``--resume`` (auto) continues from.

MMEngine 0.10.7's ``CheckpointHook`` (a) deletes the oldest kept checkpoint
*before* writing the new one, (b) writes the new one in place and (c) then
rewrites ``last_checkpoint`` in place. A process killed during (b) leaves a
truncated ``epoch_N.pth``; with ``max_keep_ckpts=1`` (the demo and
experiment configs) the only complete checkpoint is already gone and
``last_checkpoint`` names that deleted file, so ``--resume`` cannot
continue. A run re-doing an epoch (resumed from an earlier checkpoint in
the same work dir) rewrites a checkpoint that ``last_checkpoint`` already
names, so a kill there hands ``--resume`` a truncated file.

:class:`AtomicCheckpointHook` writes ``.epoch_N.pth.tmp``, flushes it to
disk and renames it to ``epoch_N.pth`` (``os.replace``: atomic on POSIX
file systems), then replaces ``last_checkpoint`` the same way, and only then
deletes checkpoints beyond ``max_keep_ckpts``. At every instant each
checkpoint file is complete and ``last_checkpoint`` names one that exists.
``tools/train.py`` puts it in place of MMEngine's ``CheckpointHook``
(:func:`hdkd_mm.launch.prepare_config`); a config may also name it.
:func:`find_resume_checkpoint` is what ``tools/train.py --resume`` resumes
from: the checkpoint ``last_checkpoint`` names if it is complete, otherwise
(a work dir written by MMEngine's own hook) the newest complete
``epoch_*.pth``/``iter_*.pth``, with a warning.
"""
import glob
import logging
import os
import os.path as osp
import re
import zipfile
from typing import List, Optional

import torch
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

TMP_SUFFIX = '.tmp'


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp_path: str, path: str) -> None:
    """Flush ``tmp_path`` to disk and rename it to ``path`` atomically (a
    reader sees the old file or the complete new one, never a part)."""
    with open(tmp_path, 'rb') as f:
        os.fsync(f.fileno())
    os.replace(tmp_path, path)
    _fsync_dir(osp.dirname(osp.abspath(path)))


def write_text_atomic(path: str, text: str) -> None:
    tmp = osp.join(osp.dirname(path), f'.{osp.basename(path)}{TMP_SUFFIX}')
    with open(tmp, 'w') as f:
        f.write(text)
    publish(tmp, path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints are written to a temporary file
    and renamed into place, and whose old checkpoints are deleted only after
    the new one and ``last_checkpoint`` are in place (see the module
    docstring). Same arguments as ``CheckpointHook``; other storage backends
    than local files keep MMEngine's behaviour."""

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self._local() and is_main_process():
            # temporary files of a save that a killed process left behind
            for path in glob.glob(osp.join(self.out_dir, f'.*{TMP_SUFFIX}')):
                os.remove(path)

    def _local(self) -> bool:
        return (self.file_client_args is None
                and isinstance(self.file_backend, LocalBackend))

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not self._local():
            return super()._save_checkpoint_with_step(runner, step, meta)
        stale = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                stale = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        tmp_name = f'.{filename}{TMP_SUFFIX}'
        runner.save_checkpoint(
            self.out_dir, tmp_name, self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta, by_epoch=self.by_epoch,
            backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        publish(osp.join(self.out_dir, tmp_name), self.last_ckpt)
        write_text_atomic(osp.join(runner.work_dir, 'last_checkpoint'),
                          self.last_ckpt)
        if stale is not None:
            path = osp.join(self.out_dir, self.filename_tmpl.format(stale))
            if path != self.last_ckpt and osp.isfile(path):
                os.remove(path)


def is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a whole ``torch.save`` file. The zip format of
    ``torch.save`` ends with its central directory, which a truncated file
    lacks, so the check reads only that; other formats are loaded."""
    if not osp.isfile(path):
        return False
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                return any(n.endswith('/data.pkl') for n in zf.namelist())
        except (zipfile.BadZipFile, OSError):
            return False
    try:
        torch.load(path, map_location='cpu', weights_only=False)
    except Exception:
        return False
    return True


def _numbered_checkpoints(work_dir: str) -> List[str]:
    """``epoch_N.pth`` / ``iter_N.pth`` in ``work_dir``, newest (largest
    N; epochs before iterations at equal N) first."""
    found = []
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        m = re.fullmatch(r'(epoch|iter)_(\d+)\.pth', osp.basename(path))
        if m:
            found.append((int(m.group(2)), m.group(1) == 'epoch', path))
    return [p for *_, p in sorted(found, reverse=True)]


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` (auto) continues from in ``work_dir``.

    The one ``last_checkpoint`` names, if complete; otherwise the newest
    complete ``epoch_N.pth``/``iter_N.pth``, with a warning naming the
    incomplete one. ``None`` when the work dir holds no checkpoint at all
    (training starts afresh).

    Raises:
        ValueError: there are checkpoints, and none is complete.
    """
    named = None
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip() or None
    if named is not None:
        # (MMEngine writes the path as given: relative to the first run's
        # working directory, so also look for the name in work_dir)
        for path in (named, osp.join(work_dir, osp.basename(named))):
            if is_complete_checkpoint(path):
                return path
    candidates = _numbered_checkpoints(work_dir)
    for path in candidates:
        if is_complete_checkpoint(path):
            why = (f'{pointer} names {named!r}, which is missing or '
                   'incomplete (a process killed while saving it?)'
                   if named else f'{pointer} is missing or empty')
            print_log(f'--resume: {why}; resuming from {path}, the newest '
                      'complete checkpoint.', logger='current',
                      level=logging.WARNING)
            return path
    if named is None and not candidates:
        return None
    raise ValueError(
        f'--resume: no complete checkpoint in {work_dir} (last_checkpoint '
        f'names {named!r}; incomplete: {candidates}); a process was killed '
        'while saving. Fix: resume from a checkpoint you have with '
        '`--resume PATH`, or delete the incomplete files and last_checkpoint '
        'to start afresh.')
