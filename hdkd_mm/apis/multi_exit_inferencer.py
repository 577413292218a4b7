"""Inference on images with every exit's scores, or with early exit."""
from typing import List, Optional, Union

import numpy as np
import torch
from mmengine.model import BaseModel
from mmengine.registry import INFERENCERS
from mmpretrain.apis import ImageClassificationInferencer
from mmpretrain.structures import DataSample


@INFERENCERS.register_module()
class MultiExitInferencer(ImageClassificationInferencer):
    """MMPretrain's ``ImageClassificationInferencer`` for multi-exit models:
    it also returns every exit's scores or, for an early-exit model, the
    exit each image took and its cost.

    Args:
        model (str | Config | BaseModel): a config path, a ``Config``, a
            model name of the model index, or a built
            :class:`~hdkd_mm.models.MultiExitClassifier` (as MMPretrain's).
        pretrained (bool | str): a checkpoint path; ``True`` takes the
            config's ``load_from`` (none: random weights, with MMPretrain's
            warning), ``False`` leaves the weights as initialised.
        device (str | torch.device, optional): where the model runs.
        classes (Sequence[str], optional): class names; default: the
            checkpoint's or the test dataset's ``classes``.
        early_exit (dict, optional): early-exit prediction: ``thresholds``
            (K max-softmax thresholds, the last ignored, e.g. from
            ``tools/analysis/budgeted_eval.py``), optionally ``exit_mflops``,
            ``min_rows`` and ``fast_kernels`` (the arguments of
            ``EarlyExitClassifier(early_exit=...)``). A config or name is
            built as an ``EarlyExitClassifier``; a built model must be one.
        **kwargs: keys merged into the config's ``model`` (MMPretrain's).

    Calling it on images (paths, H×W×3 BGR arrays, a folder, or a list)
    returns one dict per image with MMPretrain's keys, for the last exit
    (every exit run) or the exit taken (early exit):
    ``pred_scores`` ``(C,)``, ``pred_label``, ``pred_score``, ``pred_class``
    (with class names), plus

    * every exit run: ``exit_scores`` float32 ``(K, C)`` (softmax of each
      exit), ``exit_labels`` (K argmaxes) and ``exit_classes``;
    * early exit: ``exit_index`` (1-based exit taken), ``exit_mflops``
      (cumulative MFLOPs of that exit, the image's cost) and
      ``exit_confidence`` (its max softmax). The later exits never ran, so
      there are no ``exit_scores``.

    Example::

        >>> from hdkd_mm.apis import MultiExitInferencer
        >>> inferencer = MultiExitInferencer(
        ...     'configs/demo/msdnet_msdnet-4e_1xb128_fashion-mnist.py',
        ...     pretrained='work_dirs/msdnet_msdnet-4e_1xb128_fashion-mnist/'
        ...     'epoch_3.pth')
        >>> inferencer('shoe.png')[0]['exit_scores'].shape
        (4, 10)
    """

    def __init__(self,
                 model: Union[BaseModel, str],
                 pretrained: Union[bool, str] = True,
                 device: Union[str, torch.device, None] = None,
                 classes=None,
                 early_exit: Optional[dict] = None,
                 **kwargs) -> None:
        built = isinstance(model, BaseModel)
        if early_exit is not None and not built:
            kwargs = dict(kwargs, type='EarlyExitClassifier',
                          early_exit=dict(early_exit))
        super().__init__(model=model, pretrained=pretrained, device=device,
                         classes=classes, **kwargs)
        if not hasattr(self.model, 'num_exits'):
            raise TypeError(
                'MultiExitInferencer needs a multi-exit classifier (model '
                f'type MultiExitClassifier or EarlyExitClassifier); got '
                f'{type(self.model).__name__}: use MMPretrain\'s '
                'ImageClassificationInferencer for other models.')
        if early_exit is not None and built:
            if not hasattr(self.model, 'set_early_exit'):
                raise TypeError(
                    f'early_exit={early_exit!r} needs an EarlyExitClassifier;'
                    f' got a built {type(self.model).__name__}: pass the '
                    'config path instead, or build the model with '
                    "type='EarlyExitClassifier'.")
            self.model.set_early_exit(**early_exit)

    @property
    def num_exits(self) -> int:
        return self.model.num_exits

    def postprocess(self,
                    preds: List[DataSample],
                    visualization: List[np.ndarray],
                    return_datasamples: bool = False) -> list:
        if return_datasamples:
            return preds
        results = super().postprocess(preds, visualization)
        for result, sample in zip(results, preds):
            if 'exit_scores' in sample:
                scores = sample.exit_scores.detach().float().cpu().numpy()
                labels = scores.argmax(-1)
                result['exit_scores'] = scores
                result['exit_labels'] = [int(i) for i in labels]
                if self.classes is not None:
                    result['exit_classes'] = [self.classes[i] for i in labels]
            if 'exit_index' in sample:
                result['exit_index'] = int(sample.exit_index)
                result['exit_mflops'] = float(sample.exit_mflops)
                result['exit_confidence'] = float(sample.exit_confidence)
        return results
