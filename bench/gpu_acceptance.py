"""GPU acceptance of the bilevel (HDKD) step: one command, one verdict line
per check, exit status 0 when every check that ran passed.

    python bench/gpu_acceptance.py [--device cuda|cpu] [--iters 50]
        [--json OUT.json]

Every check runs the code a training run runs: ``MultiExitClassifier.
train_step`` of the demo model (``configs/demo/hdkd_msdnet-4e_1xb128_fashion-mnist.py``: 4-exit
MSDNet, HDKD's 10 objectives) with the optimizer wrappers a config builds
(``BilevelOptimWrapperConstructor``; MMEngine's ``AmpOptimWrapper`` for θ
under AMP), on synthetic learnable 32×32 images (nothing is downloaded).
The γ-gradient each step computes is recorded where the step calls
``hdkd_mm.engine.hypergrad.gamma_hypergradient``.

On CUDA (under 5 minutes on one GPU):

* ``gamma_grad/<mode>`` for mode = float32 (TF32 off), tf32 (PyTorch's
  default: TF32 convolutions), fp16 and bf16 (autocast + grad scaler): the
  γ-gradient of the third step against a float64 CPU reference of the same
  step (same θ, γ, E_k, batches), twice:
    - ``same g``: the reference gets the step's own θ-gradient g (unscaled)
      and recomputes θ', v and J u in float64: this isolates the hypergradient
      pass, which runs in float32 even under AMP (outside autocast);
    - ``end to end``: the reference also computes g in float64: the error
      of a whole AMP step, g's half precision included.
* ``hdkd_amp/50 iterations``: 50 steps with fp16 AMP and a dynamic loss
  scale: every loss, θ and γ finite, γ moved, γ steps skipped for a
  non-finite γ-gradient (scaler overflows) counted;
* ``hdkd_amp/syncs``: host-device synchronisations per γ step
  (``torch.cuda.set_sync_debug_mode``), inside the γ-gradient pass and in the
  rest of the step, by source line, against the explicit host reads of
  tensor values found by a ``TorchFunctionMode`` counter (``bool()``,
  ``float()``, ``.item()``, ``nonzero``, masks...): PASS when the γ-gradient
  pass has no synchronisation besides the listed reads;
* ``memory/<model>``: peak CUDA memory of an HDKD step over a plain step
  (γ frozen) of the same model and batch;
* ``ddp/2 processes``: NCCL with two devices, else gloo on CUDA tensors of
  one device; MMEngine's DDP wrapper routed by the train loop to the model's
  step, 4 steps on different data per rank: γ, E_k and θ bitwise identical
  on both ranks, γ moved.

Without CUDA (or with ``--device cpu``) it says so and runs the same checks
at small sizes on CPU (float32, and bf16 autocast with a CPU grad scaler in
place of ``AmpOptimWrapper``, which refuses CPUs; DDP with gloo); memory and
synchronisation counts need CUDA and are skipped. That smoke run is
``tests/test_gpu_acceptance.py``.
"""
import argparse
import contextlib
import copy
import json
import math
import os
import os.path as osp
import sys
import tempfile
import time
import warnings
from collections import Counter

import torch
import torch.multiprocessing as mp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402
from mmengine.optim import OptimWrapper, OptimWrapperDict  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402

import hdkd_mm  # noqa: E402,F401
import hdkd_mm.engine.hypergrad as hypergrad  # noqa: E402
from hdkd_mm.engine.optim import BilevelOptimWrapperConstructor  # noqa: E402

DEMO = osp.join(ROOT, 'configs', 'demo',
                    'hdkd_msdnet-4e_1xb128_fashion-mnist.py')
CIFAR_MSDNET = osp.join(ROOT, 'configs', '_base_', 'models',
                        'msdnet_cifar.py')
THETA_OPTIM = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4,
                   nesterov=True)  # the demo schedule's optimizer
GAMMA_OPTIM = dict(optimizer=dict(type='Adam', lr=1e-3))
RESULTS = []

# Tolerances of gamma_grad. Bugs of the CUDA/AMP path change ∇γ by O(1) or
# more: a loss scale not divided out (×65536), autocast leaking into the
# float32 hypergradient pass, BatchNorm updating its running statistics, θ'
# built from another θ. Rounding does far less, but how much depends on the
# conditioning of the one-step look-ahead at that state (README: ~30 % for
# float32 on the 8-exit CIFAR MSDNet; on the demo model at init 7e-7), so
# every limit is set from the same step recomputed on CPU, where rounding is
# the only difference from float64:
#   float32 (TF32 off): 20× the CPU float32 error (other kernels and
#     summation orders; O(1) bugs stay far above);
#   fp16/bf16 same g: as float32 (that pass runs in float32);
#   fp16/bf16 end to end: 3× the CPU autocast error with the same half type
#     (another op list, the same mantissa), at least 0.02;
#   tf32 (10-bit mantissa in every convolution and matmul, the hypergradient
#     pass included): as fp16 end to end, for both comparisons;
# plus a cosine of at least 0.95 for the half-precision modes.
FLOOR = 1e-6  # below this, float32 rounding of any kernel


def limits(mode, cpu32_same, cpu32_e2e, cpu_half_e2e):
    """(same g, end to end, cosine) limits of gamma_grad for ``mode``."""
    f32_same = max(20 * cpu32_same, FLOOR)
    half = max(3 * cpu_half_e2e, 0.02) if cpu_half_e2e is not None else None
    if mode == 'float32':
        return f32_same, max(20 * cpu32_e2e, FLOOR), 0.99
    if mode == 'tf32':
        return half, half, 0.95
    return f32_same, half, 0.95


def verdict(ok, name, detail):
    """Print and keep one verdict line: PASS, FAIL or SKIP (ok=None)."""
    tag = 'SKIP' if ok is None else ('PASS' if ok else 'FAIL')
    print(f'[{tag}] {name}: {detail}', flush=True)
    RESULTS.append(dict(check=name, verdict=tag, detail=detail))
    return ok


# ------------------------------------------------------------ model, data
def demo_model(device, scheme='hdkd', model_cfg=None):
    cfg = Config.fromfile(DEMO)
    model = copy.deepcopy(model_cfg or cfg.model)
    model.head.loss.scheme = scheme
    model.data_preprocessor = dict(type='ClsDataPreprocessor',
                                   **cfg.data_preprocessor)
    torch.manual_seed(0)
    return MODELS.build(model).to(device).train()


def cifar_msdnet_cfg():
    """The paper's 8-exit CIFAR MSDNet with HDKD, 10 classes."""
    model = copy.deepcopy(Config.fromfile(CIFAR_MSDNET).model)
    model.head.num_classes = 10
    model.head.loss = dict(type='DenseKDLoss', scheme='hdkd')
    return model


def batch(n, seed, num_classes=10):
    """``n`` uint8 3×32×32 images whose class is the position of a bright
    square on noise (learnable in a few steps), as a dataloader gives."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (n, ), generator=gen)
    imgs = torch.randint(0, 96, (n, 3, 32, 32), generator=gen,
                         dtype=torch.uint8)
    for img, c in zip(imgs, labels.tolist()):
        r, q = divmod(c, 4)
        img[:, 4 + 6 * r:10 + 6 * r, 4 + 6 * q:10 + 6 * q] = 255
    return dict(inputs=list(imgs),
                data_samples=[DataSample().set_gt_label(int(c))
                              for c in labels])


class CpuAmpOptimWrapper(OptimWrapper):
    """AmpOptimWrapper's interface on CPU for the smoke run (MMEngine's
    refuses CPUs): bf16 autocast in ``optim_context``, a grad scaler in
    ``backward``/``step``, exposed as ``loss_scaler`` as MMEngine does."""

    def __init__(self, optimizer, **kwargs):
        super().__init__(optimizer, **kwargs)
        self.loss_scaler = torch.amp.GradScaler('cpu', init_scale=256.)

    @contextlib.contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast(
                'cpu', dtype=torch.bfloat16):
            yield

    def backward(self, loss, **kwargs):
        self.loss_scaler.scale(loss).backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs):
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update()


def optim_wrappers(model, amp=None, loss_scale='dynamic'):
    """What a config builds: θ (OptimWrapper, or AmpOptimWrapper with
    ``amp`` = 'float16'/'bfloat16') and γ (Adam) through
    BilevelOptimWrapperConstructor."""
    cfg = dict(optimizer=dict(THETA_OPTIM), gamma=copy.deepcopy(GAMMA_OPTIM))
    if amp is not None and next(model.parameters()).is_cuda:
        cfg.update(type='AmpOptimWrapper', dtype=amp, loss_scale=loss_scale)
    ow = BilevelOptimWrapperConstructor(cfg)(model)
    if amp is not None and not next(model.parameters()).is_cuda:
        ow = OptimWrapperDict(model=CpuAmpOptimWrapper(
            ow['model'].optimizer), gamma=ow['gamma'])
    return ow


@contextlib.contextmanager
def recording():
    """Record every γ-gradient the step computes: the state, θ-gradient
    and inputs it was computed from, and the result."""
    calls, original = [], hypergrad.gamma_hypergradient

    def record(module, optimizer, train_inputs, train_target,
               heldout_inputs, heldout_target, loss_weights, **kwargs):
        entry = dict(
            state={k: v.detach().cpu().clone()
                   for k, v in module.state_dict().items()},
            grads={n: (p.grad.detach().cpu().clone()
                       if p.grad is not None else None)
                   for n, p in module.named_parameters()},
            lrs=[float(g['lr']) for g in optimizer.param_groups],
            x=train_inputs.detach().cpu(), y=train_target.detach().cpu(),
            hx=heldout_inputs.detach().cpu(),
            hy=heldout_target.detach().cpu(),
            grad_scale=float(kwargs.get('grad_scale', 1.0)),
            kwargs={k: v for k, v in kwargs.items()
                    if k in ('method', 'virtual', 'jvp_backend', 'fd_eps')})
        result = original(module, optimizer, train_inputs, train_target,
                          heldout_inputs, heldout_target, loss_weights,
                          **kwargs)
        entry['grad'] = result.grad.detach().double().cpu()
        calls.append(entry)
        return result

    hypergrad.gamma_hypergradient = record
    try:
        yield calls
    finally:
        hypergrad.gamma_hypergradient = original


def recompute(template, call, dtype=torch.float64, same_g=True,
              autocast=None):
    """The recorded γ-gradient recomputed on CPU in ``dtype`` from the same
    θ, γ, E_k and batches; ``same_g``: from the step's own θ-gradient
    (unscaled), else with g computed here too (under CPU ``autocast`` if
    given: float16 or bfloat16)."""
    ref = copy.deepcopy(template).cpu().to(dtype).train()
    ref.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v
                         for k, v in call['state'].items()})
    opt = optim_wrappers(ref)['model'].optimizer
    for group, lr in zip(opt.param_groups, call['lrs']):
        group['lr'] = lr
    x, hx = call['x'].to(dtype), call['hx'].to(dtype)
    if same_g:
        for n, p in ref.named_parameters():
            g = call['grads'].get(n)
            p.grad = None if g is None else g.to(dtype) / call['grad_scale']
    else:
        with torch.autocast('cpu', dtype=autocast or torch.bfloat16,
                            enabled=autocast is not None):
            obj = ref.head.objective_losses(ref(x, mode='tensor'),
                                            call['y'])
            loss = (ref.objective_weights().to(obj.dtype) * obj).sum()
        loss.backward()
    res = hypergrad.gamma_hypergradient(
        ref, opt, x, call['y'], hx, call['hy'], ref.loss_weights,
        **call['kwargs'])
    return res.grad.double()


def compare(got, want):
    err = float((got - want).norm() / want.norm())
    cos = float(torch.nn.functional.cosine_similarity(got, want, dim=0))
    return err, cos


# ------------------------------------------------------------- checks
@contextlib.contextmanager
def tf32(enabled):
    old = (torch.backends.cuda.matmul.allow_tf32,
           torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = old


def check_gamma_grad(device, mode, sizes):
    amp = {'fp16': 'float16', 'bf16': 'bfloat16'}.get(mode)
    half = {'fp16': torch.float16, 'tf32': torch.float16,
            'bf16': torch.bfloat16}.get(mode)
    model = demo_model(device)
    template = copy.deepcopy(model).cpu()  # the architecture
    # A moderate initial loss scale: the dynamic scaler's 65536 overflows in
    # fp16 on a fresh model and would skip the very step checked here.
    ow = optim_wrappers(model, amp, loss_scale=dict(init_scale=256.))
    model.set_heldout_source(lambda: batch(sizes['heldout'], 99))
    with tf32(mode == 'tf32'), recording() as calls:
        for i in range(3):  # the third step: E_k set, momentum running
            model.train_step(batch(sizes['train'], i), ow)
    call = calls[-1]
    name = f'gamma_grad/{mode}'
    if not bool(torch.isfinite(call['grad']).all()):
        return verdict(False, name, f'non-finite γ-gradient {call["grad"]}')
    ref_same = recompute(template, call, same_g=True)
    ref_e2e = recompute(template, call, same_g=False)
    cpu32_same, _ = compare(recompute(template, call, torch.float32), ref_same)
    cpu32_e2e, _ = compare(recompute(template, call, torch.float32, False),
                           ref_e2e)
    cpu_half = None
    if half is not None:
        cpu_half, _ = compare(recompute(template, call, torch.float32, False,
                                        autocast=half), ref_e2e)
    tol_same, tol_e2e, tol_cos = limits(mode, cpu32_same, cpu32_e2e,
                                        cpu_half)
    same_err, _ = compare(call['grad'], ref_same)
    e2e_err, cos = compare(call['grad'], ref_e2e)
    ok = same_err <= tol_same and e2e_err <= tol_e2e and cos >= tol_cos
    floor = (f'CPU float32 {cpu32_same:.1e} / {cpu32_e2e:.1e}' +
             (f', CPU {half} autocast {cpu_half:.1e}'.replace('torch.', '')
              if half is not None else ''))
    return verdict(ok, name, f'rel. error vs float64: same g '
                   f'{same_err:.2e} (limit {tol_same:.1e}), end to end '
                   f'{e2e_err:.2e} (limit {tol_e2e:.1e}), cos {cos:.6f} '
                   f'(>= {tol_cos}); same step on CPU: {floor}; loss scale '
                   f'{call["grad_scale"]:g}')


class HostReads(TorchFunctionMode):
    """Counts explicit reads of tensor values by the host (each one a
    synchronisation for a CUDA tensor) by source line, separately inside
    the γ-gradient pass (``state['in']``) and in the rest of the step."""
    NAMES = ('item', '__bool__', '__float__', '__int__', '__index__',
             'tolist', 'nonzero', 'cpu', 'numpy')

    def __init__(self, state):
        super().__init__()
        self.state = state
        self.inside, self.outside = Counter(), Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, '__name__', '')
        masked = name == '__getitem__' and any(
            torch.is_tensor(a) and a.dtype == torch.bool
            for a in (args[1] if isinstance(args[1], tuple) else (args[1], )))
        if name in self.NAMES or masked:
            frame = sys._getframe(1)
            where = (self.inside if self.state['in'] else self.outside)
            where[f'{_rel(frame.f_code.co_filename)}:{frame.f_lineno} '
                  f'({name})'] += 1
        return func(*args, **(kwargs or {}))


def _rel(path):
    path = osp.abspath(path)
    if path.startswith(ROOT + os.sep):
        return osp.relpath(path, ROOT)
    return path.split('site-packages' + os.sep)[-1]


@contextlib.contextmanager
def inside_hypergradient(state):
    """``state['in']`` is True while the step computes its γ-gradient; the
    numbers of warnings caught before and after it go to ``state['span']``
    (synchronisation warnings inside the pass are those in between)."""
    original = hypergrad.gamma_hypergradient

    def wrapped(*args, **kwargs):
        first = len(state['caught'])
        state['in'] = True
        try:
            return original(*args, **kwargs)
        finally:
            state['in'] = False
            state['spans'].append((first, len(state['caught'])))

    hypergrad.gamma_hypergradient = wrapped
    try:
        yield
    finally:
        hypergrad.gamma_hypergradient = original


def _per_step(counter, steps):
    return '; '.join(f'{k}: {v / steps:g}' for k, v in sorted(
        counter.items())) or 'none'


def check_hdkd_amp(device, iters, sizes):
    cuda = device.type == 'cuda'
    model = demo_model(device)
    ow = optim_wrappers(model, 'float16' if cuda else 'bfloat16')
    heldout = [batch(sizes['heldout'], 1000 + i) for i in range(4)]
    counter = iter(range(10**9))
    model.set_heldout_source(lambda: heldout[next(counter) % 4])
    lw = model.loss_weights
    gamma0 = lw.gamma.detach().clone()
    data = [batch(sizes['train'], i) for i in range(8)]
    finite = True
    counted = max(1, min(10, iters // 5))  # the last steps: steady state
    state = dict(caught=[], spans=[], **{'in': False})
    syncs_in, syncs_out = Counter(), Counter()
    reads = HostReads(state)
    for i in range(iters):
        count = i >= iters - counted
        with contextlib.ExitStack() as stack:
            if count:
                stack.enter_context(inside_hypergradient(state))
                stack.enter_context(reads)
                if cuda:
                    torch.cuda.synchronize(device)
                    state['caught'] = stack.enter_context(
                        warnings.catch_warnings(record=True))
                    warnings.simplefilter('always')
                    torch.cuda.set_sync_debug_mode('warn')
                state['spans'] = []
            try:
                log_vars = model.train_step(data[i % 8], ow)
            finally:
                if count and cuda:
                    torch.cuda.set_sync_debug_mode(0)
        if count and cuda:
            inside = {j for a, b in state['spans'] for j in range(a, b)}
            for j, w in enumerate(state['caught']):
                if 'synchroniz' in str(w.message):
                    (syncs_in if j in inside else syncs_out)[
                        f'{_rel(w.filename)}:{w.lineno}'] += 1
        finite &= all(math.isfinite(float(v.detach()) if torch.is_tensor(v)
                                    else float(v)) for v in log_vars.values())
    finite &= all(bool(torch.isfinite(p).all()) for p in model.parameters())
    moved = float((lw.gamma.detach() - gamma0).abs().max())
    skipped = int(lw.num_skipped)
    # A dynamic loss scale starts at 65536 and halves on every overflow:
    # the first few fp16 steps may overflow (θ and γ steps skipped).
    ok = finite and moved > 0 and skipped <= iters // 10
    verdict(ok, f'hdkd_amp/{iters} iterations',
            f'{"fp16" if cuda else "bf16 (CPU)"} autocast, dynamic loss '
            f'scale: all finite: {finite}; γ moved by max |Δγ| = {moved:.3g};'
            f' γ steps skipped (non-finite γ-gradient): {skipped} (allowed '
            f'{iters // 10})')
    explicit = (f'explicit host reads per step inside the γ-gradient pass: '
                f'{_per_step(reads.inside, counted)}; in the rest of the '
                f'step: {_per_step(reads.outside, counted)}')
    if not cuda:
        return verdict(None, 'hdkd_amp/syncs', f'needs CUDA; {explicit}')
    lines = {k.split(' ')[0] for k in reads.inside}
    hidden = {k: v / counted for k, v in syncs_in.items() if k not in lines}
    verdict(not hidden, 'hdkd_amp/syncs',
            f'synchronisations per γ step inside the γ-gradient pass: '
            f'{sum(syncs_in.values()) / counted:g} '
            f'({_per_step(syncs_in, counted)}), in the rest of the step: '
            f'{sum(syncs_out.values()) / counted:g} '
            f'({_per_step(syncs_out, counted)}); inside the pass and not an '
            f'explicit host read: {hidden or "none"} | {explicit}')


def peak_memory(model, ow, step, device):
    step()  # optimizer state and gradients exist from here on
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    for _ in range(2):
        step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def check_memory(device, name, model_cfg, train, heldout):
    if device.type != 'cuda':
        return verdict(None, f'memory/{name}', 'needs CUDA')
    peaks = {}
    for variant in ('plain', 'hdkd'):
        model = demo_model(device, model_cfg=model_cfg)
        ow = optim_wrappers(model)
        data, held = batch(train, 1), batch(heldout, 2)
        model.set_heldout_source(lambda: held)
        if variant == 'plain':
            model.loss_weights.gamma.requires_grad_(False)  # frozen γ
        peaks[variant] = peak_memory(
            model, ow, lambda: model.train_step(data, ow), device)
        del model, ow
        torch.cuda.empty_cache()
    ratio = peaks['hdkd'] / peaks['plain']
    # θ' and v (one θ-sized tensor each) and the train forward's conv
    # outputs kept for the JVP pass come on top of a plain step; the
    # held-out pass is smaller than the train pass. 2× would mean something
    # is kept that should not be (README: 1.05-1.24 on CPU, RSS).
    return verdict(ratio <= 2.0, f'memory/{name}',
                   f'peak HDKD / plain = {ratio:.2f} ({peaks["hdkd"] / 2**20:.1f}'
                   f' / {peaks["plain"] / 2**20:.1f} MiB; train {train}, '
                   f'held-out {heldout}; limit 2.0)')


def _ddp_worker(rank, world, tmp, device_type, backend, sizes):
    import torch.distributed as dist

    from mmengine.model import MMDistributedDataParallel

    from hdkd_mm.engine.loops import train_step
    torch.set_num_threads(1)
    dist.init_process_group(backend, init_method=f'file://{tmp}/pg',
                            rank=rank, world_size=world)
    try:
        if device_type == 'cuda':
            index = rank % torch.cuda.device_count()
            torch.cuda.set_device(index)
            device = torch.device('cuda', index)
        else:
            device = torch.device('cpu')
        model = demo_model(device)
        gamma0 = model.loss_weights.gamma.detach().clone()
        # what tools/dist_train.sh builds; the loop's train_step routes it
        # to the model's own bilevel step
        ddp = MMDistributedDataParallel(
            module=model, device_ids=[device.index] if device.type == 'cuda'
            else None, broadcast_buffers=False, find_unused_parameters=True)
        ow = optim_wrappers(model)
        held = [batch(sizes['heldout'], 500 + 10 * i + rank)
                for i in range(4)]
        step = iter(range(10**9))
        model.set_heldout_source(lambda: held[next(step) % 4])
        for i in range(4):
            train_step(ddp, batch(sizes['train'], 100 * i + rank), ow)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        state['gamma0'] = gamma0.cpu()
        torch.save(state, f'{tmp}/state{rank}.pth')
    finally:
        dist.destroy_process_group()


def check_ddp(device, sizes):
    cuda = device.type == 'cuda'
    backend = 'nccl' if cuda and torch.cuda.device_count() >= 2 else 'gloo'
    where = ('two devices' if backend == 'nccl' else
             'CUDA tensors on one device' if cuda else 'CPU')
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_ddp_worker, args=(2, tmp, device.type, backend, sizes),
                 nprocs=2, join=True)
        s0 = torch.load(f'{tmp}/state0.pth', weights_only=False)
        s1 = torch.load(f'{tmp}/state1.pth', weights_only=False)
    same = [k for k in s0 if 'running' not in k and 'num_batches' not in k]
    differ = [k for k in same if not torch.equal(s0[k], s1[k])]
    moved = float((s0['loss_weights.gamma'] - s0['gamma0']).abs().max())
    ok = not differ and moved > 0
    verdict(ok, 'ddp/2 processes',
            f'{backend} ({where}): γ, E_k and θ identical on both ranks: '
            f'{not differ}{"" if not differ else f" (differ: {differ[:5]})"}'
            f'; γ moved by {moved:.3g}')


# ------------------------------------------------------------------ main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', choices=['cuda', 'cpu'],
                        help='default: cuda when available')
    parser.add_argument('--iters', type=int, default=50)
    parser.add_argument('--json', help='write the verdicts here')
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available() and args.device != 'cpu'
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device here')
    start = time.time()
    if cuda:
        device = torch.device('cuda', torch.cuda.current_device())
        print(f'CUDA: {torch.cuda.get_device_name(device)}, '
              f'{torch.cuda.device_count()} device(s), torch '
              f'{torch.__version__}', flush=True)
        sizes = dict(train=64, heldout=32)
        modes = ['float32', 'tf32', 'fp16', 'bf16']
        iters = args.iters
    else:
        print('No CUDA device (or --device cpu): running the CPU smoke run '
              'of the same checks at small sizes; the GPU checks did not '
              'run.', flush=True)
        device = torch.device('cpu')
        torch.set_num_threads(1)
        sizes = dict(train=16, heldout=8)
        modes = ['float32', 'bf16']
        iters = min(args.iters, 6)
    for mode in modes:
        check_gamma_grad(device, mode, sizes)
    check_hdkd_amp(device, iters, sizes)
    check_memory(device, 'demo MSDNet', None, 64, 32)
    check_memory(device, 'CIFAR MSDNet 8 exits', cifar_msdnet_cfg(), 64, 64)
    check_ddp(device, sizes)
    failed = [r for r in RESULTS if r['verdict'] == 'FAIL']
    print(f'{len(RESULTS) - len(failed)} of {len(RESULTS)} checks passed or '
          f'skipped, {len(failed)} failed ({time.time() - start:.0f} s'
          f'{"" if cuda else ", CPU smoke run"}).', flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(cuda=cuda, results=RESULTS), f, indent=1)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
