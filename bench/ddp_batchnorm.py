"""How much per-rank BatchNorm statistics change the gradients under DDP.

Not a speed benchmark: a measurement quoted in the README. The demo MSDNet
(configs/demo/hdkd_msdnet-4e_1xb128_fashion-mnist.py, BatchNorm in training mode), float64,
at initialisation, on real Fashion-MNIST images:

* 2 gloo ranks × (64 train, 16 held-out) through DDP and the distributed
  hypergradient, against
* 1 process × (128 train, 32 held-out), the concatenated batches.

With BatchNorm each rank normalises by its own 64 samples' statistics, so
the two compute different functions and their θ- and γ-gradients differ;
as a control, the 2-rank θ-gradient equals the mean of the two halves'
gradients computed in one process (printed, should be 0).

    python bench/ddp_batchnorm.py [--data-root /usr/share/datasets/fashion-mnist]
"""
import argparse
import gzip
import os.path as osp
import tempfile

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.model import BaseDataPreprocessor, MMDistributedDataParallel
from mmpretrain.registry import MODELS

import hdkd_mm  # noqa: F401
from hdkd_mm.engine.hypergrad import gamma_hypergradient
from hdkd_mm.engine.optim import BilevelOptimWrapperConstructor

CONFIG = 'configs/demo/hdkd_msdnet-4e_1xb128_fashion-mnist.py'
TRAIN, HELDOUT = 64, 16  # per rank


def fashion_mnist(root, num):
    """The first ``num`` training images, normalised and padded as the demo
    pipeline does (28→32, gray→3 channels), float64."""
    with gzip.open(osp.join(root, 'train-images-idx3-ubyte.gz')) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(osp.join(root, 'train-labels-idx1-ubyte.gz')) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    x = (torch.tensor(x[:num], dtype=torch.float64) - 72.94) / 90.02
    x = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-72.94 / 90.02)
    return x[:, None].repeat(1, 3, 1, 1), torch.tensor(y[:num]).long()


def build_model():
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIG).model).double().train()
    model.data_preprocessor = BaseDataPreprocessor()
    with torch.no_grad():  # a γ away from its initialisation
        model.loss_weights.gamma.mul_(torch.linspace(
            0.5, 1.5, model.loss_weights.num_objectives, dtype=torch.float64))
    return model


def gradients(model, wrapped, train, heldout, distributed):
    """(γ-hypergradient, flat θ-gradient) of one bilevel step."""
    optim = BilevelOptimWrapperConstructor(dict(
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
        gamma=dict(optimizer=dict(type='Adam', lr=1e-3))))(wrapped)
    exit_logits = wrapped(train[0], mode='tensor')
    objective_losses = model.head.objective_losses(exit_logits, train[1])
    (model.objective_weights() * objective_losses).sum().backward()
    theta_grad = torch.cat([
        p.grad.flatten() for n, p in model.named_parameters()
        if p.grad is not None and not n.startswith('loss_weights')])
    result = gamma_hypergradient(model, optim['model'].optimizer, *train,
                                 *heldout, model.loss_weights,
                                 distributed=distributed)
    return result.grad, theta_grad


def split(data, rank, size):
    return tuple(t[rank * size:(rank + 1) * size] for t in data)


def worker(rank, tmp, root):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{tmp}/pg',
                            rank=rank, world_size=2)
    images, labels = fashion_mnist(root, 2 * (TRAIN + HELDOUT))
    train = (images[:2 * TRAIN], labels[:2 * TRAIN])
    heldout = (images[2 * TRAIN:], labels[2 * TRAIN:])
    model = build_model()
    # MSDNet leaves some parameters unused (hence find_unused_parameters in
    # its configs): without it the buckets holding them are never averaged
    # (a single step goes wrong silently; the next one raises).
    ddp = MMDistributedDataParallel(model, device_ids=None,
                                    broadcast_buffers=False,
                                    find_unused_parameters=True)
    grads = gradients(model, ddp, split(train, rank, TRAIN),
                      split(heldout, rank, HELDOUT), True)
    torch.save(grads, f'{tmp}/rank{rank}.pth')
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root',
                        default='/usr/share/datasets/fashion-mnist')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(worker, args=(tmp, args.data_root), nprocs=2, join=True)
        gamma2, theta2 = torch.load(f'{tmp}/rank0.pth')
    torch.set_num_threads(1)
    images, labels = fashion_mnist(args.data_root, 2 * (TRAIN + HELDOUT))
    train = (images[:2 * TRAIN], labels[:2 * TRAIN])
    heldout = (images[2 * TRAIN:], labels[2 * TRAIN:])
    model = build_model()
    gamma1, theta1 = gradients(model, model, train, heldout, False)
    halves = [gradients(m, m, split(train, r, TRAIN),
                        split(heldout, r, HELDOUT), False)[1]
              for r, m in ((0, build_model()), (1, build_model()))]

    def rel(a, b):
        return float((a - b).norm() / b.norm())

    def cos(a, b):
        return float(a @ b / a.norm() / b.norm())

    print(f'control: 2-rank θ-grad vs mean of halves, relative '
          f'{rel(theta2, (halves[0] + halves[1]) / 2):.1e}')
    print(f'θ-gradient 2×{TRAIN} vs 1×{2 * TRAIN}: relative '
          f'{rel(theta2, theta1):.3f}, cosine {cos(theta2, theta1):.3f}')
    print(f'γ-gradient 2×({TRAIN},{HELDOUT}) vs 1×({2 * TRAIN},{2 * HELDOUT}):'
          f' relative {rel(gamma2, gamma1):.3f}, cosine '
          f'{cos(gamma2, gamma1):.3f}')


if __name__ == '__main__':
    main()
