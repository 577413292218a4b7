"""Validation of the per-exit arrays that budgeted evaluation and the
confidence measures take (logits ``(N, K, C)``, labels ``(N,)``, confidences
``(N, K)``, exit shares ``(K,)``/``(B, K)``, cumulative exit costs ``(K,)``),
each raising a ``ValueError`` that names the array, the shape or value it
got and the one it needs; and the row chunks their reductions run over."""
from typing import Tuple

import numpy as np

__all__ = ['as_logits', 'as_labels', 'as_conf', 'as_shares', 'as_mflops',
           'chunks', 'CHUNK_ELEMS']

#: Elements (N * K * C) processed at once when reducing logits.
CHUNK_ELEMS = 1 << 22


def as_logits(logits, name: str = 'logits') -> np.ndarray:
    arr = np.asarray(logits)
    if arr.ndim != 3:
        raise ValueError(f'{name} must have shape (N, K, C) = (samples, '
                         f'exits, classes); got shape {arr.shape}')
    n, k, c = arr.shape
    if n < 1 or k < 1 or c < 1:
        raise ValueError(f'{name} must have N, K, C >= 1; got shape '
                         f'{arr.shape}')
    if not (np.issubdtype(arr.dtype, np.floating)
            or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f'{name} must be a real numeric array; got dtype '
                         f'{arr.dtype}')
    return arr


def as_labels(labels, n: int, num_classes: int,
               name: str = 'labels') -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f'{name} must have shape ({n},) to match the '
                         f'logits; got shape {arr.shape}')
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(
                np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f'{name} must hold integer class indices; got '
                             f'dtype {arr.dtype}')
    arr = arr.astype(np.int64, copy=False)
    if n and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(f'{name} must lie in [0, {num_classes}); got values '
                         f'in [{arr.min()}, {arr.max()}]')
    return arr


def as_conf(conf, name: str = 'conf') -> np.ndarray:
    arr = np.asarray(conf)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f'{name} must have shape (N, K) with N, K >= 1; got '
                         f'shape {arr.shape}')
    if not (np.issubdtype(arr.dtype, np.floating)
            or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f'{name} must be a real numeric array; got dtype '
                         f'{arr.dtype}')
    if not np.all(np.isfinite(arr)):
        raise ValueError(f'{name} contains NaN or infinite values')
    return arr


def as_shares(shares, num_exits: int) -> Tuple[np.ndarray, bool]:
    arr = np.asarray(shares, dtype=np.float64)
    single = arr.ndim == 1
    arr2 = arr[None] if single else arr
    if arr2.ndim != 2 or arr2.shape[1] != num_exits:
        raise ValueError(f'shares must have shape (K,) or (B, K) with '
                         f'K = {num_exits} exits; got shape {arr.shape}')
    if not np.all(np.isfinite(arr2)) or np.any(arr2 < 0):
        raise ValueError('shares must be finite and non-negative')
    sums = arr2.sum(axis=1)
    if np.any(np.abs(sums - 1.0) > 1e-6):
        raise ValueError(f'every share vector must sum to 1 (within 1e-6); '
                         f'got sums {sums.tolist()}')
    return arr2, single


def as_mflops(exit_mflops, num_exits: int) -> np.ndarray:
    arr = np.asarray(exit_mflops, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != num_exits:
        raise ValueError(f'exit_mflops must have one cumulative cost per exit '
                         f'(K = {num_exits} from the logits); got shape '
                         f'{arr.shape}')
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError('exit_mflops must be finite and non-negative')
    if np.any(np.diff(arr) < 0):
        raise ValueError(f'exit_mflops must be cumulative (non-decreasing): '
                         f'exit k costs everything up to and including exit '
                         f'k; got {arr.tolist()}')
    return arr


def chunks(n: int, k: int, c: int):
    """``(start, end)`` row ranges of about :data:`CHUNK_ELEMS` logits each,
    so that reductions over ``(N, K, C)`` arrays never copy all of them."""
    step = max(1, CHUNK_ELEMS // max(1, k * c))
    for s in range(0, n, step):
        yield s, min(n, s + step)
