"""Real early-exit inference (hdkd_mm.evaluation.early_exit) on a tiny MSDNet:
the routed exits and predictions equal the simulated evaluation
(``apply_thresholds`` on the full logits) for the same thresholds, later
blocks run only on the undecided samples, and the predict-mode config
option."""
import types

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope
from mmpretrain.registry import METRICS, MODELS
from mmpretrain.structures import DataSample

import hdkd_mm  # noqa: F401
from hdkd_mm.analysis.flops import exit_costs
from hdkd_mm.evaluation.budgeted import apply_thresholds, exit_confidences
from hdkd_mm.evaluation.early_exit import (EarlyExitPredictor,
                                           early_exit_forward)
from hdkd_mm.evaluation.thresholds import check_thresholds
from hdkd_mm.models.exits import UnsupportedBackboneError

INF = float('inf')
K = 4


def model_cfg(**kw):
    cfg = dict(
        type='MultiExitClassifier',
        backbone=dict(type='MSDNet', nBlocks=K, stepmode='even', step=1,
                      base=1, nChannels=8, growthRate=4, grFactor=(1, 2, 4),
                      bnFactor=(1, 2, 4), stem='cifar'),
        head=dict(type='MSDNetExitHead', num_classes=10, in_channels=None,
                  variant='cifar', inter_channels=16))
    cfg.update(kw)
    return cfg


def perturb_bn(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape,
                                                   generator=gen))
            m.running_var.copy_(torch.empty(m.running_var.shape).uniform_(
                0.5, 2.0, generator=gen))


@pytest.fixture(scope='module')
def model():
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    net = MODELS.build(model_cfg())
    perturb_bn(net)
    return net.eval()


@pytest.fixture(scope='module')
def batch():
    return torch.randn(24, 3, 32, 32, generator=torch.Generator()
                       .manual_seed(1))


@pytest.fixture(scope='module')
def costs(model):
    return np.array([r['mflops'] for r in exit_costs(model, (3, 32, 32))])


def simulate(model, x, thresholds):
    """The simulated evaluation: every exit's logits, then
    apply_thresholds on their max-softmax confidences."""
    with torch.no_grad():
        logits = torch.stack(model(x, mode='tensor'), 1)
    conf, pred = exit_confidences(logits.numpy())
    exits = apply_thresholds(conf, thresholds)
    return exits, pred[np.arange(len(exits)), exits], conf, logits


def assert_same(model, x, thresholds, costs, exact=True, **kw):
    """The routed forward takes the simulation's decisions (exit, class,
    cost) exactly. Its confidences and logits are bit for bit the
    simulation's when ``exact``; otherwise equal to float32 rounding (see
    the caller for why)."""
    res = early_exit_forward(model, x, thresholds, costs, **kw)
    exits, pred, conf, logits = simulate(model, x, thresholds)
    np.testing.assert_array_equal(res.exit0, exits)
    np.testing.assert_array_equal(res.pred.numpy(), pred)
    np.testing.assert_array_equal(res.mflops.numpy(), costs[exits])
    rows = np.arange(len(exits))
    if exact:
        np.testing.assert_array_equal(res.confidence.numpy(),
                                      conf[rows, exits])
        # bit for bit the logits of the taken exit
        assert torch.equal(res.logits, logits[rows, exits])
    else:
        np.testing.assert_allclose(res.confidence.numpy(), conf[rows, exits],
                                   rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(res.logits, logits[rows, exits],
                                   rtol=1e-5, atol=1e-6)
    return res, exits, conf


def quantile_thresholds(conf, q):
    thr = np.quantile(conf, q, axis=0)
    thr[-1] = -INF
    return thr


@pytest.mark.parametrize('q', [0.3, 0.6, 0.9])
def test_equals_simulation(model, batch, costs, q):
    thr = quantile_thresholds(simulate(model, batch, [-INF] * K)[2], q)
    res, exits, _ = assert_same(model, batch, thr, costs)
    assert len(set(exits.tolist())) > 1  # the case actually routes


def test_ties_at_the_threshold_exit(model, batch, costs):
    """A threshold equal to a sample's confidence sends it out (``>=``), at
    every exit; the samples routed to later exits were computed on
    sub-batches and still tie exactly."""
    _, _, conf, _ = simulate(model, batch, [-INF] * K)
    thr = np.full(K, INF)
    thr[-1] = -INF
    remaining = np.arange(len(batch))
    for k in range(K - 1):
        # the median confidence among the samples still there
        c = np.sort(conf[remaining, k])[len(remaining) // 2]
        thr[k] = c
        tied = remaining[conf[remaining, k] == c]
        assert tied.size >= 1
        remaining = remaining[conf[remaining, k] < c]
    res, exits, _ = assert_same(model, batch, thr, costs)
    for k in range(K - 1):
        assert np.any((conf[:, k] == thr[k]) & (exits == k))


def test_all_exit_early_and_none_exit_early(model, batch, costs):
    n = len(batch)
    res, exits, _ = assert_same(model, batch, [-INF] * K, costs)
    assert np.all(exits == 0) and res.rows == [n]
    res, exits, _ = assert_same(model, batch, [INF] * (K - 1) + [-INF],
                                costs)
    assert np.all(exits == K - 1) and res.rows == [n] * K
    # thresholds of exactly 0 and 1: conf is in (0, 1]
    res, exits, _ = assert_same(model, batch, [0.0] * K, costs)
    assert np.all(exits == 0)


def test_batch_size_one(model, batch, costs):
    _, _, conf, _ = simulate(model, batch, [-INF] * K)
    thr = quantile_thresholds(conf, 0.6)
    predictor = EarlyExitPredictor(model, thr, costs)
    seen = set()
    for i in range(len(batch)):
        x = batch[i:i + 1]
        res = predictor(x)
        exits, pred, conf1, logits = simulate(model, x, thr)
        assert res.exit0.tolist() == exits.tolist()
        assert res.pred.tolist() == pred.tolist()
        assert res.rows == [1] * (exits[0] + 1)
        assert res.confidence.item() == conf1[0, exits[0]]
        assert torch.equal(res.logits, logits[:, exits[0]])
        assert res.mflops.item() == costs[exits[0]]
        seen.add(int(exits[0]))
    assert len(seen) > 1


def count_block_rows(model):
    """Forward hooks recording the rows each backbone block runs on."""
    rows = [[] for _ in model.backbone.blocks]
    handles = []
    for k, block in enumerate(model.backbone.blocks):
        def hook(mod, inputs, k=k):
            x = inputs[0]
            rows[k].append(int((x if torch.is_tensor(x) else x[0]).shape[0]))
        handles.append(block.register_forward_pre_hook(hook))
    return rows, handles


def test_later_blocks_run_only_for_undecided_samples(model, batch, costs):
    _, _, conf, _ = simulate(model, batch, [-INF] * K)
    thr = quantile_thresholds(conf, 0.5)
    rows, handles = count_block_rows(model)
    try:
        res = early_exit_forward(model, batch, thr, costs)
    finally:
        for h in handles:
            h.remove()
    exits = res.exit0
    expected = [int((exits >= k).sum()) for k in range(K)]
    expected = [max(e, 3) for e in expected if e > 0]  # min_rows padding
    assert [r[0] for r in rows if r] == expected == res.rows
    assert all(len(r) <= 1 for r in rows)
    assert sum(res.rows) < len(batch) * K


def test_padding_guard_for_a_single_remaining_sample(model, batch, costs):
    """One sample left after exit 1: the later blocks run on 3 copies (the
    guard against batch-size-dependent CPU kernels) and the results still
    equal the simulation; without the guard they run on 1 row."""
    _, _, conf, _ = simulate(model, batch, [-INF] * K)
    order = np.sort(conf[:, 0])
    thr = [order[1], INF, INF, -INF]  # all but the least confident leave
    res, exits, _ = assert_same(model, batch, thr, costs)
    assert (exits > 0).sum() == 1
    assert res.rows == [len(batch), 3, 3, 3]
    res = early_exit_forward(model, batch, thr, costs, min_rows=1)
    assert res.rows == [len(batch), 1, 1, 1]
    np.testing.assert_array_equal(res.exit0, exits)


def test_exit_costs_default_from_input_shape(model, batch, costs):
    res = early_exit_forward(model, batch, [-INF] * K)
    np.testing.assert_allclose(res.mflops.numpy(), costs[0])


def test_bad_input(model, batch, costs):
    with pytest.raises(ValueError, match=r'K = 4 values .*got 3'):
        EarlyExitPredictor(model, [0.5, 0.5, -INF])
    with pytest.raises(ValueError, match='NaN'):
        check_thresholds([0.5, float('nan'), 0.5, -INF], K)
    with pytest.raises(ValueError, match='exit_mflops'):
        EarlyExitPredictor(model, [-INF] * K, exit_mflops=[1, 2])
    model.train()
    try:
        with pytest.raises(RuntimeError, match='eval mode'):
            early_exit_forward(model, batch, [-INF] * K, costs)
    finally:
        model.eval()
    other = types.SimpleNamespace(backbone=nn.Conv2d(3, 3, 1),
                                  head=model.head)
    with pytest.raises(UnsupportedBackboneError,
                       match=r'Conv2d .*exit protocol.*hdkd_mm/models/exits/'):
        EarlyExitPredictor(other, [-INF] * K)


def test_predict_mode_config_option(model, batch, costs):
    """``model=dict(type='EarlyExitClassifier', early_exit=dict(
    thresholds=...))`` takes the early-exit path in predict mode (same
    checkpoint), and EarlyExitMetric scores it."""
    _, _, conf, _ = simulate(model, batch, [-INF] * K)
    thr = quantile_thresholds(conf, 0.5).tolist()
    ee = MODELS.build(model_cfg(type='EarlyExitClassifier',
                                early_exit=dict(thresholds=thr)))
    ee.load_state_dict(model.state_dict())
    ee.eval()
    labels = torch.arange(len(batch)) % 10
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    with torch.no_grad():
        out = ee(batch, samples, mode='predict')
    exits, pred, _, logits = simulate(model, batch, thr)
    assert [s.exit_index for s in out] == (exits + 1).tolist()
    assert [int(s.pred_label) for s in out] == pred.tolist()
    assert [s.exit_mflops for s in out] == pytest.approx(costs[exits])
    assert 'exit_scores' not in out[0]
    metric = METRICS.build(dict(type='EarlyExitMetric'))
    metric.process(None, [s.to_dict() for s in out])
    result = metric.compute_metrics(metric.results)
    assert result['early_exit/top1'] == pytest.approx(
        100 * float(np.mean(pred == labels.numpy())))
    assert result['early_exit/mflops'] == pytest.approx(costs[exits].mean())
    assert sum(result[f'early_exit/exit{k}_share']
               for k in range(1, exits.max() + 2)) == pytest.approx(1)
    # off again: the plain all-exit predictions
    ee.set_early_exit(None)
    with torch.no_grad():
        plain = ee(batch, None, mode='predict')
    assert plain[0].exit_scores.shape == (K, 10)


def test_inline_collaboration_equals_simulation(batch):
    """Exits that take the previous exit's logits (IMTA's ISC): the routed
    inference carries those logits along with the undecided rows (padding
    rows included) and still equals the simulation."""
    torch.manual_seed(0)
    net = MODELS.build(model_cfg(head=dict(
        type='MSDNetExitHead', num_classes=10, in_channels=None,
        variant='cifar', inter_channels=16, inline_collaboration=True)))
    perturb_bn(net)
    for m in net.modules():  # non-trivial BN1d statistics in the ISC
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    net.eval()
    costs = np.ones(K).cumsum()  # cost values do not matter here
    conf = simulate(net, batch, [-INF] * K)[2]
    # The routed forward runs the ISC Linear on the undecided rows only, and
    # a matrix product over fewer rows may take another CPU kernel (another
    # summation order): on an AVX-512 machine its logits differed from the
    # full batch's in the last float32 bits (confidence off by 1.7e-10).
    # The decisions must still be exact; the values are compared to a few
    # float32 ulps (rtol 1e-5 over sums of 16-32 products).
    for q in (0.3, 0.9):
        assert_same(net, batch, quantile_thresholds(conf, q), costs,
                    exact=False)
    # one sample left after exit 1: padded rows carry their logits too
    thr = np.full(K, -INF)
    thr[0] = np.sort(conf[:, 0])[1]  # all but the least confident exit
    thr[1:-1] = INF
    res, exits, _ = assert_same(net, batch, thr, costs, exact=False)
    assert (exits > 0).sum() == 1
    res1 = early_exit_forward(net, batch[:1], quantile_thresholds(conf, 0.6),
                              costs)
    assert res1.pred.shape == (1, )
