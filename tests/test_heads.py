"""MSDNetExitHead, GenericExitHead, and a MultiExitClassifier on MSDNet."""
import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import hdkd_mm  # noqa: F401
from hdkd_mm.models.heads import GenericExitHead, MSDNetExitHead

TINY_MSDNET = dict(type='MSDNet', nBlocks=3, stepmode='lin_grow', step=1,
                   base=1, nChannels=8, growthRate=4, grFactor=(1, 2, 4),
                   bnFactor=(1, 2, 4), prune='max', reduction=0.5,
                   bottleneck=True, stem='cifar')


def test_msdnet_head_cifar_variant():
    head = MODELS.build(dict(type='MSDNetExitHead', num_classes=10,
                             in_channels=[16, 24], variant='cifar'))
    assert isinstance(head, MSDNetExitHead) and head.num_exits == 2
    logits = head([torch.randn(2, 16, 8, 8), torch.randn(2, 24, 8, 8)])
    assert [tuple(z.shape) for z in logits] == [(2, 10), (2, 10)]
    convs = [m for m in head.exits[0].modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride) for c in convs] == [
        (16, 128, (2, 2)), (128, 128, (2, 2))]
    assert head.exits[0][-1].in_features == 128


def test_msdnet_head_imagenet_variant_and_init():
    head = MSDNetExitHead(num_classes=7, in_channels=[12], variant='imagenet')
    convs = [m for m in head.exits[0].modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(12, 12)] * 2
    (logits, ) = head([torch.randn(3, 12, 7, 7)])
    assert logits.shape == (3, 7)
    linear = head.exits[0][-1]
    nn.init.normal_(linear.bias)
    head.init_weights()
    assert torch.all(linear.bias == 0)


def test_head_argument_errors():
    with pytest.raises(ValueError, match='variant'):
        MSDNetExitHead(num_classes=10, in_channels=[8], variant='svhn')
    with pytest.raises(ValueError, match='in_channels'):
        MSDNetExitHead(num_classes=10, in_channels=8)
    with pytest.raises(ValueError, match='in_channels'):
        GenericExitHead(num_classes=10, in_channels=[])
    with pytest.raises(ValueError, match='dropout'):
        GenericExitHead(num_classes=10, in_channels=[8], dropout=1.5)


def test_generic_head_pools_maps_tokens_and_vectors():
    head = MODELS.build(dict(type='GenericExitHead', num_classes=5,
                             in_channels=[8, 16, 32]))
    feats = [torch.randn(2, 8, 6, 6),   # feature map
             torch.randn(2, 10, 16),    # (N, L, C) tokens
             torch.randn(2, 32)]        # e.g. a ViT class token
    logits = head(feats)
    assert [tuple(z.shape) for z in logits] == [(2, 5)] * 3
    # token pooling is the mean over L
    torch.testing.assert_close(
        head.exits[1][-1](feats[1].mean(1)), logits[1])


def test_generic_head_conv_hidden_and_dropout():
    head = GenericExitHead(num_classes=4, in_channels=[8, 12],
                           conv_channels=16, hidden_channels=32, dropout=0.2)
    exit_ = head.exits[1]
    assert exit_[0][0].in_channels == 12 and exit_[0][0].out_channels == 16
    linears = [m for m in exit_.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 32),
                                                                  (32, 4)]
    assert any(isinstance(m, nn.Dropout) for m in exit_.modules())
    logits = head([torch.randn(2, 8, 5, 5), torch.randn(2, 12, 3, 3)])
    assert [tuple(z.shape) for z in logits] == [(2, 4)] * 2


def _classifier(**head):
    return MODELS.build(dict(
        type='MultiExitClassifier', backbone=TINY_MSDNET,
        head=dict(dict(type='MSDNetExitHead', num_classes=10,
                       in_channels=None, variant='cifar'), **head)))


def test_classifier_with_msdnet_runs_every_mode():
    torch.manual_seed(0)
    model = _classifier()
    assert model.head.in_channels == list(model.backbone.exit_channels)
    assert model.num_exits == 3
    inputs = torch.randn(2, 3, 32, 32)
    samples = [DataSample().set_gt_label(label) for label in (1, 7)]

    losses = model(inputs, samples, mode='loss')
    assert torch.isfinite(losses['loss'])
    assert {'objective/ce1', 'objective/ce3'} <= set(losses)
    losses['loss'].backward()
    assert model.backbone.blocks[0][0][0][0].weight.grad is not None

    model.eval()
    with torch.no_grad():
        logits = model(inputs, mode='tensor')
        preds = model(inputs, samples, mode='predict')
    assert [tuple(z.shape) for z in logits] == [(2, 10)] * 3
    assert len(preds) == 2
    assert preds[0].exit_scores.shape == (3, 10)
    torch.testing.assert_close(preds[0].pred_score,
                               logits[-1][0].softmax(-1))


def test_head_exits_must_match_backbone_outputs():
    # 2 exits, the backbone gives 3: refused when the classifier is built
    # (tests/test_config_checks.py); the head also refuses in its forward
    with pytest.raises(ValueError, match='2 exits, but the backbone'):
        _classifier(in_channels=[44, 68])
    head = _classifier().head
    with pytest.raises(ValueError, match='has 3 exits but the backbone '
                       'returned 2 features'):
        head([torch.randn(1, 44, 8, 8), torch.randn(1, 68, 8, 8)])


def test_inline_subnetwork_collaboration():
    """IMTA's ISC: exit k > 1's Linear takes [its pooled feature,
    Linear-BN-ReLU(exit k-1's logits)]; the previous logits are not
    detached, so exit k's loss also trains exit k-1's classifier."""
    from hdkd_mm.models.heads.multi_exit_head import CollaborativeExit
    torch.manual_seed(0)
    model = _classifier(inline_collaboration=True, inter_channels=16)
    exits = model.head.exits
    assert all(isinstance(e, CollaborativeExit) for e in exits)
    assert exits[0].collaboration is None
    assert exits[0].classifier.in_features == 16
    for e in exits[1:]:
        assert e.classifier.in_features == 32
        assert e.collaboration[0].in_features == 10  # from the logits
    x = torch.randn(4, 3, 32, 32)
    logits = model(x, mode='tensor')
    assert [tuple(z.shape) for z in logits] == [(4, 10)] * 3
    # exit 2 depends on exit 1's classifier; exit 1 does not on exit 2's.
    # The change must differ per sample and per class: a shift or a scale
    # of exit 1's logits would be undone by the BatchNorm (batch statistics
    # in training mode) after the ISC Linear, leaving exit 2 equal up to
    # rounding.
    with torch.no_grad():
        exits[0].classifier.weight.add_(
            torch.randn_like(exits[0].classifier.weight))
    changed = model(x, mode='tensor')
    assert (changed[0] - logits[0]).abs().max() > 0.1
    assert (changed[1] - logits[1]).abs().max() > 0.1
    with torch.no_grad():
        exits[1].classifier.weight.add_(
            torch.randn_like(exits[1].classifier.weight))
    torch.testing.assert_close(model(x, mode='tensor')[0], changed[0],
                               rtol=0, atol=0)
    # exit 2's CE alone reaches exit 1's Linear
    model.zero_grad()
    ce2 = torch.nn.functional.cross_entropy(model(x, mode='tensor')[1],
                                            torch.arange(4))
    ce2.backward()
    assert exits[0].classifier.weight.grad.abs().sum() > 0
    assert exits[2].classifier.weight.grad is None
    # an exit run on its own without the previous logits: a clear error
    with pytest.raises(ValueError, match="previous exit's logits"):
        exits[1](model.extract_feat(x)[1])
    # without ISC: plain Linear exits, independent of each other
    plain = _classifier(inter_channels=16)
    assert not any(isinstance(e, CollaborativeExit)
                   for e in plain.head.exits)
