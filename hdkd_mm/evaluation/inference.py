"""Offline inference helpers shared by the analysis tools: build a model from
a config, load a checkpoint, and collect every exit's logits on a split."""
import re
from typing import Tuple

import torch
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint
from mmpretrain.registry import MODELS

_EXIT_KEY = re.compile(r'^head\.exits\.(\d+)\.')


def checkpoint_num_exits(state_dict: dict) -> int:
    """Number of exits of a multi-exit checkpoint (from its head keys)."""
    exits = {int(m.group(1)) for m in map(_EXIT_KEY.match, state_dict) if m}
    return len(exits)


def build_model_from_checkpoint(cfg, checkpoint: str) -> torch.nn.Module:
    """Build ``cfg.model``, load ``checkpoint`` strictly, return it in eval
    mode. A checkpoint with another number of exits than the config is an
    error that names both numbers."""
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=False)
    state = ckpt.get('state_dict', ckpt)
    found, expected = checkpoint_num_exits(state), model.num_exits
    if found != expected:
        raise ValueError(
            f'Checkpoint {checkpoint!r} has {found} exits but the config '
            f'builds a model with {expected}: pass the config the checkpoint '
            'was trained with.')
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True,
                    logger='silent')
    return model.eval()


@torch.no_grad()
def collect_exit_logits(model: torch.nn.Module,
                        dataloader) -> Tuple[torch.Tensor, torch.Tensor]:
    """Every exit's logits on a dataloader.

    Returns:
        ``(logits, labels)``: float32 tensors of shapes ``(N, K, C)`` and
        ``(N,)`` in dataloader order.
    """
    if isinstance(dataloader, dict):
        dataloader = Runner.build_dataloader(dataloader)
    model.eval()
    all_logits, all_labels = [], []
    for data in dataloader:
        data = model.data_preprocessor(data, False)
        exit_logits = model(data['inputs'], mode='tensor')
        all_logits.append(torch.stack(exit_logits, dim=1).float().cpu())
        all_labels.append(
            torch.cat([s.gt_label for s in data['data_samples']]).cpu())
    return torch.cat(all_logits), torch.cat(all_labels)


def per_exit_results(cfg, checkpoint: str, dataloader=None
                     ) -> Tuple[list, int]:
    """Every exit's top-1/top-5 (percent) and cumulative MFLOPs for the
    model of ``cfg`` with the weights of ``checkpoint``, on ``dataloader``
    (a config dict or a loader; default ``cfg.test_dataloader``).

    Returns:
        ``(exits, num_samples)`` with ``exits`` a list of
        ``{"exit": k, "top1", "top5", "mflops"}`` (k 1-based), the rows of
        the anytime JSON.
    """
    from hdkd_mm.analysis.flops import default_input_shape, exit_costs
    from hdkd_mm.evaluation.metrics import exit_topk_accuracy
    model = build_model_from_checkpoint(cfg, checkpoint)
    logits, labels = collect_exit_logits(
        model, cfg.test_dataloader if dataloader is None else dataloader)
    acc = exit_topk_accuracy(logits, labels, (1, 5))
    costs = exit_costs(model, default_input_shape(cfg))
    exits = [dict(exit=k + 1, top1=round(acc[k, 0].item(), 4),
                  top5=round(acc[k, 1].item(), 4),
                  mflops=round(costs[k]['mflops'], 4))
             for k in range(acc.size(0))]
    return exits, int(labels.numel())
