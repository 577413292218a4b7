"""LearnedLossWeights: γ initialisations, fixed/frozen γ, projection, the
EMAs of Eq. 9, the balanced validation loss of Eq. 10, and the errors."""
import json

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

import hdkd_mm  # noqa: F401
from hdkd_mm.models.losses import build_objectives
from hdkd_mm.models.weighting import LearnedLossWeights, project_simplex


def weights(num_exits=4, kd='dense', **kw):
    return LearnedLossWeights(objectives=build_objectives(num_exits, kd), **kw)


def test_registered():
    assert MODELS.get('LearnedLossWeights') is LearnedLossWeights


def test_ds_like_init():
    lw = weights(4)
    g = dict(zip(lw.names, lw.gamma.tolist()))
    assert [g[f'ce{k}'] for k in range(1, 5)] == [1.0] * 4
    # student 1 has teachers 2, 3, 4; student 3 has teacher 4 only
    for t in (2, 3, 4):
        assert g[f'kd{t}-1'] == pytest.approx(1 / 3)
    assert g['kd3-2'] == g['kd4-2'] == pytest.approx(0.5)
    assert g['kd4-3'] == 1.0
    assert lw.gamma.requires_grad and lw.learnable
    assert float(lw.total) == pytest.approx(4 + 3)
    # 8 exits: 8 CE + 28 KD = 36 objectives
    assert weights(8).num_objectives == 36


def test_dbt_like_uniform_rand_init():
    g = dict(zip(*(lambda lw: (lw.names, lw.gamma.tolist()))(
        weights(4, init='dbt_like'))))
    assert g['kd4-1'] == g['kd4-2'] == g['kd4-3'] == 1.0
    assert g['kd2-1'] == g['kd3-1'] == g['kd3-2'] == 0.0
    assert torch.equal(weights(3, init='uniform').gamma.detach(),
                       torch.ones(6))
    r1 = weights(4, init='rand', seed=3).gamma.detach()
    r2 = weights(4, init='rand', seed=3).gamma.detach()
    r3 = weights(4, init='rand', seed=4).gamma.detach()
    assert torch.equal(r1, r2) and not torch.equal(r1, r3)
    assert bool(((r1 >= 0) & (r1 < 1)).all())
    # HMSDNet: CE only
    assert weights(3, kd='none').names == ['ce1', 'ce2', 'ce3']


def test_fixed_from_json_list_dict_and_checkpoint(tmp_path):
    lw = weights(3)
    values = [0.5, 1.0, 2.0, 0.1, 0.2, 0.3]
    p = tmp_path / 'g.json'
    p.write_text(json.dumps(values))
    fixed = weights(3, init='fixed', path=str(p))
    assert fixed.gamma.tolist() == pytest.approx(values)
    assert not fixed.gamma.requires_grad and not fixed.learnable
    assert not fixed.is_gamma_step()
    d = tmp_path / 'g_dict.json'
    d.write_text(json.dumps(dict(zip(lw.names, values))))
    assert weights(3, init='fixed', path=str(d)).gamma.tolist() == \
        pytest.approx(values)
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {'loss_weights.gamma': torch.tensor(values),
                               'backbone.w': torch.ones(1)}}, ckpt)
    assert weights(3, init='fixed', path=str(ckpt)).gamma.tolist() == \
        pytest.approx(values)


def test_wrong_length_gamma_is_a_clear_error(tmp_path):
    p = tmp_path / 'g.json'
    p.write_text(json.dumps([1.0] * 10))  # 4 exits (dense) → 10 objectives
    with pytest.raises(ValueError) as err:
        weights(3, init='fixed', path=str(p))
    msg = str(err.value)
    assert 'got 10 loss weights' in msg and 'has 6' in msg
    assert '3 exits' in msg and 'one weight per objective' in msg
    d = tmp_path / 'g_dict.json'
    d.write_text(json.dumps({'ce1': 1.0, 'ce9': 2.0}))
    with pytest.raises(ValueError, match='unknown.*ce9'):
        weights(3, init='fixed', path=str(d))
    # loading a checkpoint of another number of exits
    lw = weights(3)
    with pytest.raises(ValueError, match='holds 10 loss weights.*6 objectives'):
        lw.load_state_dict(weights(4).state_dict())


@pytest.mark.parametrize('alpha', [-0.1, 1.5, float('nan')])
def test_alpha_outside_unit_interval(alpha):
    with pytest.raises(ValueError, match=r'alpha.*\[0, 1\]'):
        weights(3, alpha=alpha)


@pytest.mark.parametrize('kw', [dict(init='xavier'), dict(projection='l2'),
                                dict(ema_momentum=1.0)])
def test_bad_options(kw):
    with pytest.raises(ValueError):
        weights(3, **kw)


@pytest.mark.parametrize('kw, message', [
    (dict(hypergrad='hessian'), r"train_cfg.bilevel.hypergrad 'hessian'"),
    (dict(virtual_step='adam'), r"train_cfg.bilevel.virtual_step 'adam'"),
    (dict(jvp_backend='jax'), r"train_cfg.bilevel.jvp_backend 'jax'"),
    (dict(gamma_interval=0), r'gamma_interval must be an integer >= 1, got 0'),
    (dict(gamma_interval=1.5), r'gamma_interval must be an integer'),
    (dict(fd_eps=0.0), r'fd_eps must be a finite number > 0, got 0.0'),
    (dict(fd_eps=float('inf')), r'fd_eps must be a finite number > 0, got '
     'inf'),
    (dict(hypergrads='jvp'), r"train_cfg.bilevel has no key 'hypergrads'"),
])
def test_bad_bilevel_step_options(kw, message):
    from hdkd_mm.engine import BilevelStepConfig
    with pytest.raises(ValueError, match=message):
        BilevelStepConfig.from_cfg(kw)


@pytest.mark.parametrize('key, value', [
    ('hypergrad', 'finite_diff'), ('virtual_step', 'sgd'),
    ('gamma_interval', 2), ('fd_eps', 0.01), ('jvp_backend', 'functorch'),
    ('jvp_reuse_forward', False)])
def test_step_knob_in_loss_weights_names_its_new_place(key, value):
    """A config written before the iteration knobs moved to the loop's
    config is refused with the new place named."""
    from test_hypergrad import tiny_model
    with pytest.raises(ValueError) as err:
        tiny_model('hdkd', loss_weights=dict(init='ds_like', **{key: value}))
    msg = str(err.value)
    assert f'model.loss_weights.{key}={value!r}' in msg
    assert f'bilevel=dict({key}={value!r})' in msg
    assert "train_cfg=dict(type='BilevelEpochBasedTrainLoop'" in msg


def test_needs_objectives():
    with pytest.raises(ValueError, match='MultiExitClassifier'):
        LearnedLossWeights()


def test_project_simplex_is_the_euclidean_projection():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        x = torch.randn(12, generator=gen, dtype=torch.float64) * 2
        total = float(torch.rand(1, generator=gen)) * 10 + 0.1
        y = project_simplex(x, total)
        assert bool((y >= 0).all())
        assert float(y.sum()) == pytest.approx(total, rel=1e-12)
        # KKT: y = max(x − τ, 0) with one τ for the positive entries
        pos = y > 0
        tau = (x[pos] - y[pos])
        assert float(tau.max() - tau.min()) < 1e-12
        assert bool((x[~pos] <= tau[0] + 1e-12).all())
        # no feasible point is closer (random feasible points)
        for _ in range(5):
            z = torch.rand(12, generator=gen, dtype=torch.float64)
            z = z / z.sum() * total
            assert float((x - y).norm()) <= float((x - z).norm()) + 1e-12


@pytest.mark.parametrize('projection', ['simplex', 'clamp_rescale'])
def test_projection_keeps_gamma_nonnegative_with_fixed_total(projection):
    lw = weights(4, projection=projection)
    total = float(lw.gamma.detach().sum())
    with torch.no_grad():
        lw.gamma.add_(torch.linspace(-2, 3, lw.num_objectives))
    lw.project_()
    assert bool((lw.gamma >= 0).all())
    assert float(lw.gamma.detach().sum()) == pytest.approx(total, rel=1e-6)
    assert (lw.gamma == 0).any()  # the most negative ones are cut at 0


def test_clamp_rescale_all_zero_resets_uniform():
    lw = weights(3, projection='clamp_rescale')
    with torch.no_grad():
        lw.gamma.fill_(-1)
    lw.project_()
    assert torch.allclose(lw.gamma.detach(),
                          torch.full((6, ), float(lw.total) / 6))


def test_clamp_and_none_projection():
    lw = weights(3, projection='clamp')
    with torch.no_grad():
        lw.gamma.copy_(torch.tensor([-1., 2., 3., -4., 5., 6.]))
    lw.project_()
    assert lw.gamma.tolist() == [0., 2., 3., 0., 5., 6.]
    lw = weights(3, projection='none')
    with torch.no_grad():
        lw.gamma.fill_(-1)
    lw.project_()
    assert lw.gamma.tolist() == [-1.] * 6


def test_ema_eq9_first_value_sets_it():
    lw = weights(3)
    assert not bool(lw.ema_initialised)
    # a first value with a non-finite entry sets nothing
    lw.update_ema(torch.tensor([float('nan'), 1.0, 1.0]))
    assert not bool(lw.ema_initialised) and lw.ema.tolist() == [0.0] * 3
    lw.update_ema(torch.tensor([2.0, 1.0, 0.5]))
    assert lw.ema.tolist() == [2.0, 1.0, 0.5]
    lw.update_ema(torch.tensor([1.0, 1.0, 1.5]))
    assert lw.ema.tolist() == pytest.approx([1.9, 1.0, 0.6])
    lw.update_ema(torch.tensor([float('inf'), 2.0, float('nan')]))
    assert lw.ema.tolist() == pytest.approx([1.9, 1.1, 0.6])


def test_val_loss_eq10_and_its_coefficients():
    lw = weights(3, alpha=0.3)
    ce = torch.tensor([2.0, 1.5, 0.7], dtype=torch.float64,
                      requires_grad=True)
    # before any EMA: E = ce, ratio term softplus(0)
    expected0 = 0.3 * ce.sum() + 0.7 * 3 * F.softplus(torch.tensor(0.))
    assert float(lw.val_loss(ce).detach()) == pytest.approx(
        float(expected0.detach()))
    lw.update_ema(torch.tensor([1.0, 2.0, 0.5]))
    ema = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    literal = 0.3 * ce.sum() + 0.7 * torch.log1p(torch.exp(ce / ema - 1)).sum()
    val = lw.val_loss(ce)
    assert float(val.detach()) == pytest.approx(float(literal.detach()),
                                                rel=1e-12)
    grad = torch.autograd.grad(val, ce)[0]
    coef = lw.val_loss_coefficients(ce)
    torch.testing.assert_close(coef, grad, rtol=1e-12, atol=0)
    for alpha in (0.0, 1.0):
        lw.alpha = alpha
        with torch.no_grad():
            assert float(lw.val_loss(ce)) == pytest.approx(
                float(alpha * ce.sum() + (1 - alpha) * torch.log1p(
                    torch.exp(ce / ema - 1)).sum()))


def test_state_dict_holds_gamma_ema_and_counters():
    lw = weights(3)
    lw.update_ema(torch.tensor([1.0, 2.0, 3.0]))
    lw.num_steps.add_(5)
    state = lw.state_dict()
    assert {'gamma', 'ema', 'ema_initialised', 'total', 'num_steps',
            'num_skipped'} <= set(state)
    other = weights(3, init='uniform')
    other.load_state_dict(state)
    assert torch.equal(other.gamma.detach(), lw.gamma.detach())
    assert other.ema.tolist() == [1.0, 2.0, 3.0] and int(other.num_steps) == 5
    assert bool(other.ema_initialised)


def test_gamma_interval_and_log_vars():
    lw = weights(3)
    steps = []
    for _ in range(6):
        steps.append(lw.is_gamma_step(3))
        lw.num_steps.add_(1)
    assert steps == [True, False, False, True, False, False]
    log = lw.log_vars()
    assert set(log) == {f'gamma/{n}' for n in lw.names} | {'gamma_skipped'}
    lw.update_ema(torch.tensor([1.0, 2.0, 3.0]))
    assert lw.log_vars()['ema/ce3'] == 3.0


def test_classifier_builds_weights_for_learned_schemes_only():
    from test_hypergrad import tiny_model
    assert tiny_model('hdkd').loss_weights.num_objectives == 6
    assert tiny_model('hdbt').loss_weights.names == [
        'ce1', 'ce2', 'ce3', 'kd3-1', 'kd3-2']
    assert tiny_model('msdnet').loss_weights is None
    assert tiny_model('naive_dkd').objective_weights() is None
    with pytest.raises(ValueError, match='fixed objective weights'):
        tiny_model('dbt', loss_weights=dict(init='ds_like'))
    m = tiny_model('hdkd', loss_weights=dict(init='dbt_like', alpha=0.2))
    assert m.loss_weights.alpha == 0.2 and m.learns_loss_weights
    assert 'loss_weights.gamma' in m._ddp_params_and_buffers_to_ignore
    assert 'loss_weights.gamma' in m.state_dict()
