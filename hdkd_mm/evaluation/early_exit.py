"""Real early-exit inference: evaluate the exits in order and run the later
stages only for the samples that are still undecided.

:class:`EarlyExitPredictor` takes a built
:class:`~hdkd_mm.models.MultiExitClassifier` in eval mode whose backbone has
an exit protocol (:mod:`hdkd_mm.models.exits`: MSDNet, MMPretrain ResNets
and ViT, timm feature backbones), a batch of (preprocessed) images and one
threshold per exit. Stage 1 runs on the whole batch; after exit k, every
sample whose confidence (:mod:`hdkd_mm.evaluation.confidence`; max-softmax by
default) is ``>=`` threshold k leaves with exit k's prediction, and the
backbone state is index-selected down to the remaining samples before stage
k+1 runs. The last exit takes every sample that is left (its threshold is
not consulted, as in :func:`~hdkd_mm.evaluation.budgeted.apply_thresholds`).
No per-sample Python loop: one ``select`` of the state per exit.

**Same decisions as the simulation.** Confidences and predictions come from
:func:`~hdkd_mm.evaluation.confidence.confidence`, the function the
simulation (:func:`~hdkd_mm.evaluation.budgeted.exit_confidences`) uses, on
the float32 logits, with the same ``>=``; so for equal logits the exits and
predictions equal ``apply_thresholds(exit_confidences(full_logits)[0],
thresholds)`` exactly. In eval mode a sample's logits do not depend on the
other samples of its batch mathematically, but CPU kernels may pick another
algorithm for a batch of few rows and change the last bits of a logit (see
docs/early_exit.md), which could flip a decision for a confidence that
close to a threshold. So a sub-batch of fewer than ``min_rows`` samples (the
exit protocol's :attr:`~hdkd_mm.models.exits.ExitProtocol.min_rows`: 3, or
16 for timm's feature backbones) is padded with copies of its first sample
(never beyond the size of the input batch) before the later stages, and the
exits' classifiers (cheap, but ``Linear`` layers take another BLAS path
below about 16 rows) run on at least ``head_min_rows`` (16) rows; the copies
cost at most ``min_rows - 1`` samples' work per stage.
:func:`~hdkd_mm.evaluation.early_exit_eval.evaluate_early_exit` with ``verify``
counts mismatches on real data.

**Cost.** ``exit_mflops`` (cumulative MFLOPs of each exit, as
:func:`~hdkd_mm.analysis.flops.exit_costs`; computed from the input shape on
first use when not given) gives each sample's cost: the cumulative cost of
the exit it took.

The predict mode of a config is
:class:`~hdkd_mm.models.classifiers.EarlyExitClassifier`, scored by
:class:`~hdkd_mm.evaluation.metrics.EarlyExitMetric`.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from hdkd_mm.models.exits import exit_protocol

from .confidence import DEFAULT_CONFIDENCE, check_confidence, confidence
from .routing import route
from .thresholds import check_thresholds

__all__ = [
    'EarlyExitResult', 'EarlyExitPredictor', 'early_exit_forward',
    'DEFAULT_MIN_ROWS', 'DEFAULT_HEAD_MIN_ROWS', 'EVAL_MODE_NEEDED'
]

# Smallest sub-batch the routing runs the stages (when the exit protocol
# does not say) and the exit heads on (see the module doc).
DEFAULT_MIN_ROWS = 3
DEFAULT_HEAD_MIN_ROWS = 16

EVAL_MODE_NEEDED = (
    'Early-exit inference needs the model in eval mode (model.eval()): in '
    'train mode BatchNorm normalises with the statistics of whatever samples '
    'are left in the batch.')


def _check_mflops(exit_mflops, num_exits: int) -> np.ndarray:
    costs = np.asarray(exit_mflops, dtype=np.float64)
    if costs.shape != (num_exits, ) or not np.all(np.isfinite(costs)):
        raise ValueError(f'exit_mflops must hold K = {num_exits} finite '
                         f'cumulative costs; got {np.asarray(exit_mflops)}')
    return costs


@dataclass
class EarlyExitResult:
    """Per-sample outcome of early-exit inference (input order).

    Attributes:
        pred: int64 ``(N,)`` predicted class (argmax of the taken exit).
        exit: int64 ``(N,)`` exit taken, **1-based**.
        mflops: float64 ``(N,)`` cumulative MFLOPs of the exit taken.
        confidence: float64 ``(N,)`` confidence of the taken exit.
        logits: ``(N, C)`` logits of the taken exit (model dtype/device).
        rows: rows each stage/exit ran on (``rows[k]`` for stage k + 1,
            padding copies included) - what the routing saved.
    """
    pred: torch.Tensor
    exit: torch.Tensor
    mflops: torch.Tensor
    confidence: torch.Tensor
    logits: torch.Tensor
    rows: List[int]

    @property
    def exit0(self) -> np.ndarray:
        """0-based exit indices as numpy (what ``apply_thresholds`` gives)."""
        return self.exit.numpy() - 1


class EarlyExitPredictor:
    """Early-exit inference for one model and one set of thresholds.

    Args:
        model: a :class:`~hdkd_mm.models.MultiExitClassifier` (backbone
            with an exit protocol, head with ``exits``), in eval mode.
        thresholds: K per-exit confidence thresholds (last one ignored).
        exit_mflops: K cumulative per-exit costs; default: computed with
            :func:`~hdkd_mm.analysis.flops.exit_costs` for the input shape
            on first use.
        min_rows: smallest sub-batch the later stages run on (padding
            copies, never beyond the input batch size); default the exit
            protocol's ``min_rows``; 1 disables the guard.
        head_min_rows: the same for the exits' classifiers (default 16).
        confidence: the confidence measure the thresholds were fitted with
            (:data:`~hdkd_mm.evaluation.confidence.CONFIDENCES`).
    """

    def __init__(self, model: nn.Module, thresholds,
                 exit_mflops: Optional[Sequence[float]] = None,
                 min_rows: Optional[int] = None,
                 confidence: str = DEFAULT_CONFIDENCE,
                 head_min_rows: int = DEFAULT_HEAD_MIN_ROWS):
        self.model = model
        self.confidence = check_confidence(confidence)
        self.protocol = exit_protocol(model.backbone)
        exits = getattr(model.head, 'exits', None)
        if exits is None:
            raise ValueError(f'Early-exit inference needs a multi-exit head '
                             f'with `exits`; got {type(model.head).__name__}.')
        self.exits = exits
        self.num_exits = len(exits)
        if self.protocol.num_exits != self.num_exits:
            raise ValueError(
                f'The backbone runs {self.protocol.num_exits} stages but the '
                f'head has {self.num_exits} exits.')
        self.thresholds = check_thresholds(thresholds, self.num_exits)
        self._costs = {}
        self.exit_mflops = None
        if exit_mflops is not None:
            self.exit_mflops = _check_mflops(exit_mflops, self.num_exits)
        if min_rows is None:
            min_rows = getattr(self.protocol, 'min_rows', DEFAULT_MIN_ROWS)
        for key, value in (('min_rows', min_rows),
                           ('head_min_rows', head_min_rows)):
            if int(value) != value or value < 1:
                raise ValueError(f'{key} must be a positive integer; got '
                                 f'{value}')
        self.min_rows = int(min_rows)
        self.head_min_rows = int(head_min_rows)

    def costs(self, input_shape: Sequence[int]) -> np.ndarray:
        """Cumulative per-exit MFLOPs for one image of ``input_shape``."""
        if self.exit_mflops is not None:
            return self.exit_mflops
        key = tuple(int(s) for s in input_shape)
        if key not in self._costs:
            from hdkd_mm.analysis.flops import exit_costs
            rows = exit_costs(self.model, key)
            self._costs[key] = np.array([r['mflops'] for r in rows])
        return self._costs[key]

    def _exit_logits(self, k: int, feat: torch.Tensor,
                     prev: Optional[torch.Tensor], pad_to: int
                     ) -> torch.Tensor:
        """Exit k's logits for the rows of ``feat``, computed on at least
        ``pad_to`` rows (copies of the first; eval-mode heads treat rows
        independently)."""
        rows = int(feat.shape[0])
        if rows >= pad_to:
            return self.model.head.exit_forward(k, feat, prev)
        index = torch.zeros(pad_to, dtype=torch.long, device=feat.device)
        index[:rows] = torch.arange(rows, device=feat.device)
        prev = None if prev is None else prev.index_select(0, index)
        return self.model.head.exit_forward(
            k, feat.index_select(0, index), prev)[:rows]

    def _conf_pred(self, z: torch.Tensor):
        return confidence(z.detach().float().cpu().numpy(), self.confidence)

    @torch.inference_mode()
    def __call__(self, inputs: torch.Tensor) -> EarlyExitResult:
        """Route a batch of preprocessed images ``(N, C, H, W)`` (the
        decisions: :func:`~hdkd_mm.evaluation.routing.route`)."""
        if self.model.training:
            raise RuntimeError(EVAL_MODE_NEEDED)
        n = int(inputs.shape[0])
        if n == 0:
            raise ValueError('Early-exit inference got an empty batch.')
        costs = self.costs(inputs.shape[1:])
        head_pad_to = min(self.head_min_rows, n)
        device = inputs.device
        # the backend's rows: the protocol's state and exit k's logits
        # (exit k + 1 of a collaborative head reads them)
        cur = dict(state=self.protocol.start(inputs), logits=None)
        out = {}

        def advance(k):
            cur['state'], feat = self.protocol.run(k, cur['state'])
            cur['logits'] = self._exit_logits(k, feat, cur['logits'],
                                              head_pad_to)
            return int(feat.shape[0])

        def score(m):
            return self._conf_pred(cur['logits'][:m])

        def take(global_rows, local_rows):
            z = cur['logits']
            if 'logits' not in out:
                out['logits'] = z.new_empty((n, ) + tuple(z.shape[1:]))
            out['logits'][torch.from_numpy(global_rows).to(device)] = \
                z.index_select(0, torch.from_numpy(local_rows).to(device))

        def keep(local_rows):
            index = torch.from_numpy(local_rows).to(device)
            cur['state'] = self.protocol.select(cur['state'], index)
            cur['logits'] = cur['logits'].index_select(0, index)

        pred, exit_, conf, rows = route(n, self.thresholds, self.min_rows,
                                        advance, score, take, keep)
        return EarlyExitResult(
            pred=torch.from_numpy(pred),
            exit=torch.from_numpy(exit_),
            mflops=torch.from_numpy(costs[exit_ - 1]),
            confidence=torch.from_numpy(conf),
            logits=out['logits'],
            rows=rows)


def early_exit_forward(model: nn.Module, inputs: torch.Tensor, thresholds,
                       exit_mflops: Optional[Sequence[float]] = None,
                       min_rows: Optional[int] = None,
                       confidence: str = DEFAULT_CONFIDENCE
                       ) -> EarlyExitResult:
    """One-shot :class:`EarlyExitPredictor` call (see there)."""
    return EarlyExitPredictor(model, thresholds, exit_mflops, min_rows,
                              confidence)(inputs)
