"""The exit protocol (hdkd_mm/models/exits) on every supported backbone:
staged execution equals the backbone's forward, real early exit takes the
simulated budgeted evaluation's decisions bit for bit at batch 64 and batch
1 with every confidence measure, each sample's cost is get_flops.py's
cumulative cost of its exit; a backbone added by one registered protocol
gets everything; unsupported backbones get one clear error.

The models are the real CIFAR-100 configs' (configs/msdnet/msdnet_*), random
init with non-trivial BatchNorm statistics, narrowed where they would be
slow (--cfg-options style overrides, passed to get_flops.py too)."""
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import hdkd_mm  # noqa: F401
from hdkd_mm.analysis.flops import exit_costs
from hdkd_mm.evaluation.budgeted import (apply_thresholds, evaluate_budgets,
                                         exit_confidences)
from hdkd_mm.evaluation.confidence import CONFIDENCES
from hdkd_mm.evaluation.early_exit import (EarlyExitPredictor,
                                           early_exit_forward)
from hdkd_mm.evaluation.thresholds import (load_thresholds,
                                           thresholds_from_budget_json)
from hdkd_mm.models.exits import (ExitMarker, SequentialExitProtocol,
                                  UnsupportedBackboneError, exit_protocol,
                                  register_exit_protocol)
from model_helpers import perturb_norms
from tool_helpers import REPO, load_tool

INF = float('inf')
# name: (config, overrides that keep the test fast)
BACKBONES = {
    'msdnet': ('configs/msdnet/msdnet_msdnet-8e_1xb128_cifar100.py', {
        'model.backbone.nBlocks': 4, 'model.backbone.stepmode': 'even',
        'model.backbone.nChannels': 8, 'model.backbone.growthRate': 4,
        'model.head.inter_channels': 16}),
    'resnet18': ('configs/msdnet/msdnet_resnet18_1xb128_cifar100.py', {
        'model.backbone.stem_channels': 8,
        'model.backbone.base_channels': 8}),
    'timm-resnet18': (
        'configs/msdnet/msdnet_timm-resnet18_1xb128_cifar100.py', {}),
    'timm-mobilenetv3': (
        'configs/msdnet/msdnet_timm-mobilenetv3_1xb128_cifar100.py', {}),
    'vit-tiny': ('configs/msdnet/msdnet_vit-tiny_1xb128_cifar100.py', {
        'model.backbone.arch': dict(embed_dims=32, num_layers=4, num_heads=2,
                                    feedforward_channels=64),
        'model.backbone.out_indices': (0, 1, 2, 3)}),
}


def build(name):
    config, options = BACKBONES[name]
    cfg = Config.fromfile(f'{REPO}/{config}')
    cfg.merge_from_dict(options)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    perturb_norms(model)
    model.eval()
    return model


@pytest.fixture(scope='module', autouse=True)
def _scope():
    init_default_scope('mmpretrain')


@pytest.fixture(scope='module')
def images():
    return torch.randn(64, 3, 32, 32, generator=torch.Generator()
                       .manual_seed(1))


def simulate(model, x, thresholds, confidence='max_softmax'):
    """The simulated budgeted evaluation on the full logits of ``x``."""
    with torch.no_grad():
        logits = torch.stack(model(x, mode='tensor'), 1).numpy()
    conf, pred = exit_confidences(logits, confidence)
    exits = apply_thresholds(conf, thresholds)
    return exits, pred[np.arange(len(exits)), exits], conf


def tied_thresholds(conf, q):
    """Per-exit thresholds equal to a sample's confidence (the q-quantile
    sample among those still there), so some samples tie with them."""
    thr = np.full(conf.shape[1], -INF)
    remaining = np.arange(conf.shape[0])
    for k in range(conf.shape[1] - 1):
        c = np.sort(conf[remaining, k])[int(q * (len(remaining) - 1))]
        thr[k] = c
        remaining = remaining[conf[remaining, k] < c]
        if remaining.size == 0:
            break
    return thr


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_staged_execution_equals_forward(name, images):
    model = build(name)
    protocol = exit_protocol(model.backbone)
    assert protocol.num_exits == model.num_exits == 4
    assert protocol.exit_channels() == list(model.head.in_channels)
    with torch.no_grad():
        full = model.backbone(images[:8])
        staged = protocol.features(images[:8])
        # the state is a flat tuple of batch-first tensors; select keeps rows
        state = protocol.start(images[:8])
        for k in range(protocol.num_exits):
            assert isinstance(state, tuple) and all(
                torch.is_tensor(t) and t.shape[0] == 8 for t in state)
            state, _ = protocol.run(k, state)
        rows = torch.tensor([5, 2])
        picked = protocol.select(protocol.start(images[:8]), rows)
        _, first = protocol.run(0, picked)
    for a, b in zip(full, staged):
        assert torch.equal(a, b)
    torch.testing.assert_close(first, full[0][rows], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_early_exit_equals_simulation_and_get_flops(name, images):
    """Batch 64 and batch 1, three confidence measures, thresholds tied
    with samples' confidences: the routed exits and predictions are the
    simulation's exactly, later stages ran on the undecided rows only, and
    every sample's cost is get_flops.py's cumulative MFLOPs of its exit
    (rounded to 4 decimals in its JSON)."""
    config, options = BACKBONES[name]
    flops = load_tool('tools/analysis/get_flops.py').get_flops(
        f'{REPO}/{config}', cfg_options=options)
    assert flops['input_shape'] == [3, 32, 32]
    tool_costs = np.array([e['mflops'] for e in flops['exits']])
    model = build(name)
    costs = np.array([r['mflops'] for r in exit_costs(model, (3, 32, 32))])
    np.testing.assert_allclose(costs, tool_costs, rtol=0, atol=5e-5)
    routed_exits = set()
    for confidence in CONFIDENCES:
        _, _, conf = simulate(model, images, [-INF] * 4, confidence)
        thr = tied_thresholds(conf, 0.5)
        exits, pred, _ = simulate(model, images, thr, confidence)
        predictor = EarlyExitPredictor(model, thr, confidence=confidence)
        res = predictor(images)  # costs computed from the input shape
        np.testing.assert_array_equal(res.exit0, exits)
        np.testing.assert_array_equal(res.pred.numpy(), pred)
        np.testing.assert_allclose(res.mflops.numpy(), tool_costs[exits],
                                   rtol=0, atol=5e-5)
        np.testing.assert_array_equal(res.mflops.numpy(), costs[exits])
        # stages ran on the undecided rows only (padded to min_rows)
        assert res.rows == [max(int((exits >= k).sum()), predictor.min_rows)
                            for k in range(exits.max() + 1)]
        assert any(conf[i, e] == thr[e] for i, e in enumerate(exits)
                   if e < 3)  # a tie decided by >=
        routed_exits |= set(exits.tolist())
        # batch 1: each sample against the batch-1 simulation
        for i in range(0, 64, 4):
            x = images[i:i + 1]
            one = predictor(x)
            e1, p1, _ = simulate(model, x, thr, confidence)
            assert one.exit0.tolist() == e1.tolist()
            assert one.pred.tolist() == p1.tolist()
            assert one.mflops.item() == costs[e1[0]]
    assert routed_exits == {0, 1, 2, 3}


# ------------------------------------------------------------ a new backbone
class ToyNet(nn.Module):
    """A backbone the plugin has never seen: two conv stages, one exit
    after each (returns a tuple of two maps)."""

    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1),
                                    nn.BatchNorm2d(6), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(6, 10, 3, stride=2, padding=1),
                                    nn.BatchNorm2d(10), nn.ReLU())

    def forward(self, x):
        a = self.stage1(x)
        return a, self.stage2(a)


def test_a_new_backbone_takes_one_registered_protocol(images):
    """All it takes for ToyNet (what one file under hdkd_mm/models/exits/
    would hold): channels, FLOPs, budgeted evaluation and real early exit
    follow."""
    with pytest.raises(UnsupportedBackboneError, match='ToyNet'):
        exit_protocol(ToyNet())

    @register_exit_protocol(ToyNet)
    class ToyNetExitProtocol(SequentialExitProtocol):
        def __init__(self, backbone):
            super().__init__(backbone)
            self.steps = [backbone.stage1, backbone.stage2]
            self.exit_steps = [0, 1]

        def exit_channels(self):
            return [6, 10]

        def cost_markers(self):
            return [ExitMarker(self.backbone.stage1),
                    ExitMarker(self.backbone.stage2)]

    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='MultiExitClassifier', backbone=ToyNet(),
        head=dict(type='GenericExitHead', num_classes=5, in_channels=None)))
    perturb_norms(model)
    model.eval()
    assert model.head.in_channels == [6, 10]  # channels
    costs = [r['mflops'] for r in exit_costs(model, (3, 32, 32))]  # FLOPs
    conv1 = 3 * 6 * 9 * 32 * 32 + 6 * 32 * 32  # conv + ReLU
    conv2 = 6 * 10 * 9 * 16 * 16 + 10 * 16 * 16
    heads = [6 * 32 * 32 + 6 * 5 + 5, 10 * 16 * 16 + 10 * 5 + 5]
    assert costs == pytest.approx([(conv1 + heads[0]) / 1e6,
                                   (conv1 + conv2 + sum(heads)) / 1e6])
    with torch.no_grad():  # budgeted evaluation
        logits = torch.stack(model(images, mode='tensor'), 1).numpy()
    labels = np.arange(64) % 5
    budgets = evaluate_budgets(logits[:32], labels[:32], logits[32:],
                               labels[32:], costs, num_budgets=5)
    assert all(costs[0] <= b['mflops'] <= costs[1] for b in budgets)
    thr = budgets[2]['thresholds']  # real early exit
    res = early_exit_forward(model, images[32:], thr)
    exits, pred, _ = simulate(model, images[32:], thr)
    np.testing.assert_array_equal(res.exit0, exits)
    np.testing.assert_array_equal(res.pred.numpy(), pred)
    assert float(res.mflops.mean()) == pytest.approx(budgets[2]['mflops'])


# ---------------------------------------------------------------- bad input
def test_unsupported_backbone_is_one_clear_error():
    """Named type, the protocol, the file to add, at build time of the
    classifier as in the cost counter and early exit."""
    pattern = (r'MobileNetV2 .*not supported by the exit protocol'
               r'.*hdkd_mm\.models\.exits\.ExitProtocol.*add one file under '
               r'hdkd_mm/models/exits/')
    with pytest.raises(UnsupportedBackboneError, match=pattern):
        MODELS.build(dict(
            type='MultiExitClassifier',
            backbone=dict(type='MobileNetV2', out_indices=(2, 7)),
            head=dict(type='GenericExitHead', num_classes=10)))
    assert issubclass(UnsupportedBackboneError, TypeError)
    # a ResNet subclass with its own forward is not silently staged wrong
    with pytest.raises(UnsupportedBackboneError, match='RegNet .*forward'):
        exit_protocol(MODELS.build(dict(type='RegNet', arch='regnetx_400mf',
                                        out_indices=(0, 1))))
    # a timm model without features: the config fix
    with pytest.raises(ValueError, match='features_only=True'):
        exit_protocol(MODELS.build(dict(type='TIMMBackbone',
                                        model_name='resnet18',
                                        pretrained=False)))
    with pytest.raises(ValueError, match=r"out_type='featmap'.*one of"):
        exit_protocol(MODELS.build(dict(
            type='VisionTransformer', arch='deit-tiny', img_size=32,
            patch_size=8, out_indices=(0, 11), out_type='featmap')))


def test_thresholds_and_confidence_errors(images, tmp_path):
    model = build('resnet18')
    with pytest.raises(ValueError, match=r'K = 4 values .*got 3'):
        EarlyExitPredictor(model, [0.5, 0.5, -INF])
    with pytest.raises(ValueError, match='max_softmax, entropy, margin'):
        EarlyExitPredictor(model, [-INF] * 4, confidence='maxsoftmax')
    with pytest.raises(ValueError, match='max_softmax, entropy, margin'):
        MODELS.build(dict(Config.fromfile(
            f'{REPO}/{BACKBONES["resnet18"][0]}').model,
            type='EarlyExitClassifier',
            early_exit=dict(thresholds=[-INF] * 4, confidence='top2')))
    # a thresholds file records its measure: used, and a mismatch refused
    path = tmp_path / 'thr.json'
    path.write_text(json.dumps(dict(thresholds=[0.1, 0.1, 0.1, None],
                                    confidence='margin')).replace(
        'null', '-Infinity'))
    assert load_thresholds(str(path)) == ([0.1, 0.1, 0.1, -INF], 'margin')
    with pytest.raises(ValueError, match="fitted with the 'margin' "
                       "confidence, not 'entropy'"):
        load_thresholds(str(path), 'entropy')
    ee = MODELS.build(dict(Config.fromfile(
        f'{REPO}/{BACKBONES["resnet18"][0]}').model,
        type='EarlyExitClassifier', early_exit=dict(thresholds=str(path))))
    assert ee.early_exit.confidence == 'margin'
    # a budgeted.json from before the option: max-softmax thresholds
    old = tmp_path / 'budgeted.json'
    old.write_text(json.dumps(dict(models=[dict(
        name='m', config='c.py', checkpoint='m.pth',
        budgets=[dict(budget_index=1, thresholds=[0.5, -1e9])])])))
    assert thresholds_from_budget_json(str(old), 1) == ([0.5, -1e9],
                                                        'max_softmax')
    with pytest.raises(ValueError, match="'max_softmax' confidence"):
        thresholds_from_budget_json(str(old), 1, confidence='margin')
