"""Multi-Scale Dense Network (MSDNet) backbone.

Huang, Chen, Li, Wu, van der Maaten, Weinberger: *Multi-Scale Dense Networks
for Resource Efficient Image Classification*, ICLR 2018 (arXiv 1703.09844).
The architecture follows the semantics of the authors' PyTorch reference
(kalviny/MSDNet-PyTorch, ``models/msdnet.py``) so that parameter counts and
FLOPs match the paper; the code is written anew.

Structure
---------
The network keeps S feature maps side by side, one per *scale* (S =
``len(grFactor)``); scale s has ``c * grFactor[s]`` channels, where ``c`` is
the running "base" width, and is 2^s times coarser than scale 0.

* **Stem** (first layer): scale 0 from the image, each further scale by a
  stride-2 ConvBasic (conv3x3-BN-ReLU) from the previous one. ``'cifar'``:
  scale 0 = conv3x3 (H×W, 32×32 on CIFAR). ``'imagenet'``: scale 0 =
  conv7x7/2 (with bias, as the reference) - BN - ReLU - maxpool3x3/2 (H/4).
* **MSD layer**: every output scale s concatenates its input (dense
  connectivity) with new features: ``growthRate * grFactor[s]`` channels from
  a "normal" conv of scale s (the finest kept scale when no scale is
  dropped), or half of them from a stride-2 "down" conv of scale s-1 and half
  from the normal conv of scale s. Each conv is an optional 1×1 bottleneck
  (width ``min(in, bnFactor[s] * out)``) then a 3×3 conv, each followed by
  BN-ReLU. The base width grows by ``growthRate``.
* **Scale pruning**: deeper layers drop the finest scale(s). ``prune='max'``
  drops one scale every ``ceil(L / S)`` layers (L = total number of layers);
  ``prune='min'`` keeps all scales until the last S-1 layers.
* **Transition**: per-scale ConvBasic 1×1 compressing the base width to
  ``floor(reduction * c)``; inserted after every layer that dropped a scale
  (``prune='max'``) or after layers ⌊L/3⌋ and ⌊2L/3⌋ (``prune='min'``);
  ``reduction=0`` disables it.
* **Blocks**: block 1 has ``base`` layers (plus the stem); block k > 1 has
  ``step`` layers (``stepmode='even'``) or ``step * (k - 1) + 1`` layers
  (``stepmode='lin_grow'``). Exit k's classifier reads the coarsest scale
  after block k.
"""
import math
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from hdkd_mm.models.exits.protocol import ExitMarker, ExitProtocol

Tensors = List[torch.Tensor]


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by ``scale`` in
    the backward pass (the value is exactly ``x``)."""
    detached = x.detach()
    return detached + scale * (x - detached)


class ConvBasic(nn.Sequential):
    """conv-BN-ReLU (no conv bias): ``(N, in, H, W) -> (N, out, H', W')``."""

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: int = 3, stride: int = 1, padding: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                      bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True))


class BottleneckConv(nn.Sequential):
    """[conv1×1-BN-ReLU] conv3×3-BN-ReLU, the unit of every MSD layer.

    ``(N, in, H, W) -> (N, out, H/stride, W/stride)``. With ``bottleneck``,
    the 1×1 conv narrows to ``min(in, bn_factor * out)`` channels.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 bottleneck: bool, bn_factor: int):
        layers = []
        inner = in_channels
        if bottleneck:
            inner = min(in_channels, bn_factor * out_channels)
            layers += [nn.Conv2d(in_channels, inner, 1, bias=False),
                       nn.BatchNorm2d(inner), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(inner, out_channels, 3, stride, 1, bias=False),
                   nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class ScaleUnit(nn.Module):
    """New features of one output scale of an MSD layer, concatenated to the
    layer's input at that scale.

    With a ``down`` branch (``(N, C_fine, 2H, 2W) -> (N, g/2, H, W)``) the
    unit takes ``[finer, same]`` and returns
    ``cat(same, down(finer), normal(same))`` with ``normal`` giving g/2
    channels; without it, it takes ``[same]`` and returns
    ``cat(same, normal(same))`` with g new channels.
    """

    def __init__(self, in_same: int, growth: int, bottleneck: bool,
                 bn_same: int, in_finer: Optional[int] = None,
                 bn_finer: Optional[int] = None):
        super().__init__()
        if in_finer is None:
            self.down = None
            self.normal = BottleneckConv(in_same, growth, 1, bottleneck,
                                         bn_same)
        else:
            self.down = BottleneckConv(in_finer, growth // 2, 2, bottleneck,
                                       bn_finer)
            self.normal = BottleneckConv(in_same, growth // 2, 1, bottleneck,
                                         bn_same)

    def forward(self, inputs: Tensors) -> torch.Tensor:
        if self.down is None:
            (same, ) = inputs
            return torch.cat([same, self.normal(same)], dim=1)
        finer, same = inputs
        return torch.cat([same, self.down(finer), self.normal(same)], dim=1)


class MSDLayer(nn.Module):
    """One multi-scale dense layer.

    Input: the ``in_scales`` coarsest scale maps (finest first); output: the
    ``out_scales`` coarsest ones (``out_scales`` is ``in_scales`` or
    ``in_scales - 1``), scale s with ``(c + growth) * grFactor[s]`` channels
    for input width ``c * grFactor[s]``.
    """

    def __init__(self, base_in: int, growth: int, gr_factor: Sequence[int],
                 bn_factor: Sequence[int], bottleneck: bool, in_scales: int,
                 out_scales: int):
        super().__init__()
        num_scales = len(gr_factor)
        if out_scales not in (in_scales, in_scales - 1) or out_scales < 1:
            raise ValueError(f'An MSD layer maps {in_scales} scales to '
                             f'{in_scales} or {in_scales - 1}, not '
                             f'{out_scales}.')
        self.in_scales, self.out_scales = in_scales, out_scales
        self.drops_scale = in_scales > out_scales
        first = num_scales - out_scales  # index of the finest output scale
        self.units = nn.ModuleList()
        for s in range(first, num_scales):
            g = growth * gr_factor[s]
            with_down = s > first or self.drops_scale
            if with_down and g % 2:
                raise ValueError(
                    f'growthRate * grFactor[{s}] = {g} is odd, but that scale '
                    'splits its new channels between a down and a normal '
                    'conv: choose an even growthRate or even grFactor values '
                    'beyond the first.')
            self.units.append(ScaleUnit(
                base_in * gr_factor[s], g, bottleneck, bn_factor[s],
                in_finer=base_in * gr_factor[s - 1] if with_down else None,
                bn_finer=bn_factor[s - 1] if with_down else None))

    def forward(self, x: Tensors) -> Tensors:
        if len(x) != self.in_scales:
            raise ValueError(f'MSDLayer expects {self.in_scales} scales, got '
                             f'{len(x)}.')
        if self.drops_scale:  # output j reads input scales j (finer), j + 1
            inputs = [x[j:j + 2] for j in range(self.out_scales)]
        else:
            inputs = [x[:1]] + [x[j - 1:j + 1]
                                for j in range(1, self.out_scales)]
        return [unit(inp) for unit, inp in zip(self.units, inputs)]


class Transition(nn.ModuleList):
    """Per-scale ConvBasic 1×1 compressing every scale's width by
    ``reduction``:
    ``[(N, c * g_s, H_s, W_s)] -> [(N, c' * g_s, H_s, W_s)]``."""

    def __init__(self, base_in: int, base_out: int,
                 gr_factor: Sequence[int], num_out_scales: int):
        first = len(gr_factor) - num_out_scales
        super().__init__(
            ConvBasic(base_in * g, base_out * g, 1, 1, 0)
            for g in gr_factor[first:])

    def forward(self, x: Tensors) -> Tensors:
        return [conv(feat) for conv, feat in zip(self, x)]


class Stem(nn.ModuleList):
    """First layer: ``(N, C_img, H, W)`` -> S maps, scale s with
    ``c * grFactor[s]`` channels at ``H / 2^s`` (``'cifar'``) or
    ``H / 2^(s+2)`` (``'imagenet'``)."""

    def __init__(self, in_channels: int, base: int, gr_factor: Sequence[int],
                 stem: str):
        widths = [base * g for g in gr_factor]
        if stem == 'cifar':
            first = ConvBasic(in_channels, widths[0], 3, 1, 1)
        else:
            first = nn.Sequential(
                nn.Conv2d(in_channels, widths[0], 7, 2, 3),
                nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1))
        super().__init__(
            [first] + [ConvBasic(widths[s - 1], widths[s], 3, 2, 1)
                       for s in range(1, len(widths))])

    def forward(self, x: torch.Tensor) -> Tensors:
        out = []
        for conv in self:
            x = conv(x)
            out.append(x)
        return out


@MODELS.register_module()
class MSDNet(BaseModule):
    """MSDNet backbone returning one feature per exit.

    Args:
        nBlocks (int): number of blocks, i.e. exits K.
        stepmode (str): ``'even'`` (``step`` layers per block after the
            first) or ``'lin_grow'`` (``step * (k - 1) + 1`` layers in block
            k > 1).
        step (int): see ``stepmode``.
        base (int): number of layers of the first block.
        nChannels (int): base width of the stem.
        growthRate (int): base growth of every layer.
        grFactor (Sequence[int]): width multiplier per scale; its length is
            the number of scales S. Paper: (1, 2, 4) CIFAR, (1, 2, 4, 4)
            ImageNet.
        bnFactor (Sequence[int]): bottleneck width factor per scale (same
            length as ``grFactor``).
        prune (str): ``'max'`` (the paper's models) or ``'min'``.
        reduction (float): transition compression (0 disables it).
        bottleneck (bool): 1×1 bottleneck before every 3×3 conv.
        stem (str): ``'cifar'`` (conv3x3, for 32×32 inputs) or
            ``'imagenet'`` (conv7x7/2 + maxpool, for 224×224 inputs).
        in_channels (int): image channels. Default 3.
        gradient_equilibrium (bool): the gradient equilibrium of Li et al.
            2019 (IMTA, the ``impr`` scheme): after block k (0-based) of K,
            the gradient reaching exit k's feature is scaled by 1/(K-k) and
            the gradient from the later blocks by (K-k-1)/(K-k), so that the
            deep layers are not dominated by the sum of all later losses.
            Forward values are unchanged. Default False.
        init_cfg (dict | list, optional): default: Kaiming normal (fan-out,
            ReLU gain) for convs, BN weight 1 / bias 0, as the reference
            intends.

    ``forward(x)`` maps ``(N, in_channels, H, W)`` to a tuple of K tensors:
    the coarsest scale after each block, ``(N, exit_channels[k], H_S, W_S)``
    with ``H_S = H / 2^(S-1)`` (cifar stem) or ``H / 2^(S+1)`` (imagenet stem),
    e.g. 8×8 for CIFAR and 7×7 for ImageNet.

    Attributes:
        blocks (nn.ModuleList): block k maps the multi-scale state (the image
            for block 0) to the next state, a list of scale maps whose last
            entry is exit k's feature.
        exit_channels (List[int]): channels of each returned feature.
        num_exits (int): K.
        steps (List[int]): layers per block.
    """

    def __init__(self,
                 nBlocks: int = 8,
                 stepmode: str = 'lin_grow',
                 step: int = 1,
                 base: int = 1,
                 nChannels: int = 16,
                 growthRate: int = 6,
                 grFactor: Sequence[int] = (1, 2, 4),
                 bnFactor: Sequence[int] = (1, 2, 4),
                 prune: str = 'max',
                 reduction: float = 0.5,
                 bottleneck: bool = True,
                 stem: str = 'cifar',
                 in_channels: int = 3,
                 gradient_equilibrium: bool = False,
                 init_cfg=(dict(type='Kaiming', layer='Conv2d', mode='fan_out',
                                nonlinearity='relu', distribution='normal'),
                           dict(type='Constant', layer='_BatchNorm', val=1,
                                bias=0))):
        super().__init__(init_cfg=list(init_cfg) if isinstance(
            init_cfg, tuple) else init_cfg)
        grFactor, bnFactor = list(grFactor), list(bnFactor)
        self._check_args(nBlocks, stepmode, step, base, grFactor, bnFactor,
                         prune, stem)
        self.stem_type = stem
        self.in_channels = in_channels
        self.gradient_equilibrium = gradient_equilibrium
        self.num_scales = len(grFactor)
        self.steps = [base] + [step if stepmode == 'even' else step * k + 1
                               for k in range(1, nBlocks)]
        total = sum(self.steps)
        scales = self._scale_schedule(total, self.num_scales, prune)

        self.blocks = nn.ModuleList()
        self.exit_channels: List[int] = []
        width = nChannels  # the running base width c
        layer_idx = 0  # 1-based index of the last built layer
        for k, num_layers in enumerate(self.steps):
            modules = [Stem(in_channels, nChannels, grFactor, stem)
                       ] if k == 0 else []
            for _ in range(num_layers):
                layer_idx += 1
                in_s, out_s = scales[layer_idx - 1]
                modules.append(MSDLayer(width, growthRate, grFactor, bnFactor,
                                        bottleneck, in_s, out_s))
                width += growthRate
                if reduction > 0 and (
                        (prune == 'max' and in_s > out_s) or
                        (prune == 'min' and layer_idx in (total // 3,
                                                          2 * total // 3))):
                    reduced = math.floor(reduction * width)
                    modules.append(Transition(width, reduced, grFactor, out_s))
                    width = reduced
            self.blocks.append(nn.Sequential(*modules))
            self.exit_channels.append(width * grFactor[-1])

    @staticmethod
    def _check_args(nBlocks, stepmode, step, base, grFactor, bnFactor, prune,
                    stem):
        if nBlocks < 1:
            raise ValueError(f'MSDNet: `nBlocks` must be >= 1 (one exit per '
                             f'block), got {nBlocks}.')
        if stepmode not in ('even', 'lin_grow'):
            raise ValueError(f'MSDNet: unknown `stepmode` {stepmode!r}: use '
                             "'even' or 'lin_grow'.")
        if base < 1 or (nBlocks > 1 and step < 1):
            raise ValueError(f'MSDNet: `base` and `step` must be >= 1 '
                             f'(layers per block), got base={base}, '
                             f'step={step}.')
        if prune not in ('max', 'min'):
            raise ValueError(f"MSDNet: unknown `prune` {prune!r}: use 'max' "
                             "(the paper's models) or 'min'.")
        if len(grFactor) != len(bnFactor):
            raise ValueError(
                f'MSDNet: `grFactor` {tuple(grFactor)} and `bnFactor` '
                f'{tuple(bnFactor)} must have the same length (one entry per '
                'scale).')
        if not grFactor:
            raise ValueError('MSDNet: `grFactor` must list at least one '
                             'scale.')
        if stem not in ('cifar', 'imagenet'):
            raise ValueError(f"MSDNet: unknown `stem` {stem!r}: use 'cifar' "
                             "(32×32 inputs) or 'imagenet' (224×224).")

    @staticmethod
    def _scale_schedule(total: int, num_scales: int,
                        prune: str) -> List[Tuple[int, int]]:
        """``(in_scales, out_scales)`` of layers 1..total."""
        schedule = []
        interval = math.ceil(total / num_scales)
        for i in range(1, total + 1):
            if prune == 'max':
                in_s = num_scales - max(0, i - 2) // interval
                out_s = num_scales - (i - 1) // interval
            else:
                in_s = min(num_scales, total - i + 2)
                out_s = min(num_scales, total - i + 1)
            schedule.append((in_s, out_s))
        return schedule

    @property
    def num_exits(self) -> int:
        return len(self.blocks)

    def forward_blocks(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """Yield exit k's feature ``(N, exit_channels[k], H_S, W_S)`` right
        after block k, keeping the multi-scale state between blocks, so that
        a caller can stop after any exit."""
        state = x
        num_blocks = len(self.blocks)
        for k, block in enumerate(self.blocks):
            state = block(state)
            if not self.gradient_equilibrium:
                yield state[-1]
                continue
            exit_feature = scale_gradient(state[-1], 1.0 / (num_blocks - k))
            state = list(state[:-1]) + [
                scale_gradient(exit_feature, num_blocks - k - 1)]
            yield exit_feature

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """``(N, C, H, W)`` -> K features, one per block (see class doc)."""
        return tuple(self.forward_blocks(x))

    def exit_protocol(self) -> 'MSDNetExitProtocol':
        """The exit protocol (:mod:`hdkd_mm.models.exits`): stage k is block
        k; the state is the tuple of scale maps."""
        return MSDNetExitProtocol(self)


class MSDNetExitProtocol(ExitProtocol):
    """MSDNet's exits: ``exit_channels``, one marker per block, and staged
    execution on its own ``blocks``. The state is ``(image, )`` before block
    0, then the scale maps block k returned (finest first; the last is exit
    k's feature). Gradient equilibrium rescales gradients only, so the
    staged forward equals ``forward``."""

    def __init__(self, backbone: MSDNet):
        super().__init__(backbone)
        self.blocks = backbone.blocks

    @property
    def num_exits(self) -> int:
        return len(self.blocks)

    def exit_channels(self) -> List[int]:
        return list(self.backbone.exit_channels)

    def cost_markers(self) -> List[ExitMarker]:
        return [ExitMarker(block) for block in self.blocks]

    def run(self, k: int, state):
        # block 0 starts with the stem, which takes the image tensor
        scales = self.blocks[k](state[0] if k == 0 else list(state))
        return tuple(scales), scales[-1]
