"""Fixes for the MMEngine 0.10.7 / torch >= 2.6 stack (see STACK-NOTES in the docs).

Applied once, on ``import hdkd_mm``:

* ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and MMEngine
  0.10.7 pickles its message hub (``HistoryBuffer``, numpy scalars) into every
  checkpoint, so ``resume``, ``load_from`` and ``tools/test.py`` fail with
  ``UnpicklingError``. We re-register MMEngine's loader for local paths with one
  that passes ``weights_only=False``. Only local files are affected: they are the
  user's own checkpoints, which are trusted the way MMEngine always trusted them.

* Start-up messages that are noise for this plugin's users are filtered (each
  one matched by its exact text, nothing else is hidden):

  - mmcv-lite's ``UserWarning`` that ``MultiScaleDeformableAttention`` cannot
    be imported (a compiled op of full mmcv that no hdkd_mm model uses; it is
    printed when MMPretrain's transformer backbones are imported);
  - MMEngine's own deprecation warnings about ``FileClient`` and its
    ``HardDiskBackend`` alias: MMEngine 0.10.7's ``CheckpointHook`` and
    ``save_checkpoint`` call ``FileClient.infer_client`` unconditionally
    ("it will not be removed until the release of MMEngine 1.0"), whatever
    the config says; and its warning that its own ``DumpResults`` metric
    (``tools/test.py --out``) has no prefix, which it cannot take;
  - torch's ``FutureWarning`` that DDP's ``broadcast_buffers`` is deprecated,
    printed by every rank because :mod:`hdkd_mm.launch` passes
    ``broadcast_buffers=False`` (the rank-local BatchNorm statistics this
    plugin relies on; torch says to keep using it for that until its
    replacement exists);
  - torch's ``FutureWarning`` that ``torch.jit.script`` is deprecated, which
    torch prints when forward-mode AD (the γ hypergradient's JVP) first
    imports its own scripted decompositions: we import that module once here
    with the warning silenced, so later calls of ``torch.jit.script`` in
    user code still warn.

:func:`guard_cpu_distributed` is applied by ``tools/train.py``/``tools/test.py``
when a distributed launcher runs on a machine without CUDA (the gloo backend).
"""
import logging
import os.path as osp
import warnings

import torch
from mmengine.logging import MMLogger
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


# MMEngine messages dropped from every MMLogger (see the module doc).
MMENGINE_NOISE = (
    '"FileClient" will be deprecated in future',
    '"HardDiskBackend" is the alias of "LocalBackend"',
    # MMEngine's DumpResults (``tools/test.py --out``) takes no prefix
    'The prefix is not set in metric class DumpResults.',
)


class _DropMMEngineNoise(logging.Filter):
    """Drop the warnings of :data:`MMENGINE_NOISE` (matched by their start)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING
                    and str(record.msg).startswith(MMENGINE_NOISE))


_NOISE_FILTER = _DropMMEngineNoise()


def _silence_start_up_noise() -> None:
    warnings.filterwarnings(
        'ignore', message='Fail to import ``MultiScaleDeformableAttention``',
        category=UserWarning)
    # hdkd_mm.launch asks DDP for broadcast_buffers=False: rank-local
    # BatchNorm statistics, as the reference (torch: keep using it for that).
    warnings.filterwarnings(
        'ignore', message='`broadcast_buffers` is deprecated',
        category=FutureWarning)
    with warnings.catch_warnings():
        warnings.filterwarnings(
            'ignore', message='`torch.jit.script` is deprecated',
            category=FutureWarning)
        import torch._decomp.decompositions_for_jvp  # noqa: F401
    # Every MMLogger, the ones that exist and the ones created later (the
    # runner makes one per experiment).
    for logger in MMLogger._instance_dict.values():
        logger.addFilter(_NOISE_FILTER)
    init = MMLogger.__init__

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.addFilter(_NOISE_FILTER)

    MMLogger.__init__ = __init__


def apply_stack_fixes() -> None:
    """Apply the import-time fixes; idempotent."""
    global _APPLIED
    if _APPLIED:
        return
    CheckpointLoader.register_scheme(
        prefixes='', loader=_load_local_checkpoint, force=True)
    _silence_start_up_noise()
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
