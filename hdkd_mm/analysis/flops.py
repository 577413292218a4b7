"""Per-exit cost of a multi-exit classifier in the MSDNet reference convention.

The MSDNet reference (kalviny/MSDNet-PyTorch, ``op_counter.py``) reports, for
one image (batch 1), the *cumulative* cost of exit k: everything the network
has executed when exit k's prediction is ready, earlier classifiers included.
This module reproduces its numbers (the paper's Tables 1-2 FLOPs) and extends
the rules to layer types the reference never met.

Counting convention (ops per sample; "MFLOPs" = ops / 1e6)
---------------------------------------------------------
* ``Conv1d/2d/3d``: multiply-adds ``in/groups * out * prod(kernel) *
  prod(output spatial)``; the conv bias is free (as the reference).
  Transposed convs: ``in * out/groups * prod(kernel) * prod(input spatial)``.
* ``Linear``: ``weight.numel() + bias.numel()`` per input row (one row per
  sample for ``(N, C)`` inputs, exactly the reference; L rows for ``(N, L, C)``
  token inputs).
* Activations (``ReLU``, ``ReLU6``, ``LeakyReLU``, ``PReLU``, ``ELU``,
  ``SELU``, ``CELU``, ``GELU``, ``SiLU``/``Swish``, ``Mish``, ``Hardswish``,
  ``Hardsigmoid`` and MMCV's ``HSwish``/``HSigmoid``, ``Sigmoid``, ``Tanh``,
  ``Softplus``, ``Softmax``/``LogSoftmax``): 1 op per output element (the
  reference counts ``ReLU`` so; the others follow the same rule).
* ``AvgPool*``/``MaxPool*``: ``prod(kernel)`` per output element (the
  reference's ``AvgPool2d`` rule; its ImageNet stem max-pool is counted the
  same way). ``AdaptiveAvgPool*``/``AdaptiveMaxPool*``: 1 op per *input*
  element.
* Free: BatchNorm/SyncBatchNorm, LayerNorm, GroupNorm, InstanceNorm,
  Dropout*, DropPath, Identity, Flatten/Unflatten, padding layers, layer
  scales; tensor concatenation, reshapes and element-wise additions (residual
  and dense connections) are free too, as in the reference.
* Functional compute outside leaf modules (e.g. the attention products of a
  ViT, which MMPretrain and timm run with ``F.scaled_dot_product_attention``)
  is caught with a ``TorchFunctionMode``: ``matmul``/``bmm``/``mm``/``@``
  (multiply-adds), ``F.scaled_dot_product_attention`` (``QKᵀ`` and ``AV``
  multiply-adds + 1 op per attention weight for the softmax), ``F.linear``,
  ``F.conv*``, functional activations/softmax and pools, with the rules above;
  ``mean`` (e.g. the squeeze of timm's squeeze-excitation blocks, the token
  average of a ViT's ``avg_featmap``) as an adaptive average pool: 1 op per
  input element.
* An executed leaf module of any other type raises :class:`TypeError` naming
  the type (never a silent zero); so do ``nn.MultiheadAttention`` and
  ``nn.Transformer*`` layers, whose fused fast paths hide their compute.

Parameters (``params_m``, millions): parameters of the modules that have run
before exit k's feature is ready, plus classifiers 1..k (each parameter
counted once, buffers excluded) - the reference's cumulative count.

Exit markers
------------
Forward hooks record ops in execution order. :func:`exit_stage_modules` names,
per backbone type, the module after whose forward call exit k's feature is
ready (an :class:`ExitMarker` can also fire *before* a module, timm's
``forward_pre`` feature hooks; a module listed n times marks its n-th call).
Backbone ops up to marker k + the ops of heads ``head.exits[0..k]`` give exit
k's cost.
"""
import math
from collections import defaultdict
from typing import (Any, Callable, Dict, List, NamedTuple, Optional, Sequence,
                    Tuple, Union)

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = [
    'ExitMarker', 'exit_stage_modules', 'exit_costs', 'exit_cost_breakdown',
    'module_cost', 'default_input_shape', 'costs_table'
]

# --------------------------------------------------------------------------
# Leaf-module rules
# --------------------------------------------------------------------------
ACTIVATION_TYPES = frozenset({
    'ReLU', 'ReLU6', 'LeakyReLU', 'PReLU', 'RReLU', 'ELU', 'SELU', 'CELU',
    'GELU', 'QuickGELU', 'SiLU', 'Swish', 'Mish', 'Hardswish', 'HardSwish',
    'HSwish', 'Hardsigmoid', 'HardSigmoid', 'HSigmoid', 'Sigmoid', 'Tanh',
    'Hardtanh', 'Softplus', 'Softmax', 'LogSoftmax', 'GELUTanh'
})
# Leaf types that cost nothing by convention (matched by class name too, so
# that MMCV/timm/MMPretrain variants of the same idea are covered).
FREE_TYPES = frozenset({
    'Identity', 'Flatten', 'Unflatten', 'Dropout', 'Dropout1d', 'Dropout2d',
    'Dropout3d', 'AlphaDropout', 'FeatureAlphaDropout', 'DropPath',
    'DropBlock', 'DropChannel', 'LayerScale', 'LayerScale2d',
    'AdaptivePadding', 'ZeroPad2d', 'ConstantPad1d', 'ConstantPad2d',
    'ConstantPad3d', 'ReflectionPad2d', 'ReplicationPad2d', 'Sequential',
    'ModuleList', 'ModuleDict'
})
FREE_BASES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
              nn.modules.dropout._DropoutNd, nn.Identity, nn.Flatten)
UNSUPPORTED_TYPES = (nn.MultiheadAttention, nn.TransformerEncoderLayer,
                     nn.TransformerDecoderLayer, nn.Transformer)


def _batch(tensor: torch.Tensor) -> int:
    return max(int(tensor.shape[0]), 1) if tensor.dim() else 1


def _first_tensor(args) -> Optional[torch.Tensor]:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a
        if isinstance(a, (list, tuple)):
            t = _first_tensor(a)
            if t is not None:
                return t
    return None


def _prod(values) -> int:
    return int(math.prod(values))


def _kernel_numel(kernel_size, dims: int) -> int:
    if isinstance(kernel_size, int):
        return kernel_size**dims
    return _prod(kernel_size)


def _conv_ops(out: torch.Tensor, in_channels: int, groups: int,
              kernel: Sequence[int]) -> float:
    """Multiply-adds of a convolution per sample."""
    out_per_sample = out.numel() / _batch(out)
    return out_per_sample * (in_channels / groups) * _prod(kernel)


def _linear_ops(x: torch.Tensor, weight: torch.Tensor,
                bias: Optional[torch.Tensor]) -> float:
    rows = x.numel() / (_batch(x) * weight.shape[-1]) if x.dim() > 1 \
        else 1
    return rows * (weight.numel() + (bias.numel() if bias is not None else 0))


def leaf_ops(module: nn.Module, inputs: Tuple, output: Any) -> float:
    """Ops per sample of one call of a leaf module (see the module doc).

    Raises:
        TypeError: for a module type without a rule.
    """
    name = type(module).__name__
    x = _first_tensor(inputs)
    out = _first_tensor([output])
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return (x.numel() / _batch(x)) * (module.out_channels /
                                          module.groups) * _prod(
                                              module.kernel_size)
    if isinstance(module, nn.modules.conv._ConvNd):
        return _conv_ops(out, module.in_channels, module.groups,
                         module.kernel_size)
    if isinstance(module, nn.Linear):
        return _linear_ops(x, module.weight, module.bias)
    if isinstance(module, (nn.modules.pooling._AvgPoolNd,
                           nn.modules.pooling._MaxPoolNd)):
        dims = out.dim() - 2
        return out.numel() / _batch(out) * _kernel_numel(
            module.kernel_size, dims)
    if isinstance(module, (nn.modules.pooling._AdaptiveAvgPoolNd,
                           nn.modules.pooling._AdaptiveMaxPoolNd)):
        return x.numel() / _batch(x)
    if name in ACTIVATION_TYPES:
        return out.numel() / _batch(out)
    if isinstance(module, FREE_BASES) or name in FREE_TYPES:
        return 0.
    raise TypeError(
        f'Cost counter: unknown layer type {name} '
        f'({type(module).__module__}.{type(module).__qualname__}): no rule '
        'to count its operations; add one to hdkd_mm/analysis/flops.py '
        '(leaf_ops) rather than counting it as zero.')


# --------------------------------------------------------------------------
# Functional compute outside leaf modules
# --------------------------------------------------------------------------
def _matmul_ops(args, kwargs, out) -> float:
    a = args[0]
    inner = a.shape[-1] if a.dim() > 0 else 1
    return out.numel() / _batch(out) * inner if out.dim() > 2 \
        else out.numel() * inner


def _sdpa_ops(args, kwargs, out) -> float:
    q, k, v = args[:3]
    batch = _batch(q)
    heads_q = q.numel() / (batch * q.shape[-1] * q.shape[-2])
    length_q, length_k = q.shape[-2], k.shape[-2]
    weights = heads_q * length_q * length_k  # attention weights per sample
    return weights * (q.shape[-1] + v.shape[-1]) + weights


def _elementwise_ops(args, kwargs, out) -> float:
    return out.numel() / _batch(out)


def _functional_linear(args, kwargs, out) -> float:
    x = args[0]
    weight = args[1] if len(args) > 1 else kwargs['weight']
    bias = args[2] if len(args) > 2 else kwargs.get('bias')
    return _linear_ops(x, weight, bias)


def _functional_conv(args, kwargs, out) -> float:
    weight = args[1] if len(args) > 1 else kwargs['weight']
    groups = args[6] if len(args) > 6 else kwargs.get('groups', 1)
    return _conv_ops(out, weight.shape[1] * groups, groups, weight.shape[2:])


def _functional_pool(args, kwargs, out) -> float:
    kernel = args[1] if len(args) > 1 else kwargs['kernel_size']
    return out.numel() / _batch(out) * _kernel_numel(kernel, out.dim() - 2)


def _functional_adaptive_pool(args, kwargs, out) -> float:
    return args[0].numel() / _batch(args[0])


_FUNCTIONAL_RULES: Dict[Callable, Callable] = {}
for _f in (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__,
           torch.bmm, torch.Tensor.bmm, torch.mm, torch.Tensor.mm):
    _FUNCTIONAL_RULES[_f] = _matmul_ops
_FUNCTIONAL_RULES[F.scaled_dot_product_attention] = _sdpa_ops
_FUNCTIONAL_RULES[F.linear] = _functional_linear
for _f in (F.conv1d, F.conv2d, F.conv3d):
    _FUNCTIONAL_RULES[_f] = _functional_conv
for _f in (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.max_pool1d,
           F.max_pool2d, F.max_pool3d):
    _FUNCTIONAL_RULES[_f] = _functional_pool
for _f in (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
           F.adaptive_avg_pool3d, F.adaptive_max_pool1d,
           F.adaptive_max_pool2d, F.adaptive_max_pool3d, torch.mean,
           torch.Tensor.mean):
    _FUNCTIONAL_RULES[_f] = _functional_adaptive_pool
for _f in (F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu,
           torch.Tensor.relu_, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu,
           F.gelu, F.silu, F.mish, F.hardswish, F.hardsigmoid, F.sigmoid,
           torch.sigmoid, torch.Tensor.sigmoid, torch.Tensor.sigmoid_,
           F.tanh, torch.tanh, torch.Tensor.tanh, F.softplus, F.softmax,
           torch.softmax, torch.Tensor.softmax, F.log_softmax,
           torch.log_softmax, torch.Tensor.log_softmax):
    _FUNCTIONAL_RULES[_f] = _elementwise_ops


class _FunctionalCounter(TorchFunctionMode):
    """Counts the functional ops of :data:`_FUNCTIONAL_RULES` that run
    outside hooked leaf modules (``tracer.leaf_depth == 0``)."""

    def __init__(self, tracer: '_CostTracer'):
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        rule = _FUNCTIONAL_RULES.get(func)
        if rule is not None and self.tracer.leaf_depth == 0:
            result = out[0] if isinstance(out, (tuple, list)) else out
            self.tracer.ops += float(rule(args, kwargs, result))
        return out


# --------------------------------------------------------------------------
# Tracing
# --------------------------------------------------------------------------
class ExitMarker(NamedTuple):
    """Exit k's feature is ready after (``hook='forward'``) or before
    (``'forward_pre'``) a call of ``module``."""

    module: nn.Module
    hook: str = 'forward'


MarkerLike = Union[nn.Module, ExitMarker]


def _is_leaf(module: nn.Module) -> bool:
    return next(module.children(), None) is None


class _CostTracer:
    """Context manager hooking every module under ``root``: running ``ops``
    and ``params`` totals, plus snapshots of both at the exit markers."""

    def __init__(self, root: nn.Module,
                 markers: Sequence[MarkerLike] = ()):
        self.root = root
        self.markers = [m if isinstance(m, ExitMarker) else ExitMarker(m)
                        for m in markers]
        for marker in self.markers:
            if marker.hook not in ('forward', 'forward_pre'):
                raise ValueError(f'ExitMarker.hook must be forward or '
                                 f'forward_pre, got {marker.hook!r}.')
        self.ops = 0.
        self.params = 0
        self.leaf_depth = 0
        self.snapshots: Dict[int, Tuple[float, int]] = {}
        self._seen_params = set()
        self._counted = set()
        self._parents = {id(child): parent for parent in root.modules()
                         for child in parent.children()}
        self._handles = []
        self._mode = _FunctionalCounter(self)

    # hooks ---------------------------------------------------------------
    def _count_params(self, module: nn.Module) -> None:
        # The module's own parameters and those held directly by its
        # ancestors (a wrapper may call a method instead of ``forward``, e.g.
        # timm's ``forward_intermediates``, so no hook of its own fires).
        while module is not None and id(module) not in self._counted:
            self._counted.add(id(module))
            for p in module.parameters(recurse=False):
                if id(p) not in self._seen_params:
                    self._seen_params.add(id(p))
                    self.params += p.numel()
            module = self._parents.get(id(module))

    def _pre_hook(self, module, inputs):
        if isinstance(module, UNSUPPORTED_TYPES):
            raise TypeError(
                f'Cost counter: {type(module).__name__} is not supported (its '
                'fused fast path hides its compute); use MMPretrain/timm '
                'attention modules or add a rule to '
                'hdkd_mm/analysis/flops.py.')
        self._count_params(module)

    def _leaf_pre_hook(self, module, inputs):
        self._pre_hook(module, inputs)
        self.leaf_depth += 1

    def _leaf_hook(self, module, inputs, output):
        self.leaf_depth -= 1
        self.ops += float(leaf_ops(module, inputs, output))

    def _marker_hook(self, exits: List[int], calls: List[int]):
        def snapshot(*_):
            if calls[0] < len(exits):
                self.snapshots[exits[calls[0]]] = (self.ops, self.params)
            calls[0] += 1
        return snapshot

    # context -------------------------------------------------------------
    def __enter__(self) -> '_CostTracer':
        try:
            for module in self.root.modules():
                if _is_leaf(module):
                    self._handles += [
                        module.register_forward_pre_hook(self._leaf_pre_hook),
                        module.register_forward_hook(self._leaf_hook)
                    ]
                else:
                    self._handles.append(
                        module.register_forward_pre_hook(self._pre_hook))
            by_marker = defaultdict(list)
            for k, marker in enumerate(self.markers):
                by_marker[(id(marker.module), marker.hook)].append(k)
            for k, marker in enumerate(self.markers):
                exits = by_marker.pop((id(marker.module), marker.hook), None)
                if exits is None:
                    continue
                hook = self._marker_hook(exits, [0])
                if marker.hook == 'forward':  # after the module's own ops
                    handle = marker.module.register_forward_hook(hook)
                else:  # before the module counts its parameters
                    handle = marker.module.register_forward_pre_hook(
                        hook, prepend=True)
                self._handles.append(handle)
            self._mode.__enter__()
        except BaseException:
            self._remove()
            raise
        return self

    def _remove(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)
        self._remove()
        return False


def _run_traced(root: nn.Module, fn: Callable[[], Any],
                markers: Sequence[MarkerLike] = ()):
    with torch.no_grad(), _CostTracer(root, markers) as tracer:
        out = fn()
    return tracer, out


def module_cost(module: nn.Module, *inputs) -> Dict[str, float]:
    """Cost of one call ``module(*inputs)`` in the convention above:
    ``dict(mflops=..., params_m=...)`` per sample (``params_m`` counts the
    parameters of the modules that ran)."""
    was_training = module.training
    module.eval()
    try:
        tracer, _ = _run_traced(module, lambda: module(*inputs))
    finally:
        module.train(was_training)
    return dict(mflops=tracer.ops / 1e6, params_m=tracer.params / 1e6)


# --------------------------------------------------------------------------
# Exit markers per backbone type
# --------------------------------------------------------------------------
def _timm_markers(backbone) -> List[ExitMarker]:
    timm_model = backbone.timm_model
    info = getattr(timm_model, 'feature_info', None)
    if info is None or not hasattr(info, 'get_dicts'):
        raise ValueError('This TIMMBackbone gives no per-stage features: '
                         'build it with `features_only=True` and '
                         '`out_indices=(...)`.')
    markers = []
    for entry in info.get_dicts():
        name = entry['module']
        candidates = [name, name.replace('.', '_', 1), f'body.{name}',
                      f'model.{name}']
        for candidate in candidates:
            try:
                module = timm_model.get_submodule(candidate)
            except AttributeError:
                continue
            markers.append(ExitMarker(module, entry.get('hook_type',
                                                        'forward')))
            break
        else:
            raise ValueError(
                f'TIMMBackbone: feature module {name!r} of '
                f'{type(timm_model).__name__} was not found (tried '
                f'{candidates}).')
    return markers


def exit_stage_modules(backbone: nn.Module) -> List[MarkerLike]:
    """The exit markers of a backbone: one module (or :class:`ExitMarker`)
    per returned feature, in output order; exit k's feature is ready once
    marker k has run.

    * :class:`~hdkd_mm.models.backbones.MSDNet`: ``blocks``;
    * MMPretrain ``ResNet`` and subclasses (``ResNet_CIFAR``, ``ResNetV1c``,
      ``ResNeXt``, ...): the res layers named by ``out_indices``;
    * ``TIMMBackbone`` (``features_only``): timm's ``feature_info`` modules;
    * MMPretrain ``VisionTransformer``: ``layers[i]`` for ``out_indices``
      (``ln1`` for the last layer with ``final_norm``; ``ln2``, once per
      exit, for ``out_type='avg_featmap'``);
    * any backbone with an ``exit_stage_modules()`` method: its result.

    Raises:
        ValueError: for any other backbone type.
    """
    from mmpretrain.models.backbones import (ResNet, TIMMBackbone,
                                             VisionTransformer)

    from hdkd_mm.models.backbones.msdnet import MSDNet

    if isinstance(backbone, MSDNet):
        return list(backbone.blocks)
    if hasattr(backbone, 'exit_stage_modules'):
        return list(backbone.exit_stage_modules())
    if isinstance(backbone, ResNet):
        num = len(backbone.res_layers)
        indices = sorted({i % num for i in backbone.out_indices})
        return [getattr(backbone, backbone.res_layers[i]) for i in indices]
    if isinstance(backbone, TIMMBackbone):
        return _timm_markers(backbone)
    if isinstance(backbone, VisionTransformer):
        num = len(backbone.layers)
        indices = sorted({i % num for i in backbone.out_indices
                          if -num <= i < num})
        if backbone.out_type == 'avg_featmap':
            return [backbone.ln2] * len(indices)
        return [backbone.ln1 if i == num - 1 and backbone.final_norm else
                backbone.layers[i] for i in indices]
    raise ValueError(
        f'Per-exit cost: no exit markers are known for backbone type '
        f'{type(backbone).__name__}. Supported: MSDNet, MMPretrain ResNet '
        '(and subclasses), TIMMBackbone (features_only), VisionTransformer; '
        'or give the backbone an `exit_stage_modules()` method returning one '
        'module per exit.')


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------
def _get(obj, key, default=None):
    if obj is None:
        return default
    if isinstance(obj, nn.Module):
        return getattr(obj, key, default)
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


def default_input_shape(cfg_or_model) -> Tuple[int, int, int]:
    """``(C, H, W)`` to count a model's cost on.

    Accepts an MMEngine config (or dict with ``model``), a model config, a
    built classifier or a backbone. H×W is taken from, in order: the last
    fixed-size transform (``CenterCrop``, ``Resize`` or ``RandomResizedCrop``
    with an int or (w, h) size, this project's ``CenterPad``) of the test (or
    val) pipeline of a full config, dataset wrappers included; 32×32 for a
    CIFAR test set the pipeline leaves unresized; the MSDNet stem (32 for
    ``'cifar'``, 224 for ``'imagenet'``); 32 for ``ResNet_CIFAR``; the
    backbone's ``img_size``; 224.
    C is the backbone's ``in_channels`` (3 if unset).
    """
    obj = cfg_or_model
    model = _get(obj, 'model') if not isinstance(obj, nn.Module) else None
    size = _pipeline_size(obj) if model is not None else None
    model = obj if model is None else model
    backbone = _get(model, 'backbone', None) or model
    channels = int(_get(backbone, 'in_channels', 3) or 3)
    if size is None:
        kind = type(backbone) if isinstance(backbone, nn.Module) else \
            _get(backbone, 'type')
        kind = getattr(kind, '__name__', kind)
        if kind in ('MSDNet', 'mmpretrain.MSDNet'):
            stem = _get(backbone, 'stem', None) or _get(
                backbone, 'stem_type', 'cifar')
            size = (32, 32) if stem == 'cifar' else (224, 224)
        elif kind in ('ResNet_CIFAR', 'mmpretrain.ResNet_CIFAR'):
            size = (32, 32)
        else:
            img_size = _get(backbone, 'img_size', 224) or 224
            size = (img_size, img_size) if isinstance(img_size, int) \
                else tuple(img_size)
    return (channels, int(size[0]), int(size[1]))


def exit_cost_breakdown(model: nn.Module,
                        input_shape: Optional[Sequence[int]] = None) -> Dict:
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
    markers = exit_stage_modules(backbone)
    if len(markers) != len(exits):
        raise ValueError(
            f'The backbone {type(backbone).__name__} has {len(markers)} exit '
            f'markers but the head has {len(exits)} exits: make the head\'s '
            '`in_channels` match the backbone\'s outputs.')
    if input_shape is None:
        input_shape = default_input_shape(model)
    param = next(model.parameters())
    x = torch.zeros(1, *input_shape, dtype=param.dtype, device=param.device)
    was_training = model.training
    model.eval()
    try:
        extract = getattr(model, 'extract_feat', backbone)
        tracer, feats = _run_traced(backbone, lambda: extract(x), markers)
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
            head_tracer, exit_logits = _run_traced(
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


def exit_costs(model: nn.Module,
               input_shape: Optional[Sequence[int]] = None) -> List[Dict]:
    """Cumulative per-exit cost of a built multi-exit classifier.

    Args:
        model: a :class:`~hdkd_mm.models.MultiExitClassifier` (``backbone``
            supported by :func:`exit_stage_modules`, head with ``exits``), on
            any device (the ``meta`` device works and is fast).
        input_shape: ``(C, H, W)`` of one image; default
            :func:`default_input_shape` of the model.

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
