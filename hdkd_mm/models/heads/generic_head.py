"""A per-exit classification head for any backbone returning a tuple of
features (MMPretrain ResNet/ViT with ``out_indices``, ``TIMMBackbone`` with
``features_only``)."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from .multi_exit_head import MultiExitHead, check_in_channels


class GlobalAvgPool(nn.Module):
    """Pool any feature to ``(N, C)``.

    * ``(N, C, H, W)`` feature maps: average over H×W;
    * ``(N, L, C)`` tokens: average over L (run as the same
      ``AdaptiveAvgPool2d`` on an ``(N, C, L, 1)`` view, so that cost
      counters see it);
    * ``(N, C)`` vectors (e.g. a ViT class token): returned unchanged.
    """

    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return x
        if x.dim() == 3:
            x = x.transpose(1, 2).unsqueeze(-1)
        elif x.dim() != 4:
            raise ValueError(f'GlobalAvgPool takes (N, C), (N, L, C) or '
                             f'(N, C, H, W) features, got shape '
                             f'{tuple(x.shape)}.')
        return self.pool(x).flatten(1)


class ConvBNReLU(nn.Sequential):
    """conv3×3-BN-ReLU: ``(N, in, H, W) -> (N, out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def generic_classifier(in_channels: int, num_classes: int,
                       conv_channels: Optional[int] = None,
                       hidden_channels: Optional[int] = None,
                       dropout: float = 0.,
                       norm: Optional[str] = None) -> nn.Sequential:
    """``[conv3×3-BN-ReLU] -> global avg pool -> [LayerNorm] ->
    [Linear-ReLU] -> Dropout -> Linear``: a feature of width ``in_channels``
    to ``(N, num_classes)``. The conv block needs 4-D features."""
    layers = []
    width = in_channels
    if conv_channels:
        layers.append(ConvBNReLU(width, conv_channels))
        width = conv_channels
    layers.append(GlobalAvgPool())
    if norm == 'LN':
        layers.append(nn.LayerNorm(width))
    if hidden_channels:
        layers += [nn.Linear(width, hidden_channels), nn.ReLU(inplace=True)]
        width = hidden_channels
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


@MODELS.register_module()
class GenericExitHead(MultiExitHead):
    """One small classifier per backbone feature.

    Args:
        num_classes (int): number of classes.
        in_channels (Sequence[int]): width of each exit's feature (channels
            of a map, or the last dim of tokens/vectors); K =
            ``len(in_channels)``. Leave it ``None`` in a
            :class:`MultiExitClassifier` config to infer it.
        conv_channels (int, optional): width of an optional conv3×3-BN-ReLU
            before pooling (4-D features only). Default: none.
        hidden_channels (int, optional): width of an optional hidden
            Linear-ReLU after pooling. Default: none.
        dropout (float): dropout before the final Linear. Default 0.
        norm (str, optional): ``'LN'``: a LayerNorm on the pooled
            ``(N, C)`` feature (e.g. the un-normalised class tokens of a
            ViT's intermediate blocks). Default: none.
        loss (dict): the objective set (:class:`DenseKDLoss`).
        init_cfg (dict, optional): initialisation config.

    ``forward(feats)``: K features ``(N, C_k, H, W)``, ``(N, L, C_k)`` or
    ``(N, C_k)`` -> K logits ``(N, num_classes)``. A feature count or width
    that differs from ``in_channels`` is a ``ValueError`` naming both.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: Sequence[int],
                 conv_channels: Optional[int] = None,
                 hidden_channels: Optional[int] = None,
                 dropout: float = 0.,
                 norm: Optional[str] = None,
                 loss: dict = dict(type='DenseKDLoss', scheme='msdnet'),
                 init_cfg: Optional[dict] = None):
        in_channels = check_in_channels(in_channels, type(self).__name__)
        if not 0 <= dropout < 1:
            raise ValueError(f'GenericExitHead: `dropout` must be in [0, 1), '
                             f'got {dropout}.')
        if norm not in (None, 'LN'):
            raise ValueError(f"GenericExitHead: `norm` must be None or 'LN', "
                             f'got {norm!r}.')
        super().__init__(num_classes, len(in_channels), loss=loss,
                         init_cfg=init_cfg)
        self.in_channels = in_channels
        self.exits = nn.ModuleList(
            generic_classifier(c, num_classes, conv_channels, hidden_channels,
                               dropout, norm) for c in in_channels)

    @staticmethod
    def feature_width(feat: torch.Tensor) -> int:
        """The width of one feature: C of ``(N, C, H, W)`` and ``(N, C)``,
        the last dim of ``(N, L, C)`` tokens."""
        return int(feat.shape[-1] if feat.dim() == 3 else feat.shape[1])

    def _check_feats(self, feats: Sequence[torch.Tensor]) -> None:
        super()._check_feats(feats)
        widths = [self.feature_width(f) for f in feats]
        if widths != list(self.in_channels):
            raise ValueError(
                f'{type(self).__name__} was built for feature widths '
                f'in_channels={list(self.in_channels)} but the backbone '
                f'returned features of widths {widths}: set the head\'s '
                '`in_channels` to the backbone\'s widths, or leave it None '
                'to infer them.')
