"""What ``tools/train.py`` and ``tools/test.py`` share: turning command-line
arguments into a runnable MMEngine config, on GPUs or on CPU (gloo)."""
import gc
import os
import os.path as osp

import torch
from mmengine.config import Config

from .compat import guard_cpu_distributed

DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader',
                   'heldout_dataloader')


def load_config(path: str, cfg_options=None) -> Config:
    if not osp.isfile(path):
        raise FileNotFoundError(f'Config file {path!r} does not exist.')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def prepare_config(cfg: Config, config_path: str, launcher: str = 'none',
                   work_dir=None) -> Config:
    """Apply the launcher, work dir and dataloader defaults to ``cfg``.

    * ``work_dir`` defaults to ``./work_dirs/<config name>`` as in MMPretrain;
    * dataloaders with ``num_workers=0`` get ``persistent_workers=False``
      (PyTorch refuses the combination); ``pin_memory`` only with CUDA;
    * distributed runs without CUDA use the gloo backend and a DDP wrapper
      with ``device_ids=None`` (CPU modules), and MMEngine's unconditional
      ``torch.cuda.set_device`` is made a no-op;
    * MMEngine's ``CheckpointHook`` (also its default when the config has
      none) becomes :class:`~hdkd_mm.engine.AtomicCheckpointHook`, same
      arguments: a run killed while saving keeps a complete checkpoint.
      Done here rather than in the configs, so that the resolved configs,
      and the experiment suites' config digests, stay as they are.
    """
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])
    cuda = torch.cuda.is_available()
    for key in DATALOADER_KEYS:
        loader = cfg.get(key)
        if not loader:
            continue
        loader.setdefault('pin_memory', cuda)
        if loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False
        else:
            loader.setdefault('persistent_workers', True)
    if launcher != 'none' and not cuda:
        guard_cpu_distributed()
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
        cfg.env_cfg.dist_cfg['backend'] = 'gloo'
        wrapper = cfg.get('model_wrapper_cfg') or dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper
    if cfg.get('default_hooks') is None:
        cfg.default_hooks = {}
    hooks = cfg.default_hooks
    if 'checkpoint' not in hooks:  # MMEngine's default checkpoint hook
        hooks['checkpoint'] = dict(type='CheckpointHook', interval=1)
    ckpt = hooks['checkpoint']
    if isinstance(ckpt, dict) and ckpt.get('type') in (
            'CheckpointHook', 'mmengine.CheckpointHook'):
        ckpt['type'] = 'AtomicCheckpointHook'
    os.environ.setdefault('LOCAL_RANK', '0')
    return cfg


def build_runner(cfg: Config):
    """MMEngine's runner for ``cfg`` (a custom ``runner_type`` if set)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def finish_distributed(completed: bool = True) -> None:
    """Tear the process group down while the interpreter is fully alive.

    Call it after the caller has dropped its runner. A gloo rank that reaches
    interpreter finalization with a live process group (the DDP wrapper and
    its reducer hold one) can abort with "terminate called without an active
    exception" (SIGABRT) after a run that completed: the group's worker
    threads release tensors whose Python objects need the GIL, which
    finalization no longer grants. So: collect the dropped runner's cycles,
    let every rank arrive (only after a completed run: a rank that failed
    would leave the others waiting), then destroy every group.
    """
    if not (torch.distributed.is_available()
            and torch.distributed.is_initialized()):
        return
    gc.collect()
    if completed:
        torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    gc.collect()
