"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT``.

Prints every exit's top-1/top-5 (``MultiExitAccuracy``)."""
import argparse
import os

from mmengine.config import DictAction

import hdkd_mm  # noqa: F401
from hdkd_mm.launch import (build_runner, finish_distributed,
                            load_config, prepare_config)


def parse_args():
    parser = argparse.ArgumentParser(description='Test a multi-exit model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the test logs go')
    parser.add_argument('--out', help='dump the predictions (pickle)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(
            f'Checkpoint {args.checkpoint!r} does not exist.')
    cfg = load_config(args.config, args.cfg_options)
    cfg = prepare_config(cfg, args.config, args.launcher, args.work_dir)
    cfg.load_from = args.checkpoint
    if args.out:
        cfg.test_evaluator = list(
            cfg.test_evaluator if isinstance(cfg.test_evaluator, (list, tuple))
            else [cfg.test_evaluator]) + [
                dict(type='DumpResults', out_file_path=args.out)]
    runner = build_runner(cfg)
    try:
        runner.test()
    finally:
        finish_distributed()


if __name__ == '__main__':
    main()
