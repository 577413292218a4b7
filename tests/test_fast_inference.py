"""The inference-only copy of hdkd_mm.evaluation.fast_inference: BatchNorm
folded and 1×1 convolutions as bmm compute the same function (to float32
rounding), the original model is untouched, costs are unchanged, and early
exit on the copy equals the simulation on the copy's logits."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import hdkd_mm  # noqa: F401
from hdkd_mm.analysis.flops import exit_costs
from hdkd_mm.evaluation.early_exit_eval import evaluate_early_exit
from hdkd_mm.evaluation.fast_inference import (PointwiseConv2d, is_pointwise,
                                               optimize_for_inference)

from test_early_exit import (K, assert_same, model_cfg, perturb_bn,
                             quantile_thresholds, simulate)

INF = float('inf')


@pytest.fixture(scope='module')
def model():
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    net = MODELS.build(model_cfg())
    perturb_bn(net, seed=3)
    return net.eval()


@pytest.fixture(scope='module')
def fast(model):
    return optimize_for_inference(model)


@pytest.fixture(scope='module')
def batch():
    return torch.randn(24, 3, 32, 32,
                       generator=torch.Generator().manual_seed(2))


def count(model, kind):
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.mark.parametrize('bias', [False, True])
@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
def test_pointwise_conv_equals_conv(bias, layout):
    torch.manual_seed(0)
    conv = nn.Conv2d(12, 5, 1, bias=bias)
    x = torch.randn(3, 12, 7, 9)
    if layout == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    pointwise = PointwiseConv2d.from_conv(conv)
    assert pointwise.weight is conv.weight  # shared, not copied
    with torch.no_grad():
        # float32 sums of 12 products in another order: ~1e-7 relative
        torch.testing.assert_close(pointwise(x), conv(x), rtol=1e-5,
                                   atol=1e-6)


def test_is_pointwise_only_for_plain_1x1():
    assert is_pointwise(nn.Conv2d(4, 4, 1))
    assert not is_pointwise(nn.Conv2d(4, 4, 3, padding=1))
    assert not is_pointwise(nn.Conv2d(4, 4, 1, stride=2))
    assert not is_pointwise(nn.Conv2d(4, 4, 1, padding=1))
    assert not is_pointwise(nn.Conv2d(4, 4, 1, groups=2))
    with pytest.raises(ValueError, match='not a pointwise'):
        PointwiseConv2d.from_conv(nn.Conv2d(4, 4, 3))


def test_same_function_and_original_untouched(model, fast, batch):
    done = fast.inference_optimizations
    n_bn = count(model, nn.BatchNorm2d)
    # every BatchNorm of MSDNet follows a conv inside a Sequential
    assert done['folded_batchnorms'] == n_bn > 0
    assert count(fast, nn.BatchNorm2d) == 0
    assert done['pointwise_bmm'] == count(fast, PointwiseConv2d) > 0
    assert count(model, PointwiseConv2d) == 0  # the original is a copy
    assert not fast.training
    with torch.no_grad():
        plain = torch.stack(model(batch, mode='tensor'), 1)
        optimized = torch.stack(fast(batch, mode='tensor'), 1)
    # folding rescales the weights by gamma / sqrt(var + eps) before the
    # float32 sums instead of after: a few float32 ulps per layer (6e-8 on
    # logits of at most 0.4 here; 9e-6 on logits up to 20 for the suites'
    # trained 6-exit MSDNet); 1e-4 leaves room for deeper nets
    torch.testing.assert_close(optimized, plain, rtol=1e-4, atol=1e-4)


def test_each_optimization_alone(model, batch):
    with torch.no_grad():
        plain = torch.stack(model(batch, mode='tensor'), 1)
        for kw in (dict(fold_batchnorm=False), dict(pointwise_bmm=False)):
            m = optimize_for_inference(model, **kw)
            if kw.get('fold_batchnorm') is False:
                assert count(m, nn.BatchNorm2d) == count(model,
                                                        nn.BatchNorm2d)
            else:
                assert count(m, PointwiseConv2d) == 0
            torch.testing.assert_close(
                torch.stack(m(batch, mode='tensor'), 1), plain, rtol=1e-4,
                atol=1e-4)


def test_costs_unchanged(model, fast):
    plain = exit_costs(model, (3, 32, 32))
    optimized = exit_costs(fast, (3, 32, 32))
    assert [r['mflops'] for r in optimized] == [r['mflops'] for r in plain]


@pytest.mark.parametrize('q', [0.3, 0.7])
def test_early_exit_on_the_copy_equals_its_simulation(fast, batch, q):
    costs = np.array([r['mflops'] for r in exit_costs(fast, (3, 32, 32))])
    thr = quantile_thresholds(simulate(fast, batch, [-INF] * K)[2], q)
    _, exits, _ = assert_same(fast, batch, thr, costs)
    assert len(set(exits.tolist())) > 1


def test_evaluate_early_exit_verifies_the_copy(fast, batch):
    thr = quantile_thresholds(simulate(fast, batch, [-INF] * K)[2], 0.5)
    loader = [dict(inputs=batch[i:i + 8],
                   data_samples=[_sample(j) for j in range(i, i + 8)])
              for i in range(0, len(batch), 8)]
    result = evaluate_early_exit(fast, loader, thr, verify=True)
    assert result['verify'] == dict(mismatched_exits=0, mismatched_preds=0)
    assert result['num_samples'] == len(batch)


def _sample(i):
    from mmpretrain.structures import DataSample
    return DataSample().set_gt_label(i % 10)


def test_predict_mode_config_option_with_fast_kernels(model, fast, batch):
    """``early_exit=dict(thresholds=..., fast_kernels=True)``: predict mode
    routes on an inference copy made after the weights were loaded, equal
    to the simulation on that copy, and made again when the weights
    change."""
    from mmpretrain.structures import DataSample
    thr = quantile_thresholds(simulate(fast, batch, [-INF] * K)[2], 0.5)
    ee = MODELS.build(model_cfg(type='EarlyExitClassifier', early_exit=dict(
        thresholds=thr.tolist(), fast_kernels=True)))
    ee.load_state_dict(model.state_dict())
    ee.eval()
    samples = [DataSample().set_gt_label(0) for _ in range(len(batch))]
    with torch.no_grad():
        out = ee(batch, samples, mode='predict')
    exits, pred, _, _ = simulate(fast, batch, thr)
    assert [s.exit_index for s in out] == (exits + 1).tolist()
    assert [int(s.pred_label) for s in out] == pred.tolist()
    copy = ee._fast_copy[1].model
    assert count(copy, nn.BatchNorm2d) == 0 and count(ee, nn.BatchNorm2d)
    with torch.no_grad():  # same weights: the copy is reused
        ee(batch[:4], None, mode='predict')
    assert ee._fast_copy[1].model is copy
    # other weights: a new copy, routing like a copy of those weights
    torch.manual_seed(5)
    other = MODELS.build(model_cfg())
    perturb_bn(other, seed=7)
    ee.load_state_dict(other.state_dict())
    with torch.no_grad():
        out = ee(batch, None, mode='predict')
    assert ee._fast_copy[1].model is not copy
    exits, pred, _, _ = simulate(optimize_for_inference(other.eval()), batch,
                                 thr)
    assert [s.exit_index for s in out] == (exits + 1).tolist()
    assert [int(s.pred_label) for s in out] == pred.tolist()
    ee.train()
    with pytest.raises(RuntimeError, match='eval mode'):
        ee(batch, None, mode='predict')
