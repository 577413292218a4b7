"""The base of every multi-exit head: one classifier per backbone output."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


class CollaborativeExit(nn.Module):
    """One exit with inline subnetwork collaboration (Li et al. 2019, IMTA):
    the classifier of exit k > 1 also sees exit k-1's prediction.

    ``features``: ``(N, C_in, ...) -> (N, width)`` (the exit without its
    final Linear). Exit 1: ``logits = Linear(width → num_classes)(f)``. Exit
    k > 1: ``logits = Linear(2·width → num_classes)([f, c(z_{k-1})])`` with
    ``c = Linear(num_classes → width)-BN1d-ReLU`` of the previous exit's
    logits ``z_{k-1} (N, num_classes)``, not detached (exit k's loss also
    trains exit k-1, as in IMTA). ``c`` lives in this module so that exit
    k's cost counts it.
    """

    def __init__(self, features: nn.Module, width: int, num_classes: int,
                 first: bool):
        super().__init__()
        self.features = features
        self.collaboration = None if first else nn.Sequential(
            nn.Linear(num_classes, width), nn.BatchNorm1d(width),
            nn.ReLU(inplace=True))
        self.classifier = nn.Linear(width if first else 2 * width,
                                    num_classes)

    def forward(self, feat: torch.Tensor,
                prev_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
        f = self.features(feat)
        if self.collaboration is None:
            return self.classifier(f)
        if prev_logits is None:
            raise ValueError(
                'This exit uses inline subnetwork collaboration: it needs the '
                "previous exit's logits (run the head's exits in order, "
                'e.g. through MultiExitHead.exit_forward).')
        return self.classifier(
            torch.cat([f, self.collaboration(prev_logits)], dim=1))


def make_collaborative(exits: Sequence[nn.Sequential],
                       num_classes: int) -> nn.ModuleList:
    """Turn K exits that end with ``Linear(width, num_classes)`` into
    :class:`CollaborativeExit` modules (their last Linear is replaced)."""
    out = []
    for k, exit_ in enumerate(exits):
        last = exit_[-1]
        if not isinstance(last, nn.Linear):
            raise ValueError(
                'Inline subnetwork collaboration needs exits that end with a '
                f'Linear classifier; exit {k + 1} ends with '
                f'{type(last).__name__}.')
        out.append(CollaborativeExit(exit_[:-1], last.in_features,
                                     num_classes, first=k == 0))
    return nn.ModuleList(out)


class MultiExitHead(BaseModule):
    """Base class of multi-exit classification heads.

    Subclasses build ``self.exits``, an ``nn.ModuleList`` whose k-th module
    maps the k-th backbone feature to logits of shape ``(N, num_classes)``
    (a :class:`CollaborativeExit` also takes exit k-1's logits: use
    :meth:`exit_forward`, which handles both).

    Args:
        num_classes (int): number of classes.
        num_exits (int): number of exits K; the backbone must return K
            features.
        loss (dict): config of the objective set, a :class:`DenseKDLoss`
            (``num_exits`` is filled in). Default: the MSDNet scheme, Σ CE.
        init_cfg (dict, optional): initialisation config.
    """

    def __init__(self,
                 num_classes: int,
                 num_exits: int,
                 loss: dict = dict(type='DenseKDLoss', scheme='msdnet'),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if num_classes <= 0:
            raise ValueError(f'num_classes must be > 0, got {num_classes}.')
        self.num_classes = num_classes
        self._num_exits = num_exits
        if isinstance(loss, dict):
            loss = dict(loss)
            given = loss.setdefault('num_exits', num_exits)
            if given != num_exits:
                raise ValueError(
                    f'The loss was configured for {given} exits but the head '
                    f'has {num_exits}: drop `num_exits` from the loss config '
                    '(the head fills it in).')
            loss = MODELS.build(loss)
        self.loss_module = loss

    @property
    def num_exits(self) -> int:
        return self._num_exits

    @property
    def objective_names(self) -> List[str]:
        return self.loss_module.names

    def _check_feats(self, feats: Sequence[torch.Tensor]) -> None:
        if len(feats) != self.num_exits:
            raise ValueError(
                f'{type(self).__name__} has {self.num_exits} exits but the '
                f'backbone returned {len(feats)} features: make the number of '
                'exits of the head (its `in_channels`) match the backbone\'s '
                'outputs (`nBlocks` for MSDNet, `out_indices` otherwise).')

    def forward(self, feats: Sequence[torch.Tensor]) -> Tuple[torch.Tensor]:
        """Per-exit logits: K tensors of shape ``(N, num_classes)``."""
        self._check_feats(feats)
        exit_logits, prev_logits = [], None
        for k, feat in enumerate(feats):
            prev_logits = self.exit_forward(k, feat, prev_logits)
            exit_logits.append(prev_logits)
        return tuple(exit_logits)

    def exit_forward(self, k: int, feat: torch.Tensor,
                     prev_logits: Optional[torch.Tensor] = None
                     ) -> torch.Tensor:
        """Exit ``k``'s (0-based) logits ``(N, num_classes)`` from its
        feature; ``prev_logits`` (exit k-1's logits, same rows) is used by
        exits with inline subnetwork collaboration and ignored otherwise."""
        exit_ = self.exits[k]
        if isinstance(exit_, CollaborativeExit):
            return exit_(feat, prev_logits)
        return exit_(feat)

    @staticmethod
    def targets(data_samples: List[DataSample]) -> torch.Tensor:
        if 'gt_score' in data_samples[0]:
            raise ValueError(
                'Multi-exit training needs hard labels; batch augmentations '
                'that produce soft targets (Mixup, CutMix) are not supported: '
                'remove `batch_augments` from the data preprocessor.')
        return torch.cat([s.gt_label for s in data_samples])

    def objective_losses(self, exit_logits: Sequence[torch.Tensor],
                         target: torch.Tensor) -> torch.Tensor:
        """The vector of per-objective losses, shape ``(M,)``."""
        return self.loss_module(exit_logits, target)

    def loss(self,
             feats: Sequence[torch.Tensor],
             data_samples: List[DataSample],
             weights: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Weighted sum of the objectives plus per-objective values to log.

        Args:
            feats: K backbone features.
            data_samples: the batch's data samples with ``gt_label``.
            weights: per-objective weights of shape ``(M,)``; the scheme's
                fixed weights (1 for CE, λ for KD) when ``None``.
        """
        exit_logits = self(feats)
        losses = self.objective_losses(exit_logits, self.targets(data_samples))
        return self.loss_dict(losses, weights)

    def loss_dict(self, objective_losses: torch.Tensor,
                  weights: Optional[torch.Tensor] = None) -> Dict:
        if weights is None:
            weights = self.loss_module.default_weights
        out = {'loss': (weights.to(objective_losses) * objective_losses).sum()}
        # Logged but not summed by MMEngine (no 'loss' in the key).
        for name, value in zip(self.objective_names, objective_losses):
            out[f'objective/{name}'] = value.detach()
        return out

    def predict(
        self,
        feats: Sequence[torch.Tensor],
        data_samples: Optional[List[Optional[DataSample]]] = None
    ) -> List[DataSample]:
        """Data samples with every exit's scores.

        Each returned sample carries ``exit_scores`` (softmax scores of shape
        ``(K, num_classes)``) and, as MMPretrain's tools expect, the last
        exit's ``pred_score`` and ``pred_label``.
        """
        exit_logits = self(feats)
        return self.predictions(torch.stack(exit_logits, dim=1), data_samples)

    @staticmethod
    def predictions(
        exit_logits: torch.Tensor,
        data_samples: Optional[List[Optional[DataSample]]] = None
    ) -> List[DataSample]:
        """Turn stacked logits ``(N, K, C)`` into data samples."""
        exit_scores = F.softmax(exit_logits.detach(), dim=-1)
        if data_samples is None:
            data_samples = [None] * exit_scores.size(0)
        out = []
        for sample, scores in zip(data_samples, exit_scores):
            sample = DataSample() if sample is None else sample
            sample.set_pred_score(scores[-1])
            sample.set_pred_label(scores[-1].argmax(keepdim=True))
            sample.set_field(scores, 'exit_scores', dtype=torch.Tensor)
            out.append(sample)
        return out


def check_in_channels(in_channels: Sequence[int], head: str) -> List[int]:
    if isinstance(in_channels, int) or not len(in_channels):
        raise ValueError(
            f'{head}: `in_channels` must list one width per exit, got '
            f'{in_channels!r}; leave it unset (None) inside a '
            'MultiExitClassifier to infer it from the backbone.')
    return [int(c) for c in in_channels]

