"""Exit protocol of MMPretrain's ``ResNet`` family with ``out_indices``:
``ResNet``, ``ResNet_CIFAR``, ``ResNetV1c``, ``ResNetV1d`` and the
subclasses that keep ``ResNet.forward`` (``ResNeXt``, ``SEResNet``, ...).

Exit k reads the output of the k-th res layer named by ``out_indices`` (in
layer order, as ``ResNet.forward`` returns them). Stage 0 runs the stem
(``deep_stem`` or conv1-norm1-relu, then the max-pool except for
``ResNet_CIFAR``) and the res layers up to the first exit; stage k the res
layers after exit k-1 up to exit k. The state is the feature map.
"""
from typing import List

import torch
from mmpretrain.models.backbones import ResNet, ResNet_CIFAR

from .protocol import (ExitMarker, SequentialExitProtocol,
                       UnsupportedBackboneError, register_exit_protocol)


@register_exit_protocol(ResNet)
class ResNetExitProtocol(SequentialExitProtocol):
    """See the module doc."""

    def __init__(self, backbone: ResNet):
        super().__init__(backbone)
        forward = type(backbone).forward
        if forward not in (ResNet.forward, ResNet_CIFAR.forward):
            raise UnsupportedBackboneError(
                backbone, 'it overrides ResNet.forward, so its stages are '
                'not those of a ResNet')
        self._max_pool = forward is ResNet.forward
        layers = [getattr(backbone, name) for name in backbone.res_layers]
        self.layers = layers
        self.steps = [self._stem] + layers
        # step i + 1 is res layer i; ResNet.forward outputs `i in out_indices`
        self.exit_steps = [i + 1 for i in range(len(layers))
                           if i in backbone.out_indices]
        if not self.exit_steps:
            raise ValueError(
                f'{type(backbone).__name__}: out_indices='
                f'{backbone.out_indices} names no res layer (0..'
                f'{len(layers) - 1}): set model.backbone.out_indices to one '
                'index per exit, e.g. (0, 1, 2, 3).')

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        if getattr(b, 'deep_stem', False):
            x = b.stem(x)
        else:
            x = b.relu(b.norm1(b.conv1(x)))
        return b.maxpool(x) if self._max_pool else x

    def exit_channels(self) -> List[int]:
        return [int(self.layers[s - 1][-1].out_channels)
                for s in self.exit_steps]

    def cost_markers(self) -> List[ExitMarker]:
        return [ExitMarker(self.layers[s - 1]) for s in self.exit_steps]
