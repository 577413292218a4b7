"""How the bilevel training step computes γ's update: the per-iteration knobs
of Algorithm 1, set in the train loop's config::

    train_cfg = dict(
        type='BilevelEpochBasedTrainLoop', max_epochs=300, val_interval=10,
        bilevel=dict(                    # optional: these are the defaults
            hypergrad='jvp',             # 'jvp' (exact) | 'finite_diff'
            virtual_step='sgd',          # θ' = θ − ξ g | 'optimizer'
            gamma_interval=1,            # a γ step every n iterations
            fd_eps=0.01,                 # 'finite_diff' only
            jvp_backend='forward_ad',    # | 'functorch'
            jvp_reuse_forward=True))

The loop validates them when it is built and hands them to the model's
training step (:meth:`~hdkd_mm.models.MultiExitClassifier.set_bilevel_step`).
γ itself, its initialisation, projection, α and the loss EMAs are the model's
(:class:`~hdkd_mm.models.weighting.LearnedLossWeights`).
"""
import math
from dataclasses import asdict, dataclass, fields
from typing import Optional

HYPERGRADS = ('jvp', 'finite_diff')
VIRTUAL_STEPS = ('sgd', 'optimizer')
JVP_BACKENDS = ('forward_ad', 'functorch')


@dataclass(frozen=True)
class BilevelStepConfig:
    """The iteration knobs of the bilevel step (``train_cfg.bilevel``).

    Args:
        hypergrad (str): ``'jvp'`` (default): the exact γ-gradient by one
            forward-mode Jacobian-vector product; ``'finite_diff'``: a central
            difference of the exit logits along the held-out gradient
            (approximate, two extra forwards; see
            :mod:`hdkd_mm.engine.hypergrad`).
        virtual_step (str): the look-ahead θ' of Eq. 8. ``'sgd'`` (default):
            θ' = θ − ξ g, ξ the θ optimizer's current learning rate (per
            parameter group); ``'optimizer'``: exactly the next iterate of the
            θ optimizer (SGD with momentum, dampening, Nesterov, weight
            decay).
        gamma_interval (int): a γ step every ``gamma_interval`` training
            iterations (the others are plain θ steps). Default: 1. The count
            is γ's ``num_steps`` buffer, so a resumed run keeps the phase.
        fd_eps (float): relative step of ``'finite_diff'``: ε = fd_eps / ‖u‖.
            Default: 0.01 (the DARTS choice).
        jvp_backend (str): ``'forward_ad'`` (default, dual tensors) or
            ``'functorch'`` (``torch.func.jvp``); same result.
        jvp_reuse_forward (bool): with ``'forward_ad'``, take the JVP's conv
            primals from the train forward instead of recomputing them
            (bitwise the same J v, about a quarter of the JVP's cost saved;
            keeps the train forward's conv outputs alive until the JVP pass,
            see :class:`~hdkd_mm.engine.fast_jvp.ConvOutputCache`).
            Default: True.
    """
    hypergrad: str = 'jvp'
    virtual_step: str = 'sgd'
    gamma_interval: int = 1
    fd_eps: float = 0.01
    jvp_backend: str = 'forward_ad'
    jvp_reuse_forward: bool = True

    def __post_init__(self):
        _check_choice('hypergrad', self.hypergrad, HYPERGRADS)
        _check_choice('virtual_step', self.virtual_step, VIRTUAL_STEPS)
        _check_choice('jvp_backend', self.jvp_backend, JVP_BACKENDS)
        if isinstance(self.gamma_interval, bool) or not isinstance(
                self.gamma_interval, int) or self.gamma_interval < 1:
            raise ValueError(
                'train_cfg.bilevel.gamma_interval must be an integer >= 1, '
                f'got {self.gamma_interval!r}.')
        if not 0 < float(self.fd_eps) < math.inf:
            raise ValueError(
                'train_cfg.bilevel.fd_eps must be a finite number > 0, got '
                f'{self.fd_eps!r}.')

    @classmethod
    def from_cfg(cls, cfg: Optional[dict]) -> 'BilevelStepConfig':
        """Build from the ``bilevel`` dict of ``train_cfg`` (``None``: the
        defaults).

        Raises:
            ValueError: an unknown key or an invalid value (named).
        """
        if cfg is None:
            return cls()
        if isinstance(cfg, cls):
            return cfg
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(cfg) - set(known))
        if unknown:
            raise ValueError(
                f'train_cfg.bilevel has no key {unknown[0]!r}: the keys are '
                f'{known}.')
        return cls(**dict(cfg))

    def to_dict(self) -> dict:
        return asdict(self)


#: The keys that ``LearnedLossWeights`` took before they moved here.
MOVED_FROM_LOSS_WEIGHTS = tuple(f.name for f in fields(BilevelStepConfig))


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f'Unknown train_cfg.bilevel.{name} {value!r}: '
                         f'choose one of {choices}.')
