"""A multi-exit image classifier: any backbone returning one feature per exit,
plus a :class:`MultiExitHead`."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


def infer_exit_channels(backbone: nn.Module) -> List[int]:
    """Channel widths of the features a backbone returns, one per exit.

    Uses, in order: the backbone's own ``exit_channels`` (MSDNet), timm's
    ``feature_info`` (MMPretrain's ``TIMMBackbone`` with ``features_only``),
    and otherwise a probe forward pass on a zero image of the backbone's
    ``img_size`` (64×64 when it has none) in eval mode, without gradients.
    """
    if hasattr(backbone, 'exit_channels'):
        return list(backbone.exit_channels)
    timm_model = getattr(backbone, 'timm_model', None)
    if timm_model is not None:
        feature_info = getattr(timm_model, 'feature_info', None)
        if feature_info is None or not hasattr(feature_info, 'channels'):
            raise ValueError(
                'This TIMMBackbone gives no per-stage features: build it with '
                '`features_only=True` and `out_indices=(...)`.')
        return list(feature_info.channels())
    size = getattr(backbone, 'img_size', (64, 64))
    size = (size, size) if isinstance(size, int) else tuple(size)
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            param = next(backbone.parameters())
            feats = backbone(torch.zeros(1, 3, *size, device=param.device,
                                         dtype=param.dtype))
    finally:
        backbone.train(was_training)
    widths = []
    for feat in feats:
        if isinstance(feat, (list, tuple)):  # e.g. ViT 'raw' with cls token
            feat = feat[-1]
        widths.append(int(feat.shape[1] if feat.dim() != 3 else feat.shape[-1]))
    return widths


@MODELS.register_module()
class MultiExitClassifier(ImageClassifier):
    """Image classifier with one classification exit per backbone output.

    Args:
        backbone (dict): a backbone returning a tuple of K features (MSDNet,
            or any MMPretrain backbone with ``out_indices``).
        head (dict): a multi-exit head. Leave its ``in_channels`` unset
            (``None``) to infer the widths from the backbone.
        neck, pretrained, train_cfg, data_preprocessor, init_cfg: as
            :class:`mmpretrain.models.ImageClassifier`.

    Modes of ``forward``: ``'loss'`` (dict of losses), ``'predict'`` (data
    samples with ``exit_scores`` of shape ``(K, C)`` and the last exit's
    ``pred_score``), ``'tensor'`` (tuple of K logits of shape ``(N, C)``).
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 neck: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 train_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if neck is not None:
            raise ValueError(
                'MultiExitClassifier takes no neck: every exit has its own '
                'head module (set pooling inside the head).')
        if isinstance(backbone, dict):
            backbone = MODELS.build(backbone)
        if isinstance(head, dict) and head.get('in_channels') is None:
            head = dict(head, in_channels=infer_exit_channels(backbone))
        super().__init__(
            backbone=backbone,
            neck=None,
            head=head,
            pretrained=pretrained,
            train_cfg=train_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)

    @property
    def num_exits(self) -> int:
        return self.head.num_exits

    def extract_feat(self, inputs: torch.Tensor, stage='neck'):
        feats = self.backbone(inputs)
        if isinstance(feats, torch.Tensor):
            feats = (feats, )
        return tuple(feats)

    def exit_logits(self, inputs: torch.Tensor) -> Tuple[torch.Tensor]:
        """K logits of shape ``(N, num_classes)`` for a batch of images."""
        return self.head(self.extract_feat(inputs))

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        if mode == 'tensor':
            return self.exit_logits(inputs)
        return super().forward(inputs, data_samples, mode)
