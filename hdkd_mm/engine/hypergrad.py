"""The exact γ-hypergradient of HDKD, without a Hessian and without a double
backward.

Eq. 8 looks one θ step ahead: θ' = θ − ξ g, g = Σ_m γ_m g_m, g_m = ∇_θ ℓ_m(θ)
on the train batch. Because the training loss is linear in γ,

    ∂L_val(θ')/∂γ_m = −ξ ⟨v, g_m⟩ = −ξ (J v)_m,    v = ∇_θ' L_val(θ'),

with J the Jacobian of the per-objective loss vector [ℓ_1(θ) … ℓ_M(θ)] on the
train batch. One iteration (:func:`gamma_hypergradient`):

1. g is the gradient of the real θ step (already in ``.grad``);
2. θ' from g (:func:`virtual_step`; per parameter group ξ, so the tangent is
   u = ξ ⊙ v and ∇γ = −J u);
3. v on the held-out batch at θ' (:func:`heldout_gradient`, Eq. 10);
4. J u by ONE forward-mode Jacobian-vector product of the loss vector on the
   train batch at θ (:func:`objective_jvp`), or by a central difference of
   the exit logits along u (:func:`objective_finite_diff`, approximate).

The JVP pass is where the cost is (a forward-mode pass costs about a
forward and a backward): it runs with dual tensors under ``no_grad`` (no
graph), takes the conv primals from the train forward instead of recomputing
them and uses BatchNorm's fused backward kernel for BatchNorm's tangent (its
input Jacobian is symmetric): :mod:`hdkd_mm.engine.fast_jvp`.

Every virtual pass (3 and 4) runs the layers in training mode on batch
statistics but leaves BatchNorm's running statistics alone
(:func:`batch_statistics`); the held-out pass differentiates fresh tensors θ',
so θ's ``.grad`` (g) is never touched by the held-out batch. The teacher's
``detach()`` inside :class:`DenseKDLoss` is honoured by forward-mode AD, so
J u sees the same stop-gradient as the backward of g.

Accuracy (``tests/test_hypergrad.py``; ``bench/bilevel_step.py --accuracy``):

* float64: the JVP hypergradient equals the double-backward reference
  (``create_graph=True``, used in the tests only) to ~1e-15 relative.
* ``'finite_diff'`` is a truncated central difference: on the tiny test net
  (float64) 0.7 % off with the default step 0.01/‖u‖; on the 8-exit CIFAR
  MSDNet at initialisation (float64) 26 % off at 0.01/‖u‖ and still 0.8 % at
  1e-5/‖u‖ (ReLU kinks); in float32 15-50 % depending on the step. Use it
  only where the JVP is unavailable.
* float32 against float64, 8-exit MSDNet at initialisation, ξ = 0.1: the
  float32 JVP pass itself is 0.35 % off (given the same v) and the held-out
  pass 0.12 % (given the same θ'), but θ' = θ − ξ g inherits g's float32
  error (0.26 %), which the held-out gradient amplifies to 15 % there, and
  with cos(v, g_m) ≈ 4e-3 the hypergradient ends up ~30 % off. That is the
  conditioning of the one-step look-ahead, shared by every float32
  implementation (the double-backward one included), not rounding in the
  JVP; it is why the tests check exactness in float64.
"""
import contextlib
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.autograd.forward_ad as fwAD
import torch.distributed as torch_dist
import torch.nn as nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.modules.batchnorm import _BatchNorm

from .fast_jvp import ConvOutputCache, FastJvpMode


# ---------------------------------------------------------------- helpers
@contextlib.contextmanager
def batch_statistics(module: nn.Module):
    """Virtual passes: BatchNorm layers in training mode normalise with the
    batch statistics and do not update ``running_mean``/``running_var``/
    ``num_batches_tracked``.

    Implemented by switching ``track_running_stats`` off for the duration (the
    way that works with ``torch.func.jvp`` and forward-mode AD, which reject
    in-place updates of captured buffers), restored on exit.
    """
    changed = []
    for m in module.modules():
        if isinstance(m, _BatchNorm) and m.training and m.track_running_stats:
            m.track_running_stats = False
            changed.append(m)
    try:
        yield
    finally:
        for m in changed:
            m.track_running_stats = True


def capture_rng(device: torch.device) -> Tuple:
    """The RNG state before the train forward, so that the JVP pass sees the
    same dropout masks (or other randomness) as the train forward."""
    cuda = (torch.cuda.get_rng_state(device)
            if device.type == 'cuda' else None)
    return torch.get_rng_state(), cuda, device


@contextlib.contextmanager
def replay_rng(state: Optional[Tuple]):
    """Run the body with the RNG state ``state`` (from :func:`capture_rng`)
    without disturbing the global RNG stream."""
    if state is None:
        yield
        return
    cpu, cuda, device = state
    devices = [device] if cuda is not None else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, device)
        yield


def all_reduce_mean(tensors: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """Average tensors over the default process group in one flat
    all-reduce (no-op without an initialised group of size > 1)."""
    tensors = list(tensors)
    if not (torch_dist.is_available() and torch_dist.is_initialized()
            and torch_dist.get_world_size() > 1):
        return tensors
    flat = torch.cat([t.reshape(-1) for t in tensors])
    torch_dist.all_reduce(flat)
    flat.div_(torch_dist.get_world_size())
    out, offset = [], 0
    for t in tensors:
        out.append(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    return out


# ------------------------------------------------------------ θ and θ'
@dataclass
class ThetaParams:
    """θ as the θ optimizer sees it: names, parameters and, per parameter,
    its optimizer group (for ξ, momentum, weight decay)."""

    names: List[str]
    params: List[torch.Tensor]
    groups: List[dict]

    @classmethod
    def from_optimizer(cls, module: nn.Module,
                       optimizer: torch.optim.Optimizer) -> 'ThetaParams':
        name_of = {id(p): n for n, p in module.named_parameters()}
        names, params, groups = [], [], []
        for group in optimizer.param_groups:
            for p in group['params']:
                if not p.requires_grad:
                    continue
                if id(p) not in name_of:
                    raise ValueError(
                        'The θ optimizer holds a parameter that is not in the '
                        'model: build the optimizers with '
                        'BilevelOptimWrapperConstructor.')
                names.append(name_of[id(p)])
                params.append(p)
                groups.append(group)
        return cls(names, params, groups)


def virtual_step(theta: ThetaParams,
                 optimizer: torch.optim.Optimizer,
                 mode: str = 'sgd',
                 grad_scale: float = 1.0
                 ) -> Tuple[List[torch.Tensor], List[float]]:
    """The look-ahead θ' and, per parameter, c = −∂θ'/∂g (a scalar).

    ``mode='sgd'``: θ' = θ − ξ g with ξ the group's current ``lr`` (c = ξ).
    ``mode='optimizer'``: θ' is the next iterate of ``torch.optim.SGD``
    itself (weight decay, momentum buffer, dampening, Nesterov), which is
    affine in g with c = ξ·(1 − dampening [1 on the first step]) ·
    (1 + momentum if Nesterov). The optimizer state is not modified.

    ``grad_scale``: the loss scale of mixed precision (``.grad`` holds
    scale·g). Parameters without a gradient keep θ' = θ (they do not depend
    on the training loss, so their c never matters).
    """
    if mode == 'optimizer' and not isinstance(optimizer, torch.optim.SGD):
        raise ValueError(
            "virtual_step='optimizer' reproduces torch.optim.SGD only (its "
            'step is affine in the gradient); got '
            f"{type(optimizer).__name__}: use virtual_step='sgd'.")
    primes, coefs = [], []
    with torch.no_grad():
        for p, group in zip(theta.params, theta.groups):
            lr = float(group['lr'])
            g = p.grad
            if g is not None and grad_scale != 1.0:
                g = g / grad_scale
            if mode == 'sgd':
                primes.append(p.detach().clone() if g is None else
                              torch.add(p.detach(), g, alpha=-lr))
                coefs.append(lr)
                continue
            if group.get('maximize', False):
                raise ValueError("virtual_step='optimizer' does not support "
                                 'SGD(maximize=True).')
            wd = float(group.get('weight_decay', 0.0))
            mu = float(group.get('momentum', 0.0))
            damp = float(group.get('dampening', 0.0))
            nesterov = bool(group.get('nesterov', False))
            buf = optimizer.state.get(p, {}).get('momentum_buffer')
            if mu == 0:
                c = lr
            else:
                c = lr * (1.0 if buf is None else 1.0 - damp)
                if nesterov:
                    c = lr * (1.0 + mu * (1.0 if buf is None else 1.0 - damp))
            coefs.append(c)
            if g is None:  # SGD skips parameters without a gradient
                primes.append(p.detach().clone())
                continue
            d = g if wd == 0 else g.add(p.detach(), alpha=wd)
            if mu != 0:
                new_buf = (d.clone() if buf is None else
                           buf.mul(mu).add_(d, alpha=1 - damp))
                d = d.add(new_buf, alpha=mu) if nesterov else new_buf
            primes.append(torch.add(p.detach(), d, alpha=-lr))
    return primes, coefs


# ------------------------------------------------------- the three passes
def exit_logits_at(module: nn.Module, names: Sequence[str],
                   tensors: Sequence[torch.Tensor],
                   inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """Exit logits of ``module`` (a MultiExitClassifier) with the parameters
    ``names`` replaced by ``tensors``, in training mode on batch statistics
    (running statistics untouched)."""
    with batch_statistics(module):
        return tuple(functional_call(module, dict(zip(names, tensors)),
                                     (inputs, ), {'mode': 'tensor'}))


def heldout_gradient(module: nn.Module, names: Sequence[str],
                     theta_prime: Sequence[torch.Tensor],
                     inputs: torch.Tensor, target: torch.Tensor,
                     loss_weights: nn.Module,
                     distributed: bool = False
                     ) -> Tuple[List[torch.Tensor], torch.Tensor, torch.Tensor]:
    """v = ∇_θ' L_val(θ') on the held-out batch (Eq. 10).

    Returns ``(v, ce, val_loss)``: the gradient (one tensor per θ tensor,
    zeros where unused), the per-exit held-out cross-entropies and Eq. 10's
    value (both averaged over ranks when ``distributed``). v is computed as
    ∇ Σ_k c_k ce_k with c_k = ∂L_val/∂ce_k at the global ce
    (:meth:`LearnedLossWeights.val_loss_coefficients`), then averaged over
    ranks: the exact gradient of the global batch's L_val.
    """
    leaves = [t.detach().requires_grad_() for t in theta_prime]
    logits = exit_logits_at(module, names, leaves, inputs)
    ce = module.head.loss_module.ce_losses(logits, target)
    ce_mean = (all_reduce_mean([ce.detach()])[0] if distributed
               else ce.detach())
    coef = loss_weights.val_loss_coefficients(ce_mean).to(ce)
    val_loss = loss_weights.val_loss(ce_mean).detach()
    grads = torch.autograd.grad((coef * ce).sum(), leaves, allow_unused=True)
    v = [torch.zeros_like(t) if g is None else g
         for t, g in zip(leaves, grads)]
    if distributed:
        v = all_reduce_mean(v)
    return v, ce_mean, val_loss


def objective_jvp(module: nn.Module, names: Sequence[str],
                  params: Sequence[torch.Tensor],
                  tangents: Sequence[torch.Tensor], inputs: torch.Tensor,
                  target: torch.Tensor, backend: str = 'forward_ad',
                  rng_state: Optional[Tuple] = None,
                  conv_cache: Optional[ConvOutputCache] = None
                  ) -> torch.Tensor:
    """J u: the directional derivative of the per-objective loss vector on
    (inputs, target) at ``params`` along ``tangents``; one forward-mode pass.

    ``backend='forward_ad'``: dual tensors (``torch.autograd.forward_ad``)
    under ``no_grad`` (no autograd graph is recorded), with the cheaper exact
    conv/BatchNorm rules of :class:`~hdkd_mm.engine.fast_jvp.FastJvpMode`
    and the train forward's conv outputs as primals when ``conv_cache``
    holds them;
    ``'functorch'``: ``torch.func.jvp`` over ``functional_call``. Same values.
    """
    loss_fn = module.head.objective_losses
    params = [p.detach() for p in params]
    # Fused attention kernels (the flash/efficient kernels that
    # F.scaled_dot_product_attention picks) have no forward-mode rule; the
    # math backend computes the same attention from matmul/softmax, which
    # have. Only this pass changes backend: the train forward/backward and
    # the held-out pass keep the fused kernel.
    with replay_rng(rng_state), batch_statistics(module), \
            sdpa_kernel(SDPBackend.MATH):
        if backend == 'functorch':
            def f(*ps):
                logits = functional_call(module, dict(zip(names, ps)),
                                         (inputs, ), {'mode': 'tensor'})
                return loss_fn(logits, target)

            with torch.no_grad():
                _, jv = torch.func.jvp(f, tuple(params), tuple(tangents))
            return jv
        if backend != 'forward_ad':
            raise ValueError(f'Unknown jvp backend {backend!r}.')
        with torch.no_grad(), fwAD.dual_level():
            duals = {n: fwAD.make_dual(p, t)
                     for n, p, t in zip(names, params, tangents)}
            with FastJvpMode(conv_cache):
                logits = functional_call(module, duals, (inputs, ),
                                         {'mode': 'tensor'})
            jv = fwAD.unpack_dual(loss_fn(logits, target)).tangent
    if jv is None:  # no objective depends on the tangent directions
        jv = torch.zeros(module.head.loss_module.num_objectives,
                         device=inputs.device, dtype=params[0].dtype)
    return jv


def objective_finite_diff(module: nn.Module, names: Sequence[str],
                          params: Sequence[torch.Tensor],
                          tangents: Sequence[torch.Tensor],
                          inputs: torch.Tensor, target: torch.Tensor,
                          eps: float = 0.01,
                          logits0: Optional[Sequence[torch.Tensor]] = None,
                          rng_state: Optional[Tuple] = None) -> torch.Tensor:
    """J u approximately: the exit logits' directional derivative by a
    central difference, ż ≈ (z(θ + εu) − z(θ − εu)) / 2ε with ε = eps/‖u‖,
    chained exactly through the losses at the θ logits ``logits0`` (the
    train forward's; the teacher probabilities are those of θ, so the
    teacher's stop-gradient holds as in the backward).
    """
    params = [p.detach() for p in params]
    norm = torch.sqrt(sum((t.double() ** 2).sum() for t in tangents))
    if not bool(torch.isfinite(norm)) or float(norm) == 0.0:
        return torch.full((module.head.loss_module.num_objectives, ),
                          float('nan') if not bool(torch.isfinite(norm))
                          else 0.0, device=inputs.device)
    step = eps / float(norm)
    with torch.no_grad():
        zs = []
        for sign in (1.0, -1.0):
            shifted = [torch.add(p, t, alpha=sign * step)
                       for p, t in zip(params, tangents)]
            with replay_rng(rng_state):
                zs.append(exit_logits_at(module, names, shifted, inputs))
            del shifted
        if logits0 is None:
            with replay_rng(rng_state):
                logits0 = exit_logits_at(module, names, params, inputs)
        zdot = [(a - b) / (2 * step) for a, b in zip(*zs)]
        with fwAD.dual_level():
            duals = [fwAD.make_dual(z.detach(), d)
                     for z, d in zip(logits0, zdot)]
            jv = fwAD.unpack_dual(
                module.head.objective_losses(duals, target)).tangent
    return jv


# -------------------------------------------------------------- together
@dataclass
class HypergradResult:
    grad: torch.Tensor      # ∂L_val/∂γ, shape (M,)
    heldout_ce: torch.Tensor  # per-exit held-out CE at θ' (K,)
    val_loss: torch.Tensor    # Eq. 10 at θ'

    @property
    def finite(self) -> bool:
        return bool(torch.isfinite(self.grad).all())


def gamma_hypergradient(module: nn.Module,
                        optimizer: torch.optim.Optimizer,
                        train_inputs: torch.Tensor,
                        train_target: torch.Tensor,
                        heldout_inputs: torch.Tensor,
                        heldout_target: torch.Tensor,
                        loss_weights: nn.Module,
                        method: str = 'jvp',
                        virtual: str = 'sgd',
                        jvp_backend: str = 'forward_ad',
                        fd_eps: float = 0.01,
                        train_logits: Optional[Sequence[torch.Tensor]] = None,
                        rng_state: Optional[Tuple] = None,
                        grad_scale: float = 1.0,
                        distributed: bool = False,
                        conv_cache: Optional[ConvOutputCache] = None
                        ) -> HypergradResult:
    """∂L_val(θ')/∂γ for the gradient g already in θ's ``.grad``.

    ``module`` is the (unwrapped) MultiExitClassifier, ``optimizer`` the θ
    optimizer (its parameter groups define θ and ξ). Nothing here changes θ,
    its ``.grad``, the optimizer state or BatchNorm's running statistics.
    With ``distributed``, v is averaged over ranks before the local J u and
    J u after (the ranks hold equal batch sizes). ``conv_cache``: the train
    forward's conv outputs
    (:class:`~hdkd_mm.engine.fast_jvp.ConvOutputCache`), reused as primals
    by the forward-AD JVP; released here once used.
    """
    theta = ThetaParams.from_optimizer(module, optimizer)
    primes, coefs = virtual_step(theta, optimizer, virtual, grad_scale)
    v, ce, val_loss = heldout_gradient(module, theta.names, primes,
                                       heldout_inputs, heldout_target,
                                       loss_weights, distributed)
    del primes
    # u = c ⊙ v (in place: v is not needed afterwards).
    u = [t.mul_(c) for t, c in zip(v, coefs)]
    if method == 'jvp':
        jv = objective_jvp(module, theta.names, theta.params, u, train_inputs,
                           train_target, jvp_backend, rng_state,
                           conv_cache if jvp_backend == 'forward_ad' else None)
    elif method == 'finite_diff':
        jv = objective_finite_diff(module, theta.names, theta.params, u,
                                   train_inputs, train_target, fd_eps,
                                   train_logits, rng_state)
    else:
        raise ValueError(f"Unknown hypergrad {method!r}: 'jvp' or "
                         "'finite_diff'.")
    if conv_cache is not None:
        conv_cache.entries.clear()
    if distributed:
        jv = all_reduce_mean([jv])[0]
    return HypergradResult(grad=-jv, heldout_ce=ce, val_loss=val_loss)
