"""Train a multi-exit classifier: ``python tools/train.py CONFIG [options]``."""
import argparse
import os

from mmengine.config import DictAction

import hdkd_mm  # noqa: F401  (registers modules, applies stack fixes)
from hdkd_mm.engine.checkpoint import find_resume_checkpoint
from hdkd_mm.engine.checks import check_training_setup
from hdkd_mm.launch import (build_runner, finish_distributed,
                            load_config, prepare_config)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a multi-exit model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or (no value) from the latest '
        'complete checkpoint in the work dir (a fresh start if none)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision for the θ forward/backward')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rates linearly with the '
                        "total batch size: θ's and γ's ε alike (README)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. '
                        'train_cfg.max_epochs=1')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    cfg = prepare_config(cfg, args.config, args.launcher, args.work_dir)
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        # the last complete checkpoint of the work dir; none: a fresh start
        ckpt = find_resume_checkpoint(cfg.work_dir)
        cfg.resume, cfg.load_from = ckpt is not None, ckpt
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    runner = build_runner(cfg)
    check_training_setup(runner)  # before anything is trained or loaded
    completed = False
    try:
        runner.train()
        completed = True
    finally:
        del runner  # the DDP wrapper holds the process group
        finish_distributed(completed)


if __name__ == '__main__':
    main()
