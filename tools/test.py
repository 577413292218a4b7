"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [options]``.

Prints every exit's top-1/top-5 (``MultiExitAccuracy``). The options are
MMPretrain's ``tools/test.py``'s:

* ``--out FILE [--out-item pred|metrics]``: dump the predictions (pickle,
  every exit's scores included) or the metrics (format from the extension);
* ``--tta``: test-time augmentation, the config's ``tta_model`` and
  ``tta_pipeline`` or, without them, ``AverageExitScoresTTA`` (every exit's
  scores averaged) over the image and its horizontal flip;
* ``--amp``: test under autocast (``test_cfg.fp16``): float16 on CUDA,
  bfloat16 on CPU (MMEngine's autocast; training with ``--amp`` needs CUDA);
* ``--show-dir DIR`` / ``--show``: draw the test images with their
  prediction (the last exit's, or for an early-exit model the exit taken)
  through MMPretrain's ``VisualizationHook``.
"""
import argparse
import os
from copy import deepcopy

import mmengine
from mmengine.config import ConfigDict, DictAction
from mmengine.dist import is_main_process

import hdkd_mm  # noqa: F401
from hdkd_mm.launch import (DATALOADER_KEYS, build_runner, finish_distributed,
                            load_config, prepare_config)

DEFAULT_TTA_MODEL = dict(type='AverageExitScoresTTA')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a multi-exit model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the test logs go')
    parser.add_argument('--out', help='the file to write the predictions '
                        '(pickle) or, with --out-item metrics, the metrics')
    parser.add_argument(
        '--out-item', choices=['metrics', 'pred'],
        help='what --out holds: the predictions (default) or the metrics')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    parser.add_argument(
        '--amp', action='store_true',
        help='test under autocast: float16 on CUDA, bfloat16 on CPU')
    parser.add_argument('--show-dir', help='folder where the images drawn '
                        'with their predictions are saved')
    parser.add_argument('--show', action='store_true',
                        help='display the predictions in a window')
    parser.add_argument('--interval', type=int, default=1,
                        help='draw every INTERVAL-th test image')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='seconds each window is displayed (--show)')
    parser.add_argument('--no-pin-memory', action='store_true',
                        help='disable pin_memory in the dataloaders')
    parser.add_argument(
        '--tta', action='store_true',
        help='test-time augmentation: the config\'s tta_model/tta_pipeline, '
        'or every exit\'s scores averaged over the image and its flip')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if args.out_item is not None and args.out is None:
        parser.error('--out-item needs --out (the file to write).')
    if args.tta and (args.show or args.show_dir):
        parser.error('--show/--show-dir cannot be combined with --tta: the '
                     'visualization hook draws one image per prediction and '
                     'a TTA batch holds several views of each.')
    return args


def apply_tta(cfg) -> None:
    """Wrap ``cfg.model`` in the TTA model and give the test dataloader the
    TTA pipeline (the config's, or the test pipeline with its last transform,
    the packing, applied to the image and to its horizontal flip)."""
    if 'tta_model' not in cfg:
        cfg.tta_model = dict(DEFAULT_TTA_MODEL)
    dataset = cfg.test_dataloader.dataset
    if 'tta_pipeline' not in cfg:
        if not dataset.get('pipeline'):
            raise KeyError(
                '--tta builds its flip pipeline from '
                'test_dataloader.dataset.pipeline, which this config does not '
                'set: give the config a `tta_pipeline`.')
        test_pipeline = dataset.pipeline
        cfg.tta_pipeline = deepcopy(test_pipeline)
        cfg.tta_pipeline[-1] = dict(
            type='TestTimeAug',
            transforms=[[dict(type='RandomFlip', prob=1.),
                         dict(type='RandomFlip', prob=0.)],
                        [test_pipeline[-1]]])
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    dataset.pipeline = cfg.tta_pipeline


def main(argv=None):
    args = parse_args(argv)
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(
            f'Checkpoint {args.checkpoint!r} does not exist.')
    cfg = load_config(args.config, args.cfg_options)
    cfg = prepare_config(cfg, args.config, args.launcher, args.work_dir)
    cfg.load_from = args.checkpoint
    if args.amp:
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, fp16=True)
    if args.show or args.show_dir:
        vis = cfg.get('default_hooks', {}).get('visualization')
        if vis is None:
            raise KeyError('--show/--show-dir need a VisualizationHook: set '
                           "default_hooks.visualization=dict(type="
                           "'VisualizationHook') in the config.")
        vis.update(enable=True, show=args.show, wait_time=args.wait_time,
                   out_dir=args.show_dir, interval=args.interval)
    if args.tta:
        apply_tta(cfg)
    if args.no_pin_memory:
        for key in DATALOADER_KEYS:
            if cfg.get(key):
                cfg[key]['pin_memory'] = False
    if args.out and args.out_item != 'metrics':
        cfg.test_evaluator = list(
            cfg.test_evaluator if isinstance(cfg.test_evaluator, (list, tuple))
            else [cfg.test_evaluator]) + [
                dict(type='DumpResults', out_file_path=args.out)]
    runner = build_runner(cfg)
    completed = False
    try:
        metrics = runner.test()
        if args.out and args.out_item == 'metrics' and is_main_process():
            mmengine.dump(metrics, args.out)
        completed = True
    finally:
        del runner  # the DDP wrapper holds the process group
        finish_distributed(completed)
    return metrics


if __name__ == '__main__':
    main()
