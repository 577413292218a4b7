"""Benchmark: the cost of one HDKD iteration against a plain multi-exit step.

    .venv/bin/python bench/bilevel_step.py [--device cuda] [--repeats 7]
        [--heldout 16 64] [--batch 64] [--exits 8] [--breakdown]
        [--no-memory] [--no-reference] [--gamma-interval 1] [--accuracy]
        [--extra finite_diff functorch noreuse]

The paper's CIFAR MSDNet (``configs/_base_/models/msdnet_cifar.py``: 8 exits,
5.3 M parameters, 32×32 inputs, 100 classes) with the HDKD objective set
(8 CE + 28 KD = 36 objectives), SGD (momentum 0.9, weight decay 1e-4) for θ,
Adam for γ. Random images (no data loading is timed). In ONE process, with
the variants interleaved in every repeat (noise on a shared machine hits all
of them alike), medians of:

  plain      ``MultiExitClassifier.train_step`` with γ frozen: forward,
             Σ γ_m ℓ_m, backward, SGD step (the cost every scheme pays);
  hdkd       ``train_step`` of the bilevel iteration (``train_cfg.bilevel``
             ``hypergrad='jvp'``, forward-mode dual tensors): train
             forward/backward (g), θ', the
             held-out pass at θ' (v), one JVP on the train batch, γ step,
             θ step;
  reference  Algorithm 1 literally: a γ loop on its own train batch (forward,
             ``create_graph=True`` backward → θ'(γ), held-out forward at θ',
             double backward to γ), then the θ loop (forward/backward/step
             on another train batch).

``--accuracy`` prints, instead, the relative error of the float32 JVP and of
finite differences (several steps) against the float64 JVP of the same state.

``--extra`` adds ``finite_diff`` (central differences of the exit logits),
``functorch`` (``torch.func.jvp`` instead of dual tensors) and ``noreuse``
(dual tensors recomputing the conv primals instead of taking them from the
train forward).

Timing, honestly: on CPU the default is ONE torch thread and the ratios are
taken on the process CPU time (``time.process_time``) of each step: this
machine is shared, and with 2 threads OpenMP's spin-waiting under
oversubscription made single steps 5-20x slower at random; wall-clock
medians are printed too. On CUDA: wall time with synchronisation.

Memory, honestly: on CUDA, ``torch.cuda.max_memory_allocated`` during two
steps minus the memory allocated before them (tensors only, no allocator
cache), after one step (optimizer state and gradients exist). On CPU,
tracemalloc does not see torch's allocations, so each variant runs in a fresh
subprocess with a fixed glibc mmap threshold (freed tensors go back to the
OS): after building the model and batches the peak resident set size is
reset (``/proc/self/clear_refs``), and the peak over three steps (VmHWM)
minus the RSS before them is reported: the steps' working memory as the OS
sees it, the optimizer state and gradients (equal for all variants)
included.

The last line: ``hdkd/plain=… reference/plain=… speedup=… mem_hdkd/plain=…``
for each ``--heldout`` size (speedup = reference/hdkd).
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402
from torch.func import functional_call  # noqa: E402

import hdkd_mm  # noqa: E402,F401
from hdkd_mm.engine.hypergrad import (ThetaParams, batch_statistics,  # noqa
                                      heldout_gradient,
                                      objective_finite_diff, objective_jvp,
                                      virtual_step)
from hdkd_mm.engine.optim import BilevelOptimWrapperConstructor  # noqa: E402

MODEL_CFG = osp.join(ROOT, 'configs/_base_/models/msdnet_cifar.py')


# ----------------------------------------------------------------- setup
def build(args, device, hypergrad='jvp', backend='forward_ad', reuse=True):
    cfg = copy.deepcopy(Config.fromfile(MODEL_CFG).model)
    cfg.backbone.nBlocks = args.exits
    cfg.head.loss = dict(type='DenseKDLoss', scheme='hdkd')
    cfg.loss_weights = dict(type='LearnedLossWeights', init='ds_like')
    torch.manual_seed(0)
    model = MODELS.build(cfg).to(device)
    # what train_cfg.bilevel gives the step through the loop
    model.set_bilevel_step(dict(
        hypergrad=hypergrad, jvp_backend=backend, jvp_reuse_forward=reuse,
        gamma_interval=getattr(args, 'gamma_interval', 1)))
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    ow = BilevelOptimWrapperConstructor(dict(
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
        gamma=dict(optimizer=dict(type='Adam', lr=1e-3))))(model)
    return model, ow


def make_batch(n, seed, device, channels_last=False):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=gen)
    y = torch.randint(0, 100, (n, ), generator=gen)
    x = x.to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    samples = [DataSample().set_gt_label(int(t)) for t in y]
    return dict(inputs=x, data_samples=samples), x, y.to(device)


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


# -------------------------------------------------------------- variants
def plain_step(model, ow, data):
    lw = model.loss_weights
    lw.gamma.requires_grad_(False)  # frozen γ: the plain training step
    try:
        model.train_step(data, ow)
    finally:
        lw.gamma.requires_grad_(True)


def hdkd_step(model, ow, data, heldout):
    model.set_heldout_source(lambda: heldout)
    model.train_step(data, ow)


def reference_step(model, ow, data_gamma, data_theta, heldout):
    """Algorithm 1 with T = 1, literally (double backward)."""
    lw = model.loss_weights
    opt = ow['model'].optimizer
    theta = ThetaParams.from_optimizer(model, opt)
    x, y = data_gamma['inputs'], torch.cat(
        [s.gt_label for s in data_gamma['data_samples']]).to(
            data_gamma['inputs'].device)
    hx, hy = heldout['inputs'], torch.cat(
        [s.gt_label for s in heldout['data_samples']]).to(x.device)
    # γ loop: L_val(θ − ξ ∇θ L_train(θ, γ)) on its own train batch
    with batch_statistics(model):
        logits = model.exit_logits(x)
    train = (lw.gamma * model.head.objective_losses(logits, y)).sum()
    grads = torch.autograd.grad(train, theta.params, create_graph=True,
                                allow_unused=True)
    primes = [p if g is None else p - grp['lr'] * g
              for p, g, grp in zip(theta.params, grads, theta.groups)]
    with batch_statistics(model):
        hlogits = functional_call(model, dict(zip(theta.names, primes)),
                                  (hx, ), {'mode': 'tensor'})
    ce = model.head.loss_module.ce_losses(hlogits, hy)
    val = lw.val_loss(ce)
    lw.gamma.grad = torch.autograd.grad(val, lw.gamma)[0]
    lw.update_ema(ce.detach())
    ow['gamma'].step()
    ow['gamma'].zero_grad()
    lw.project_()
    del grads, primes, train, val
    # θ loop: a plain step on another train batch with γ^{t+1}
    plain_step(model, ow, data_theta)


# -------------------------------------------------------------- measure
def time_variants(args, device, h):
    model, ow = build(args, device)
    extra = {}
    if 'finite_diff' in args.extra:
        extra['hdkd_fd'] = build(args, device, hypergrad='finite_diff')
    if 'functorch' in args.extra:
        extra['hdkd_functorch'] = build(args, device, backend='functorch')
    if 'noreuse' in args.extra:
        extra['hdkd_noreuse'] = build(args, device, reuse=False)
    data, _, _ = make_batch(args.batch, 1, device, args.channels_last)
    data2, _, _ = make_batch(args.batch, 2, device, args.channels_last)
    held, _, _ = make_batch(h, 3, device, args.channels_last)
    variants = {
        'plain': lambda: plain_step(model, ow, data),
        'hdkd': lambda: hdkd_step(model, ow, data, held),
    }
    for name, (m, o) in extra.items():
        variants[name] = (lambda m=m, o=o: hdkd_step(m, o, data, held))
    if not args.no_reference:
        variants['reference'] = lambda: reference_step(model, ow, data,
                                                       data2, held)
    wall = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    for _ in range(args.warmup):
        for fn in variants.values():
            fn()
    names = list(variants)
    for r in range(args.repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            variants[name]()
            sync(device)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    med = {k: statistics.median(v) for k, v in wall.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    return med, cmed


def breakdown(args, device, h):
    """Median seconds of the parts of one HDKD iteration."""
    model, ow = build(args, device)
    data, x, y = make_batch(args.batch, 1, device, args.channels_last)
    _, hx, hy = make_batch(h, 3, device, args.channels_last)
    lw = model.loss_weights
    opt = ow['model'].optimizer
    parts = {k: [] for k in ('train fwd+bwd', 'virtual step', 'held-out',
                             'jvp forward_ad', 'jvp functorch',
                             'finite_diff', 'no-grad forward', 'opt steps')}

    def clock(name, fn):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        parts[name].append(time.perf_counter() - t0)
        return out

    for r in range(args.repeats + 1):
        for p in model.parameters():
            p.grad = None

        def fwd_bwd():
            losses = model.head.objective_losses(model.exit_logits(x), y)
            (lw.weights() * losses).sum().backward()
        clock('train fwd+bwd', fwd_bwd)
        theta = ThetaParams.from_optimizer(model, opt)
        primes, coefs = clock('virtual step',
                              lambda: virtual_step(theta, opt, 'sgd'))
        v, _, _ = clock('held-out', lambda: heldout_gradient(
            model, theta.names, primes, hx, hy, lw))
        u = [t.mul_(c) for t, c in zip(v, coefs)]
        for backend in ('forward_ad', 'functorch'):
            clock(f'jvp {backend}', lambda: objective_jvp(
                model, theta.names, theta.params, u, x, y, backend))
        clock('finite_diff', lambda: objective_finite_diff(
            model, theta.names, theta.params, u, x, y))

        def nograd():
            with torch.no_grad(), batch_statistics(model):
                model.exit_logits(x)
        clock('no-grad forward', nograd)

        def steps():
            opt.step()
            opt.zero_grad()
        clock('opt steps', steps)
        if r == 0:  # warm-up
            for k in parts:
                parts[k].clear()
    return {k: statistics.median(v) for k, v in parts.items()}


def memory_cuda(args, device, h, variant):
    model, ow = build(args, device)
    data, _, _ = make_batch(args.batch, 1, device, args.channels_last)
    data2, _, _ = make_batch(args.batch, 2, device, args.channels_last)
    held, _, _ = make_batch(h, 3, device, args.channels_last)
    fn = dict(plain=lambda: plain_step(model, ow, data),
              hdkd=lambda: hdkd_step(model, ow, data, held),
              reference=lambda: reference_step(model, ow, data, data2,
                                               held))[variant]
    fn()  # optimizer state, gradients exist from here on
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    for _ in range(2):
        fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def proc_status_kib(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    raise KeyError(key)


def memory_worker(args):
    """Subprocess body (CPU): peak RSS growth over 3 steps of one variant
    from the RSS after building the model and the batches (so it includes
    the optimizer state and gradients created by the first step, the same
    for every variant); the peak (VmHWM) is reset through
    /proc/self/clear_refs first. The parent starts this process with a fixed
    glibc mmap threshold, so that freed tensors leave the RSS."""
    device = torch.device('cpu')
    h, variant = args.mem_worker_heldout, args.mem_worker
    model, ow = build(args, device)
    data, _, _ = make_batch(args.batch, 1, device, args.channels_last)
    data2, _, _ = make_batch(args.batch, 2, device, args.channels_last)
    held, _, _ = make_batch(h, 3, device, args.channels_last)
    fn = dict(plain=lambda: plain_step(model, ow, data),
              hdkd=lambda: hdkd_step(model, ow, data, held),
              reference=lambda: reference_step(model, ow, data, data2,
                                               held))[variant]
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset VmHWM (the peak RSS) to the current RSS
    base = proc_status_kib('VmRSS')
    for _ in range(3):
        fn()
    peak = proc_status_kib('VmHWM')
    print(json.dumps(dict(delta=(peak - base) * 1024)))


def memory_cpu(args, h, variant):
    cmd = [sys.executable, osp.abspath(__file__), '--mem-worker', variant,
           '--mem-worker-heldout', str(h), '--batch', str(args.batch),
           '--exits', str(args.exits), '--threads', str(args.threads),
           '--gamma-interval', str(args.gamma_interval)]
    if args.channels_last:
        cmd.append('--channels-last')
    # a fixed mmap threshold: every large tensor is its own mapping and
    # returns to the OS when freed (glibc otherwise raises the threshold
    # after the first frees and keeps freed tensors in the heap)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='131072')
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])['delta']


def accuracy(args, device):
    """Relative error of the float32 hypergradients (JVP, finite
    differences) against the float64 JVP of the same state; the float64
    finite differences too."""
    from hdkd_mm.engine.hypergrad import gamma_hypergradient
    model64, ow = build(args, torch.device('cpu'))
    model64 = model64.double()
    _, x, y = make_batch(args.batch, 1, torch.device('cpu'))
    _, hx, hy = make_batch(args.heldout[0], 3, torch.device('cpu'))
    lw = model64.loss_weights
    lw.update_ema(torch.linspace(4.0, 3.0, args.exits, dtype=torch.float64))

    def hypergrad(model, dtype, method, eps=0.01):
        model = model.to(device)
        opt = torch.optim.SGD(
            [p for n, p in model.named_parameters()
             if not n.startswith('loss_weights')], lr=0.1)
        xx, hh = x.to(device, dtype), hx.to(device, dtype)
        for p in model.parameters():
            p.grad = None
        losses = model.head.objective_losses(model.exit_logits(xx),
                                             y.to(device))
        (model.objective_weights() * losses).sum().backward()
        out = gamma_hypergradient(model, opt, xx, y.to(device), hh,
                                  hy.to(device), model.loss_weights,
                                  method=method, fd_eps=eps)
        return out.grad.double().cpu()

    exact = hypergrad(model64, torch.float64, 'jvp')
    model32 = copy.deepcopy(model64).float()
    rows = {'jvp float32': hypergrad(model32, torch.float32, 'jvp')}
    for eps in (1e-1, 1e-2, 1e-3):
        rows[f'finite_diff eps={eps:g} float32'] = hypergrad(
            model32, torch.float32, 'finite_diff', eps)
    for eps in (1e-2, 1e-5):
        rows[f'finite_diff eps={eps:g} float64'] = hypergrad(
            model64, torch.float64, 'finite_diff', eps)
    print(f'[accuracy] relative error vs the float64 JVP (batch {args.batch},'
          f' held-out {args.heldout[0]}, {args.exits} exits, '
          f'‖∇γ‖={float(exact.norm()):.3g}):')
    for k, v in rows.items():
        print(f'  {k}: {float((v - exact).norm() / exact.norm()):.3g}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--heldout', type=int, nargs='+', default=[16, 64])
    parser.add_argument('--exits', type=int, default=8)
    parser.add_argument('--gamma-interval', type=int, default=1,
                        help='a γ step every n iterations (amortised cost)')
    parser.add_argument(
        '--threads', type=int, default=None,
        help='torch threads (CPU default 1: on a shared machine, OpenMP '
        'spin-waits under oversubscription make multi-threaded wall times '
        'erratic; with 1 thread the process CPU time is the work done)')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--no-reference', action='store_true')
    parser.add_argument('--no-memory', action='store_true')
    parser.add_argument('--breakdown', action='store_true')
    parser.add_argument('--accuracy', action='store_true',
                        help='only the hypergradient accuracy table')
    parser.add_argument('--extra', nargs='*', default=[],
                        choices=['finite_diff', 'functorch', 'noreuse'])
    parser.add_argument('--mem-worker', help=argparse.SUPPRESS)
    parser.add_argument('--mem-worker-heldout', type=int,
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads is None:
        args.threads = 1 if args.device == 'cpu' else torch.get_num_threads()
    torch.set_num_threads(args.threads)
    if args.mem_worker:
        return memory_worker(args)
    device = torch.device(args.device)
    print(f'device={device} torch={torch.__version__} '
          f'threads={torch.get_num_threads()} batch={args.batch} '
          f'exits={args.exits} channels_last={args.channels_last} '
          f'repeats={args.repeats} (medians, interleaved)')
    if args.accuracy:
        return accuracy(args, device)
    summary = {}
    for h in args.heldout:
        if args.breakdown:
            parts = breakdown(args, device, h)
            print(f'[held-out {h}] breakdown (s): ' + ', '.join(
                f'{k}={v:.4f}' for k, v in parts.items()))
        wall, cpu = time_variants(args, device, h)
        print(f'[held-out {h}] wall seconds: ' + ', '.join(
            f'{k}={v:.4f}' for k, v in wall.items()))
        print(f'[held-out {h}] wall ratio to plain: ' + ', '.join(
            f"{k}={v / wall['plain']:.2f}" for k, v in wall.items()))
        # On CPU the ratios are taken on process CPU time (robust to other
        # processes on the machine); on CUDA on wall time.
        t = cpu if device.type == 'cpu' else wall
        ratios = {k: v / t['plain'] for k, v in t.items()}
        if device.type == 'cpu':
            print(f'[held-out {h}] cpu seconds: ' + ', '.join(
                f'{k}={v:.4f}' for k, v in cpu.items()))
            print(f'[held-out {h}] cpu-time ratio to plain: ' + ', '.join(
                f'{k}={v:.2f}' for k, v in ratios.items()))
        mem = {}
        if not args.no_memory:
            for variant in ['plain', 'hdkd'] + (
                    [] if args.no_reference else ['reference']):
                mem[variant] = (memory_cuda(args, device, h, variant)
                                if device.type == 'cuda' else
                                memory_cpu(args, h, variant))
            what = ('cuda max_memory_allocated growth' if device.type ==
                    'cuda' else 'peak RSS growth over 3 steps')
            print(f'[held-out {h}] memory ({what}, MiB): ' + ', '.join(
                f'{k}={v / 2**20:.1f}' for k, v in mem.items()))
        summary[h] = (ratios, mem)
    parts = []
    for h, (ratios, mem) in summary.items():
        ref = ratios.get('reference', float('nan'))
        mem_ratio = (mem['hdkd'] / mem['plain']) if mem else float('nan')
        parts.append(f"hdkd/plain={ratios['hdkd']:.2f} "
                     f'reference/plain={ref:.2f} '
                     f"speedup={ref / ratios['hdkd']:.2f} "
                     f'mem_hdkd/plain={mem_ratio:.2f} (held-out {h})')
    print(' | '.join(parts))


if __name__ == '__main__':
    main()
