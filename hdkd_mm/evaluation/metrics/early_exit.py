"""Accuracy and average cost of early-exit predictions."""
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from ..confidence import topk_correct

__all__ = ['EarlyExitMetric']


@METRICS.register_module()
class EarlyExitMetric(BaseMetric):
    """Accuracy and average cost of early-exit predictions.

    Reads ``exit_logits`` (else ``pred_score``), ``gt_label``,
    ``exit_index`` and ``exit_mflops`` (from an ``EarlyExitClassifier``)
    and reports ``early_exit/top{k}`` for k in ``topk`` (percent, the tie
    rule of :func:`~hdkd_mm.evaluation.confidence.topk_correct`),
    ``early_exit/mflops`` (mean cost) and ``early_exit/exit{j}_share``
    (fraction of samples leaving at exit j).

    Args:
        topk (Sequence[int]): default ``(1, 5)`` (the argument of
            ``MultiExitAccuracy`` too, so ``test_evaluator.type=
            EarlyExitMetric`` can replace it).
    """
    default_prefix: Optional[str] = None

    def __init__(self, topk: Sequence[int] = (1, 5),
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        topk = (topk, ) if isinstance(topk, int) else tuple(topk)
        if not topk or min(topk) < 1:
            raise ValueError(f'topk must be positive integers, got {topk}.')
        self.topk = topk

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            if 'exit_index' not in s:
                raise KeyError(
                    'EarlyExitMetric needs `exit_index` in the predicted data '
                    'samples: use it with an EarlyExitClassifier given '
                    '`early_exit=dict(thresholds=...)`.')
            # rank by the logits (as the simulated evaluation does) when
            # they are there: softmax can round close logits to a tie
            scores = s['exit_logits'] if 'exit_logits' in s \
                else s['pred_score']
            self.results.append(
                (scores.cpu().float(), int(s['gt_label'][0]),
                 int(s['exit_index']), float(s['exit_mflops'])))

    def compute_metrics(self, results: List) -> dict:
        scores = torch.stack([r[0] for r in results]).numpy()
        labels = np.array([r[1] for r in results])
        exits = np.array([r[2] for r in results])
        out = {
            f'early_exit/top{k}': 100.0 * float(
                topk_correct(scores[:, None], labels, k).mean())
            for k in self.topk
        }
        out['early_exit/mflops'] = float(np.mean([r[3] for r in results]))
        for j in range(1, int(exits.max()) + 1):
            out[f'early_exit/exit{j}_share'] = float((exits == j).mean())
        return out
