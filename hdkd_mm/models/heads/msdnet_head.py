"""The exit classifiers of MSDNet (Huang et al.), one per block."""
from typing import Optional, Sequence

import torch.nn as nn
from mmpretrain.registry import MODELS

from ..backbones.msdnet import ConvBasic
from .multi_exit_head import (MultiExitHead, check_in_channels,
                              make_collaborative)

_INIT_CFG = [
    dict(type='Kaiming', layer='Conv2d', mode='fan_out', nonlinearity='relu',
         distribution='normal'),
    dict(type='Constant', layer='_BatchNorm', val=1, bias=0),
]


def msdnet_classifier(in_channels: int, num_classes: int, variant: str,
                      inter_channels: int = 128) -> nn.Sequential:
    """One MSDNet exit: ``(N, in_channels, H, W) -> (N, num_classes)``.

    Two stride-2 ConvBasic (conv3×3-BN-ReLU), AvgPool2d(2), flatten, Linear.
    ``'cifar'``: widths ``inter_channels`` (128 in the reference);
    ``'imagenet'``: widths ``in_channels``. The feature must be 5–8 px wide
    so that the pool sees 2×2 (8×8 on CIFAR, 7×7 on ImageNet).
    """
    if variant not in ('cifar', 'imagenet'):
        raise ValueError(f"MSDNetExitHead: unknown `variant` {variant!r}: "
                         "use 'cifar' or 'imagenet'.")
    width = inter_channels if variant == 'cifar' else in_channels
    return nn.Sequential(
        ConvBasic(in_channels, width, 3, 2, 1),
        ConvBasic(width, width, 3, 2, 1),
        nn.AvgPool2d(2),
        nn.Flatten(1),
        nn.Linear(width, num_classes))


@MODELS.register_module()
class MSDNetExitHead(MultiExitHead):
    """MSDNet's per-exit classifiers (the reference's ``ClassifierModule``).

    Args:
        num_classes (int): number of classes.
        in_channels (Sequence[int]): width of each exit's feature (the
            backbone's ``exit_channels``); K = ``len(in_channels)``. Leave it
            ``None`` in a :class:`MultiExitClassifier` config to infer it.
        variant (str): ``'cifar'`` (convs of ``inter_channels``) or
            ``'imagenet'`` (convs as wide as the feature).
        inter_channels (int): conv width of the CIFAR variant. Default 128.
        inline_collaboration (bool): IMTA's inline subnetwork collaboration
            (:class:`CollaborativeExit`): the Linear of exit k > 1 also takes
            ``Linear-BN-ReLU`` of exit k-1's logits. Used by the Impr
            configs. Default False (the MSDNet reference).
        loss (dict): the objective set (:class:`DenseKDLoss`).
        init_cfg: default: Kaiming normal (fan-out) convs, BN weight 1 /
            bias 0, as the reference intends; Linear biases start at 0 and
            Linear weights keep PyTorch's default (an ``init_cfg`` entry for
            ``Linear`` overrides both).

    ``forward(feats)``: K tensors ``(N, in_channels[k], H, W)`` -> K logits
    ``(N, num_classes)``.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: Sequence[int],
                 variant: str = 'cifar',
                 inter_channels: int = 128,
                 inline_collaboration: bool = False,
                 loss: dict = dict(type='DenseKDLoss', scheme='msdnet'),
                 init_cfg: Optional[dict] = _INIT_CFG):
        in_channels = check_in_channels(in_channels, type(self).__name__)
        super().__init__(num_classes, len(in_channels), loss=loss,
                         init_cfg=init_cfg)
        self.in_channels = in_channels
        self.variant = variant
        self.inline_collaboration = inline_collaboration
        exits = [msdnet_classifier(c, num_classes, variant, inter_channels)
                 for c in in_channels]
        self.exits = (make_collaborative(exits, num_classes)
                      if inline_collaboration else nn.ModuleList(exits))

    def init_weights(self):
        # The reference zeroes Linear biases and keeps PyTorch's default
        # Linear weights; MMEngine's initialisers cannot touch the bias alone,
        # so do it before init_cfg runs (a Linear entry there still wins).
        if not self._is_init:
            for m in self.modules():
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
        super().init_weights()
