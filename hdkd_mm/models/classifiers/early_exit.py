"""A multi-exit classifier whose ``predict`` exits early (same parameters and
checkpoints as :class:`~hdkd_mm.models.MultiExitClassifier`)::

    model = dict(type='EarlyExitClassifier',        # merges into the base
                 early_exit=dict(thresholds=[0.9, 0.8, 0.7, float('-inf')],
                                 confidence='max_softmax'))
    test_evaluator = dict(type='EarlyExitMetric')

Each predicted data sample then has the taken exit's ``pred_score`` /
``pred_label``, ``exit_index`` (1-based), ``exit_mflops``,
``exit_confidence`` and ``exit_logits`` (and no ``exit_scores``: later exits
never ran). The routing is :class:`~hdkd_mm.evaluation.EarlyExitPredictor`.
"""
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from .multi_exit import MultiExitClassifier

__all__ = ['EarlyExitClassifier', 'early_exit_samples']


def early_exit_samples(res, data_samples: Optional[List[DataSample]] = None
                       ) -> List[DataSample]:
    """Data samples from an
    :class:`~hdkd_mm.evaluation.early_exit.EarlyExitResult`: the taken
    exit's ``pred_score``/``pred_label``, ``exit_index`` (1-based),
    ``exit_mflops``, ``exit_confidence`` and ``exit_logits``."""
    scores = F.softmax(res.logits.detach().float(), dim=-1)
    if data_samples is None:
        data_samples = [None] * scores.size(0)
    out = []
    for i, (sample, score) in enumerate(zip(data_samples, scores)):
        sample = DataSample() if sample is None else sample
        sample.set_pred_score(score)
        sample.set_pred_label(res.pred[i:i + 1].to(score.device))
        sample.set_field(int(res.exit[i]), 'exit_index')
        sample.set_field(float(res.mflops[i]), 'exit_mflops')
        sample.set_field(float(res.confidence[i]), 'exit_confidence')
        sample.set_field(res.logits[i].detach(), 'exit_logits',
                         dtype=torch.Tensor)
        out.append(sample)
    return out


@MODELS.register_module()
class EarlyExitClassifier(MultiExitClassifier):
    """A :class:`~hdkd_mm.models.MultiExitClassifier` whose ``predict`` exits
    early (training is unchanged).

    Args:
        early_exit (dict, optional): ``thresholds`` (K values, the last
            ignored), optionally ``confidence`` (the measure the thresholds
            were fitted with: ``'max_softmax'`` (default), ``'entropy'`` or
            ``'margin'``), ``exit_mflops`` (K cumulative costs; default
            computed from the input shape), ``min_rows`` and
            ``fast_kernels`` (route on an inference copy with BatchNorm
            folded and 1×1 convolutions as ``bmm``, see
            :mod:`hdkd_mm.evaluation.fast_inference`; the copy is made at
            the first prediction and again whenever the weights have changed
            since, e.g. after loading a checkpoint). ``None``: the plain
            all-exit ``predict``.
        **kwargs: as :class:`~hdkd_mm.models.MultiExitClassifier`.
    """

    def __init__(self, *args, early_exit: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.early_exit = None
        self._fast_kernels = False
        self._fast_copy = None  # (weights version, predictor on the copy)
        if early_exit is not None:
            self.set_early_exit(**early_exit)

    def set_early_exit(self, thresholds=None, exit_mflops=None,
                       min_rows: Optional[int] = None,
                       fast_kernels: bool = False,
                       confidence: Optional[str] = None) -> None:
        """Switch early-exit prediction on (``thresholds``) or off
        (``None``)."""
        from hdkd_mm.evaluation.early_exit import EarlyExitPredictor
        from hdkd_mm.evaluation.thresholds import load_thresholds
        self._fast_copy = None
        self._fast_kernels = bool(fast_kernels)
        if thresholds is None:
            self.early_exit = None
            return
        # a thresholds file may record its confidence: a mismatch is refused
        thresholds, confidence = load_thresholds(thresholds, confidence)
        self.early_exit = EarlyExitPredictor(self, thresholds, exit_mflops,
                                             min_rows, confidence)

    def _weights_version(self) -> tuple:
        """Changes whenever a parameter or buffer is written in place
        (``load_state_dict``, an optimizer step) or replaced."""
        return tuple((id(t), t._version) for t in
                     list(self.parameters()) + list(self.buffers()))

    def _fast_predictor(self):
        from hdkd_mm.evaluation.early_exit import EarlyExitPredictor
        from hdkd_mm.evaluation.fast_inference import optimize_for_inference
        version = self._weights_version()
        if self._fast_copy is None or self._fast_copy[0] != version:
            plain = self.early_exit
            self.early_exit, self._fast_copy = None, None  # not copied
            try:
                copy = optimize_for_inference(self)
            finally:
                self.early_exit = plain
            # the copy's costs equal the plain model's (same FLOP rules)
            predictor = EarlyExitPredictor(
                copy, plain.thresholds, plain.exit_mflops, plain.min_rows,
                plain.confidence, plain.head_min_rows)
            self._fast_copy = (version, predictor)
        return self._fast_copy[1]

    def predict(self, inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None):
        if self.early_exit is None:
            return super().predict(inputs, data_samples)
        if self._fast_kernels:
            if self.training:
                from hdkd_mm.evaluation.early_exit import EVAL_MODE_NEEDED
                raise RuntimeError(EVAL_MODE_NEEDED)
            return early_exit_samples(self._fast_predictor()(inputs),
                                      data_samples)
        return early_exit_samples(self.early_exit(inputs), data_samples)
