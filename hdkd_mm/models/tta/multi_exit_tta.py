"""Test-time augmentation for multi-exit classifiers (``tools/test.py --tta``).

MMPretrain's ``AverageClsScoreTTA`` averages ``pred_score`` only, so every
exit but the last would keep the scores of the first augmented view. Here
every exit's scores are averaged over the views.
"""
from typing import List

import torch
from mmengine.model import BaseTTAModel
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


@MODELS.register_module()
class AverageExitScoresTTA(BaseTTAModel):
    """Average every exit's softmax scores over the augmented views.

    ``module`` is a :class:`~hdkd_mm.models.MultiExitClassifier` config (or
    model) whose predictions carry ``exit_scores`` of shape ``(K, C)``. The
    merged sample has the mean ``exit_scores`` ``(K, C)`` over the V views,
    and, like the model's own predictions, the last exit's mean scores as
    ``pred_score`` and their argmax as ``pred_label``; the other fields
    (``gt_label``, metainfo) are the first view's.

    An early-exit prediction (``EarlyExitClassifier`` with thresholds) is
    refused: each view may leave at a different exit and the later exits
    never ran, so there is no score per exit to average.
    """

    def merge_preds(
            self,
            data_samples_list: List[List[DataSample]]) -> List[DataSample]:
        """``data_samples_list[i]``: the V views' predictions of image i."""
        return [self._merge_views(views) for views in data_samples_list]

    @staticmethod
    def _merge_views(views: List[DataSample]) -> DataSample:
        for view in views:
            if 'exit_scores' not in view:
                hint = (
                    ' It is an early-exit prediction (it has `exit_index`): '
                    'test the early-exit model without --tta, or without '
                    '`model.early_exit`.' if 'exit_index' in view else '')
                raise KeyError(
                    'AverageExitScoresTTA averages `exit_scores` (K, C) over '
                    'the augmented views, and a prediction has none: wrap a '
                    f'MultiExitClassifier (tta_model.module).{hint}')
        scores = torch.stack([v.exit_scores for v in views]).mean(0)
        merged = views[0].new()
        merged.set_field(scores, 'exit_scores', dtype=torch.Tensor)
        merged.set_pred_score(scores[-1])
        merged.set_pred_label(scores[-1].argmax(keepdim=True))
        return merged
