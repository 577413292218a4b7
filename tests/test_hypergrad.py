"""The exact γ-hypergradient (hdkd_mm.engine.hypergrad) in float64 on a tiny
multi-exit network WITH BatchNorm, against the double-backward reference of
Eq. 8 (create_graph=True — here only, never in the training path)."""
import contextlib
import copy
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.func import functional_call

import hdkd_mm  # noqa: F401
from hdkd_mm.engine.hypergrad import (ThetaParams, batch_statistics,
                                      gamma_hypergradient, virtual_step)
from hdkd_mm.engine.optim import BilevelOptimWrapperConstructor
from hdkd_mm.models.exits import (ExitMarker, SequentialExitProtocol,
                                  register_exit_protocol)
from hdkd_mm.models.losses import DenseKDLoss

NUM_CLASSES = 5


@MODELS.register_module(force=True)
class TinyExitNet(nn.Module):
    """3 stages of conv-BN-ReLU (the second with in-place ReLU, one stride-2
    stage), one feature per exit; ``norm=False`` drops BatchNorm."""

    def __init__(self, width: int = 4, num_stages: int = 3,
                 norm: bool = True, in_channels: int = 3):
        super().__init__()
        stages, c = [], in_channels
        for i in range(num_stages):
            layers = [nn.Conv2d(c, width * (i + 1), 3, 2 if i == 1 else 1, 1,
                                bias=not norm)]
            if norm:
                layers.append(nn.BatchNorm2d(width * (i + 1)))
            layers.append(nn.ReLU(inplace=i == 1))
            stages.append(nn.Sequential(*layers))
            c = width * (i + 1)
        self.stages = nn.ModuleList(stages)
        self.exit_channels = [width * (i + 1) for i in range(num_stages)]

    def forward(self, x):
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return tuple(outs)


@register_exit_protocol(TinyExitNet)
class TinyExitNetProtocol(SequentialExitProtocol):
    """TinyExitNet's exits: one per stage (what one file under
    hdkd_mm/models/exits/ would hold for a real backbone)."""

    def __init__(self, backbone):
        super().__init__(backbone)
        self.steps = list(backbone.stages)
        self.exit_steps = list(range(len(self.steps)))

    def exit_channels(self):
        return list(self.backbone.exit_channels)

    def cost_markers(self):
        return [ExitMarker(stage) for stage in self.backbone.stages]


def tiny_model(scheme='hdkd', norm=True, dtype=torch.float64, seed=0,
               loss_weights=None, num_stages=3, dropout=0.0):
    torch.manual_seed(seed)
    cfg = dict(
        type='MultiExitClassifier',
        backbone=dict(type='TinyExitNet', norm=norm, num_stages=num_stages),
        head=dict(type='GenericExitHead', num_classes=NUM_CLASSES,
                  dropout=dropout,
                  loss=dict(type='DenseKDLoss', scheme=scheme,
                            temperature=2.0)),
        # pass-through (keeps float64 inputs; ClsDataPreprocessor casts)
        data_preprocessor=BaseDataPreprocessor())
    if loss_weights is not None:
        cfg['loss_weights'] = loss_weights
    model = MODELS.build(cfg).to(dtype)
    model.train()
    return model


def batch(n, seed, dtype=torch.float64, hw=8):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, hw, hw, generator=gen, dtype=dtype)
    y = torch.randint(0, NUM_CLASSES, (n, ), generator=gen)
    return x, y


def as_data(x, y):
    return dict(inputs=x,
                data_samples=[DataSample().set_gt_label(int(t)) for t in y])


def sgd(model, lr=0.1, momentum=0.0, weight_decay=0.0, nesterov=False,
        dampening=0.0):
    params = [p for n, p in model.named_parameters()
              if not n.startswith('loss_weights')]
    return torch.optim.SGD(params, lr=lr, momentum=momentum,
                           weight_decay=weight_decay, nesterov=nesterov,
                           dampening=dampening)


def set_train_grad(model, x, y):
    """θ.grad = ∇ Σ γ ℓ (the training path's g)."""
    for p in model.parameters():
        p.grad = None
    losses = model.head.objective_losses(model.exit_logits(x), y)
    (model.objective_weights() * losses).sum().backward()


def reference_hypergrad(model, opt, x, y, hx, hy, virtual='sgd',
                        loss_fn=None):
    """Double-backward reference of ∂L_val(θ'(γ))/∂γ (Eq. 8), in float64.

    θ'(γ) is built with create_graph=True from the same optimizer
    state/param groups as the implementation ('sgd' or the SGD step with
    weight decay, momentum buffer, dampening and Nesterov)."""
    theta = ThetaParams.from_optimizer(model, opt)
    params = [p.detach().clone().requires_grad_() for p in theta.params]
    gamma = model.loss_weights.gamma.detach().clone().requires_grad_()
    loss_fn = loss_fn or model.head.objective_losses
    with batch_statistics(model):
        logits = functional_call(model, dict(zip(theta.names, params)),
                                 (x, ), {'mode': 'tensor'})
    train = (gamma * loss_fn(logits, y)).sum()
    grads = torch.autograd.grad(train, params, create_graph=True,
                                allow_unused=True)
    primes = []
    for p, g, q, group in zip(params, grads, theta.params, theta.groups):
        g = torch.zeros_like(p) if g is None else g
        lr = group['lr']
        if virtual == 'sgd':
            primes.append(p - lr * g)
            continue
        d = g + group['weight_decay'] * p
        mu = group['momentum']
        if mu:
            buf = opt.state.get(q, {}).get('momentum_buffer')
            buf = d if buf is None else mu * buf + (1 - group['dampening']) * d
            d = d + mu * buf if group['nesterov'] else buf
        primes.append(p - lr * d)
    with batch_statistics(model):
        hlogits = functional_call(model, dict(zip(theta.names, primes)),
                                  (hx, ), {'mode': 'tensor'})
    ce = model.head.loss_module.ce_losses(hlogits, hy)
    val = model.loss_weights.val_loss(ce)
    return torch.autograd.grad(val, gamma)[0]


def rel_err(a, b):
    return float((a - b).norm() / b.norm())


def _setup(scheme='hdkd', seed=0, ema=True, **kw):
    model = tiny_model(scheme, seed=seed, **kw)
    x, y = batch(8, 1)
    hx, hy = batch(6, 2)
    if ema:  # a non-trivial E_k (≠ the current CE) for Eq. 10's ratio term
        model.loss_weights.update_ema(torch.tensor([1.3, 1.1, 0.9],
                                                   dtype=torch.float64))
    with torch.no_grad():  # spread γ away from the initial values
        model.loss_weights.gamma.mul_(
            torch.linspace(0.5, 1.5, model.loss_weights.num_objectives,
                           dtype=torch.float64))
    return model, x, y, hx, hy


@pytest.mark.parametrize('backend', ['forward_ad', 'functorch'])
@pytest.mark.parametrize('scheme', ['hdkd', 'hdbt', 'hmsdnet'])
def test_jvp_equals_double_backward_float64(backend, scheme):
    model, x, y, hx, hy = _setup(scheme)
    opt = sgd(model, lr=0.3)
    set_train_grad(model, x, y)
    ref = reference_hypergrad(model, opt, x, y, hx, hy)
    out = gamma_hypergradient(model, opt, x, y, hx, hy, model.loss_weights,
                              jvp_backend=backend)
    assert out.grad.shape == (model.loss_weights.num_objectives, )
    assert rel_err(out.grad, ref) <= 1e-9, (out.grad, ref)
    assert float(ref.norm()) > 0


@pytest.mark.parametrize('momentum,nesterov,dampening,wd', [
    (0.9, False, 0.0, 1e-2), (0.9, True, 0.0, 1e-2), (0.5, False, 0.3, 0.0)])
def test_optimizer_form_virtual_step_float64(momentum, nesterov, dampening,
                                             wd):
    model, x, y, hx, hy = _setup()
    opt = sgd(model, lr=0.2, momentum=momentum, nesterov=nesterov,
              dampening=dampening, weight_decay=wd)
    # one real step first so that the momentum buffers exist
    set_train_grad(model, *batch(8, 7))
    opt.step()
    set_train_grad(model, x, y)
    ref = reference_hypergrad(model, opt, x, y, hx, hy, virtual='optimizer')
    out = gamma_hypergradient(model, opt, x, y, hx, hy, model.loss_weights,
                              virtual='optimizer')
    assert rel_err(out.grad, ref) <= 1e-9
    # θ' of the virtual step is exactly the optimizer's next iterate
    theta = ThetaParams.from_optimizer(model, opt)
    primes, _ = virtual_step(theta, opt, 'optimizer')
    opt.step()
    for p, q in zip(theta.params, primes):
        torch.testing.assert_close(p.detach(), q, rtol=0, atol=1e-15)


def test_per_group_learning_rates_float64():
    model, x, y, hx, hy = _setup()
    head = list(model.head.parameters())
    ids = {id(p) for p in head}
    rest = [p for n, p in model.named_parameters()
            if id(p) not in ids and not n.startswith('loss_weights')]
    opt = torch.optim.SGD([dict(params=rest, lr=0.1),
                           dict(params=head, lr=0.4)])
    set_train_grad(model, x, y)
    ref = reference_hypergrad(model, opt, x, y, hx, hy)
    out = gamma_hypergradient(model, opt, x, y, hx, hy, model.loss_weights)
    assert rel_err(out.grad, ref) <= 1e-9


def test_virtual_passes_leave_bn_stats_and_grads_alone():
    model, x, y, hx, hy = _setup()
    opt = sgd(model)
    set_train_grad(model, x, y)
    buffers = {n: b.clone() for n, b in model.named_buffers()
               if not n.startswith('loss_weights')}
    grads = {n: p.grad.clone() for n, p in model.named_parameters()
             if p.grad is not None}
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    for method in ('jvp', 'finite_diff'):
        gamma_hypergradient(model, opt, x, y, hx, hy, model.loss_weights,
                            method=method)
    for n, b in model.named_buffers():
        if n in buffers:
            assert torch.equal(b, buffers[n]), n
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), params[n]), n
        if n in grads:
            assert torch.equal(p.grad, grads[n]), n
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bn and all(m.track_running_stats for m in bn)


class UndetachedKD(DenseKDLoss):
    """The KD terms without the teacher's stop-gradient (to show the JVP
    honours it)."""

    def kd_losses(self, logits):
        T = self.temperature
        t, s = self._kd_index[:, 0], self._kd_index[:, 1]
        tp = F.softmax(logits[t] / T, dim=-1)
        slp = F.log_softmax(logits[s] / T, dim=-1)
        return -(tp * slp).sum(-1).mean(-1) * T * T


def test_jvp_respects_detached_teacher():
    model, x, y, hx, hy = _setup()
    opt = sgd(model, lr=0.3)
    set_train_grad(model, x, y)
    ref = reference_hypergrad(model, opt, x, y, hx, hy)
    out = gamma_hypergradient(model, opt, x, y, hx, hy, model.loss_weights)
    assert rel_err(out.grad, ref) <= 1e-9
    # The same model with undetached teachers: its exact hypergradient
    # (JVP == its own reference) differs from the detached one in the KD
    # entries.
    undetached = UndetachedKD(num_exits=3, scheme='hdkd', temperature=2.0)
    model.head.loss_module = undetached.to(torch.float64)
    set_train_grad(model, x, y)
    ref_u = reference_hypergrad(model, opt, x, y, hx, hy)
    out_u = gamma_hypergradient(model, opt, x, y, hx, hy, model.loss_weights)
    assert rel_err(out_u.grad, ref_u) <= 1e-9
    kd = slice(3, None)
    assert rel_err(out_u.grad[kd], out.grad[kd]) > 1e-3


def test_finite_diff_error_float64():
    """Documented accuracy of hypergrad='finite_diff' (a central difference
    of the exit logits along u, ε = fd_eps/‖u‖), float64, this model:
    fd_eps=1e-2 (the default, DARTS's step) is off by ~1e-4..1e-2 relative
    here (truncation, grows with the curvature along u; 5–14 % on MSDNet per
    the design notes); fd_eps=1e-5 is ~1e-9 in float64 only."""
    model, x, y, hx, hy = _setup()
    opt = sgd(model, lr=0.3)
    set_train_grad(model, x, y)
    exact = gamma_hypergradient(model, opt, x, y, hx, hy,
                                model.loss_weights).grad
    errs = {}
    for eps in (1e-1, 1e-2, 1e-5):
        fd = gamma_hypergradient(model, opt, x, y, hx, hy, model.loss_weights,
                                 method='finite_diff', fd_eps=eps).grad
        errs[eps] = rel_err(fd, exact)
    print('finite_diff relative error (float64):', errs)
    assert errs[1e-2] < 0.05
    assert errs[1e-5] < 1e-6
    assert errs[1e-1] > errs[1e-2] > errs[1e-5]


def test_float32_jvp_close_to_float64():
    model64, x, y, hx, hy = _setup()
    model32 = copy.deepcopy(model64).float()
    res = {}
    for m, dt in ((model64, torch.float64), (model32, torch.float32)):
        opt = sgd(m, lr=0.3)
        set_train_grad(m, x.to(dt), y)
        res[dt] = gamma_hypergradient(m, opt, x.to(dt), y, hx.to(dt), hy,
                                      m.loss_weights).grad
    err = rel_err(res[torch.float32].double(), res[torch.float64])
    print('float32 JVP vs float64:', err)
    assert err < 1e-3


def _train_step_model(**kw):
    model, x, y, hx, hy = _setup(**kw)
    ctor = BilevelOptimWrapperConstructor(
        dict(optimizer=dict(type='SGD', lr=0.3, momentum=0.9),
             gamma=dict(optimizer=dict(type='SGD', lr=0.5))))
    return model, ctor(model), x, y, hx, hy


def test_train_step_theta_grad_is_plain_gradient():
    """The held-out batch never reaches θ's gradient: the θ step uses
    exactly ∇ Σ γ^t ℓ on the train batch (γ^t before this γ step)."""
    model, ow, x, y, hx, hy = _train_step_model()
    twin = copy.deepcopy(model)
    set_train_grad(twin, x, y)
    expected = {n: p.grad.clone() for n, p in twin.named_parameters()
                if p.grad is not None}
    seen = {}
    opt = ow['model'].optimizer
    orig_step = opt.step

    def spy_step(*a, **k):
        for n, p in model.named_parameters():
            if p.grad is not None and not n.startswith('loss_weights'):
                seen[n] = p.grad.clone()
        return orig_step(*a, **k)

    opt.step = spy_step
    gamma0 = model.loss_weights.gamma.detach().clone()
    model.set_heldout_source(lambda: as_data(hx, hy))
    log = model.train_step(as_data(x, y), ow)
    assert set(seen) == set(expected)
    for n in expected:
        torch.testing.assert_close(seen[n], expected[n], rtol=0, atol=1e-14)
    # γ moved, stayed non-negative with its total
    lw = model.loss_weights
    assert not torch.equal(lw.gamma.detach(), gamma0)
    assert bool((lw.gamma >= 0).all())
    torch.testing.assert_close(lw.gamma.sum().detach(), lw.total.to(
        lw.gamma), rtol=1e-12, atol=1e-12)
    assert 'gamma/kd3-1' in log and 'ema/ce2' in log
    assert 'objective/ce1' in log and log['gamma_skipped'] == 0
    assert not any(p.grad is not None and n.startswith('loss_weights')
                   for n, p in model.named_parameters())


def test_train_step_gamma_update_is_hypergradient_step():
    """γ^{t+1} = proj(γ^t − ε ∇γ) with the exact hypergradient."""
    model, ow, x, y, hx, hy = _train_step_model()
    model.loss_weights.projection = 'none'
    twin = copy.deepcopy(model)
    opt = sgd(twin, lr=0.3, momentum=0.9)
    set_train_grad(twin, x, y)
    ref = reference_hypergrad(twin, opt, x, y, hx, hy)
    gamma0 = model.loss_weights.gamma.detach().clone()
    model.set_heldout_source(lambda: as_data(hx, hy))
    model.train_step(as_data(x, y), ow)
    torch.testing.assert_close(model.loss_weights.gamma.detach(),
                               gamma0 - 0.5 * ref, rtol=1e-10, atol=1e-12)


def test_nonfinite_hypergradient_skips_gamma_step():
    model, ow, x, y, hx, hy = _train_step_model()
    twin = copy.deepcopy(model)
    twin_ow = BilevelOptimWrapperConstructor(
        dict(optimizer=dict(type='SGD', lr=0.3, momentum=0.9)))(twin)
    hx = hx.clone()
    hx[0, 0, 0, 0] = float('nan')
    model.set_heldout_source(lambda: as_data(hx, hy))
    gamma0 = model.loss_weights.gamma.detach().clone()
    with pytest.warns(UserWarning, match='Non-finite'):
        log = model.train_step(as_data(x, y), ow)
    assert torch.equal(model.loss_weights.gamma.detach(), gamma0)
    assert int(model.loss_weights.num_skipped) == 1
    assert log['gamma_skipped'] == 1
    # θ update unaffected: same as a plain step with γ^t
    twin.loss_weights.gamma.requires_grad_(False)  # frozen → plain step
    twin.train_step(as_data(x, y), twin_ow)
    for (n, p), q in zip(model.named_parameters(), twin.parameters()):
        if not n.startswith('loss_weights'):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-14)
    # E_k were not poisoned
    assert bool(torch.isfinite(model.loss_weights.ema).all())


def test_gamma_interval_plain_steps_between():
    model, ow, x, y, hx, hy = _train_step_model()
    model.set_bilevel_step(dict(gamma_interval=2))
    calls = []

    def source():
        calls.append(1)
        return as_data(hx, hy)

    model.set_heldout_source(source)
    for _ in range(4):
        model.train_step(as_data(x, y), ow)
    assert len(calls) == 2 and int(model.loss_weights.num_steps) == 4


def test_missing_heldout_source_is_a_clear_error():
    model, ow, x, y, hx, hy = _train_step_model()
    with pytest.raises(RuntimeError, match='heldout_dataloader'):
        model.train_step(as_data(x, y), ow)


def test_bilevel_needs_two_optimizers():
    model, ow, x, y, hx, hy = _train_step_model()
    model.set_heldout_source(lambda: as_data(hx, hy))
    with pytest.raises(ValueError, match='BilevelOptimWrapperConstructor'):
        model.train_step(as_data(x, y), ow['model'])


def test_dropout_masks_replayed_in_the_jvp_pass():
    """With dropout, J v must differentiate the train forward's function:
    the JVP pass replays the train forward's RNG state (same masks)."""
    from hdkd_mm.engine.hypergrad import capture_rng, replay_rng
    model, x, y, hx, hy = _setup(dropout=0.5)
    opt = sgd(model, lr=0.3)
    torch.manual_seed(123)
    rng = capture_rng(x.device)
    set_train_grad(model, x, y)

    # reference: train forward under the same RNG state, held-out forward
    # right after seeding 7 (as in the implementation below)
    theta = ThetaParams.from_optimizer(model, opt)
    params = [p.detach().clone().requires_grad_() for p in theta.params]
    gamma = model.loss_weights.gamma.detach().clone().requires_grad_()
    with replay_rng(rng), batch_statistics(model):
        logits = functional_call(model, dict(zip(theta.names, params)),
                                 (x, ), {'mode': 'tensor'})
    train = (gamma * model.head.objective_losses(logits, y)).sum()
    grads = torch.autograd.grad(train, params, create_graph=True)
    primes = [p - g.new_tensor(0.3) * g for p, g in zip(params, grads)]
    torch.manual_seed(7)
    with batch_statistics(model):
        hl = functional_call(model, dict(zip(theta.names, primes)), (hx, ),
                             {'mode': 'tensor'})
    ref = torch.autograd.grad(model.loss_weights.val_loss(
        model.head.loss_module.ce_losses(hl, hy)), gamma)[0]
    torch.manual_seed(7)
    out = gamma_hypergradient(model, opt, x, y, hx, hy, model.loss_weights,
                              rng_state=rng)
    assert rel_err(out.grad, ref) <= 1e-9
    torch.manual_seed(7)
    unreplayed = gamma_hypergradient(model, opt, x, y, hx, hy,
                                     model.loss_weights)
    assert rel_err(unreplayed.grad, ref) > 1e-3


@pytest.mark.parametrize('norm', [True, False])
def test_jvp_reusing_train_forward_conv_outputs_is_bitwise(norm):
    """The JVP pass takes its conv primals from the train forward: the same
    J v bit for bit; a conv output modified in place later in the forward
    (conv → in-place ReLU, the norm=False net's stage 2) is recomputed."""
    from hdkd_mm.engine.fast_jvp import ConvOutputCache
    model, x, y, hx, hy = _setup(norm=norm)
    opt = sgd(model, lr=0.3)
    cache = ConvOutputCache(model)
    set_train_grad(model, x, y)
    cache.remove_hooks()
    plain = gamma_hypergradient(model, opt, x, y, hx, hy, model.loss_weights)
    reused = gamma_hypergradient(model, opt, x, y, hx, hy, model.loss_weights,
                                 conv_cache=cache)
    assert torch.equal(plain.grad, reused.grad)
    assert (cache.hits, cache.misses) == ((3, 0) if norm else (2, 1))
    assert not cache.entries  # released after use
    ref = reference_hypergrad(model, opt, x, y, hx, hy)
    assert rel_err(reused.grad, ref) <= 1e-9


def test_train_step_with_and_without_forward_reuse_agree():
    model, ow, x, y, hx, hy = _train_step_model()
    twin = copy.deepcopy(model)
    twin.set_bilevel_step(dict(jvp_reuse_forward=False))
    twin_ow = BilevelOptimWrapperConstructor(
        dict(optimizer=dict(type='SGD', lr=0.3, momentum=0.9),
             gamma=dict(optimizer=dict(type='SGD', lr=0.5))))(twin)
    for m, o in ((model, ow), (twin, twin_ow)):
        m.set_heldout_source(lambda: as_data(hx, hy))
        for _ in range(2):
            m.train_step(as_data(x, y), o)
    assert torch.equal(model.loss_weights.gamma, twin.loss_weights.gamma)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize('affine', [True, False])
def test_fast_batchnorm_jvp_rule_matches_forward_ad(affine):
    """The JVP pass's BatchNorm rule (backward kernel applied to ẋ, plus
    ẇ·x̂ + ḃ) equals torch's own forward-mode formula (float64)."""
    import torch.autograd.forward_ad as fwAD

    from hdkd_mm.engine.fast_jvp import FastJvpMode
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, 5, 5, generator=gen, dtype=torch.float64) * 3 + 1
    xt = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    w = torch.randn(4, generator=gen, dtype=torch.float64)
    b = torch.randn(4, generator=gen, dtype=torch.float64)
    wt, bt = torch.randn_like(w), torch.randn_like(b)
    outs = []
    for mode in (None, FastJvpMode()):
        with torch.no_grad(), fwAD.dual_level():
            args = dict(weight=fwAD.make_dual(w, wt),
                        bias=fwAD.make_dual(b, bt)) if affine else {}
            with mode or torch.no_grad():
                y = F.batch_norm(fwAD.make_dual(x, xt), None, None,
                                 training=True, eps=1e-5, **args)
            outs.append(fwAD.unpack_dual(y))
    (y0, t0), (y1, t1) = outs
    torch.testing.assert_close(y1, y0, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(t1, t0, rtol=1e-12, atol=1e-12)


def test_mixed_precision_train_pass_float32_hypergradient(monkeypatch):
    """AMP: the θ forward/backward may run under autocast (here CPU
    bfloat16, standing in for CUDA float16); the hypergradient is computed
    outside autocast in float32, and the train forward's low-precision conv
    outputs are not reused as float32 primals (recomputed instead: the same
    result as without the cache, bit for bit)."""
    import hdkd_mm.engine.hypergrad as hypergrad
    model, ow, x, y, hx, hy = _train_step_model(dtype=torch.float32)
    x, hx = x.float(), hx.float()
    model_ow = ow['model']
    plain_context = model_ow.optim_context

    @contextlib.contextmanager
    def autocast_context(module):
        with plain_context(module), torch.autocast('cpu',
                                                   dtype=torch.bfloat16):
            yield

    monkeypatch.setattr(model_ow, 'optim_context', autocast_context)
    conv_dtypes = []
    model.backbone.stages[0][0].register_forward_hook(
        lambda m, i, out: conv_dtypes.append(out.dtype))
    real = hypergrad.gamma_hypergradient
    seen = {}

    def spy(*args, **kwargs):
        seen['autocast'] = torch.is_autocast_enabled('cpu')
        result = real(*args, **kwargs)
        kwargs['conv_cache'] = None
        seen['result'], seen['uncached'] = result, real(*args, **kwargs)
        return result

    monkeypatch.setattr(hypergrad, 'gamma_hypergradient', spy)
    model.set_heldout_source(lambda: as_data(hx, hy))
    model.train_step(as_data(x, y), ow)
    assert conv_dtypes[0] == torch.bfloat16  # the train pass ran in bf16
    assert seen['autocast'] is False
    grad = seen['result'].grad
    assert grad.dtype == torch.float32 and bool(torch.isfinite(grad).all())
    assert torch.equal(grad, seen['uncached'].grad)


@pytest.mark.parametrize('inline_collaboration,channels_last',
                         [(False, False), (True, False), (False, True)])
def test_jvp_equals_double_backward_float64_msdnet(inline_collaboration,
                                                   channels_last):
    """The real MSDNet (multi-scale dense blocks, transition layers, concat,
    in-place ReLU, its exit classifiers; with IMTA's inline collaboration
    the BatchNorm1d of the collaboration modules too), float64, HDKD's dense
    objective set: JVP = the double-backward reference; also with the
    weights, images and hence every conv output in channels_last layout (the
    JVP's cached conv primals and BatchNorm tangents included)."""
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='MultiExitClassifier',
        backbone=dict(type='MSDNet', nBlocks=3, stepmode='even', step=1,
                      base=1, nChannels=4, growthRate=4, grFactor=(1, 2, 4),
                      bnFactor=(1, 2, 4), stem='cifar'),
        head=dict(type='MSDNetExitHead', num_classes=NUM_CLASSES,
                  in_channels=None, variant='cifar', inter_channels=8,
                  inline_collaboration=inline_collaboration,
                  loss=dict(type='DenseKDLoss', scheme='hdkd',
                            temperature=2.0)),
        channels_last=channels_last,
        data_preprocessor=BaseDataPreprocessor())).double().train()
    if channels_last:  # .double() kept the layout
        conv = next(m for m in model.modules()
                    if isinstance(m, nn.Conv2d) and m.in_channels > 1
                    and m.kernel_size != (1, 1))
        assert not conv.weight.is_contiguous()
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    model.loss_weights.update_ema(torch.tensor([1.4, 1.2, 1.0],
                                               dtype=torch.float64))
    with torch.no_grad():
        model.loss_weights.gamma.mul_(torch.linspace(
            0.5, 1.5, model.loss_weights.num_objectives, dtype=torch.float64))
    x, y = batch(6, 1, hw=32)
    hx, hy = batch(4, 2, hw=32)
    opt = sgd(model, lr=0.3)
    set_train_grad(model, x, y)
    ref = reference_hypergrad(model, opt, x, y, hx, hy)
    out = gamma_hypergradient(model, opt, x, y, hx, hy, model.loss_weights)
    assert float(ref.norm()) > 0
    # float64 round-off of two different computation orders: ≈ 1e-15
    assert rel_err(out.grad, ref) <= 1e-9, (out.grad, ref)
