"""Exit protocol of MMPretrain's ``TIMMBackbone`` built with
``features_only=True`` (any timm model that gives features).

* **Channels and cost markers** come from timm's ``feature_info`` (widths,
  the module of each feature and whether it is read after (``forward``) or
  before (``forward_pre``) that module), so they work for every timm
  feature wrapper.
* **Staged execution** walks the wrapper's own modules in the order its
  ``forward`` runs them, for the wrappers that run a plain sequence:
  ``FeatureListNet``/``FeatureDictNet`` (ResNets, RegNets, DenseNets, ...;
  the exits after the modules of ``return_layers``) and the
  ``MobileNetV3Features``/``EfficientNetFeatures`` of timm's MobileNet and
  EfficientNet families without feature hooks (stem, then ``blocks``; the
  exits after the stages of ``_stage_out_idx``). Other wrappers (hook- or
  ``forward_intermediates``-based) give channels and costs but refuse to run
  in stages with :class:`~.protocol.UnsupportedBackboneError`.

The state is the feature map.
"""
from typing import List

import torch
from mmpretrain.models.backbones import TIMMBackbone

from .protocol import (ExitMarker, SequentialExitProtocol,
                       UnsupportedBackboneError, register_exit_protocol)


def _wrapper_kinds():
    from timm.models._features import FeatureDictNet
    from timm.models.efficientnet import EfficientNetFeatures
    from timm.models.mobilenetv3 import MobileNetV3Features
    return FeatureDictNet, (MobileNetV3Features, EfficientNetFeatures)


@register_exit_protocol(TIMMBackbone)
class TIMMExitProtocol(SequentialExitProtocol):
    """See the module doc.

    Raises:
        ValueError: for a ``TIMMBackbone`` built without
            ``features_only=True`` (one final feature map, no earlier
            exits), naming the fix.
    """

    # Convolutions with a bias (e.g. the 1x1 convolutions of timm's
    # squeeze-excitation gates) can take another CPU kernel for a batch of
    # fewer than 16 rows (docs/early_exit.md).
    min_rows = 16

    def __init__(self, backbone: TIMMBackbone):
        super().__init__(backbone)
        model = backbone.timm_model
        self.timm_model = model
        info = getattr(model, 'feature_info', None)
        if info is None or not hasattr(info, 'get_dicts'):
            name = (getattr(model, 'pretrained_cfg', None) or {}).get(
                'architecture', type(model).__name__)
            raise ValueError(
                f'This TIMMBackbone ({name}) gives no per-stage features, so '
                'it cannot feed one exit per stage: build it with '
                '`features_only=True` and `out_indices=(...)` (indices into '
                "timm's feature_info, e.g. (1, 2, 3, 4) for a ResNet's four "
                'stages).')
        self.info = info.get_dicts()
        self.steps, self.exit_steps, self._why_not = [], [], None
        dict_net, block_nets = _wrapper_kinds()
        if isinstance(model, dict_net):
            names = list(model.keys())
            self.steps = [model[n] for n in names]
            self.exit_steps = [i for i, n in enumerate(names)
                               if n in model.return_layers]
            self._concat = model.concat
        elif isinstance(model, block_nets) and model.feature_hooks is None:
            self.steps = [self._stem] + list(model.blocks)
            self.exit_steps = sorted(s for s in model._stage_out_idx
                                     if s <= len(model.blocks))
        else:
            self._why_not = (f'its timm feature wrapper '
                             f'{type(model).__name__} does not run its '
                             'modules as a plain sequence, so it cannot run '
                             'in stages (channels and costs still work)')
        if self.exit_steps and len(self.exit_steps) != len(self.info):
            self._why_not = (f'{len(self.exit_steps)} stage outputs found '
                             f'for {len(self.info)} features')

    @property
    def num_exits(self) -> int:
        return len(self.info)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        m = self.timm_model
        x = m.bn1(m.conv_stem(x))
        act = getattr(m, 'act1', None)  # EfficientNet's bn1 includes it
        return act(x) if act is not None else x

    def feature(self, k: int, x):
        if isinstance(x, (tuple, list)):  # as FeatureDictNet._collect
            return torch.cat(x, 1) if self._concat else x[0]
        return x

    def run(self, k: int, state):
        if self._why_not is not None:
            raise UnsupportedBackboneError(self.backbone, self._why_not)
        return super().run(k, state)

    def exit_channels(self) -> List[int]:
        return [int(c) for c in self.timm_model.feature_info.channels()]

    def cost_markers(self) -> List[ExitMarker]:
        model, markers = self.timm_model, []
        for entry in self.info:
            name = entry['module']
            # FeatureListNet keys replace the first '.' by '_'; other
            # wrappers keep the model under `body` or `model`
            candidates = [name, name.replace('.', '_', 1), f'body.{name}',
                          f'model.{name}']
            for candidate in candidates:
                try:
                    module = model.get_submodule(candidate)
                except AttributeError:
                    continue
                markers.append(ExitMarker(module,
                                          entry.get('hook_type', 'forward')))
                break
            else:
                raise ValueError(
                    f'TIMMBackbone: feature module {name!r} of '
                    f'{type(model).__name__} was not found (tried '
                    f'{candidates}).')
        return markers
