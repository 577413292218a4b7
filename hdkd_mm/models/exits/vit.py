"""Exit protocol of MMPretrain's ``VisionTransformer`` (and subclasses that
keep its ``forward``) with ``out_indices`` and ``out_type='cls_token'``
(the class token), ``'avg_featmap'`` (the patch tokens averaged, then
``ln2``) or ``'raw'`` (all tokens).

Exit k reads the tokens after the k-th transformer layer named by
``out_indices`` (after the final ``ln1`` too for the last layer when
``final_norm``), formatted by the backbone's own ``_format_output``. Stage 0
runs the patch embedding, class token, position embedding and ``pre_norm``
and the layers up to the first exit. The state is the token tensor
``(N, L, C)``.
"""
from typing import List

import torch
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed

from .protocol import (ExitMarker, SequentialExitProtocol,
                       UnsupportedBackboneError, register_exit_protocol)

OUT_TYPES = ('cls_token', 'avg_featmap', 'raw')


@register_exit_protocol(VisionTransformer)
class ViTExitProtocol(SequentialExitProtocol):
    """See the module doc."""

    def __init__(self, backbone: VisionTransformer):
        super().__init__(backbone)
        if type(backbone).forward is not VisionTransformer.forward:
            raise UnsupportedBackboneError(
                backbone, 'it overrides VisionTransformer.forward')
        if backbone.out_type not in OUT_TYPES:
            raise ValueError(
                f'{type(backbone).__name__}: out_type='
                f'{backbone.out_type!r} is not supported by its exit '
                f'protocol: set model.backbone.out_type to one of '
                f'{OUT_TYPES} (a feature map needs the patch grid, which '
                'the token state does not carry).')
        layers = list(backbone.layers)
        self.num_layers = len(layers)
        # step 0 is the embedding, step i + 1 layer i (with ln1 if last)
        self.steps = [self._embed] + [
            (self._last_layer if i == self.num_layers - 1 else layer)
            for i, layer in enumerate(layers)]
        self.exit_steps = [i + 1 for i in range(self.num_layers)
                           if i in backbone.out_indices]
        if not self.exit_steps:
            raise ValueError(
                f'{type(backbone).__name__}: out_indices='
                f'{backbone.out_indices} names no layer (0..'
                f'{self.num_layers - 1}): set model.backbone.out_indices.')

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        x, patch_resolution = b.patch_embed(x)
        if b.cls_token is not None:
            x = torch.cat((b.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + resize_pos_embed(
            b.pos_embed, b.patch_resolution, patch_resolution,
            mode=b.interpolate_mode, num_extra_tokens=b.num_extra_tokens)
        return b.pre_norm(b.drop_after_pos(x))

    def _last_layer(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        x = b.layers[-1](x)
        return b.ln1(x) if b.final_norm else x

    def feature(self, k: int, x: torch.Tensor) -> torch.Tensor:
        # the patch grid is only used for out_type='featmap' (refused)
        return self.backbone._format_output(x, None)

    def exit_channels(self) -> List[int]:
        return [int(self.backbone.embed_dims)] * self.num_exits

    def cost_markers(self) -> List[ExitMarker]:
        b = self.backbone
        if b.out_type == 'avg_featmap':  # ln2 runs once per exit
            return [ExitMarker(b.ln2)] * self.num_exits
        last = self.num_layers - 1
        return [ExitMarker(b.ln1 if s - 1 == last and b.final_norm
                           else b.layers[s - 1]) for s in self.exit_steps]
