"""Anytime prediction: top-k accuracy of every exit."""
import re
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from ..confidence import topk_correct


def exit_topk_accuracy(exit_scores: torch.Tensor, labels: torch.Tensor,
                       topk: Sequence[int]) -> torch.Tensor:
    """Top-k accuracy (percent) of every exit, with the one tie rule of
    :func:`~hdkd_mm.evaluation.confidence.topk_correct` (ties rank the lower
    class index first).

    Args:
        exit_scores: scores or logits of shape ``(N, K, C)``.
        labels: labels of shape ``(N,)``.
        topk: the k values.

    Returns:
        float64 tensor of shape ``(K, len(topk))``.
    """
    scores = exit_scores.detach().cpu()
    if scores.dtype not in (torch.float32, torch.float64):
        scores = scores.float()
    scores, y = scores.numpy(), labels.detach().cpu().numpy()
    return torch.stack([
        torch.from_numpy(topk_correct(scores, y, k).mean(0) * 100)
        for k in topk], dim=-1)


#: A logged per-exit top-1 key: ``multi-exit/exit{k}/top1`` (any prefix), or
#: ``exit{k}/top1`` as logs written before the metric had a prefix say.
EXIT_TOP1_KEY = re.compile(r'^(?:[^/]+/)?exit(\d+)/top1$')


def exit_top1(metrics: Dict[str, float]) -> List[float]:
    """Every exit's top-1, in exit order, from a dict of logged metrics
    (:data:`EXIT_TOP1_KEY` keys; an empty list when there are none)."""
    found = {int(m.group(1)): float(v) for k, v in metrics.items()
             for m in [EXIT_TOP1_KEY.match(k)] if m}
    return [found[k] for k in sorted(found)]


@METRICS.register_module()
class MultiExitAccuracy(BaseMetric):
    """Top-k accuracy of every exit of a multi-exit classifier.

    Reads ``exit_scores`` (shape ``(K, C)``) from each predicted data sample
    and reports, in percent, under the prefix (``multi-exit`` by default, as
    MMPretrain's ``SingleLabelMetric`` reports under ``single-label``):

    * ``multi-exit/top{n}``: the last exit's top-n, the model's accuracy when
      every exit runs (what ``pred_score`` holds). It comes first, so
      ``save_best='auto'`` picks the last exit's top-1 for any K;
    * ``multi-exit/exit{k}/top{n}``: exit k's (1-based) top-n, every exit.

    So ``save_best='multi-exit/top1'`` keeps the checkpoint with the best
    last exit, ``save_best='multi-exit/exit1/top1'`` the best first exit.

    Args:
        topk (Sequence[int]): the k of top-k. Default: ``(1, 5)``.
        collect_device (str): device used to collect results across ranks.
        prefix (str, optional): prefix of the metric names; ``None`` gives
            ``default_prefix`` (``'multi-exit'``).
    """
    default_prefix: Optional[str] = 'multi-exit'

    def __init__(self,
                 topk: Sequence[int] = (1, 5),
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if isinstance(topk, int):
            topk = (topk, )
        if not topk or min(topk) < 1:
            raise ValueError(f'topk must be positive integers, got {topk}.')
        self.topk = tuple(topk)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if 'exit_scores' not in sample:
                raise KeyError(
                    'MultiExitAccuracy needs `exit_scores` in the predicted '
                    'data samples: use it with a MultiExitClassifier.')
            self.results.append(
                (sample['exit_scores'].cpu(), int(sample['gt_label'][0])))

    def compute_metrics(self, results: List) -> dict:
        scores = torch.stack([r[0] for r in results])
        labels = torch.tensor([r[1] for r in results])
        acc = exit_topk_accuracy(scores, labels, self.topk)
        last = acc.size(0) - 1
        out = {f'top{n}': acc[last, i].item()
               for i, n in enumerate(self.topk)}
        out.update({
            f'exit{k + 1}/top{n}': acc[k, i].item()
            for k in range(acc.size(0)) for i, n in enumerate(self.topk)
        })
        return out
