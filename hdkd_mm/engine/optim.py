"""Two optimizers for the bilevel iteration: θ (the network) and γ (the
objective weights), as an ``OptimWrapperDict(model=..., gamma=...)``.

Config (MMEngine 0.10.7 has no multi-optimizer constructor of its own)::

    optim_wrapper = dict(
        constructor='BilevelOptimWrapperConstructor',
        # θ: any single-optimizer optim_wrapper config (type, optimizer,
        # clip_grad, paramwise_cfg, ...); γ is never among its parameters.
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
        # γ: an optim_wrapper config of its own; its lr is ε of Algorithm 1.
        gamma=dict(optimizer=dict(type='Adam', lr=1e-3)))
    # One scheduler list per optimizer (a plain list would drive both):
    param_scheduler = dict(
        model=[dict(type='MultiStepLR', by_epoch=True, milestones=[150, 225])],
        gamma=[dict(type='ConstantLR', factor=1.0, by_epoch=True)])

``gamma`` defaults to Adam with lr 1e-3: Adam's step does not depend on the
scale of ∇γ (which is ∝ ξ and shrinks with θ's schedule). Algorithm 1 written
literally is ``gamma=dict(optimizer=dict(type='SGD', lr=ε))``.

Models without learnable γ (fixed schemes, frozen γ) get a dict with
``model`` alone, so one config serves every scheme. Checkpoints hold both
optimizers' states; resume restores them.

**Logged learning rates.** θ's learning rate is logged as ``lr`` (as in every
MMPretrain log, so MMPretrain's ``analyze_logs.py`` sees the training lines)
and γ's as ``gamma.lr`` (MMEngine's ``OptimWrapperDict`` would log
``model.lr`` and ``gamma.lr``).

**``auto_scale_lr`` (``tools/train.py --auto-scale-lr``) scales ε too.**
MMEngine's ``Runner.scale_lr`` multiplies the learning rate of every
optimizer of the dict by ``total batch / base_batch_size``, and we keep that
on purpose: the bilevel loop takes one γ step per θ step, so a batch r times
larger gives γ r times fewer steps per epoch; γ's default optimizer, Adam,
takes steps of about ε whatever the scale of ∇γ, so only a scaled ε moves γ as
far per epoch as at the base batch size (the linear-scaling argument applied
to γ). To keep ε fixed instead, divide ``optim_wrapper.gamma.optimizer.lr``
by the same ratio in the config (the runner logs the ratio).
"""
import contextlib
import copy
import math
import numbers
from collections import OrderedDict
from typing import Dict, List

import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS

DEFAULT_GAMMA_OPTIM = dict(type='OptimWrapper',
                           optimizer=dict(type='Adam', lr=1e-3))


@contextlib.contextmanager
def _without_submodule(module: nn.Module, name: str):
    """Temporarily remove a child module (keeping the children's order)."""
    if name not in module._modules:
        yield
        return
    saved = OrderedDict(module._modules)
    del module._modules[name]
    try:
        yield
    finally:
        module._modules.clear()
        module._modules.update(saved)


def _check_gamma_lr(lr) -> None:
    """ε, the γ learning rate, must be a finite number > 0 (torch accepts
    inf, and refuses a negative or NaN one without naming the key)."""
    number = isinstance(lr, numbers.Real) and not isinstance(lr, bool)
    if not (number and math.isfinite(lr) and lr > 0):
        raise ValueError(
            f'optim_wrapper.gamma.optimizer.lr={lr!r}: ε, the learning rate '
            'of the objective weights γ, must be a finite number > 0 (a '
            'negative ε climbs the held-out loss, NaN or inf destroys γ); '
            "fix: e.g. gamma=dict(optimizer=dict(type='Adam', lr=1e-3)), or "
            "freeze γ with model.loss_weights=dict(init='fixed', path=...).")


class BilevelOptimWrapperDict(OptimWrapperDict):
    """``OptimWrapperDict(model=θ wrapper[, gamma=γ wrapper])`` that reports
    θ's learning rate and momentum under the plain keys ``lr`` /
    ``momentum`` (``base_lr``) and γ's as ``gamma.lr`` / ``gamma.momentum``;
    everything else is MMEngine's ``OptimWrapperDict``."""

    def _renamed(self, values: dict) -> dict:
        return {key[len('model.'):] if key.startswith('model.') else key:
                value for key, value in values.items()}

    def get_lr(self) -> Dict[str, List[float]]:
        return self._renamed(super().get_lr())

    def get_momentum(self) -> Dict[str, List[float]]:
        return self._renamed(super().get_momentum())


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BilevelOptimWrapperConstructor:
    """Build ``BilevelOptimWrapperDict(model=θ optimizer, gamma=γ
    optimizer)``.

    Args:
        optim_wrapper_cfg (dict): the θ optim wrapper config, plus an optional
            ``gamma`` key: the γ optim wrapper config (default: Adam, lr 1e-3).
        paramwise_cfg (dict, optional): θ's parameter-wise settings.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg=None):
        cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        gamma = cfg.pop('gamma', None)
        if 'optimizer' not in cfg:
            raise ValueError('optim_wrapper needs `optimizer` (the θ '
                             'optimizer) with BilevelOptimWrapperConstructor.')
        self.model_cfg = cfg
        self.paramwise_cfg = paramwise_cfg
        gamma = copy.deepcopy(dict(gamma)) if gamma else dict(
            DEFAULT_GAMMA_OPTIM)
        if 'optimizer' not in gamma:
            raise ValueError('optim_wrapper.gamma needs `optimizer` (the γ '
                             "optimizer, e.g. dict(type='Adam', lr=1e-3)).")
        gamma.setdefault('type', 'OptimWrapper')
        if 'lr' in gamma['optimizer']:  # else the optimizer's default
            _check_gamma_lr(gamma['optimizer']['lr'])
        self.gamma_cfg = gamma

    def __call__(self, model: nn.Module) -> BilevelOptimWrapperDict:
        module = model.module if is_model_wrapper(model) else model
        weights = getattr(module, 'loss_weights', None)
        with _without_submodule(module, 'loss_weights'):
            model_ow = DefaultOptimWrapperConstructor(
                copy.deepcopy(self.model_cfg),
                copy.deepcopy(self.paramwise_cfg))(module)
        wrappers = dict(model=model_ow)
        if weights is not None and weights.learnable:
            wrappers['gamma'] = DefaultOptimWrapperConstructor(
                copy.deepcopy(self.gamma_cfg))(weights)
        return BilevelOptimWrapperDict(**wrappers)
