"""MSDNet backbone: shapes, reference structure, block-wise runs, errors."""
import math

import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

import hdkd_mm  # noqa: F401
from hdkd_mm.models.backbones import MSDNet
from hdkd_mm.models.backbones.msdnet import MSDLayer, Transition

TINY_CIFAR = dict(nBlocks=3, stepmode='lin_grow', step=1, base=1, nChannels=8,
                  growthRate=4, grFactor=(1, 2, 4), bnFactor=(1, 2, 4),
                  prune='max', reduction=0.5, bottleneck=True, stem='cifar')
TINY_IMAGENET = dict(nBlocks=2, stepmode='even', step=2, base=2, nChannels=8,
                     growthRate=4, grFactor=(1, 2, 4, 4),
                     bnFactor=(1, 2, 4, 4), prune='max', reduction=0.5,
                     bottleneck=True, stem='imagenet')
PAPER_CIFAR = dict(nBlocks=8, stepmode='lin_grow', step=1, base=1,
                   nChannels=16, growthRate=6, grFactor=(1, 2, 4),
                   bnFactor=(1, 2, 4), prune='max', reduction=0.5,
                   bottleneck=True, stem='cifar')


def _layers(net, kind):
    return [m for m in net.modules() if isinstance(m, kind)]


def test_cifar_variant_shapes_and_exit_channels():
    net = MODELS.build(dict(type='MSDNet', **TINY_CIFAR))
    assert isinstance(net, MSDNet)
    assert net.num_exits == len(net.blocks) == 3
    assert net.steps == [1, 2, 3]  # base, then step * (k - 1) + 1
    feats = net(torch.randn(2, 3, 32, 32))
    assert isinstance(feats, tuple) and len(feats) == 3
    # coarsest of 3 scales: 32 / 4 = 8
    assert [tuple(f.shape) for f in feats] == [
        (2, c, 8, 8) for c in net.exit_channels]
    assert len(net.exit_channels) == 3


def test_imagenet_variant_shapes_and_exit_channels():
    net = MSDNet(**TINY_IMAGENET)
    assert net.steps == [2, 2]
    feats = net(torch.randn(1, 3, 64, 64))
    # stem /4, then 3 further halvings: 64 / 32 = 2
    assert [tuple(f.shape) for f in feats] == [
        (1, c, 2, 2) for c in net.exit_channels]
    stem_conv = net.blocks[0][0][0][0]
    assert stem_conv.kernel_size == (7, 7) and stem_conv.stride == (2, 2)
    assert isinstance(net.blocks[0][0][0][3], nn.MaxPool2d)


def test_paper_cifar_model_structure():
    """36 layers; with prune='max' one scale goes every ceil(36/3) = 12
    layers (after layers 13 and 25), each followed by a transition; the
    reference's channel bookkeeping gives these exit widths."""
    net = MSDNet(**PAPER_CIFAR)
    assert net.steps == [1, 2, 3, 4, 5, 6, 7, 8] and sum(net.steps) == 36
    layers = _layers(net, MSDLayer)
    assert len(layers) == 36
    scales = [(m.in_scales, m.out_scales) for m in layers]
    assert scales[12] == (3, 2) and scales[24] == (2, 1)
    assert sum(i > o for i, o in scales) == 2
    assert len(_layers(net, Transition)) == 2
    assert net.exit_channels == [88, 136, 208, 304, 236, 380, 308, 500]
    assert sum(p.numel() for p in net.parameters()) == 1535300


def test_prune_min_reduction_and_no_bottleneck_variants():
    net = MSDNet(**dict(TINY_CIFAR, prune='min', nBlocks=4))
    total = sum(net.steps)  # 10 layers: transitions after layers 3 and 6
    assert len(_layers(net, Transition)) == 2
    scales = [(m.in_scales, m.out_scales) for m in _layers(net, MSDLayer)]
    assert scales[-1] == (2, 1) and scales[-2] == (3, 2)
    assert scales[:total - 2] == [(3, 3)] * (total - 2)
    feats = net(torch.randn(1, 3, 32, 32))
    assert [f.shape[1] for f in feats] == net.exit_channels

    plain = MSDNet(**dict(TINY_CIFAR, reduction=0, bottleneck=False))
    assert not _layers(plain, Transition)
    assert all(conv.kernel_size == (3, 3) for conv in _layers(
        plain.blocks[1], nn.Conv2d))
    feats = plain(torch.randn(1, 3, 32, 32))
    assert [f.shape[1] for f in feats] == plain.exit_channels


def test_forward_blocks_matches_forward_and_stops_early():
    torch.manual_seed(0)
    net = MSDNet(**TINY_CIFAR).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        full = net(x)
        stepwise = list(net.forward_blocks(x))
    assert len(stepwise) == len(full)
    for a, b in zip(full, stepwise):
        torch.testing.assert_close(a, b)

    calls = []
    handle = net.blocks[1].register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        first = next(net.forward_blocks(x))
    handle.remove()
    torch.testing.assert_close(first, full[0])
    assert not calls  # exit 1 needs block 1 only


def test_init_weights_as_the_reference():
    torch.manual_seed(0)
    net = MSDNet(**dict(TINY_CIFAR, nChannels=32, growthRate=16))
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight)
            nn.init.normal_(m.bias)
    net.init_weights()
    conv = net.blocks[2][-1].units[0].normal[3]  # 3×3 conv, fan-out 9 * out
    fan_out = conv.out_channels * 9
    assert conv.weight.std().item() == pytest.approx(
        math.sqrt(2. / fan_out), rel=0.15)
    assert abs(conv.weight.mean().item()) < 0.05
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


@pytest.mark.parametrize('override, match', [
    (dict(stepmode='linear'), 'stepmode'),
    (dict(prune='mean'), 'prune'),
    (dict(grFactor=(1, 2, 4), bnFactor=(1, 2)), 'grFactor.*bnFactor'),
    (dict(stem='tiny'), 'stem'),
    (dict(nBlocks=0), 'nBlocks'),
    (dict(growthRate=5, grFactor=(1, 3, 5), bnFactor=(1, 1, 1)),
     'growthRate'),
])
def test_invalid_arguments_raise_clear_errors(override, match):
    with pytest.raises(ValueError, match=match):
        MSDNet(**dict(TINY_CIFAR, **override))


def _exit_loss_grads(net, x, exit_index):
    net.zero_grad()
    feats = net(x)
    feats[exit_index].square().mean().backward()
    return {n: p.grad.clone() for n, p in net.named_parameters()
            if p.grad is not None}


def test_gradient_equilibrium_rescales_gradients_only():
    """Impr's gradient equilibrium: same forward values; a loss on exit 1
    reaches block 1 with 1/K of its gradient; the last exit's own block is
    untouched."""
    torch.manual_seed(0)
    plain = MSDNet(**TINY_CIFAR).double()
    balanced = MSDNet(**TINY_CIFAR, gradient_equilibrium=True).double()
    balanced.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    for a, b in zip(plain(x), balanced(x)):
        assert torch.equal(a, b)
    num_exits = TINY_CIFAR['nBlocks']
    g_plain = _exit_loss_grads(plain, x, 0)
    g_balanced = _exit_loss_grads(balanced, x, 0)
    assert g_plain.keys() == g_balanced.keys()
    for name, grad in g_plain.items():
        torch.testing.assert_close(g_balanced[name], grad / num_exits,
                                   rtol=1e-9, atol=1e-15)  # float64 rounding
    g_plain = _exit_loss_grads(plain, x, num_exits - 1)
    g_balanced = _exit_loss_grads(balanced, x, num_exits - 1)
    last = f'blocks.{num_exits - 1}.'
    last_block = [n for n in g_plain if n.startswith(last)]
    assert last_block
    for name in last_block:
        torch.testing.assert_close(g_balanced[name], g_plain[name],
                                   rtol=1e-9, atol=1e-15)  # float64 rounding
    earlier = [n for n in g_plain if not n.startswith(last)]
    assert any(not torch.allclose(g_balanced[n], g_plain[n]) for n in earlier)
