"""Early-exit inference over a whole split (what
``tools/analysis/early_exit_infer.py`` runs), with the routing of
:class:`~hdkd_mm.evaluation.early_exit.EarlyExitPredictor`."""
import time
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from mmengine.runner import Runner

from .budgeted import apply_thresholds, exit_confidences
from .confidence import DEFAULT_CONFIDENCE, topk_correct
from .early_exit import EarlyExitPredictor

__all__ = ['evaluate_early_exit']


@torch.no_grad()
def evaluate_early_exit(model: nn.Module, dataloader, thresholds,
                        exit_mflops: Optional[Sequence[float]] = None,
                        verify: bool = False,
                        confidence: str = DEFAULT_CONFIDENCE) -> dict:
    """Early-exit inference over a dataloader.

    Returns a JSON-ready dict: ``num_samples``, ``batch_size``,
    ``thresholds``, ``confidence``, ``exit_mflops``, ``top1``/``top5``
    (percent),
    ``mflops`` (mean per-sample cost), ``full_mflops``, ``exit_shares``,
    ``wall_time_s`` (routing forward passes only), ``total_time_s`` (with
    data loading), ``samples`` (``index``, ``label``, ``pred``, ``exit``
    1-based, ``mflops``) and, with ``verify``, ``verify`` (the simulated
    evaluation on each batch's full logits: numbers of samples whose exit or
    prediction differ, 0 expected).
    """
    if isinstance(dataloader, dict):
        dataloader = Runner.build_dataloader(dataloader)
    model.eval()
    predictor = EarlyExitPredictor(model, thresholds, exit_mflops,
                                   confidence=confidence)
    samples, top1, top5 = [], 0, 0
    wall, n_seen = 0.0, 0
    bad_exit = bad_pred = 0
    costs = None
    start = time.perf_counter()
    for data in dataloader:
        data = model.data_preprocessor(data, False)
        x = data['inputs']
        labels = torch.cat([s.gt_label for s in data['data_samples']]).cpu()
        t0 = time.perf_counter()
        res = predictor(x)
        wall += time.perf_counter() - t0
        costs = predictor.costs(x.shape[1:])
        scores = res.logits.detach().float().cpu().numpy()[:, None]
        y = labels.numpy()
        top1 += int(topk_correct(scores, y, 1).sum())
        top5 += int(topk_correct(scores, y, 5).sum())
        if verify:
            full = torch.stack(model(x, mode='tensor'), 1).float().cpu()
            conf, pred = exit_confidences(full.numpy(), confidence)
            sim = apply_thresholds(conf, predictor.thresholds)
            bad_exit += int((sim != res.exit0).sum())
            bad_pred += int((pred[np.arange(len(sim)), sim]
                             != res.pred.numpy()).sum())
        for i in range(len(y)):
            samples.append(dict(index=n_seen + i, label=int(y[i]),
                                pred=int(res.pred[i]),
                                exit=int(res.exit[i]),
                                mflops=float(res.mflops[i])))
        n_seen += len(y)
    total = time.perf_counter() - start
    if not samples:
        raise ValueError('The dataloader gave no samples.')
    exits = np.array([s['exit'] for s in samples])
    out = dict(
        num_samples=n_seen,
        batch_size=getattr(dataloader, 'batch_size', None),
        thresholds=predictor.thresholds.tolist(),
        confidence=predictor.confidence,
        exit_mflops=[float(c) for c in costs],
        top1=100.0 * top1 / n_seen, top5=100.0 * top5 / n_seen,
        mflops=float(np.mean([s['mflops'] for s in samples])),
        full_mflops=float(costs[-1]),
        exit_shares=[float((exits == k + 1).mean())
                     for k in range(predictor.num_exits)],
        wall_time_s=wall, total_time_s=total,
        ms_per_image=1000.0 * wall / n_seen)
    if verify:
        out['verify'] = dict(mismatched_exits=bad_exit,
                             mismatched_preds=bad_pred)
    out['samples'] = samples
    return out
