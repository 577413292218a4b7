"""Exit protocols: what each backbone tells the plugin about its exits (see
:mod:`hdkd_mm.models.exits.protocol`). One file per backbone family;
importing this package registers them. MSDNet implements its own
(``MSDNet.exit_protocol()``)."""
from .protocol import (ExitMarker, ExitProtocol, SequentialExitProtocol,
                       UnsupportedBackboneError, exit_protocol,
                       register_exit_protocol, registered_backbone_types)
from .resnet import ResNetExitProtocol
from .timm import TIMMExitProtocol
from .vit import ViTExitProtocol

__all__ = [
    'ExitMarker', 'ExitProtocol', 'SequentialExitProtocol',
    'UnsupportedBackboneError', 'exit_protocol', 'register_exit_protocol',
    'registered_backbone_types', 'ResNetExitProtocol', 'TIMMExitProtocol',
    'ViTExitProtocol'
]
