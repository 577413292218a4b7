"""Benchmark: one training iteration in the default memory layout (NCHW)
against ``channels_last`` (NHWC, the model config's ``channels_last=True``).

    .venv/bin/python bench/memory_format.py [CONFIG] [--repeats 7]
        [--heldout 32] [--threads 1]

CONFIG (default: the CIFAR-10 suite's HDKD config,
``configs/experiments/cifar10/hdkd_msdnet-6e_1xb64_cifar10-1000.py``) gives
the model, its optimizers (``optim_wrapper``) and the batch size; the
images are random (no data loading is timed). Both layouts are built from
the same seed in ONE process and timed interleaved (noise on a shared
machine hits both alike):

  plain  ``train_step`` with γ frozen (forward, weighted loss, backward,
         θ step): what every scheme pays;
  hdkd   the bilevel iteration (held-out pass at θ', one JVP, γ step), if
         the config's model learns γ.

As ``bilevel_step.py``: ONE torch thread by default, ratios on process CPU
time (robust to other processes), wall medians printed too. The last line:
``plain nchw/nhwc=… hdkd nchw/nhwc=…`` (> 1: channels_last is faster).
"""
import argparse
import copy
import os.path as osp
import statistics
import sys
import time

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'bench'))

from bilevel_step import hdkd_step, plain_step  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402

import hdkd_mm  # noqa: E402,F401

DEFAULT_CFG = osp.join(
    ROOT, 'configs/experiments/cifar10/hdkd_msdnet-6e_1xb64_cifar10-1000.py')


def build(cfg, channels_last):
    """The model in one layout, and the optimizer wrapper(s) of the config
    (θ's, and γ's for a bilevel config), built as the runner builds them."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg['channels_last'] = channels_last
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    model.train()
    if model.learns_loss_weights:
        model.set_bilevel_step(dict(hypergrad='jvp'))
    return model, build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))


def make_batch(n, seed, num_classes, size):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=gen)
    y = torch.randint(0, num_classes, (n, ), generator=gen)
    return dict(inputs=x,
                data_samples=[DataSample().set_gt_label(int(t)) for t in y])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', default=DEFAULT_CFG)
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--heldout', type=int, default=32)
    parser.add_argument('--size', type=int, default=32,
                        help='input height and width')
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    DefaultScope.get_instance('memory_format', scope_name='mmpretrain')
    cfg = Config.fromfile(args.config)
    batch = int(cfg.train_dataloader.batch_size)
    classes = int(cfg.model.head.num_classes)
    data = make_batch(batch, 1, classes, args.size)
    held = make_batch(args.heldout, 2, classes, args.size)
    variants = {}
    for layout, cl in (('nchw', False), ('nhwc', True)):
        model, ow = build(cfg, cl)
        if not model.learns_loss_weights:
            variants[('plain', layout)] = (
                lambda m=model, o=ow: m.train_step(data, o))
            continue
        variants[('plain', layout)] = (
            lambda m=model, o=ow: plain_step(m, o, data))
        variants[('hdkd', layout)] = (
            lambda m=model, o=ow: hdkd_step(m, o, data, held))
    print(f'config={osp.relpath(args.config, ROOT)} batch={batch} '
          f'held-out={args.heldout} torch={torch.__version__} '
          f'threads={torch.get_num_threads()} repeats={args.repeats} '
          '(medians, interleaved)')
    for _ in range(args.warmup):
        for fn in variants.values():
            fn()
    cpu = {k: [] for k in variants}
    wall = {k: [] for k in variants}
    names = list(variants)
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0, c0 = time.perf_counter(), time.process_time()
            variants[name]()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    for name in names:
        print(f'{name[0]:5s} {name[1]}: cpu {statistics.median(cpu[name]):.3f}'
              f' s, wall {statistics.median(wall[name]):.3f} s')
    steps = sorted({n[0] for n in names}, key=['plain', 'hdkd'].index)
    print(' '.join(
        f"{s} nchw/nhwc={statistics.median(cpu[(s, 'nchw')]) / statistics.median(cpu[(s, 'nhwc')]):.2f}"  # noqa: E501
        for s in steps))


if __name__ == '__main__':
    main()
