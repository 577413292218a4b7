"""Per-exit cumulative cost (MFLOPs, parameters) of a multi-exit classifier in
the MSDNet reference convention.

The counting rules and the tracer are in :mod:`hdkd_mm.analysis.cost_tracer`;
which module ends which exit comes from the backbone's exit protocol
(:meth:`~hdkd_mm.models.exits.ExitProtocol.cost_markers`): forward hooks
record ops in execution order, and the backbone ops up to marker k plus the
ops of heads ``head.exits[0..k]`` give exit k's cost.

The input size is the config's (:func:`default_input_shape`, from the test
pipeline) or the caller's (``--shape`` of ``tools/analysis/get_flops.py``);
costs scale with it.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from hdkd_mm.models.exits import ExitMarker, exit_protocol

from .cost_tracer import module_cost, run_traced

__all__ = [
    'ExitMarker', 'exit_costs', 'exit_cost_breakdown', 'module_cost',
    'default_input_shape', 'costs_table'
]


# --------------------------------------------------------------------------
# input size from the config
# --------------------------------------------------------------------------
def _get(obj, key, default=None):
    if obj is None:
        return default
    try:
        return obj.get(key, default)
    except AttributeError:
        return getattr(obj, key, default)


def _native_size(dataset) -> Optional[Tuple[int, int]]:
    """``(32, 32)`` for a CIFAR data set (any dataset type with 'CIFAR' in
    its name, dataset wrappers included), whose images all have that size."""
    while dataset is not None:
        kind = _get(dataset, 'type', '')
        kind = getattr(kind, '__name__', str(kind))
        if 'CIFAR' in kind.upper():
            return (32, 32)
        dataset = _get(dataset, 'dataset')
    return None


def _pipeline_size(cfg) -> Optional[Tuple[int, int]]:
    """``(H, W)`` of the last fixed-size transform of the test pipeline, or
    the native size of a CIFAR test set whose pipeline does not resize."""
    for loader_key in ('test_dataloader', 'val_dataloader'):
        dataset = _get(_get(cfg, loader_key), 'dataset')
        native = _native_size(dataset)
        pipeline = _get(dataset, 'pipeline')
        while not pipeline and _get(dataset, 'dataset') is not None:
            dataset = _get(dataset, 'dataset')  # dataset wrappers
            pipeline = _get(dataset, 'pipeline')
        if not pipeline:
            if native is not None:
                return native
            continue
        size = native
        for t in pipeline:
            kind = str(_get(t, 'type', ''))
            value = None
            if kind == 'CenterCrop':
                value = _get(t, 'crop_size')
            elif kind in ('Resize', 'RandomResizedCrop'):
                value = _get(t, 'scale')
            elif kind == 'CenterPad':
                value = _get(t, 'size')
            if isinstance(value, int):
                size = (value, value)
            elif isinstance(value, (list, tuple)) and len(value) == 2:
                size = (int(value[1]), int(value[0]))  # (w, h) -> (h, w)
        if size is not None:
            return size
    return None


def default_input_shape(cfg) -> Tuple[int, int, int]:
    """``(C, H, W)`` to count a config's model on.

    H×W is taken from the last fixed-size transform (``CenterCrop``,
    ``Resize`` or ``RandomResizedCrop`` with an int or (w, h) size, this
    project's ``CenterPad``) of the test (or val) pipeline, dataset wrappers
    included, or 32×32 for a CIFAR test set whose pipeline does not resize.
    C is ``model.backbone.in_channels`` (3 if unset).

    Args:
        cfg: an MMEngine config (or a dict) with ``model`` and a test or val
            dataloader.

    Raises:
        ValueError: when the config does not fix the input size (e.g. a
            model-only config): give the size on the command line
            (``--shape H W``) or as ``input_shape``.
    """
    model = _get(cfg, 'model')
    if model is None:
        raise ValueError('default_input_shape takes a config with `model` '
                         f'and a test dataloader; got {type(cfg).__name__}.')
    size = _pipeline_size(cfg)
    if size is None:
        raise ValueError(
            'The config does not fix the input size: no test/val pipeline '
            'with a fixed-size transform (CenterCrop, Resize, '
            'RandomResizedCrop, CenterPad) nor a CIFAR test set; give the '
            'size on the command line (--shape H W) or as input_shape=(C, '
            'H, W).')
    channels = int(_get(_get(model, 'backbone'), 'in_channels', 3) or 3)
    return (channels, int(size[0]), int(size[1]))


# --------------------------------------------------------------------------
# per-exit cost
# --------------------------------------------------------------------------
def exit_cost_breakdown(model: nn.Module,
                        input_shape: Sequence[int]) -> Dict:
    """Uncumulated parts of the per-exit cost of a built
    :class:`~hdkd_mm.models.MultiExitClassifier`.

    Returns a dict with lists over exits (ops and parameter counts, not
    millions): ``backbone_ops`` / ``backbone_params`` (cumulative backbone
    work when exit k's feature is ready) and ``head_ops`` / ``head_params``
    (exit k's classifier alone), and ``input_shape``.
    """
    backbone, head = model.backbone, model.head
    exits = getattr(head, 'exits', None)
    if exits is None:
        raise ValueError(f'Per-exit cost needs a multi-exit head with '
                         f'`exits`; got {type(head).__name__}.')
    markers = exit_protocol(backbone).cost_markers()
    if len(markers) != len(exits):
        raise ValueError(
            f'The backbone {type(backbone).__name__} has {len(markers)} exit '
            f'markers but the head has {len(exits)} exits: make the head\'s '
            '`in_channels` match the backbone\'s outputs.')
    if len(input_shape) != 3:
        raise ValueError(
            f'input_shape must be (C, H, W) of one image; got {input_shape!r} '
            '(default_input_shape(cfg) gives the config\'s).')
    param = next(model.parameters())
    x = torch.zeros(1, *input_shape, dtype=param.dtype, device=param.device)
    was_training = model.training
    model.eval()
    try:
        extract = getattr(model, 'extract_feat', backbone)
        tracer, feats = run_traced(backbone, lambda: extract(x), markers)
        missing = [k + 1 for k in range(len(markers))
                   if k not in tracer.snapshots]
        if missing:
            raise RuntimeError(
                f'Exit markers of exits {missing} never ran in the forward '
                f'pass of {type(backbone).__name__}.')
        if isinstance(feats, torch.Tensor):
            feats = (feats, )
        if len(feats) != len(exits):
            raise ValueError(
                f'The backbone returned {len(feats)} features for '
                f'{len(exits)} exits.')
        head_ops, head_params = [], []
        exit_logits = None  # exit k-1's logits (inline collaboration)
        for k, (exit_, feat) in enumerate(zip(exits, feats)):
            head_tracer, exit_logits = run_traced(
                exit_, lambda: head.exit_forward(k, feat, exit_logits))
            head_ops.append(head_tracer.ops)
            head_params.append(head_tracer.params)
    finally:
        model.train(was_training)
    snaps = [tracer.snapshots[k] for k in range(len(markers))]
    return dict(backbone_ops=[s[0] for s in snaps],
                backbone_params=[s[1] for s in snaps],
                head_ops=head_ops, head_params=head_params,
                input_shape=tuple(input_shape))


def exit_costs(model: nn.Module, input_shape: Sequence[int]) -> List[Dict]:
    """Cumulative per-exit cost of a built multi-exit classifier.

    Args:
        model: a :class:`~hdkd_mm.models.MultiExitClassifier` (``backbone``
            with an exit protocol, head with ``exits``), on
            any device (the ``meta`` device works and is fast).
        input_shape: ``(C, H, W)`` of one image (e.g.
            :func:`default_input_shape` of the config).

    Returns:
        one dict per exit: ``exit`` (1-based), ``mflops`` (backbone work up
        to exit k + classifiers 1..k, in millions of ops per image) and
        ``params_m`` (parameters, millions, same scope).
    """
    parts = exit_cost_breakdown(model, input_shape)
    rows, head_ops, head_params = [], 0., 0
    for k, (b_ops, b_params) in enumerate(
            zip(parts['backbone_ops'], parts['backbone_params'])):
        head_ops += parts['head_ops'][k]
        head_params += parts['head_params'][k]
        rows.append(dict(exit=k + 1, mflops=(b_ops + head_ops) / 1e6,
                         params_m=(b_params + head_params) / 1e6))
    return rows


def costs_table(rows: Sequence[Dict]) -> str:
    """Markdown table ``exit | MFLOPs | params M`` of :func:`exit_costs`."""
    lines = ['| exit | MFLOPs | params M |', '|---:|---:|---:|']
    lines += [f"| {r['exit']} | {r['mflops']:.2f} | {r['params_m']:.2f} |"
              for r in rows]
    return '\n'.join(lines)
