"""Operation counting in the MSDNet reference convention: the per-operator
rules and the tracer that applies them (no backbone knowledge here: which
module ends which exit comes from the exit protocol,
:mod:`hdkd_mm.models.exits`, and :mod:`hdkd_mm.analysis.flops` puts the
two together).

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
"""
import math
from collections import defaultdict
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from hdkd_mm.models.exits.protocol import ExitMarker

__all__ = ['leaf_ops', 'module_cost', 'CostTracer', 'run_traced',
           'ACTIVATION_TYPES', 'FREE_TYPES']

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
        'to count its operations; add one to hdkd_mm/analysis/cost_tracer.py '
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

    def __init__(self, tracer: 'CostTracer'):
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
MarkerLike = Union[nn.Module, ExitMarker]


def _is_leaf(module: nn.Module) -> bool:
    return next(module.children(), None) is None


class CostTracer:
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
                'hdkd_mm/analysis/cost_tracer.py.')
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
    def __enter__(self) -> 'CostTracer':
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


def run_traced(root: nn.Module, fn: Callable[[], Any],
                markers: Sequence[MarkerLike] = ()):
    with torch.no_grad(), CostTracer(root, markers) as tracer:
        out = fn()
    return tracer, out


def module_cost(module: nn.Module, *inputs) -> Dict[str, float]:
    """Cost of one call ``module(*inputs)`` in the convention above:
    ``dict(mflops=..., params_m=...)`` per sample (``params_m`` counts the
    parameters of the modules that ran)."""
    was_training = module.training
    module.eval()
    try:
        tracer, _ = run_traced(module, lambda: module(*inputs))
    finally:
        module.train(was_training)
    return dict(mflops=tracer.ops / 1e6, params_m=tracer.params / 1e6)
