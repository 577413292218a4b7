"""Per-exit cost in the MSDNet reference convention.

THE ACCEPTANCE: the paper's MSDNet models reproduce the reference op
counter's per-exit cumulative MFLOPs and parameter counts within 1 %
(STACK-NOTES table; the paper's Tables 1-2).
"""
import json
import os.path as osp

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.registry import MODELS

import hdkd_mm  # noqa: F401
from hdkd_mm.analysis.flops import default_input_shape, exit_costs
from hdkd_mm.analysis.cost_tracer import module_cost
from hdkd_mm.models.exits import (ExitMarker, ExitProtocol,
                                  UnsupportedBackboneError, exit_protocol,
                                  register_exit_protocol)
from tool_helpers import load_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

CIFAR_REFERENCE = {  # nBlocks: (cumulative MFLOPs per exit, params M)
    8: ([6.86, 14.35, 27.29, 48.45, 81.57, 112.64, 152.92, 192.69], 5.31),
    4: ([6.86, 14.35, 26.13, 38.04], 1.42),
    5: ([6.86, 14.35, 27.54, 41.71, 58.48], 2.08),
    6: ([6.86, 14.35, 27.29, 46.56, 67.43, 89.09], 2.85),
}
IMAGENET_REFERENCE = {  # step (= base): (MFLOPs per exit, params M)
    4: ([340, 685, 1008, 1254, 1361], 24.0),
    7: ([616, 1436, 2283, 2967, 3254], 62.3),
}


def msdnet_cifar(num_blocks, num_classes=100):
    return dict(
        type='MultiExitClassifier',
        backbone=dict(type='MSDNet', nBlocks=num_blocks, stepmode='lin_grow',
                      step=1, base=1, nChannels=16, growthRate=6,
                      grFactor=(1, 2, 4), bnFactor=(1, 2, 4), prune='max',
                      reduction=0.5, bottleneck=True, stem='cifar'),
        head=dict(type='MSDNetExitHead', num_classes=num_classes,
                  in_channels=None, variant='cifar'))


def msdnet_imagenet(step):
    return dict(
        type='MultiExitClassifier',
        backbone=dict(type='MSDNet', nBlocks=5, stepmode='even', step=step,
                      base=step, nChannels=32, growthRate=16,
                      grFactor=(1, 2, 4, 4), bnFactor=(1, 2, 4, 4),
                      prune='max', reduction=0.5, bottleneck=True,
                      stem='imagenet'),
        head=dict(type='MSDNetExitHead', num_classes=1000, in_channels=None,
                  variant='imagenet'))


def build_on_meta(cfg):
    """Shapes only: counting needs no real weights (fast, no memory)."""
    with torch.device('meta'):
        return MODELS.build(cfg)


@pytest.mark.parametrize('num_blocks', sorted(CIFAR_REFERENCE))
def test_msdnet_cifar_matches_reference_counts(num_blocks):
    mflops, params = CIFAR_REFERENCE[num_blocks]
    rows = exit_costs(build_on_meta(msdnet_cifar(num_blocks)), (3, 32, 32))
    assert [r['exit'] for r in rows] == list(range(1, num_blocks + 1))
    assert [r['mflops'] for r in rows] == pytest.approx(mflops, rel=0.01)
    assert rows[-1]['params_m'] == pytest.approx(params, rel=0.01)
    # cumulative: never decreasing
    assert all(a['params_m'] < b['params_m'] for a, b in zip(rows, rows[1:]))


@pytest.mark.parametrize('step', sorted(IMAGENET_REFERENCE))
def test_msdnet_imagenet_matches_reference_counts(step):
    mflops, params = IMAGENET_REFERENCE[step]
    rows = exit_costs(build_on_meta(msdnet_imagenet(step)), (3, 224, 224))
    assert [r['mflops'] for r in rows] == pytest.approx(mflops, rel=0.01)
    assert rows[-1]['params_m'] == pytest.approx(params, rel=0.01)


def test_meta_device_and_cpu_give_the_same_counts():
    cfg = msdnet_cifar(3, num_classes=10)
    cpu = exit_costs(MODELS.build(cfg), (3, 32, 32))
    meta = exit_costs(build_on_meta(cfg), (3, 32, 32))
    assert cpu == meta


def test_exit_cost_is_backbone_part_plus_all_earlier_heads():
    torch.manual_seed(0)
    model = MODELS.build(msdnet_cifar(4, num_classes=10))
    x = torch.zeros(1, 3, 32, 32)
    rows = exit_costs(model, (3, 32, 32))
    blocks = model.backbone.blocks
    feats = model.backbone(x)
    heads = [module_cost(model.head.exits[k], feats[k]) for k in range(4)]
    for k, row in enumerate(rows):
        backbone = module_cost(nn.Sequential(*blocks[:k + 1]), x)
        expected = backbone['mflops'] + sum(h['mflops'] for h in heads[:k + 1])
        assert row['mflops'] == pytest.approx(expected, rel=1e-9)
        expected = backbone['params_m'] + sum(
            h['params_m'] for h in heads[:k + 1])
        assert row['params_m'] == pytest.approx(expected, rel=1e-9)
    # every parameter of the model ran by the last exit
    total = sum(p.numel() for p in model.parameters()) / 1e6
    assert rows[-1]['params_m'] == pytest.approx(total, rel=1e-9)


def test_counting_rules_of_single_layers():
    x = torch.zeros(1, 3, 8, 8)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=True)
    assert module_cost(conv, x)['mflops'] * 1e6 == 3 * 4 * 9 * 4 * 4
    assert module_cost(nn.ReLU(), x)['mflops'] * 1e6 == 3 * 64
    assert module_cost(nn.AvgPool2d(2), x)['mflops'] * 1e6 == 3 * 16 * 4
    assert module_cost(nn.MaxPool2d(3, 2, 1), x)['mflops'] * 1e6 == 3 * 16 * 9
    assert module_cost(nn.AdaptiveAvgPool2d(1), x)['mflops'] * 1e6 == 3 * 64
    assert module_cost(nn.BatchNorm2d(3), x)['mflops'] == 0
    linear = nn.Linear(5, 7)
    assert module_cost(linear, torch.zeros(1, 5))['mflops'] * 1e6 == 42
    # token inputs: one row per token
    assert module_cost(linear, torch.zeros(1, 3, 5))['mflops'] * 1e6 == 126
    # per sample: the batch size does not change the figure
    assert module_cost(conv, torch.zeros(4, 3, 8, 8)) == module_cost(conv, x)
    assert module_cost(conv, x)['params_m'] * 1e6 == 3 * 4 * 9 + 4


def test_functional_attention_is_counted():
    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(8, 24, bias=False)

        def forward(self, x):
            q, k, v = self.qkv(x).reshape(1, 5, 3, 2, 4).permute(
                2, 0, 3, 1, 4)
            return F.scaled_dot_product_attention(q, k, v) @ torch.ones(4, 4)

    ops = module_cost(Attention(), torch.zeros(1, 5, 8))['mflops'] * 1e6
    qkv = 5 * 8 * 24
    attention = 2 * 5 * 5 * (4 + 4) + 2 * 5 * 5  # QKᵀ, AV, softmax
    final_matmul = 2 * 5 * 4 * 4
    assert ops == pytest.approx(qkv + attention + final_matmul)


class Mystery(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x * self.scale


def test_unknown_layer_types_raise_instead_of_counting_zero():
    with pytest.raises(TypeError, match='Mystery'):
        module_cost(nn.Sequential(nn.Conv2d(3, 3, 1), Mystery()),
                    torch.zeros(1, 3, 4, 4))
    with pytest.raises(TypeError, match='Upsample'):  # no params, computes
        module_cost(nn.Upsample(scale_factor=2), torch.zeros(1, 3, 4, 4))
    model = MODELS.build(msdnet_cifar(2, num_classes=10))
    model.head.exits[1].insert(2, Mystery())
    with pytest.raises(TypeError, match='Mystery'):
        exit_costs(model, (3, 32, 32))


def test_exit_markers_come_from_the_exit_protocol():
    model = build_on_meta(msdnet_cifar(3))
    markers = exit_protocol(model.backbone).cost_markers()
    assert [m.module for m in markers] == list(model.backbone.blocks)
    assert all(m.hook == 'forward' for m in markers)

    resnet = MODELS.build(dict(type='ResNet_CIFAR', depth=18,
                               out_indices=(1, 3)))
    assert [m.module for m in exit_protocol(resnet).cost_markers()] == [
        resnet.layer2, resnet.layer4]

    with pytest.raises(UnsupportedBackboneError,
                       match=r'MobileNetV2 .*exit protocol'):
        exit_protocol(MODELS.build(dict(type='MobileNetV2')))

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1)

    @register_exit_protocol(Custom)
    class CustomProtocol(ExitProtocol):
        def cost_markers(self):
            return [self.backbone.a, ExitMarker(self.backbone.b,
                                                'forward_pre')]

    assert exit_protocol(Custom()).cost_markers()[1].hook == 'forward_pre'


def test_resnet_cifar_with_generic_head():
    model = MODELS.build(dict(  # (cannot be built on the meta device)
        type='MultiExitClassifier',
        backbone=dict(type='ResNet_CIFAR', depth=18,
                      out_indices=(0, 1, 2, 3)),
        head=dict(type='GenericExitHead', num_classes=10, in_channels=None)))
    rows = exit_costs(model, (3, 32, 32))
    # ResNet-18 on CIFAR: the usual 0.56 GMACs (+ ReLUs) at the last exit.
    assert rows[-1]['mflops'] == pytest.approx(556.1, rel=0.01)
    assert rows[-1]['params_m'] == pytest.approx(
        sum(p.numel() for p in model.parameters()) / 1e6)


def test_default_input_shape_from_configs():
    """From the config's test pipeline (or CIFAR's native size), never from
    the model's type; a model-only config fixes no size and says so."""
    cifar = Config.fromfile(osp.join(
        ROOT, 'configs/msdnet/msdnet_msdnet-8e_1xb128_cifar100.py'))
    imagenet = Config.fromfile(osp.join(
        ROOT, 'configs/msdnet/msdnet_msdnet-5e_8xb128_in1k.py'))
    assert default_input_shape(cifar) == (3, 32, 32)
    assert default_input_shape(imagenet) == (3, 224, 224)
    model_only = Config.fromfile(
        osp.join(ROOT, 'configs/_base_/models/msdnet_imagenet.py'))
    with pytest.raises(ValueError, match=r'--shape H W'):
        default_input_shape(model_only)
    cifar.test_dataloader = dict(dataset=dict(pipeline=[
        dict(type='Resize', scale=28), dict(type='PackInputs')]))
    assert default_input_shape(cifar) == (3, 28, 28)
    imagenet.test_dataloader = dict(dataset=dict(  # a dataset wrapper
        type='HeldOutSplit', dataset=dict(pipeline=[
            dict(type='ResizeEdge', scale=256),
            dict(type='CenterCrop', crop_size=(160, 128))])))  # (w, h)
    assert default_input_shape(imagenet) == (3, 128, 160)
    with pytest.raises(ValueError, match='input_shape must be'):
        exit_costs(build_on_meta(msdnet_cifar(2)), (32, 32))


def _load_tool():
    return load_tool('tools/analysis/get_flops.py')


def test_get_flops_tool_writes_json_and_table(tmp_path, monkeypatch, capsys):
    tool = _load_tool()
    out = tmp_path / 'flops.json'
    monkeypatch.setattr('sys.argv', [
        'get_flops.py',
        osp.join(ROOT, 'configs/_base_/models/msdnet_cifar.py'),
        '--shape', '32',  # a model-only config fixes no input size
        '--out', str(out), '--cfg-options', 'model.backbone.nBlocks=4'])
    tool.main()
    result = json.loads(out.read_text())
    assert result['input_shape'] == [3, 32, 32]
    assert [e['exit'] for e in result['exits']] == [1, 2, 3, 4]
    assert [e['mflops'] for e in result['exits']] == pytest.approx(
        CIFAR_REFERENCE[4][0], rel=0.01)
    table = capsys.readouterr().out
    assert '| exit | MFLOPs | params M |' in table
    assert '| 4 | 38.04 | 1.42 |' in table

    # --shape overrides the config's size (224, its test pipeline's crop)
    config = osp.join(ROOT, 'configs/msdnet/msdnet_msdnet-5e_8xb128_in1k.py')
    default = tool.get_flops(config)
    assert default['input_shape'] == [3, 224, 224]
    assert [e['mflops'] for e in default['exits']] == pytest.approx(
        IMAGENET_REFERENCE[4][0], rel=0.01)
    shaped = tool.get_flops(config, [192])
    assert shaped['input_shape'] == [3, 192, 192]
    assert shaped['exits'][0]['mflops'] == pytest.approx(
        default['exits'][0]['mflops'] * (192 / 224)**2, rel=0.02)


@pytest.mark.parametrize('config, options, reference', [
    ('configs/msdnet/msdnet_msdnet-8e_1xb128_cifar100.py', {},
     CIFAR_REFERENCE[8]),
    ('configs/msdnet/msdnet_msdnet-8e_1xb128_cifar100.py',
     {'model.backbone.nBlocks': 5},
     CIFAR_REFERENCE[5]),
    ('configs/msdnet/msdnet_msdnet-5e_8xb128_in1k.py', {},
     IMAGENET_REFERENCE[4]),
    ('configs/msdnet/msdnet_msdnet-5e_8xb128_in1k.py',
     {'model.backbone.step': 7, 'model.backbone.base': 7},
     IMAGENET_REFERENCE[7]),
])
def test_get_flops_on_the_paper_configs(config, options, reference):
    """The user-facing configs themselves give the reference numbers."""
    rows = _load_tool().get_flops(osp.join(ROOT, config),
                                  cfg_options=options)['exits']
    mflops, params = reference
    assert [r['mflops'] for r in rows] == pytest.approx(mflops, rel=0.01)
    assert rows[-1]['params_m'] == pytest.approx(params, rel=0.01)


def test_inline_collaboration_exits_count_their_collaboration_modules():
    """With IMTA's inline collaboration, exit k > 1's cost includes its
    Linear-BN1d-ReLU of exit k-1's logits and the wider Linear: the same
    model without it plus exactly those layers, by parameter count and by
    single-layer cost; exit 1 is unchanged."""
    cfg = msdnet_cifar(4, num_classes=10)
    cfg['head']['inline_collaboration'] = True
    isc = exit_costs(build_on_meta(cfg), (3, 32, 32))
    plain = exit_costs(build_on_meta(msdnet_cifar(4, num_classes=10)),
                       (3, 32, 32))
    width = 128  # the CIFAR exits' inter_channels
    extra = module_cost(nn.Sequential(nn.Linear(10, width),
                                      nn.BatchNorm1d(width),
                                      nn.ReLU()).eval(),
                        torch.zeros(1, 10))
    # the wider Linear: width × 10 more weights, no second bias
    extra_linear = module_cost(nn.Linear(width, 10, bias=False),
                               torch.zeros(1, width))
    assert isc[0] == plain[0]
    for k in range(1, 4):
        assert isc[k]['mflops'] == pytest.approx(
            plain[k]['mflops'] + k * (extra['mflops'] +
                                      extra_linear['mflops']), rel=1e-12)
        assert isc[k]['params_m'] == pytest.approx(
            plain[k]['params_m'] + k * (extra['params_m'] +
                                        width * 10 / 1e6), rel=1e-12)
