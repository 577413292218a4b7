"""Anytime prediction: top-k accuracy of every exit."""
from typing import List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS


def exit_topk_accuracy(exit_scores: torch.Tensor, labels: torch.Tensor,
                       topk: Sequence[int]) -> torch.Tensor:
    """Top-k accuracy (percent) of every exit.

    Args:
        exit_scores: scores or logits of shape ``(N, K, C)``.
        labels: labels of shape ``(N,)``.
        topk: the k values.

    Returns:
        Tensor of shape ``(K, len(topk))``.
    """
    num_classes = exit_scores.size(-1)
    maxk = min(max(topk), num_classes)
    top = exit_scores.topk(maxk, dim=-1).indices  # (N, K, maxk)
    hit = top == labels.view(-1, 1, 1)
    return torch.stack(
        [hit[..., :min(k, num_classes)].any(-1).float().mean(0) * 100
         for k in topk], dim=-1)


@METRICS.register_module()
class MultiExitAccuracy(BaseMetric):
    """Top-k accuracy of every exit of a multi-exit classifier.

    Reads ``exit_scores`` (shape ``(K, C)``) from each predicted data sample
    and reports ``exit{k}/top{n}`` for every exit k (1-based) and every n in
    ``topk``, in percent.

    Args:
        topk (Sequence[int]): the k of top-k. Default: ``(1, 5)``.
        collect_device (str): device used to collect results across ranks.
        prefix (str, optional): prefix of the metric names. Default: none.
    """
    default_prefix: Optional[str] = None

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
        return {
            f'exit{k + 1}/top{n}': acc[k, i].item()
            for k in range(acc.size(0)) for i, n in enumerate(self.topk)
        }
