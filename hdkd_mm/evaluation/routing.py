"""The early-exit routing decision, one implementation for every backend
(the PyTorch router :class:`hdkd_mm.evaluation.early_exit.EarlyExitPredictor`
and the ONNX Runtime one, :class:`hdkd_mm.deploy.OnnxEarlyExit`).

Numpy and the standard library only: the ONNX exporter copies this file
into its export folder, where the runtime loads it by path.

The backend runs the network; :func:`route` decides. Exit k sees the rows
still undecided (``m`` real rows, possibly followed by padding copies of the
first one); a row leaves at exit k when its confidence is ``>=`` threshold k
(float64), the last exit takes every row left, and the backend keeps only
the undecided rows (padded to ``min_rows``, never beyond the batch) before
stage k + 1.
"""
from typing import Callable, List, Tuple

import numpy as np

__all__ = ['route']


def route(n: int, thresholds: np.ndarray, min_rows: int,
          advance: Callable[[int], int],
          score: Callable[[int], Tuple[np.ndarray, np.ndarray]],
          take: Callable[[np.ndarray, np.ndarray], None],
          keep: Callable[[np.ndarray], None]):
    """Route ``n`` samples through the K exits.

    Args:
        n: batch size (>= 1).
        thresholds: ``(K,)`` float64 thresholds (the last is not read).
        min_rows: smallest sub-batch a later stage runs on.
        advance: ``advance(k)`` runs stage k and exit k on the backend's
            current rows and returns how many rows they ran on.
        score: ``score(m)`` → ``(confidence float64 (m,), prediction (m,))``
            of the first ``m`` (real) rows of exit k's logits.
        take: ``take(global_rows, local_rows)`` keeps exit k's logits of
            ``local_rows`` (positions in the current rows) for the samples
            ``global_rows`` (positions in the input batch).
        keep: ``keep(local_rows)`` reduces the backend's state (and the
            previous exit's logits) to these rows, in this order.

    Returns:
        ``(pred, exit, confidence, rows)``: int64 ``(n,)`` predictions,
        int64 ``(n,)`` 1-based exits, float64 ``(n,)`` confidences of the
        exit taken, and the rows each stage ran on.
    """
    num_exits = len(thresholds)
    last = num_exits - 1
    rows: List[int] = []
    if n == 1:  # the same decisions without the bookkeeping
        for k in range(num_exits):
            rows.append(advance(k))
            conf, pred = score(1)
            if k == last or conf[0] >= thresholds[k]:
                take(np.zeros(1, np.int64), np.zeros(1, np.int64))
                return (np.asarray(pred, np.int64), np.array([k + 1]),
                        np.asarray(conf, np.float64), rows)
    pad_to = min(min_rows, n)
    pred = np.empty(n, dtype=np.int64)
    exit_ = np.empty(n, dtype=np.int64)
    conf_out = np.empty(n, dtype=np.float64)
    idx = np.arange(n)  # input position of each real row
    m = n  # real rows; the backend's rows may add padding copies
    for k in range(num_exits):
        rows.append(advance(k))
        conf, p = score(m)
        done = np.ones(m, dtype=bool) if k == last else conf >= thresholds[k]
        if not done.any():
            continue
        g = idx[done]
        pred[g] = p[done]
        exit_[g] = k + 1
        conf_out[g] = conf[done]
        take(g, np.flatnonzero(done))
        if done.all():
            break
        local = np.flatnonzero(~done)
        idx, m = idx[local], local.size
        if m < pad_to:
            local = np.concatenate([local, np.full(pad_to - m, local[0])])
        keep(local)
    return pred, exit_, conf_out, rows
