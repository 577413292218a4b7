"""Early exit exported to ONNX (hdkd_mm.deploy): the onnxruntime runtime
takes the PyTorch early exit's decisions on tiny random models (MSDNet,
ResNet-18, a collaborative head), imports neither torch nor OpenMMLab, and
rejects bad input clearly.

Tolerance of the logits: ONNX Runtime fuses each BatchNorm into its
convolution (weights rescaled in float32) and its MLAS kernels sum in
another order than PyTorch's oneDNN/BLAS ones, so the logits differ by
float32 rounding accumulated over the layers: up to 5e-7 of the largest
|logit| on these tiny models, 7e-7 and 6e-6 on the trained demo MSDNet and
ResNet-18 (tools/deploy/verify_export.py, 10,000 images; deeper and wider
sums round more). 1e-5 of the largest |logit| holds for all of them and
still catches any real difference (a wrong weight, a missing layer, batch
statistics), which is orders of magnitude larger. The thresholds are put
midway between two neighbouring confidences, far (> 1e-4 relative) from
every sample's, so rounding at that level cannot flip a decision and exits
and predictions must be equal exactly.
"""
import json
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import hdkd_mm  # noqa: F401
from hdkd_mm.analysis.flops import exit_costs
from hdkd_mm.deploy import OnnxEarlyExit
from hdkd_mm.deploy.export import export_early_exit
from hdkd_mm.evaluation.budgeted import apply_thresholds
from hdkd_mm.evaluation.confidence import confidence
from hdkd_mm.evaluation.early_exit import EarlyExitPredictor
from hdkd_mm.models.exits import (ExitMarker, ExitProtocol,
                                  register_exit_protocol)

from model_helpers import perturb_norms

INF = float('inf')
K = 4
RTOL = 1e-5  # of the largest |logit|, see the module doc


PREPROCESSOR = dict(mean=[72.9] * 3, std=[90.0] * 3, num_classes=10)


def msdnet_cfg(**head):
    return dict(
        type='MultiExitClassifier',
        backbone=dict(type='MSDNet', nBlocks=K, stepmode='even', step=1,
                      base=1, nChannels=8, growthRate=4, grFactor=(1, 2, 4),
                      bnFactor=(1, 2, 4), stem='cifar'),
        head=dict(type='MSDNetExitHead', num_classes=10, in_channels=None,
                  variant='cifar', inter_channels=16, **head),
        data_preprocessor=PREPROCESSOR)


RESNET = dict(
    type='MultiExitClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=8,
                  base_channels=8, out_indices=(0, 1, 2, 3)),
    head=dict(type='GenericExitHead', num_classes=10, in_channels=None),
    data_preprocessor=PREPROCESSOR)

class DeployToyNet(nn.Module):
    """A backbone whose exit protocol computes in ``start`` (a stem), keeps
    two tensors in the state (one passed through unchanged) and makes each
    exit's feature a tensor of its own: the export paths MSDNet and ResNet
    do not take."""

    def __init__(self, width=4, num_stages=K):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1),
                                  nn.BatchNorm2d(width), nn.ReLU())
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, 1, 1),
                          nn.BatchNorm2d(width), nn.ReLU())
            for _ in range(num_stages))
        self.exit_channels = [width] * num_stages

    def forward(self, x):
        return DeployToyProtocol(self).features(x)


@register_exit_protocol(DeployToyNet)
class DeployToyProtocol(ExitProtocol):

    def exit_channels(self):
        return list(self.backbone.exit_channels)

    def cost_markers(self):
        return [ExitMarker(stage) for stage in self.backbone.stages]

    @property
    def num_exits(self):
        return len(self.backbone.stages)

    def start(self, x):
        return (self.backbone.stem(x), x.mean(1, keepdim=True))

    def run(self, k, state):
        h, skip = state
        h = self.backbone.stages[k](h)
        return (h, skip), h + skip  # skip passes through unchanged


MODELS.register_module(module=DeployToyNet, force=True)
TOY = dict(type='MultiExitClassifier', backbone=dict(type='DeployToyNet'),
           head=dict(type='GenericExitHead', num_classes=10,
                     in_channels=None),
           data_preprocessor=PREPROCESSOR)


MODELS_CFG = dict(msdnet=(msdnet_cfg(), (3, 32, 32)),
                  resnet18=(RESNET, (3, 16, 16)),
                  collaborative=(msdnet_cfg(inline_collaboration=True),
                                 (3, 32, 32)),
                  toy=(TOY, (3, 8, 8)))


def build(cfg, seed=0):
    """A random model whose BatchNorm statistics matter and whose exits are
    decisive enough (classifiers scaled up) for confidences to spread."""
    init_default_scope('mmpretrain')
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    perturb_norms(model, seed)
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.out_features == 10:
            m.weight.data.mul_(30)
    return model.eval()


def full_logits(model, x):
    with torch.inference_mode():
        return torch.stack(model(x, mode='tensor'), 1).numpy()


def spaced_thresholds(conf, q):
    """Per exit, midway between the two confidences around quantile q
    (never within a rounding error of any sample's); last -inf."""
    thr = np.empty(conf.shape[1])
    for k in range(conf.shape[1] - 1):
        c = np.unique(conf[:, k])
        # the widest gap among the neighbours of quantile q
        lo, hi = int((q - 0.1) * len(c)), int((q + 0.1) * len(c))
        i = lo + int(np.argmax(np.diff(c[lo:hi + 1])))
        thr[k] = (c[i] + c[i + 1]) / 2
        # relative to 1 - c too: near 1, rounding moves 1 - c relatively
        assert c[i + 1] - c[i] > 1e-4 * min(abs(c[i + 1]), abs(1 - c[i]))
    thr[-1] = -INF
    return thr


@pytest.fixture(scope='module', params=sorted(MODELS_CFG))
def exported(request, tmp_path_factory):
    """(model, export dir, test images, thresholds) per model kind."""
    cfg, shape = MODELS_CFG[request.param]
    model = build(cfg)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((300, ) + shape, generator=gen)
    thr = spaced_thresholds(confidence(full_logits(model, x))[0], 0.6)
    costs = [r['mflops'] for r in exit_costs(model, shape)]
    out = str(tmp_path_factory.mktemp(request.param))
    export_early_exit(model, out, thr, shape, costs,
                      classes=[f'c{i}' for i in range(10)])
    return model, out, x, thr


def torch_early_exit(model, x, thr, name='max_softmax'):
    res = EarlyExitPredictor(model, thr, confidence=name)(x)
    return res.exit0, res.pred.numpy(), res.logits.numpy()


def test_runtime_equals_pytorch_early_exit(exported):
    model, out, x, thr = exported
    onnx_model = OnnxEarlyExit(out, intra_op_threads=1)
    np.testing.assert_array_equal(onnx_model.thresholds, thr)
    exits, pred, logits = torch_early_exit(model, x, thr)
    got = onnx_model(x.numpy())
    np.testing.assert_array_equal(got['exit'] - 1, exits)
    np.testing.assert_array_equal(got['pred'], pred)
    assert len(set(exits.tolist())) == K  # every exit is used
    scale = np.abs(logits).max()
    np.testing.assert_allclose(got['logits'], logits, rtol=0,
                               atol=RTOL * scale)
    np.testing.assert_allclose(onnx_model.all_exits(x.numpy()),
                               full_logits(model, x), rtol=0,
                               atol=RTOL * scale)
    costs = onnx_model.exit_mflops
    np.testing.assert_array_equal(got['mflops'], costs[exits])
    # later stages ran only on the samples still undecided
    left = [int((exits >= k).sum()) for k in range(K)]
    assert got['rows'] == left


def test_onnx_rows_do_not_depend_on_the_batch(exported):
    """Why the runtime needs no padding guard (min_rows=1): ONNX Runtime's
    CPU kernels give every row bitwise the same logits whatever the batch
    size, so the routed logits are bitwise those of one full batch and the
    routing equals the simulation on the runtime's own full logits."""
    _, out, x, thr = exported
    onnx_model = OnnxEarlyExit(out, intra_op_threads=1)
    x = x[:64].numpy()
    full = onnx_model.all_exits(x)
    for b in (1, 2, 3, 17):
        parts = np.concatenate([onnx_model.all_exits(x[i:i + b])
                                for i in range(0, len(x), b)])
        np.testing.assert_array_equal(parts, full)
    got = onnx_model(x)
    exits = apply_thresholds(confidence(full)[0], thr)
    np.testing.assert_array_equal(got['exit'] - 1, exits)
    np.testing.assert_array_equal(got['logits'],
                                  full[np.arange(len(x)), exits])


def test_batch_of_one_and_padding_guard(exported):
    """Batch 1 and padded sub-batches (min_rows=3) take the same
    decisions as one big batch."""
    _, out, x, thr = exported
    x = x[:40].numpy()
    whole = OnnxEarlyExit(out)(x)
    singles = [OnnxEarlyExit(out)(x[i:i + 1]) for i in range(len(x))]
    padded = OnnxEarlyExit(out, min_rows=3)(x)
    for key in ('exit', 'pred'):
        np.testing.assert_array_equal(
            np.concatenate([s[key] for s in singles]), whole[key])
        np.testing.assert_array_equal(padded[key], whole[key])


def test_json_and_folder_contents(exported):
    model, out, _, thr = exported
    with open(osp.join(out, 'early_exit.json')) as f:
        spec = json.load(f)
    assert spec['format_version'] == 1 and spec['num_exits'] == K
    assert spec['confidence'] == 'max_softmax'
    assert spec['thresholds'][-1] == '-inf'
    assert spec['classes'] == [f'c{i}' for i in range(10)]
    assert spec['exit_mflops'] == sorted(spec['exit_mflops'])
    pre = model.data_preprocessor
    np.testing.assert_allclose(spec['input']['mean'], pre.mean.flatten())
    for s in spec['stages'][:-1]:
        assert s['feature'] in s['outputs'] or s['feature'] == 'feature'
    assert spec['stages'][-1]['outputs'] == []  # the last stage keeps no state
    # only the toy's protocol computes before stage 1
    assert (spec['start'] is not None) == isinstance(model.backbone,
                                                     DeployToyNet)
    collab = [e['collaborative'] for e in spec['exits']]
    assert collab == [False] + [bool(
        getattr(model.head.exits[1], 'collaboration', None))] * (K - 1)
    for name in [s['file'] for s in spec['stages']] + \
            [e['file'] for e in spec['exits']] + ['runtime.py',
                                                  'confidence.py',
                                                  'routing.py']:
        assert osp.isfile(osp.join(out, name))


def test_preprocess_matches_data_preprocessor(exported):
    model, out, _, _ = exported
    onnx_model = OnnxEarlyExit(out)
    raw = torch.randint(0, 256, (5, ) + onnx_model.input_shape,
                        dtype=torch.uint8)
    want = model.data_preprocessor(dict(inputs=raw), False)['inputs']
    got = onnx_model.preprocess(raw.numpy())
    np.testing.assert_array_equal(got, want.numpy())
    # channels-last raw images too
    np.testing.assert_array_equal(
        onnx_model.preprocess(raw.permute(0, 2, 3, 1).numpy()), got)


@pytest.mark.parametrize('name', ['entropy', 'margin'])
def test_other_confidence_measures(name, tmp_path):
    """Thresholds of another measure route the same on both sides."""
    model = build(msdnet_cfg())
    x = torch.randn((200, 3, 32, 32),
                    generator=torch.Generator().manual_seed(2))
    thr = spaced_thresholds(confidence(full_logits(model, x), name)[0], 0.5)
    costs = [1.0, 2.0, 3.0, 4.0]
    export_early_exit(model, str(tmp_path), thr, (3, 32, 32), costs,
                      confidence=name)
    onnx_model = OnnxEarlyExit(str(tmp_path))
    assert onnx_model.confidence_name == name
    exits, pred, _ = torch_early_exit(model, x, thr, name)
    got = onnx_model(x.numpy())
    np.testing.assert_array_equal(got['exit'] - 1, exits)
    np.testing.assert_array_equal(got['pred'], pred)
    assert len(set(exits.tolist())) > 2


RUNTIME_ONLY = r'''
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from runtime import OnnxEarlyExit
m = OnnxEarlyExit(sys.argv[1], intra_op_threads=1)
x = np.random.RandomState(0).randn(7, *m.input_shape).astype(np.float32)
out = m(x)
heavy = [name for name in ('torch', 'mmengine', 'mmpretrain', 'mmcv',
                           'hdkd_mm', 'timm') if name in sys.modules]
print(json.dumps(dict(heavy=heavy, exit=out['exit'].tolist())))
'''


def test_runtime_needs_only_numpy_and_onnxruntime(exported, tmp_path):
    """The export folder alone runs in a fresh interpreter without torch,
    mmengine, mmpretrain or hdkd_mm being imported."""
    _, out, x, _ = exported
    folder = tmp_path / 'deployed'
    shutil.copytree(out, folder)
    proc = subprocess.run(
        [sys.executable, '-c', RUNTIME_ONLY, str(folder)], cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
        env=dict(PATH='/usr/bin:/bin', OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result['heavy'] == []
    assert len(result['exit']) == 7


# ------------------------------------------------------------------ bad input
def test_export_refuses_train_mode(tmp_path):
    model = build(msdnet_cfg()).train()
    with pytest.raises(RuntimeError, match=r'eval mode.*model\.eval\(\)'):
        export_early_exit(model, str(tmp_path), [0.5] * K, (3, 32, 32),
                          [1.0] * K)
    model.eval()
    with pytest.raises(ValueError, match='one value per exit.*K = 4'):
        export_early_exit(model, str(tmp_path), [0.5, -INF], (3, 32, 32),
                          [1.0] * K)
    with pytest.raises(ValueError, match="'softmax'.*max_softmax"):
        export_early_exit(model, str(tmp_path), [0.5] * K, (3, 32, 32),
                          [1.0] * K, confidence='softmax')


def _edited(out, tmp_path, **changes):
    folder = tmp_path / 'edited'
    shutil.copytree(out, folder)
    path = folder / 'early_exit.json'
    spec = json.loads(path.read_text())
    spec.update(changes)
    path.write_text(json.dumps(spec))
    return str(folder)


def test_runtime_rejects_wrong_thresholds_and_confidence(exported, tmp_path):
    _, out, x, _ = exported
    with pytest.raises(ValueError, match=r'one value per exit, K = 4.*got 3'):
        OnnxEarlyExit(out, thresholds=[0.5, 0.5, -INF])
    with pytest.raises(ValueError, match='must not be NaN'):
        OnnxEarlyExit(out, thresholds=[0.5, float('nan'), 0.5, -INF])
    bad = _edited(out, tmp_path, thresholds=[0.5, '-inf'])
    with pytest.raises(ValueError, match=r'early_exit\.json: "thresholds": '
                       r'thresholds must have one value per exit, K = 4'):
        OnnxEarlyExit(bad)
    shutil.rmtree(bad)
    bad = _edited(out, tmp_path, confidence='softmax_max')
    with pytest.raises(ValueError, match=r'"confidence": \'softmax_max\' is '
                       r'not a known.*max_softmax, entropy, margin'):
        OnnxEarlyExit(bad)
    shutil.rmtree(bad)
    bad = _edited(out, tmp_path, format_version=99)
    with pytest.raises(ValueError, match='version 99.*re-export'):
        OnnxEarlyExit(bad)
    onnx_model = OnnxEarlyExit(out)
    with pytest.raises(ValueError, match='float32 batch'):
        onnx_model(x.numpy().astype(np.float64))
    with pytest.raises(ValueError, match='float32 batch'):
        onnx_model(x.numpy()[:0])
