"""The exit protocol: what a backbone tells the rest of the plugin about its
exits (after timm's ``feature_info`` / ``forward_intermediates``).

For a backbone returning K features, one per exit, an :class:`ExitProtocol`
gives

* :meth:`~ExitProtocol.exit_channels`: the width of each feature (what a
  multi-exit head's ``in_channels`` must be);
* :meth:`~ExitProtocol.cost_markers`: one :class:`ExitMarker` per exit, the
  module after (or before) whose call exit k's feature is ready; the FLOP
  counter reads exit k's cumulative backbone cost there;
* staged execution, for real early exit: :meth:`~ExitProtocol.start` turns a
  batch of images ``(N, C, H, W)`` into the *state*, :meth:`~ExitProtocol.run`
  runs stage k (0-based) on a state and returns the next state and exit k's
  feature, :meth:`~ExitProtocol.select` keeps some rows of a state. The state
  is always a flat tuple of batch-first tensors (an ONNX export maps it to
  graph inputs and outputs), so the default :meth:`~ExitProtocol.select` is
  ``index_select(0, index)`` on each of them. Running the K stages in order
  gives the features of ``backbone(x)``.

A backbone gets its protocol from :func:`exit_protocol`: its own
``exit_protocol()`` method when it has one (MSDNet), else the class
registered for its type or the nearest base class in its MRO with
:func:`register_exit_protocol`. Supporting a new backbone takes one file
under ``hdkd_mm/models/exits/`` with one registered subclass (see
``resnet.py``); every user (the classifier, the FLOP counter, budgeted
evaluation, early exit) goes through this protocol only.
"""
from typing import (Callable, Dict, List, NamedTuple, Optional, Sequence,
                    Tuple, Type)

import torch
import torch.nn as nn

__all__ = [
    'ExitMarker', 'ExitProtocol', 'SequentialExitProtocol',
    'UnsupportedBackboneError', 'register_exit_protocol', 'exit_protocol',
    'registered_backbone_types'
]

State = Tuple[torch.Tensor, ...]


class ExitMarker(NamedTuple):
    """Exit k's feature is ready after (``hook='forward'``) or before
    (``'forward_pre'``, as timm's ``hook_type``) a call of ``module``. A
    module that marks n exits (listed n times) marks its n-th call."""

    module: nn.Module
    hook: str = 'forward'


class UnsupportedBackboneError(TypeError):
    """A backbone type without an exit protocol."""

    def __init__(self, backbone, reason: str = ''):
        name = type(backbone).__name__
        module = type(backbone).__module__
        reason = f' ({reason})' if reason else ''
        super().__init__(
            f'Backbone {name} ({module}.{name}) is not supported by the '
            f'exit protocol{reason}: the multi-exit classifier, the FLOP '
            'counter, budgeted evaluation and early exit learn its exits '
            'through the exit protocol (hdkd_mm.models.exits.ExitProtocol). '
            'To support it, add one file under hdkd_mm/models/exits/ '
            'defining a subclass of ExitProtocol decorated with '
            f'@register_exit_protocol({name}) (see '
            'hdkd_mm/models/exits/resnet.py), or give the backbone an '
            '`exit_protocol()` method (as MSDNet). Registered backbone '
            f'types: {", ".join(registered_backbone_types())}.')
        self.backbone_type = name


class ExitProtocol:
    """A backbone's exits: widths, cost markers and staged execution.

    Subclasses implement :meth:`exit_channels`, :meth:`cost_markers`,
    :meth:`run` and, when the state is not just the image, :meth:`start`
    (see the module doc). ``num_exits`` defaults to the number of channels.

    Args:
        backbone (nn.Module): the built backbone (not copied: the protocol
            runs the backbone's own modules).
    """

    #: The smallest sub-batch the early-exit router runs a stage on
    #: (padding with copies of a row): CPU kernels may compute a row
    #: differently, in the last bits, for very small batches, which could
    #: flip a decision tied with a threshold (docs/early_exit.md).
    min_rows: int = 3

    def __init__(self, backbone: nn.Module):
        self.backbone = backbone

    @property
    def num_exits(self) -> int:
        """K, the number of features the backbone returns."""
        return len(self.exit_channels())

    def exit_channels(self) -> List[int]:
        """Width of each exit's feature: C of ``(N, C, H, W)`` and ``(N, C)``
        features, the last dim of ``(N, L, C)`` tokens."""
        raise NotImplementedError

    def cost_markers(self) -> List[ExitMarker]:
        """One :class:`ExitMarker` per exit, in exit order."""
        raise NotImplementedError

    def start(self, x: torch.Tensor) -> State:
        """The state before stage 0: ``(x, )`` by default."""
        return (x, )

    def run(self, k: int, state: State) -> Tuple[State, torch.Tensor]:
        """Stage ``k`` (0-based): ``(next state, exit k's feature)``."""
        raise NotImplementedError

    def select(self, state: State, index: torch.Tensor) -> State:
        """The rows ``index`` (int64, on the state's device) of a state."""
        return tuple(t.index_select(0, index) for t in state)

    def features(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """All K features by running the stages in order (what
        ``backbone(x)`` returns)."""
        state, feats = self.start(x), []
        for k in range(self.num_exits):
            state, feat = self.run(k, state)
            feats.append(feat)
        return tuple(feats)


class SequentialExitProtocol(ExitProtocol):
    """A protocol for backbones that run a list of steps one after the
    other on one tensor, with exit k's feature taken after step
    ``exit_steps[k]``.

    Subclasses set, in ``__init__``, ``self.steps`` (callables
    ``Tensor -> Tensor``) and ``self.exit_steps`` (increasing step indices),
    and may override :meth:`feature` (the feature made from the tensor after
    an exit's step; the tensor itself by default). The state is ``(x, )``.
    """

    steps: Sequence[Callable[[torch.Tensor], torch.Tensor]]
    exit_steps: Sequence[int]

    @property
    def num_exits(self) -> int:
        return len(self.exit_steps)

    def feature(self, k: int, x: torch.Tensor) -> torch.Tensor:
        return x

    def run(self, k: int, state: State) -> Tuple[State, torch.Tensor]:
        (x, ) = state
        first = self.exit_steps[k - 1] + 1 if k > 0 else 0
        for step in self.steps[first:self.exit_steps[k] + 1]:
            x = step(x)
        return (x, ), self.feature(k, x)


# --------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------
_PROTOCOLS: Dict[type, Type[ExitProtocol]] = {}


def register_exit_protocol(*backbone_types: type):
    """Class decorator: ``cls`` is the exit protocol of ``backbone_types``
    and of their subclasses (unless one of those has its own)."""
    if not backbone_types or not all(isinstance(t, type)
                                     for t in backbone_types):
        raise TypeError('register_exit_protocol takes one or more backbone '
                        f'classes; got {backbone_types!r}')

    def register(cls: Type[ExitProtocol]) -> Type[ExitProtocol]:
        if not (isinstance(cls, type) and issubclass(cls, ExitProtocol)):
            raise TypeError(f'{cls!r} is not an ExitProtocol subclass')
        for kind in backbone_types:
            _PROTOCOLS[kind] = cls
        return cls

    return register


def registered_backbone_types() -> List[str]:
    """Names of the backbone types with a registered protocol."""
    return sorted(t.__name__ for t in _PROTOCOLS)


def protocol_class(backbone: nn.Module) -> Optional[Type[ExitProtocol]]:
    """The registered protocol class for the backbone's type or its nearest
    base class; ``None`` when there is none."""
    for kind in type(backbone).__mro__:
        if kind in _PROTOCOLS:
            return _PROTOCOLS[kind]
    return None


def exit_protocol(backbone: nn.Module) -> ExitProtocol:
    """The exit protocol of a built backbone (see the module doc).

    Raises:
        UnsupportedBackboneError: for a backbone type without one.
        ValueError: for a supported type configured so that it gives no
            per-exit features (e.g. a ``TIMMBackbone`` without
            ``features_only=True``), naming the key and the fix.
    """
    own = getattr(backbone, 'exit_protocol', None)
    if callable(own):
        return own()
    cls = protocol_class(backbone)
    if cls is None:
        raise UnsupportedBackboneError(backbone)
    return cls(backbone)
