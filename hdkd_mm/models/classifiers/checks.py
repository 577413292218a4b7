"""Checks of a built :class:`~hdkd_mm.models.MultiExitClassifier` that
would otherwise fail only in the first training iteration, after the data
and the optimizers are built: each raises a ``ValueError`` naming the config
key, its value, why it is wrong and the fix."""
import torch.nn as nn


def check_exits_match_backbone(backbone: nn.Module, head: nn.Module) -> None:
    """The head must have one exit per backbone output, of the same width.

    Only needed when the head's ``in_channels`` were given (inferred ones
    match by construction). The backbone's widths come from its exit
    protocol (:mod:`hdkd_mm.models.exits`).
    """
    from hdkd_mm.models.exits import exit_protocol
    given = list(getattr(head, 'in_channels', None) or ())
    if not given:
        return
    widths = exit_protocol(backbone).exit_channels()
    if len(widths) != len(given):
        raise ValueError(
            f'model.head.in_channels={given}: {len(given)} exits, but the '
            f'backbone ({type(backbone).__name__}) returns {len(widths)} '
            f'features (widths {widths}), one per exit; fix: leave '
            'model.head.in_channels=None to infer it, or set the backbone\'s '
            'number of outputs to match (`nBlocks` for MSDNet, `out_indices` '
            'for ResNet/timm backbones).')
    if [int(w) for w in widths] != [int(c) for c in given]:
        raise ValueError(
            f'model.head.in_channels={given} but the backbone\'s '
            f'{len(widths)} features have widths {widths}: every exit would '
            'fail on its first batch; fix: leave model.head.in_channels=None '
            'to infer it from the backbone.')


def check_hard_labels(data_preprocessor: nn.Module) -> None:
    """Mixup/CutMix-style batch augments give soft labels (``gt_score``),
    but every objective (the exits' CE, the held-out CE of Eq. 10 and the
    γ hypergradient) needs class indices."""
    augments = getattr(data_preprocessor, 'batch_augments', None)
    if augments is None:
        return
    names = [type(a).__name__
             for a in getattr(augments, 'augments', [augments])]
    raise ValueError(
        f'data_preprocessor.batch_augments={names}: batch augments replace '
        'the labels by soft scores, but multi-exit training needs hard '
        'labels (the per-exit cross-entropies, the held-out loss and γ\'s '
        'hypergradient use class indices); fix: remove `batch_augments` from '
        'data_preprocessor (top level) or model.data_preprocessor.')
