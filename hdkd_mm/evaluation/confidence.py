"""Per-exit decisions from logits, in one place: the confidence measures,
the prediction and top-k correctness. The threshold search and the
simulation (:mod:`hdkd_mm.evaluation.budgeted`), the early-exit router
(:mod:`hdkd_mm.evaluation.early_exit`) and the anytime and early-exit
accuracies all call these functions, so they agree bit for bit.

Confidence measures (float64, higher = more confident, so every threshold
rule is ``confidence >= threshold``), with ``p = softmax(l)`` computed as
``e = exp(l - max l)``, ``s = sum e``, ``p = e / s``:

* ``'max_softmax'`` (default; MSDNet's): ``max p = 1 / s``, in ``(0, 1]``;
* ``'entropy'``: the *negative* entropy ``sum p log p =
  sum p (l - max l) - log s``, in ``[-log C, 0]``;
* ``'margin'``: ``p_top1 - p_top2 = (1 - e_top2) / s``, in ``[0, 1]``
  (``1`` with one class).

Prediction: ``argmax l``, the first index on ties. Top-k correctness ranks
classes by score with ties broken towards the lower class index (the same
order), so top-1 correctness is ``prediction == label``.
"""
from typing import Tuple

import numpy as np

__all__ = ['CONFIDENCES', 'DEFAULT_CONFIDENCE', 'check_confidence',
           'confidence', 'topk_correct']

CONFIDENCES = ('max_softmax', 'entropy', 'margin')
DEFAULT_CONFIDENCE = 'max_softmax'


def check_confidence(name) -> str:
    """``name`` if it is one of :data:`CONFIDENCES`, else a ``ValueError``
    listing them."""
    if name not in CONFIDENCES:
        raise ValueError(f'Unknown confidence measure {name!r}: use one of '
                         f'{", ".join(CONFIDENCES)}.')
    return name


def confidence(logits, name: str = DEFAULT_CONFIDENCE
               ) -> Tuple[np.ndarray, np.ndarray]:
    """Confidence and prediction of every row of ``logits`` ``(..., C)``.

    Returns:
        ``(conf, pred)``: float64 confidences (see the module doc) and int64
        argmax predictions (first index on ties), both of shape ``(...)``.

    Raises:
        ValueError: for an unknown ``name`` or non-finite logits.
    """
    check_confidence(name)
    arr = np.asarray(logits)
    x = arr.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError('logits contain NaN or infinite values')
    np.subtract(x, x.max(axis=-1, keepdims=True), out=x)  # l - max l <= 0
    if name == 'entropy':
        shifted = x.copy()
    np.exp(x, out=x)  # e, with max e = 1
    s = x.sum(axis=-1)
    if name == 'max_softmax':
        conf = 1.0 / s
    elif name == 'entropy':
        conf = (x * shifted).sum(axis=-1) / s - np.log(s)
    elif x.shape[-1] == 1:
        conf = np.ones_like(s)
    else:
        second = np.partition(x, -2, axis=-1)[..., -2]
        conf = (1.0 - second) / s
    return conf, arr.argmax(axis=-1)


def topk_correct(logits, labels, k: int = 5) -> np.ndarray:
    """Whether the label is among the top-``k`` classes, per sample and exit.

    Args:
        logits: ``(N, K, C)`` scores or logits.
        labels: ``(N,)`` class indices.
        k: ``k >= C`` is always correct.

    Returns:
        bool array of shape ``(N, K)``; ties rank the lower class index
        first, so ``topk_correct(l, y, 1)`` equals ``argmax == label``.
    """
    # Imported here: this file is also copied, alone, into ONNX export
    # folders, where the runtime loads it by path and needs only numpy.
    from .exit_arrays import as_labels, as_logits, chunks
    arr = as_logits(logits)
    n, num_exits, c = arr.shape
    y = as_labels(labels, n, c)
    if int(k) != k or k < 1:
        raise ValueError(f'k must be a positive integer; got {k}')
    out = np.empty((n, num_exits), dtype=bool)
    cls = np.arange(c)
    for s, e in chunks(n, num_exits, c):
        x = arr[s:e]
        if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
            raise ValueError('logits contain NaN or infinite values')
        yy = y[s:e]
        sy = np.take_along_axis(x, yy[:, None, None], axis=-1)  # (n, K, 1)
        ahead = (x > sy) | ((x == sy) & (cls < yy[:, None, None]))
        out[s:e] = ahead.sum(axis=-1) < k
    return out
