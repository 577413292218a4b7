"""The learned objective weights γ of the harmonized schemes (Eq. 5), the
expected-loss estimates E_k (Eq. 9) and the balanced validation loss (Eq. 10).

One config key of :class:`~hdkd_mm.models.MultiExitClassifier` holds
everything about how γ is set and learned::

    model = dict(
        type='MultiExitClassifier',
        backbone=...,
        head=dict(..., loss=dict(type='DenseKDLoss', scheme='hdkd')),
        loss_weights=dict(               # optional: these are the defaults
            type='LearnedLossWeights',
            init='ds_like',              # 'ds_like' | 'dbt_like' | 'rand' | 'uniform' | 'fixed'
            alpha=0.5,                   # α of Eq. 10
            ema_momentum=0.9,            # m of Eq. 9
            projection='simplex'))       # after each γ step, see below

The harmonized schemes (``hmsdnet``, ``hdbt``, ``hdkd``) build this module with
its defaults when ``loss_weights`` is left out. With ``init='fixed'`` γ is read
from a file and frozen (the paper's Fixed-1/Fixed-2 ablation): no γ step, no
held-out batch, a plain training step with those weights.

The γ optimizer (its learning rate ε) is ``optim_wrapper.gamma`` of the
:class:`~hdkd_mm.engine.BilevelOptimWrapperConstructor`; the bilevel iteration
itself is :meth:`MultiExitClassifier.train_step` with
:mod:`hdkd_mm.engine.hypergrad`, and how it steps (hypergradient method,
look-ahead, γ step interval) is the loop's ``train_cfg.bilevel``
(:class:`~hdkd_mm.engine.BilevelStepConfig`).
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ..losses.dense_kd import Objective

INITS = ('ds_like', 'dbt_like', 'rand', 'uniform', 'fixed')
PROJECTIONS = ('simplex', 'clamp_rescale', 'clamp', 'none')


def project_simplex(x: torch.Tensor, total: float) -> torch.Tensor:
    """Euclidean projection of ``x`` onto ``{y : y >= 0, Σ y = total}``.

    The sort-based algorithm of Duchi et al. (2008): ``y = max(x − τ, 0)``
    with the threshold τ that makes the sum equal ``total``.
    """
    if total <= 0:
        raise ValueError(f'The total weight must be > 0, got {total}.')
    u, _ = torch.sort(x, descending=True)
    css = torch.cumsum(u, 0) - total
    ind = torch.arange(1, x.numel() + 1, device=x.device, dtype=x.dtype)
    cond = u - css / ind > 0
    rho = int(torch.nonzero(cond).max())
    tau = css[rho] / (rho + 1)
    return torch.clamp(x - tau, min=0)


@MODELS.register_module()
class LearnedLossWeights(BaseModule):
    """The objective weights γ and the balanced validation loss of HDKD.

    Args:
        objectives (list[Objective]): the objectives of the head's
            :class:`DenseKDLoss`, in its order. Filled in by the classifier.
        init (str): initial γ. ``'ds_like'`` (default): CE weights 1, each
            student's KD weights uniform over its later exits, summing to 1
            ("each exit equally learns from all later exits");
            ``'dbt_like'``: CE 1, KD from the last exit 1, other KD 0;
            ``'rand'``: i.i.d. uniform on ``rand_range`` with ``seed``;
            ``'uniform'``: every weight 1 (the NaiveDKD weights);
            ``'fixed'``: read from ``path`` and frozen.
        path (str, optional): for ``init='fixed'``: a JSON file holding a list
            of M weights (in the objective order) or a dict
            ``{objective name: weight}`` naming every objective; or an MMEngine
            checkpoint (``.pth``), whose ``state_dict[key]`` is taken.
        key (str): the state-dict key of γ in a checkpoint. Default:
            ``'loss_weights.gamma'`` (the classifier's submodule).
        seed (int): seed of ``init='rand'``. Default: 0.
        rand_range (tuple): bounds of ``init='rand'``. Default: (0, 1).
        alpha (float): α of Eq. 10, in [0, 1]. Default: 0.5.
        ema_momentum (float): m of Eq. 9, in [0, 1). Default: 0.9. The first
            held-out values set E_k.
        projection (str): applied after every γ step (the paper leaves the
            constraint open). ``'simplex'`` (default): the Euclidean
            projection onto ``{γ ≥ 0, Σγ = S₀}`` with S₀ the initial total,
            i.e. projected gradient descent on the scaled simplex.
            ``'clamp_rescale'``: clamp at 0, then rescale so that Σγ = S₀.
            ``'clamp'``: non-negativity only. ``'none'``. Why the total is
            fixed: Σγ multiplies θ's effective learning rate, and the one-step
            look-ahead of Eq. 8 rewards a larger step in the short run, so a
            free total would drift upwards and change the θ schedule. If every
            weight is clamped to 0 (``clamp_rescale``), γ is reset to S₀/M.
    """

    def __init__(self,
                 objectives: Optional[Sequence[Objective]] = None,
                 init: str = 'ds_like',
                 path: Optional[str] = None,
                 key: str = 'loss_weights.gamma',
                 seed: int = 0,
                 rand_range: Sequence[float] = (0.0, 1.0),
                 alpha: float = 0.5,
                 ema_momentum: float = 0.9,
                 projection: str = 'simplex',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if objectives is None or not len(objectives):
            raise ValueError(
                'LearnedLossWeights needs the objective list of the head\'s '
                'DenseKDLoss: build it through MultiExitClassifier '
                '(`loss_weights=dict(type=\'LearnedLossWeights\', ...)`).')
        self.objectives = list(objectives)
        self.num_exits = 1 + max(max(o.student, -1 if o.teacher is None
                                     else o.teacher) for o in self.objectives)
        _check_choice('init', init, INITS)
        _check_choice('projection', projection, PROJECTIONS)
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(
                f'alpha (the α of Eq. 10) must lie in [0, 1], got {alpha}.')
        if not 0.0 <= float(ema_momentum) < 1.0:
            raise ValueError(
                f'ema_momentum (m of Eq. 9) must lie in [0, 1), got '
                f'{ema_momentum}.')
        self.init_mode = init
        self.alpha = float(alpha)
        self.ema_momentum = float(ema_momentum)
        self.projection = projection

        if init == 'fixed':
            if path is None:
                raise ValueError(
                    "init='fixed' needs `path`: a JSON list/dict of weights "
                    'or a checkpoint holding γ.')
            gamma0 = load_gamma(path, self.names, key, self.num_exits)
        else:
            if path is not None:
                raise ValueError(
                    f"`path` is only read with init='fixed' (got init="
                    f'{init!r}).')
            gamma0 = initial_gamma(self.objectives, init, seed, rand_range)
        self.gamma = nn.Parameter(gamma0, requires_grad=init != 'fixed')
        total = float(gamma0.sum())
        if projection in ('simplex', 'clamp_rescale') and total <= 0:
            raise ValueError(
                f'The initial γ sums to {total}: the {projection!r} '
                'projection keeps Σγ at its initial total, which must be > 0.')
        self.register_buffer('total', torch.tensor(total))
        self.register_buffer('ema', torch.zeros(self.num_exits))
        self.register_buffer('ema_initialised', torch.tensor(False))
        # Training iterations seen, γ steps skipped for a non-finite
        # hypergradient: in the state dict so that resume continues them.
        self.register_buffer('num_steps', torch.tensor(0, dtype=torch.long))
        self.register_buffer('num_skipped', torch.tensor(0, dtype=torch.long))

    # ------------------------------------------------------------------ γ
    @property
    def names(self) -> List[str]:
        return [o.name for o in self.objectives]

    @property
    def num_objectives(self) -> int:
        return len(self.objectives)

    @property
    def learnable(self) -> bool:
        """Whether γ is learned by the bilevel iteration (not frozen)."""
        return self.gamma.requires_grad

    def weights(self) -> torch.Tensor:
        """γ for the training loss Σ γ_m ℓ_m (detached: θ's backward never
        reaches γ)."""
        return self.gamma.detach()

    def is_gamma_step(self, interval: int = 1) -> bool:
        """Whether the current training iteration takes a γ step, with one
        every ``interval`` iterations (``train_cfg.bilevel.gamma_interval``)
        counted by :attr:`num_steps`."""
        return self.learnable and int(self.num_steps) % int(interval) == 0

    @torch.no_grad()
    def project_(self) -> None:
        """Apply :attr:`projection` to γ in place (after a γ step)."""
        g = self.gamma
        if self.projection == 'none':
            return
        if self.projection == 'clamp':
            g.clamp_(min=0)
            return
        total = float(self.total)
        if self.projection == 'simplex':
            g.copy_(project_simplex(g.double(), total).to(g.dtype))
            return
        g.clamp_(min=0)  # clamp_rescale
        s = float(g.sum())
        if s > 0:
            g.mul_(total / s)
        else:
            g.fill_(total / g.numel())

    # --------------------------------------------------- Eq. 9 and Eq. 10
    def _ema_for(self, ce: torch.Tensor) -> torch.Tensor:
        if ce.numel() != self.num_exits:
            raise ValueError(
                f'Expected {self.num_exits} exit cross-entropies, got '
                f'{ce.numel()}.')
        # torch.where, not `if bool(...)`: no host-device sync in the
        # γ-gradient pass (bench/gpu_acceptance.py counts them)
        return torch.where(self.ema_initialised, self.ema,
                           ce.detach().to(self.ema))

    def val_loss(self, ce: torch.Tensor) -> torch.Tensor:
        """Eq. 10 for the per-exit held-out cross-entropies ``ce`` (K,):
        ``α Σ_k ce_k + (1 − α) Σ_k softplus(ce_k / E_k − 1)``, E_k constant
        (the current EMA, or ``ce`` itself before the first update)."""
        ema = self._ema_for(ce).to(ce)
        return (self.alpha * ce.sum()
                + (1 - self.alpha) * F.softplus(ce / ema - 1).sum())

    def val_loss_coefficients(self, ce: torch.Tensor) -> torch.Tensor:
        """∂L_val/∂ce_k at ``ce`` (K,), detached.

        The held-out gradient is v = Σ_k c_k ∇ce_k. Computing c_k from the
        global (all-reduced) ``ce`` makes v exact under data parallelism: each
        rank back-propagates Σ_k c_k ce_k(local) and the average of these
        gradients is ∇L_val of the global batch.
        """
        ce = ce.detach()
        ema = self._ema_for(ce).to(ce)
        return self.alpha + (1 - self.alpha) * torch.sigmoid(ce / ema - 1) / ema

    @torch.no_grad()
    def update_ema(self, ce: torch.Tensor) -> None:
        """Eq. 9, E_k ← m E_k + (1 − m) ce_k; the first call sets E_k = ce_k.
        Non-finite values leave their E_k unchanged."""
        ce = ce.detach().to(self.ema)
        finite = torch.isfinite(ce)
        init, all_finite = self.ema_initialised, finite.all()
        m = self.ema_momentum
        # the same updates as `if initialised: ... else: ...`, without
        # reading the flags on the host (a sync per γ step on a GPU)
        new = torch.where(init, m * self.ema + (1 - m) * ce, ce)
        keep = torch.where(init, finite, all_finite)
        self.ema.copy_(torch.where(keep, new, self.ema))
        self.ema_initialised.logical_or_(all_finite)

    # --------------------------------------------------------- logging
    def log_vars(self) -> Dict[str, float]:
        out = {f'gamma/{n}': float(v)
               for n, v in zip(self.names, self.gamma.detach())}
        if bool(self.ema_initialised):
            out.update({f'ema/ce{k + 1}': float(v)
                        for k, v in enumerate(self.ema)})
        out['gamma_skipped'] = float(self.num_skipped)
        return out

    # ------------------------------------------------------ state dict
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        key = prefix + 'gamma'
        if key in state_dict and state_dict[key].shape != self.gamma.shape:
            raise ValueError(
                f'The checkpoint holds {state_dict[key].numel()} loss weights '
                f'(γ) but this model has {self.num_objectives} objectives '
                f'({self.num_exits} exits): load a checkpoint of a model with '
                'the same number of exits and the same scheme.')
        ema_key = prefix + 'ema'
        if ema_key in state_dict and state_dict[ema_key].shape != self.ema.shape:
            raise ValueError(
                f'The checkpoint holds {state_dict[ema_key].numel()} expected '
                f'losses E_k but this model has {self.num_exits} exits: load '
                'a checkpoint of a model with the same number of exits.')
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        return (f'objectives={self.num_objectives}, init={self.init_mode!r}, '
                f'alpha={self.alpha}, projection={self.projection!r}, '
                f'learnable={self.learnable}')


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f'Unknown {name} {value!r}: choose one of {choices}.')


def initial_gamma(objectives: Sequence[Objective], init: str, seed: int = 0,
                  rand_range: Sequence[float] = (0.0, 1.0)) -> torch.Tensor:
    """The initial γ of ``init`` (see :class:`LearnedLossWeights`)."""
    num_exits = 1 + max(o.student if o.teacher is None else o.teacher
                        for o in objectives)
    if init == 'uniform':
        return torch.ones(len(objectives))
    if init == 'rand':
        lo, hi = float(rand_range[0]), float(rand_range[1])
        if not 0 <= lo < hi:
            raise ValueError(f'rand_range must satisfy 0 <= low < high, got '
                             f'{tuple(rand_range)}.')
        gen = torch.Generator().manual_seed(int(seed))
        return lo + (hi - lo) * torch.rand(len(objectives), generator=gen)
    if init == 'dbt_like':
        return torch.tensor([
            1.0 if o.kind == 'ce' or o.teacher == num_exits - 1 else 0.0
            for o in objectives])
    if init == 'ds_like':
        teachers = {}
        for o in objectives:
            if o.kind == 'kd':
                teachers[o.student] = teachers.get(o.student, 0) + 1
        return torch.tensor([
            1.0 if o.kind == 'ce' else 1.0 / teachers[o.student]
            for o in objectives])
    raise ValueError(f'Unknown init {init!r}: choose one of {INITS}.')


def load_gamma(path: str, names: Sequence[str],
               key: str = 'loss_weights.gamma',
               num_exits: Optional[int] = None) -> torch.Tensor:
    """Fixed γ from a JSON list/dict or from a checkpoint's state dict."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'γ file {path!r} does not exist.')
    num = len(names)
    if path.endswith('.json'):
        with open(path) as f:
            data = json.load(f)
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(names))
            missing = [n for n in names if n not in data]
            if unknown or missing:
                raise ValueError(
                    f'{path}: the γ dict must name every objective of the '
                    f'model exactly ({num}: {names}); unknown: {unknown}, '
                    f'missing: {missing}.')
            values = [float(data[n]) for n in names]
        elif isinstance(data, list):
            values = [float(x) for x in data]
        else:
            raise ValueError(f'{path}: expected a JSON list or dict of '
                             f'weights, got {type(data).__name__}.')
        gamma = torch.tensor(values)
    else:
        ckpt = torch.load(path, map_location='cpu', weights_only=False)
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
        if key not in state:
            cands = [k for k in state if k.endswith('loss_weights.gamma')]
            if len(cands) != 1:
                raise KeyError(
                    f'{path}: no γ under state_dict key {key!r} (found '
                    f'{cands}); set `key`.')
            key = cands[0]
        gamma = state[key].detach().float().flatten().clone()
    check_gamma_length(gamma, num, path, num_exits)
    bad = [f'{n}={float(v)!r}' for n, v in zip(names, gamma)
           if not (bool(torch.isfinite(v)) and float(v) >= 0)]
    if bad:
        raise ValueError(
            f"model.loss_weights.path={path!r} (init='fixed'): the fixed γ "
            f'must be finite and >= 0, got {", ".join(bad)}: a negative '
            'weight maximises its objective and NaN or inf makes every loss '
            'NaN; fix: give finite weights >= 0 (e.g. the gamma.json of a '
            'finished HDKD run).')
    return gamma


def check_gamma_length(gamma: Union[torch.Tensor, Sequence[float]], num: int,
                       source: str = 'γ',
                       num_exits: Optional[int] = None) -> None:
    """Raise a ValueError naming both lengths unless ``len(gamma) == num``."""
    n = len(gamma)
    if n != num:
        exits = f' ({num_exits} exits)' if num_exits else ''
        raise ValueError(
            f'{source}: got {n} loss weights (γ) but the model has {num} '
            f'objectives{exits}: give one weight per objective in the order '
            'of DenseKDLoss.names (ce1..ceK, then kd{teacher}-{student}), or '
            'a dict by objective name, taken from a model with the same '
            'number of exits and the same scheme.')
