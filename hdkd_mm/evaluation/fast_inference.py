"""Faster CPU inference for a trained multi-exit model: the same function,
computed with other kernels. Inference only; training never uses it.

:func:`optimize_for_inference` returns an eval-mode copy of a model with

1. **BatchNorm folded into the convolution before it.** Inside an
   ``nn.Sequential``, a ``Conv2d`` directly followed by a ``BatchNorm2d``
   (running statistics) becomes one ``Conv2d`` with a bias, and the
   BatchNorm is removed from the ``Sequential``. That is the layout of MSDNet's
   ``ConvBasic`` / ``BottleneckConv`` and of torchvision-style blocks.
   Modules that call their BatchNorm from a custom ``forward`` (MMCV's
   ``ConvModule``, timm's ``BatchNormAct2d``) are left as they are.
2. **Pointwise convolutions as batched matrix products.** Every 1×1
   ``Conv2d`` with stride 1, no padding, no dilation and one group becomes a
   :class:`PointwiseConv2d`, which computes ``W @ x[n]`` for each sample
   with one ``torch.bmm``: oneDNN's convolution is slow on MSDNet's thin
   layers (measurements in docs/early_exit.md), and each sample is then
   computed independently of how many others are in the batch.

The copy computes the same function in another floating-point order.
Folding changes a logit by about 1e-5 relative. Logits therefore differ in
the last bits from the plain model's, and so can an early-exit decision for
a sample whose confidence lies that close to a threshold. Early exit with
the optimized model matches the *simulation on the optimized model's*
logits exactly, which is what ``evaluate_early_exit(..., verify=True)``
checks when it is given that model.

Costs are unchanged: :class:`PointwiseConv2d` is a ``Conv2d`` (same
weights, same FLOP rule in :mod:`hdkd_mm.analysis.cost_tracer`), and a folded
BatchNorm was free already.
"""
import copy

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ['PointwiseConv2d', 'is_pointwise', 'optimize_for_inference']


class PointwiseConv2d(nn.Conv2d):
    """A 1×1, stride-1, unpadded, ungrouped ``Conv2d`` computed as a batched
    matrix product: ``(N, C_in, H, W) -> (N, C_out, H, W)``.

    Build it from an existing convolution with :meth:`from_conv`; the
    weights are shared, not copied.
    """

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> 'PointwiseConv2d':
        if not is_pointwise(conv):
            raise ValueError(f'not a pointwise convolution: {conv}')
        new = cls(conv.in_channels, conv.out_channels, 1,
                  bias=conv.bias is not None, device='meta')
        new.weight = conv.weight
        if conv.bias is not None:
            new.bias = conv.bias
        return new.train(conv.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        weight = self.weight.view(self.out_channels, c)
        out = torch.bmm(weight.expand(n, -1, -1), x.reshape(n, c, h * w))
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1)
        return out.view(n, self.out_channels, h, w)


def is_pointwise(conv: nn.Module) -> bool:
    """A plain 1×1 convolution: stride 1, no padding, dilation 1, one
    group, zero padding mode."""
    return (type(conv) is nn.Conv2d and conv.kernel_size == (1, 1)
            and conv.stride == (1, 1) and conv.dilation == (1, 1)
            and conv.groups == 1 and conv.padding_mode == 'zeros'
            and conv.padding in ((0, 0), 'valid'))


def _fold_batchnorms(model: nn.Module) -> int:
    folded = 0
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        pairs = [(c, b) for c, b in zip(names, names[1:])
                 if type(module._modules[c]) is nn.Conv2d
                 and type(module._modules[b]) is nn.BatchNorm2d
                 and module._modules[b].running_mean is not None]
        for conv_name, bn_name in pairs:
            module._modules[conv_name] = fuse_conv_bn_eval(
                module._modules[conv_name], module._modules[bn_name])
            # removed, not replaced by an Identity: at batch 1 a module
            # call costs as much as a small layer
            del module._modules[bn_name]
            folded += 1
    return folded


def _swap_pointwise(model: nn.Module) -> int:
    swapped = 0
    for module in model.modules():
        for name, child in module._modules.items():
            if child is not None and is_pointwise(child):
                module._modules[name] = PointwiseConv2d.from_conv(child)
                swapped += 1
    return swapped


@torch.no_grad()
def optimize_for_inference(model: nn.Module, fold_batchnorm: bool = True,
                           pointwise_bmm: bool = True) -> nn.Module:
    """An eval-mode copy of ``model`` with BatchNorm folded and pointwise
    convolutions as batched matrix products (see the module doc). The
    original is left untouched. The copy's ``inference_optimizations``
    attribute records how many of each were applied, as a dict."""
    optimized = copy.deepcopy(model).eval()
    for p in optimized.parameters():
        p.requires_grad_(False)
    done = dict(folded_batchnorms=0, pointwise_bmm=0)
    if fold_batchnorm:
        done['folded_batchnorms'] = _fold_batchnorms(optimized)
    if pointwise_bmm:
        done['pointwise_bmm'] = _swap_pointwise(optimized)
    optimized.inference_optimizations = done
    return optimized
