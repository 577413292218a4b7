"""Exact forward-mode rules that make the γ-hypergradient's JVP pass cheap.

The JVP pass of :func:`~hdkd_mm.engine.hypergrad.objective_jvp` pushes dual
tensors (θ, tangent u) through the model on the train batch. Two facts make
it cheaper than PyTorch's generic forward-mode rules, with the same result:

* the primal of every convolution is the train forward's output (same θ,
  batch, batch statistics and RNG state): :class:`ConvOutputCache` keeps
  those outputs and :class:`FastJvpMode` serves them, so only the tangent
  convolutions run;
* BatchNorm on batch statistics has a symmetric input Jacobian, so its
  tangent through x is its fused backward kernel applied to the tangent.
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['ConvOutputCache', 'FastJvpMode']


class ConvOutputCache:
    """The outputs of the train forward's convolutions, for the JVP pass.

    Forward-mode AD computes each conv's primal ``W x`` again besides its
    tangent ``W ẋ + Ẇ x``; the primal is exactly the train forward's output
    (same θ, same batch, batch statistics, same RNG state). This cache holds
    those outputs (forward hooks on every ``nn.Conv2d``; detached views of
    tensors autograd saves anyway, so the forward's peak memory is unchanged;
    they live on until the JVP pass), and :class:`FastJvpMode` serves them in
    the JVP pass so that only the tangent convolutions run: about a quarter
    of the JVP's cost, bitwise the same result.

    Entries are keyed by the weight's storage and checked before use (shape,
    dtype, version counter: a conv output modified in place later in the
    forward, e.g. by an in-place ReLU right after the conv, is recomputed);
    anything unmatched is simply recomputed, so the result never depends on
    the cache.
    """

    def __init__(self, module: nn.Module):
        self.entries: Dict[int, List[Tuple[torch.Tensor, int]]] = {}
        self.hits = 0
        self.misses = 0
        self._handles = [
            m.register_forward_hook(self._hook) for m in module.modules()
            if type(m) is nn.Conv2d and m.padding_mode == 'zeros'
        ]

    def _hook(self, module, inputs, output):
        if torch.is_autocast_enabled() or output.dtype != module.weight.dtype:
            return  # mixed precision: the primal would differ; recompute
        out = output.detach()
        self.entries.setdefault(module.weight.data_ptr(), []).append(
            (out, out._version))

    def remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def pop(self, weight: torch.Tensor, batch: int) -> Optional[torch.Tensor]:
        queue = self.entries.get(weight.data_ptr())
        if not queue:
            self.misses += 1
            return None
        out, version = queue.pop(0)
        if (out._version != version or out.dtype != weight.dtype
                or out.shape[0] != batch or out.shape[1] != weight.shape[0]):
            self.misses += 1
            return None
        self.hits += 1
        return out


class FastJvpMode(torch.overrides.TorchFunctionMode):
    """Cheaper exact forward-mode rules for the JVP pass (dual tensors).

    * ``conv2d``: the primal from the train forward when ``cache`` has it
      (otherwise computed), the tangent ``conv(ẋ, W) + conv(x, Ẇ, ḃ)`` (in
      the order of torch's own formula, so the result is bitwise the same).
    * ``batch_norm`` in training mode on batch statistics: the tangent
      through x is BatchNorm's backward kernel applied to ẋ (the Jacobian of
      batch normalisation w.r.t. its input is symmetric, so JVP = VJP: one
      fused kernel instead of a dozen elementwise passes), plus
      ``ẇ·x̂ + ḃ``. Exact up to rounding.

    Anything else runs as usual.
    """

    def __init__(self, cache: Optional[ConvOutputCache] = None):
        super().__init__()
        self.cache = cache

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.conv2d and not kwargs:
            return self._conv(*args)
        if func is F.batch_norm:
            out = self._batch_norm(*args, **kwargs)
            if out is not None:
                return out
        return func(*args, **kwargs)

    def _conv(self, x, w, b=None, *rest):
        xp, xt = fwAD.unpack_dual(x)
        wp, wt = fwAD.unpack_dual(w)
        bp, bt = fwAD.unpack_dual(b) if b is not None else (None, None)
        y0 = (self.cache.pop(wp, xp.shape[0])
              if self.cache is not None else None)
        if y0 is None:
            y0 = torch.conv2d(xp, wp, bp, *rest)
        yt = None
        if xt is not None:
            yt = torch.conv2d(xt, wp, None, *rest)
        if wt is not None:
            t2 = torch.conv2d(xp, wt, bt, *rest)
            yt = t2 if yt is None else yt.add_(t2)
        elif bt is not None:
            bt = bt.view(1, -1, *([1] * (y0.dim() - 2)))
            yt = bt.expand_as(y0).clone() if yt is None else yt.add_(bt)
        if yt is None:
            return y0
        return fwAD.make_dual(y0, yt)

    @staticmethod
    def _batch_norm(input, running_mean=None, running_var=None, weight=None,
                    bias=None, training=False, momentum=0.1, eps=1e-5):
        if not training or running_mean is not None or \
                running_var is not None:
            return None  # not a virtual pass: the default rule
        xp, xt = fwAD.unpack_dual(input)
        wp, wt = (fwAD.unpack_dual(weight) if weight is not None
                  else (None, None))
        bp, bt = fwAD.unpack_dual(bias) if bias is not None else (None, None)
        y, mean, invstd = torch.ops.aten.native_batch_norm(
            xp, wp, bp, None, None, True, 0.0, eps)
        shape = (1, -1) + (1, ) * (xp.dim() - 2)
        yt = None
        if xt is not None:
            yt = torch.ops.aten.native_batch_norm_backward(
                xt, xp, wp, None, None, mean, invstd, True, eps,
                [True, False, False])[0]
        if wt is not None:
            t2 = (xp - mean.view(shape)).mul_((invstd * wt).view(shape))
            yt = t2 if yt is None else yt.add_(t2)
        if bt is not None:
            yt = (bt.view(shape).expand_as(y).clone() if yt is None else
                  yt.add_(bt.view(shape)))
        if yt is None:
            return y
        return fwAD.make_dual(y, yt)
