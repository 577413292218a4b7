"""The objective set of multi-exit training, defined once.

A K-exit network gives logits ``z_1 .. z_K``. The objectives, in a fixed order:

* ``ce{k}``: cross-entropy of exit k with the label, k = 1..K;
* ``kd{i}-{j}``: distillation from teacher exit i to a student exit j < i
  (Eq. 2 of the paper): ``T² · mean_n(-Σ_c softmax(z_i/T)_c · log softmax(z_j/T)_c)``
  with the teacher's probabilities detached.

Which objectives exist, and whether their weights are fixed or learned (γ), is
the training *scheme* (:data:`SCHEMES`). The loss, the γ weighting, the logging
and the docs all read the set from here.
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS


@dataclass(frozen=True)
class Objective:
    """One training objective. Exit indices are 0-based; names are 1-based."""

    kind: str  # 'ce' or 'kd'
    student: int
    teacher: Optional[int] = None

    @property
    def name(self) -> str:
        if self.kind == 'ce':
            return f'ce{self.student + 1}'
        return f'kd{self.teacher + 1}-{self.student + 1}'


@dataclass(frozen=True)
class Scheme:
    """A training scheme: which KD pairs exist and how weights are set.

    Attributes:
        kd_pairs: ``'none'``, ``'last'`` (last exit teaches every earlier
            exit) or ``'dense'`` (every exit teaches every earlier exit).
        learned: whether the objective weights are the learned γ (bilevel).
        gradient_equilibrium: the Impr scheme's gradient rescaling of the
            shared features (Li et al. 2019).
    """

    kd_pairs: str
    learned: bool
    gradient_equilibrium: bool = False


SCHEMES = {
    'msdnet': Scheme('none', learned=False),
    'dbt': Scheme('last', learned=False),
    'naive_dkd': Scheme('dense', learned=False),
    'impr': Scheme('last', learned=False, gradient_equilibrium=True),
    'hmsdnet': Scheme('none', learned=True),
    'hdbt': Scheme('last', learned=True),
    'hdkd': Scheme('dense', learned=True),
}


def get_scheme(name: str) -> Scheme:
    if name not in SCHEMES:
        raise ValueError(f'Unknown training scheme {name!r}: choose one of '
                         f'{sorted(SCHEMES)} (the `scheme` key of the loss).')
    return SCHEMES[name]


def build_objectives(num_exits: int, kd_pairs: str) -> List[Objective]:
    """The ordered objective list: all CE terms, then KD terms by teacher,
    then student (``kd2-1, kd3-1, kd3-2, ...``)."""
    if num_exits < 1:
        raise ValueError(f'num_exits must be >= 1, got {num_exits}.')
    objectives = [Objective('ce', k) for k in range(num_exits)]
    if kd_pairs == 'none':
        return objectives
    if kd_pairs == 'last':
        teachers = [num_exits - 1]
    elif kd_pairs == 'dense':
        teachers = range(1, num_exits)
    else:
        raise ValueError(f"kd_pairs must be 'none', 'last' or 'dense', "
                         f'got {kd_pairs!r}.')
    for teacher in teachers:
        for student in range(teacher):
            objectives.append(Objective('kd', student, teacher))
    return objectives


def _finite(key: str, value, fix: str) -> float:
    """``value`` as a float; a ValueError naming the config key when it is
    not a finite number (NaN or ±inf would silently poison every loss)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(
            f'model.head.loss.{key}={value!r} is not a finite number, and '
            f'NaN or inf would turn every loss into NaN; fix: {fix}.')
    return number


@MODELS.register_module()
class DenseKDLoss(nn.Module):
    """Per-objective losses of a multi-exit classifier.

    Args:
        scheme (str): one of :data:`SCHEMES`. Default: ``'msdnet'``.
        num_exits (int): number of exits K.
        temperature (float): distillation temperature T, finite and > 0.
            The paper does not give its value; 4.0 is the common choice of
            the KD literature.
        kd_weight (float): λ of Eq. 3/4, the fixed weight of every KD term in
            the non-learned schemes: finite and >= 0 (and <= 1 for ``impr``,
            whose CE weight is 1 - λ). Default: 1.0.

    ``forward(exit_logits, target)`` takes K tensors of shape ``(N, C)`` and
    labels of shape ``(N,)`` and returns the vector of the M objective losses,
    shape ``(M,)``, in the order of :attr:`objectives`.
    """

    def __init__(self,
                 num_exits: int,
                 scheme: str = 'msdnet',
                 temperature: float = 4.0,
                 kd_weight: float = 1.0):
        super().__init__()
        self.scheme_name = scheme
        self.scheme = get_scheme(scheme)
        self.num_exits = num_exits
        self.temperature = _finite('temperature', temperature,
                                   'temperature=4.0')
        if self.temperature <= 0:
            raise ValueError(
                f'model.head.loss.temperature={temperature!r}: the KD '
                'temperature T divides the logits and must be > 0; fix: '
                'temperature=4.0 (the configs\' value; impr uses 1.0).')
        self.kd_weight = _finite('kd_weight', kd_weight, 'kd_weight=1.0')
        if self.kd_weight < 0:
            raise ValueError(
                f'model.head.loss.kd_weight={kd_weight!r}: λ weighs every '
                'KD term, and a negative λ maximises the distillation loss '
                '(the training loss goes below zero and the exits are pushed '
                'away from their teachers); fix: kd_weight >= 0 (1.0 in the '
                'configs, 0 for no distillation).')
        if scheme == 'impr' and self.kd_weight > 1:
            raise ValueError(
                f"model.head.loss.kd_weight={kd_weight!r} with scheme='impr':"
                ' the CE of every exit but the last is weighted by 1 - λ = '
                f'{1 - self.kd_weight:g}, a negative weight that maximises '
                'those exits\' classification loss; fix: 0 <= kd_weight <= 1 '
                "(IMTA's published value is 0.1).")
        self.objectives = build_objectives(num_exits, self.scheme.kd_pairs)
        self.register_buffer(
            'default_weights',
            torch.tensor([self._fixed_weight(o) for o in self.objectives]),
            persistent=False)
        kd = [o for o in self.objectives if o.kind == 'kd']
        self.register_buffer(
            '_kd_index',
            torch.tensor([[o.teacher, o.student] for o in kd],
                         dtype=torch.long).reshape(-1, 2),
            persistent=False)

    def _fixed_weight(self, objective: Objective) -> float:
        """The non-learned weight: 1 for CE and λ for KD (Eq. 3/4); the
        ``impr`` scheme (IMTA's one-for-all KD) weighs the CE of every
        student exit by 1 - λ instead."""
        if objective.kind == 'kd':
            return self.kd_weight
        if (self.scheme_name == 'impr'
                and objective.student < self.num_exits - 1):
            return 1.0 - self.kd_weight
        return 1.0

    @property
    def names(self) -> List[str]:
        return [o.name for o in self.objectives]

    @property
    def num_objectives(self) -> int:
        return len(self.objectives)

    def forward(self, exit_logits: Sequence[torch.Tensor],
                target: torch.Tensor) -> torch.Tensor:
        if len(exit_logits) != self.num_exits:
            raise ValueError(
                f'DenseKDLoss was built for {self.num_exits} exits but got '
                f'{len(exit_logits)} exit logits: set `num_exits` to the '
                'number of exits of the backbone/head.')
        logits = torch.stack(list(exit_logits))  # (K, N, C)
        ce = self._ce(logits, target)
        if self._kd_index.numel() == 0:
            return ce
        return torch.cat([ce, self.kd_losses(logits)])

    def ce_losses(self, exit_logits: Sequence[torch.Tensor],
                  target: torch.Tensor) -> torch.Tensor:
        """The K cross-entropies alone (the first K objectives), shape (K,).

        Used for the held-out (validation) loss of Eq. 10."""
        if len(exit_logits) != self.num_exits:
            raise ValueError(
                f'DenseKDLoss was built for {self.num_exits} exits but got '
                f'{len(exit_logits)} exit logits.')
        return self._ce(torch.stack(list(exit_logits)), target)

    def _ce(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits.flatten(0, 1), target.repeat(self.num_exits),
            reduction='none').view(self.num_exits, -1).mean(dim=1)

    def kd_losses(self, logits: torch.Tensor) -> torch.Tensor:
        """KD terms for stacked logits (K, N, C) -> (number of KD pairs,)."""
        T = self.temperature
        teachers, students = self._kd_index[:, 0], self._kd_index[:, 1]
        teacher_prob = F.softmax(logits[teachers].detach() / T, dim=-1)
        student_logp = F.log_softmax(logits[students] / T, dim=-1)
        soft_ce = -(teacher_prob * student_logp).sum(dim=-1).mean(dim=-1)
        return soft_ce * (T * T)
