"""Export a multi-exit classifier for early-exit inference on ONNX Runtime:
one ONNX graph per backbone stage and per exit classifier, and
``early_exit.json`` (see :mod:`hdkd_mm.deploy.runtime`, which runs them).

The stages are the backbone's exit protocol (:func:`hdkd_mm.models.exits.
exit_protocol`): ``start(x)`` (exported as ``start.onnx`` only when it
computes something), then stage k maps the state (a flat tuple of
batch-first tensors) to the next state and exit k's feature; the last stage
outputs only the feature, so computation no exit reads (MSDNet's finer
scales in its last block) is dropped by the exporter's dead-code
elimination. Exit k maps the feature (and, for a collaborative exit, exit
k-1's logits) to logits. Every graph has a dynamic batch axis.

Exported with the TorchScript-based exporter (``dynamo=False``): torch
2.14's default, the ``torch.export``-based one, needs the ``onnxscript``
package, which the project does not install, and these graphs are plain
convolutional feed-forward code that the TorchScript tracer handles.
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from hdkd_mm.evaluation.confidence import check_confidence
from hdkd_mm.models.exits import exit_protocol
from hdkd_mm.models.heads.multi_exit_head import CollaborativeExit

from . import runtime as rt

DEFAULT_OPSET = 17
JSON_NAME = 'early_exit.json'

__all__ = ['export_early_exit', 'check_exportable', 'preprocess_spec',
           'JSON_NAME']


def check_exportable(model: nn.Module) -> None:
    """Eval mode (BatchNorm with running statistics, no dropout), and a
    multi-exit head."""
    training = [name or type(model).__name__
                for name, m in model.named_modules() if m.training]
    if training:
        raise RuntimeError(
            f'Exporting needs the model in eval mode: {len(training)} '
            f'modules are in train mode (e.g. {training[:3]}), whose '
            'BatchNorm would be exported with batch statistics. Call '
            'model.eval() before exporting.')
    if getattr(model.head, 'exits', None) is None:
        raise ValueError(f'Exporting for early exit needs a multi-exit head '
                         f'with `exits`; got {type(model.head).__name__}.')


class _StageGraph(nn.Module):
    """Stage ``k`` as a module: state tensors in, state tensors (unless
    ``last``) and, when it is not one of them, the feature out."""

    def __init__(self, model, proto, k: int, last: bool, feature_at: int):
        super().__init__()
        self.model = model  # registers the parameters the trace reads
        self.proto, self.k, self.last = proto, k, last
        self.feature_at = feature_at

    def forward(self, *state):
        state, feat = self.proto.run(self.k, tuple(state))
        if self.last:
            return feat
        if self.feature_at >= 0:
            return tuple(state)
        return tuple(state) + (feat, )


class _StartGraph(nn.Module):

    def __init__(self, model, proto):
        super().__init__()
        self.model, self.proto = model, proto

    def forward(self, x):
        return tuple(self.proto.start(x))


class _ExitGraph(nn.Module):

    def __init__(self, head, k: int):
        super().__init__()
        self.head, self.k = head, k

    def forward(self, feat, prev_logits=None):
        return self.head.exit_forward(self.k, feat, prev_logits)


def _export(module, args, path, inputs, outputs, opset):
    # The exporter puts `module` back into the mode it found it in, and
    # train(True) on a wrapper would switch the whole model to training
    # (BatchNorm statistics updated by the next forward): eval() first.
    module.eval()
    torch.onnx.export(
        module, tuple(args), path, dynamo=False, opset_version=opset,
        input_names=inputs, output_names=outputs,
        dynamic_axes={n: {0: 'batch'} for n in inputs + outputs},
        do_constant_folding=True)


def _identity_index(feat, state) -> int:
    for i, s in enumerate(state):
        if s is feat:
            return i
    return -1


def preprocess_spec(model: nn.Module, input_shape: Sequence[int],
                    test_pipeline: Optional[Sequence] = None) -> Dict:
    """``input`` of the JSON: shape, per-channel mean/std and channel flip
    of the model's data_preprocessor (identity when it does not
    normalise), and the test pipeline's transform types."""
    pre = getattr(model, 'data_preprocessor', None)
    c = int(input_shape[0])
    mean, std = [0.0] * c, [1.0] * c
    if getattr(pre, '_enable_normalize', False):
        mean = pre.mean.flatten().tolist()
        std = pre.std.flatten().tolist()
    return dict(shape=[int(s) for s in input_shape], mean=mean, std=std,
                to_rgb=bool(getattr(pre, '_channel_conversion', False)),
                dtype='float32', layout='NCHW',
                test_pipeline=[dict(t) for t in (test_pipeline or [])])


def _jsonable_thresholds(thr: np.ndarray) -> List:
    return [float(t) if np.isfinite(t) else ('inf' if t > 0 else '-inf')
            for t in thr]


@torch.no_grad()
def export_early_exit(model: nn.Module, out_dir: str, thresholds,
                      input_shape: Sequence[int],
                      exit_mflops: Sequence[float],
                      confidence: str = 'max_softmax',
                      classes: Optional[Sequence[str]] = None,
                      test_pipeline: Optional[Sequence] = None,
                      source: Optional[Dict] = None,
                      opset: int = DEFAULT_OPSET,
                      check: bool = True) -> Dict:
    """Write the graphs, ``early_exit.json`` and ``runtime.py`` to
    ``out_dir``; returns the JSON dict.

    Args:
        model: a built multi-exit classifier in eval mode.
        thresholds: K per-exit thresholds (the last is not read).
        input_shape: ``(C, H, W)`` of one preprocessed image.
        exit_mflops: K cumulative per-exit costs
            (:func:`hdkd_mm.analysis.flops.exit_costs`).
        confidence: a name of :data:`hdkd_mm.deploy.runtime.CONFIDENCES`.
        classes: class names, if known.
        test_pipeline: the config's test pipeline (recorded for users who
            feed raw images).
        source: recorded as is (config and checkpoint paths).
        opset: ONNX opset (>= 17).
        check: run the exported graphs on the trace batch with ONNX Runtime
            and compare with PyTorch (a broken export fails here).
    """
    check_exportable(model)
    proto = exit_protocol(model.backbone)
    k_exits = len(model.head.exits)
    if proto.num_exits != k_exits:
        raise ValueError(f'The backbone has {proto.num_exits} stages but the '
                         f'head has {k_exits} exits.')
    thr = rt.thresholds_list(thresholds, k_exits, 'thresholds')
    check_confidence(confidence)
    costs = [float(c) for c in exit_mflops]
    if len(costs) != k_exits:
        raise ValueError(f'exit_mflops must hold {k_exits} costs; got '
                         f'{costs}')
    if opset < 17:
        raise ValueError(f'opset must be >= 17; got {opset}')
    os.makedirs(out_dir, exist_ok=True)

    param = next(model.parameters())
    gen = torch.Generator().manual_seed(0)
    shape = tuple(int(s) for s in input_shape)
    x = torch.randn((2, ) + shape, generator=gen).to(param)
    state = proto.start(x)
    spec = dict(format=rt.FORMAT, format_version=rt.FORMAT_VERSION,
                num_exits=k_exits, num_classes=int(model.head.num_classes),
                classes=list(classes) if classes else None,
                input=preprocess_spec(model, input_shape, test_pipeline),
                start=None, stages=[], exits=[],
                thresholds=_jsonable_thresholds(thr), confidence=confidence,
                exit_mflops=costs, opset=opset,
                exporter=f'torch {torch.__version__} (dynamo=False)',
                source=source or {})
    if not (len(state) == 1 and state[0] is x):
        outs = [f'state_{i}' for i in range(len(state))]
        _export(_StartGraph(model, proto), [x], osp.join(out_dir,
                                                        'start.onnx'),
                ['input'], outs, opset)
        spec['start'] = dict(file='start.onnx', inputs=['input'],
                             outputs=outs)
    prev = None
    for k in range(k_exits):
        last = k == k_exits - 1
        new, feat = proto.run(k, tuple(state))
        at = -1 if last else _identity_index(feat, new)
        ins = [f'in_{i}' for i in range(len(state))]
        outs = [] if last else [f'out_{i}' for i in range(len(new))]
        feat_name = outs[at] if at >= 0 else 'feature'
        names = outs + ([] if at >= 0 else ['feature'])
        name = f'stage_{k + 1}.onnx'
        _export(_StageGraph(model, proto, k, last, at), state,
                osp.join(out_dir, name), ins, names, opset)
        spec['stages'].append(dict(file=name, inputs=ins, outputs=outs,
                                   feature=feat_name))
        collab = isinstance(model.head.exits[k], CollaborativeExit) and \
            model.head.exits[k].collaboration is not None
        ex_ins = ['feature'] + (['prev_logits'] if collab else [])
        ex_args = [feat] + ([prev] if collab else [])
        name = f'exit_{k + 1}.onnx'
        _export(_ExitGraph(model.head, k), ex_args, osp.join(out_dir, name),
                ex_ins, ['logits'], opset)
        spec['exits'].append(dict(file=name, inputs=ex_ins,
                                  outputs=['logits'], collaborative=collab))
        prev = model.head.exit_forward(k, feat, prev)
        state = new
    with open(osp.join(out_dir, JSON_NAME), 'w') as f:
        json.dump(spec, f, indent=1)
    shutil.copyfile(rt.__file__, osp.join(out_dir, 'runtime.py'))
    shutil.copyfile(rt._conf.__file__, osp.join(out_dir, 'confidence.py'))
    shutil.copyfile(rt._routing.__file__, osp.join(out_dir, 'routing.py'))
    if check:
        _check_export(model, out_dir,
                      torch.randn((3, ) + shape, generator=gen).to(param))
    return spec


def _check_export(model, out_dir: str, x: torch.Tensor) -> None:
    """The exported graphs reproduce the model's logits on a batch of
    another size than the trace's (a batch size baked into the graphs
    fails here), to float32 rounding (ONNX Runtime fuses BatchNorm into
    convolutions and sums in another order): a loose bound, 1e-3 of the
    largest logit, that only a broken export exceeds."""
    got = rt.OnnxEarlyExit(out_dir).all_exits(x.float().cpu().numpy())
    want = torch.stack(model(x, mode='tensor'), 1).float().cpu().numpy()
    err = np.abs(got - want).max()
    scale = max(1.0, float(np.abs(want).max()))
    if not err <= 1e-3 * scale:
        raise RuntimeError(
            f'The exported graphs in {out_dir} give logits {err:.3g} away '
            'from PyTorch on a test batch: the export is broken.')
