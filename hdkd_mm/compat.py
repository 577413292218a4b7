"""Fixes for the MMEngine 0.10.7 / torch >= 2.6 stack (see STACK-NOTES in the docs).

Applied once, on ``import hdkd_mm``:

* ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and MMEngine
  0.10.7 pickles its message hub (``HistoryBuffer``, numpy scalars) into every
  checkpoint, so ``resume``, ``load_from`` and ``tools/test.py`` fail with
  ``UnpicklingError``. We re-register MMEngine's loader for local paths with one
  that passes ``weights_only=False``. Only local files are affected: they are the
  user's own checkpoints, which are trusted the way MMEngine always trusted them.

:func:`guard_cpu_distributed` is applied by ``tools/train.py``/``tools/test.py``
when a distributed launcher runs on a machine without CUDA (the gloo backend).
"""
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader

_APPLIED = False


def _load_local_checkpoint(filename, map_location=None):
    """Load a local checkpoint written by MMEngine (trusted, full pickle)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'Checkpoint {filename!r} does not exist: check `load_from`, '
            '`--resume` or the CHECKPOINT argument.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def apply_stack_fixes() -> None:
    """Apply the import-time fixes; idempotent."""
    global _APPLIED
    if _APPLIED:
        return
    CheckpointLoader.register_scheme(
        prefixes='', loader=_load_local_checkpoint, force=True)
    _APPLIED = True


def guard_cpu_distributed() -> None:
    """Make MMEngine's distributed start-up usable on CPU-only machines.

    ``mmengine.dist.init_dist`` calls ``torch.cuda.set_device`` whatever the
    backend; without CUDA that raises. On such a machine the call is a no-op
    (there is no device to select), which is what the gloo backend needs.
    """
    if torch.cuda.is_available():
        return
    torch.cuda.set_device = lambda device: None
