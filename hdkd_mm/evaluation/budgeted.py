"""Budgeted batch classification with confidence thresholds (MSDNet style).

Pure numpy, no model code: everything works on per-exit logits of shape
``(N, K, C)`` (N samples, K exits, C classes) that were collected beforehand.
Torch tensors on the CPU are accepted wherever an array is (``np.asarray``).

The procedure follows the MSDNet reference (``adaptive_inference.py`` of
kalviny/MSDNet-PyTorch, ``Tester.dynamic_eval_find_threshold`` and
``Tester.dynamic_eval_with_threshold``):

* **Confidence** of an exit = its maximum softmax probability (the default;
  the negative entropy and the top-1 - top-2 margin are the other measures
  of :mod:`hdkd_mm.evaluation.confidence`, where the one implementation of
  every measure lives).
* **Budgets.** For ``p = 1..num`` (39 by default), ``q = p / 20`` and the
  target share of samples leaving at exit ``k`` (``k = 1..K``) is
  ``q**k / sum_j q**j`` (:func:`budget_distributions`).  The reference code
  loops ``p`` over ``range(1, 41)``; 39 budgets is this project's choice.
* **Fitting** (:func:`fit_thresholds`, on the held-out split; the fast
  version is vectorised over samples): exit ``k < K`` gets the count
  ``n_k = floor(N * share_k)``.  Among the samples that have not exited yet,
  its threshold is the confidence of the ``n_k``-th most confident one, and
  every not-yet-exited sample whose confidence is ``>=`` that threshold
  leaves at exit ``k``.  The last exit's threshold is ``-inf`` (it takes the
  rest).
* **Applying** (:func:`apply_thresholds`, on the test split): a sample leaves
  at the first exit whose confidence is ``>=`` that exit's threshold, the last
  exit otherwise.  On the split the thresholds were fitted on this gives
  exactly the fitting's assignment.
* **Cost.** ``exit_mflops[k]`` is the *cumulative* cost of running the network
  up to and including exit ``k`` (every earlier classifier included); the
  expected cost of a budget is ``sum_k share_k * exit_mflops[k]`` with the
  shares measured on the split in question.

Semantics chosen where the reference leaves room (the fast code and the
slow per-sample reference in ``tests/test_budgeted.py`` agree exactly):

* **Ties.** The comparison is ``>=`` against the ``n_k``-th largest value, so
  *all* not-yet-exited samples tied with it exit, and exit ``k`` may take more
  than ``n_k`` samples (as in the reference).  The threshold value does not
  depend on how ties are ordered.
* **Empty exits.** If ``n_k == 0``, or ``n_k`` is larger than the number of
  samples still remaining (possible only after ties sent extra samples out
  earlier), the threshold is ``+inf`` and no sample exits there (the
  reference leaves its initial ``1e8`` in place in both cases).
* **Counts** are ``floor(N * share_k)`` computed in float64 with a ``1e-12``
  relative guard, so a product that is an integer in exact arithmetic (e.g.
  ``50 * 0.14``) is not floored one too low by round-off.  The reference
  computes the shares in float32; its counts can differ by one at such
  boundaries.
* **Top-k correctness** (:func:`topk_correct`) ranks classes by score with
  ties broken towards the lower class index, i.e. the same order as
  ``np.argmax``: top-1 correctness equals ``prediction == label`` exactly and
  top-5 implies nothing weaker than top-1.
* Confidences are float64.  Extremely confident samples (logit margin above
  ~37 to every other class) all get max-softmax confidence ``1.0`` and are
  then tied, which the tie rule handles.

Which split the thresholds are fitted on matters: fit on an *unaugmented*
held-out split (never on the test split), and report which one.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .confidence import DEFAULT_CONFIDENCE, check_confidence
from .confidence import confidence as _confidence
from .confidence import topk_correct
from .exit_arrays import (as_conf, as_labels, as_logits, as_mflops,
                          as_shares, chunks)

__all__ = [
    'exit_confidences', 'topk_correct', 'geometric_shares',
    'budget_distributions', 'exit_counts', 'fit_thresholds',
    'apply_thresholds', 'expected_mflops', 'evaluate_budgets',
    'search_budget'
]

# Relative guard against float round-off when flooring N * share.
_COUNT_RTOL = 1e-12

# --------------------------------------------------------------------------
# logits -> confidences, predictions, correctness
# --------------------------------------------------------------------------
def exit_confidences(logits, confidence: str = DEFAULT_CONFIDENCE
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """Confidence and top-1 prediction of every exit.

    Args:
        logits: array of shape ``(N, K, C)``.
        confidence: a measure of :data:`~.confidence.CONFIDENCES`
            (max-softmax by default); computed by
            :func:`~.confidence.confidence`, in chunks.

    Returns:
        ``(conf, pred)``: float64 ``(N, K)`` confidences and int64 ``(N, K)``
        predictions (``argmax``, lowest index on ties).
    """
    check_confidence(confidence)
    arr = as_logits(logits)
    n, k, c = arr.shape
    conf = np.empty((n, k), dtype=np.float64)
    pred = np.empty((n, k), dtype=np.int64)
    for s, e in chunks(n, k, c):
        conf[s:e], pred[s:e] = _confidence(arr[s:e], confidence)
    return conf, pred


# --------------------------------------------------------------------------
# budgets
# --------------------------------------------------------------------------
def geometric_shares(q, num_exits: int) -> np.ndarray:
    """Shares ``q**k / sum_j q**j`` for ``k = 1..K``.

    Args:
        q: positive scalar or array of shape ``(B,)``.
        num_exits: K.

    Returns:
        float64 array of shape ``(K,)`` (scalar ``q``) or ``(B, K)``.
        Computed with powers of ``q`` (q <= 1) or ``1/q`` (q > 1) that never
        exceed 1, so extreme q neither overflows nor loses the small shares
        more than it must.
    """
    if int(num_exits) != num_exits or num_exits < 1:
        raise ValueError(f'num_exits must be a positive integer; got '
                         f'{num_exits}')
    qa = np.asarray(q, dtype=np.float64)
    scalar = qa.ndim == 0
    qa = np.atleast_1d(qa)
    if qa.ndim != 1 or not np.all(np.isfinite(qa)) or np.any(qa <= 0):
        raise ValueError('q must be a positive finite scalar or 1-D array')
    k = np.arange(num_exits, dtype=np.float64)  # exponent k - 1
    w = np.empty((qa.shape[0], num_exits), dtype=np.float64)
    le1 = qa <= 1.0
    # q**(k-1) for q <= 1, q**(k-K) = (1/q)**(K-k) for q > 1: both <= 1
    w[le1] = np.power(qa[le1, None], k)
    w[~le1] = np.power(1.0 / qa[~le1, None], (num_exits - 1) - k)
    shares = w / w.sum(axis=1, keepdims=True)
    return shares[0] if scalar else shares


def budget_distributions(num_exits: int, num: int = 39) -> np.ndarray:
    """Target exit shares of the MSDNet budgets.

    Row ``i`` (budget ``p = i + 1``) uses ``q = p / 20``; the q values are
    ``np.arange(1, num + 1) / 20``.

    Returns:
        float64 array of shape ``(num, K)``; every row sums to 1.
    """
    if int(num) != num or num < 1:
        raise ValueError(f'num must be a positive integer; got {num}')
    return geometric_shares(np.arange(1, num + 1) / 20.0, num_exits)


def exit_counts(n: int, shares) -> np.ndarray:
    """``floor(n * share_k)`` for the first K-1 exits (see the module notes
    for the round-off guard); the last entry is what is left over (without
    ties, the number of samples the last exit takes).

    Returns:
        int64 array of the shape of ``shares``.
    """
    sh = np.asarray(shares, dtype=np.float64)
    counts = np.floor(n * sh * (1.0 + _COUNT_RTOL)).astype(np.int64)
    counts = np.minimum(counts, n)
    counts[..., -1] = n - counts[..., :-1].sum(axis=-1)
    return counts


class _SortedConf:
    """Per-exit descending order of held-out confidences (sorted once, then
    reused for every budget)."""

    def __init__(self, conf: np.ndarray):
        self.conf = conf
        n, k = conf.shape
        self.n, self.k = n, k
        # descending order; stable so equal values keep sample order
        self.order = np.empty((k, n), dtype=np.int64)
        self.desc = np.empty((k, n), dtype=np.float64)
        self.neg_desc = np.empty((k, n), dtype=np.float64)  # ascending
        for j in range(k):
            neg = -conf[:, j].astype(np.float64)
            o = np.argsort(neg, kind='stable')
            self.order[j] = o
            self.neg_desc[j] = neg[o]
            self.desc[j] = -self.neg_desc[j]

    def fit(self, counts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Greedy thresholds for one count vector (first K-1 entries used).

        Returns ``(thresholds (K,), exit_counts (K,))`` where exit_counts are
        the numbers of samples that actually leave at each exit.
        """
        n, k = self.n, self.k
        thr = np.full(k, np.inf)
        thr[-1] = -np.inf
        taken = np.zeros(k, dtype=np.int64)
        remaining = None  # None: nobody has exited yet
        n_rem = n
        for j in range(k - 1):
            c = int(counts[j])
            if c <= 0 or c > n_rem:
                continue  # +inf: nobody exits here
            if remaining is None:
                pos = c - 1
            else:
                alive = remaining[self.order[j]]
                pos = int(np.flatnonzero(alive)[c - 1])
            t = self.desc[j, pos]
            thr[j] = t
            # all samples with conf >= t form a prefix of the sorted order
            m = int(np.searchsorted(self.neg_desc[j], -t, side='right'))
            top = self.order[j, :m]
            if remaining is None:
                remaining = np.ones(n, dtype=bool)
                newly = top
            else:
                newly = top[remaining[top]]
            remaining[newly] = False
            taken[j] = newly.size
            n_rem -= newly.size
        taken[-1] = n_rem
        return thr, taken


def fit_thresholds(heldout_conf, shares) -> np.ndarray:
    """Fit the greedy MSDNet thresholds on held-out confidences.

    Args:
        heldout_conf: ``(N, K)`` confidences (e.g. from
            :func:`exit_confidences`); finite.
        shares: target shares, ``(K,)`` or ``(B, K)`` (one row per budget),
            non-negative, each row summing to 1.  Only the first K-1 entries
            matter (the last exit takes the rest).

    Returns:
        float64 thresholds of shape ``(K,)`` or ``(B, K)``: ``+inf`` where no
        sample exits (count 0, or count above what remains), ``-inf`` for the
        last exit.  Sorting is done once per exit and shared by all budgets;
        each budget then costs O(N) per exit.
    """
    conf = as_conf(heldout_conf, 'heldout_conf')
    sh, single = as_shares(shares, conf.shape[1])
    state = _SortedConf(conf)
    counts = exit_counts(conf.shape[0], sh)
    thr = np.stack([state.fit(c)[0] for c in counts])
    return thr[0] if single else thr


def apply_thresholds(test_conf, thresholds) -> np.ndarray:
    """Exit index (0-based) of every sample: the first exit whose confidence
    is ``>=`` its threshold, the last exit otherwise (the last threshold is
    not consulted: the last exit always accepts).

    Args:
        test_conf: ``(N, K)`` confidences.
        thresholds: ``(K,)`` thresholds (``+inf`` / ``-inf`` allowed, NaN
            not).

    Returns:
        int64 array of shape ``(N,)`` with values in ``[0, K)``.
    """
    conf = as_conf(test_conf, 'test_conf')
    k = conf.shape[1]
    thr = np.asarray(thresholds, dtype=np.float64)
    if thr.shape != (k, ):
        raise ValueError(f'thresholds must have shape ({k},), one per exit '
                         f'(expected K = {k}); got shape {thr.shape}')
    if np.any(np.isnan(thr)):
        raise ValueError('thresholds must not be NaN')
    mask = conf >= thr
    mask[:, -1] = True  # the last exit always accepts
    return mask.argmax(axis=1).astype(np.int64, copy=False)


def expected_mflops(exits: np.ndarray, exit_mflops) -> float:
    """Mean cumulative cost of the exits taken: ``sum_k share_k * cost_k``."""
    costs = np.asarray(exit_mflops, dtype=np.float64)
    ex = np.asarray(exits)
    k = costs.shape[0] if costs.ndim == 1 else 0
    if (k < 1 or ex.ndim != 1 or ex.shape[0] < 1
            or not np.issubdtype(ex.dtype, np.integer) or ex.min() < 0
            or ex.max() >= k):
        raise ValueError(f'exits must be a non-empty 1-D array of exit '
                         f'indices in [0, K) with K = len(exit_mflops) = {k}')
    shares = np.bincount(ex, minlength=costs.shape[0]) / ex.shape[0]
    return float(shares @ costs)


# --------------------------------------------------------------------------
# end-to-end evaluation
# --------------------------------------------------------------------------
class _Split:
    """Confidences and per-exit correctness of one split."""

    def __init__(self, logits, labels, name: str, confidence: str):
        arr = as_logits(logits, f'{name}_logits')
        self.n, self.k, self.c = arr.shape
        y = as_labels(labels, self.n, self.c, f'{name}_labels')
        self.conf, pred = exit_confidences(arr, confidence)
        self.top1 = pred == y[:, None]
        self.top5 = topk_correct(arr, y, 5)

    def score(self, exits: np.ndarray, costs: np.ndarray) -> Dict:
        rows = np.arange(self.n)
        shares = np.bincount(exits, minlength=self.k) / self.n
        return dict(exit_shares=shares.tolist(),
                    mflops=float(shares @ costs),
                    top1=100.0 * float(self.top1[rows, exits].mean()),
                    top5=100.0 * float(self.top5[rows, exits].mean()))


def _prepare(heldout_logits, heldout_labels, test_logits, test_labels,
             exit_mflops, confidence):
    check_confidence(confidence)
    held = _Split(heldout_logits, heldout_labels, 'heldout', confidence)
    test = _Split(test_logits, test_labels, 'test', confidence)
    if test.k != held.k:
        raise ValueError(f'heldout_logits have K = {held.k} exits but '
                         f'test_logits have K = {test.k}')
    if test.c != held.c:
        raise ValueError(f'heldout_logits have C = {held.c} classes but '
                         f'test_logits have C = {test.c}')
    costs = as_mflops(exit_mflops, held.k)
    return held, test, costs


def _result(q, thr, taken, held, test, costs) -> Dict:
    exits = apply_thresholds(test.conf, thr)
    out = dict(q=float(q), thresholds=[float(t) for t in thr])
    out.update(test.score(exits, costs))
    out['heldout_mflops'] = float(taken @ costs) / held.n
    out['heldout_exit_shares'] = (taken / held.n).tolist()
    return out


def evaluate_budgets(heldout_logits, heldout_labels, test_logits, test_labels,
                     exit_mflops: Sequence[float],
                     num_budgets: int = 39,
                     confidence: str = DEFAULT_CONFIDENCE) -> List[Dict]:
    """Fit thresholds on the held-out split for every MSDNet budget and
    evaluate them on the test split.

    Args:
        heldout_logits, test_logits: ``(N_h, K, C)`` and ``(N_t, K, C)``.
        heldout_labels, test_labels: ``(N_h,)`` and ``(N_t,)`` class indices.
        exit_mflops: ``(K,)`` cumulative cost of each exit in MFLOPs
            (non-decreasing).
        num_budgets: budgets ``p = 1..num_budgets``, ``q = p / 20``.
        confidence: the confidence measure (:mod:`.confidence`).

    Returns:
        One dict per budget, in order of ``p``: ``budget_index`` (= p,
        1-based), ``q``, ``thresholds`` (K floats; ``inf`` = nobody exits,
        last = ``-inf``; note ``json`` writes these as ``Infinity``),
        ``exit_shares`` (K fractions of the *test* samples, summing to 1),
        ``mflops`` (expected test cost), ``top1`` and ``top5`` (test accuracy
        in percent), ``heldout_mflops`` and ``heldout_exit_shares`` (the same
        on the held-out split the thresholds were fitted on).
    """
    held, test, costs = _prepare(heldout_logits, heldout_labels, test_logits,
                                 test_labels, exit_mflops, confidence)
    if int(num_budgets) != num_budgets or num_budgets < 1:
        raise ValueError(f'num_budgets must be a positive integer; got '
                         f'{num_budgets}')
    shares = budget_distributions(held.k, num_budgets)
    counts = exit_counts(held.n, shares)
    state = _SortedConf(held.conf)
    results = []
    for i in range(num_budgets):
        thr, taken = state.fit(counts[i])
        row = dict(budget_index=i + 1)
        row.update(_result((i + 1) / 20.0, thr, taken, held, test, costs))
        results.append(row)
    return results


def search_budget(heldout_logits,
                  heldout_labels,
                  test_logits,
                  test_labels,
                  exit_mflops: Sequence[float],
                  target_mflops: float,
                  *,
                  points_per_decade: int = 20,
                  bisect_steps: int = 60,
                  confidence: str = DEFAULT_CONFIDENCE) -> Dict:
    """Find the ``q`` whose expected *held-out* cost is closest to, but not
    above, ``target_mflops``, and evaluate its thresholds on the test split.

    The held-out cost is only approximately monotone in ``q`` (the per-exit
    counts are floored, and ties can send extra samples out early), so the
    search does not rely on monotonicity for feasibility: it scans a
    log-spaced grid of ``q`` from ``1e-13`` (everyone leaves at exit 1) to
    ``10 * N_h`` (everyone reaches the last exit) with ``points_per_decade``
    points per decade, keeps the feasible point (cost <= target) of highest
    cost (smallest q among equals), then bisects in ``log q`` towards the
    next grid point for ``bisect_steps`` steps, keeping any feasible point of
    higher cost.  The result is always feasible; on data where the cost is
    monotone between grid points it is the best achievable.

    Raises:
        ValueError: if ``target_mflops`` is outside
            ``[exit_mflops[0], exit_mflops[-1]]``.

    Returns:
        dict with ``target_mflops``, ``q``, ``thresholds``, ``heldout_mflops``
        (the achieved held-out cost, <= target), ``heldout_exit_shares``,
        ``mflops`` (achieved expected test cost, which may exceed the target
        slightly since the test split differs), ``exit_shares``, ``top1``,
        ``top5`` (test, percent).
    """
    held, test, costs = _prepare(heldout_logits, heldout_labels, test_logits,
                                 test_labels, exit_mflops, confidence)
    target = float(target_mflops)
    lo_c, hi_c = float(costs[0]), float(costs[-1])
    if not math.isfinite(target) or target < lo_c or target > hi_c:
        raise ValueError(f'target_mflops={target_mflops} is outside the valid '
                         f'range [{lo_c:g}, {hi_c:g}] MFLOPs (cost of exit 1 '
                         f'to cost of the last exit, exit {held.k})')
    if int(points_per_decade) != points_per_decade or points_per_decade < 1:
        raise ValueError('points_per_decade must be a positive integer')
    state = _SortedConf(held.conf)
    cache: Dict[tuple, Tuple[np.ndarray, np.ndarray, float]] = {}

    def evaluate(log_q: float):
        counts = exit_counts(held.n, geometric_shares(10.0**log_q, held.k))
        key = tuple(counts.tolist())
        if key not in cache:
            thr, taken = state.fit(counts)
            cache[key] = (thr, taken, float(taken @ costs) / held.n)
        return cache[key]

    lo_lq, hi_lq = -13.0, math.log10(10.0 * held.n)
    num = int(math.ceil((hi_lq - lo_lq) * points_per_decade)) + 1
    grid = np.linspace(lo_lq, hi_lq, num)
    best: Optional[Tuple[float, float]] = None  # (cost, log_q)
    best_i = -1
    for i, lq in enumerate(grid):
        cost = evaluate(lq)[2]
        if cost <= target and (best is None or cost > best[0]):
            best, best_i = (cost, lq), i
    # The q = 1e-13 end sends everyone to exit 1 (cost = exit_mflops[0] <=
    # target), so ``best`` exists.
    assert best is not None
    if best_i + 1 < num and best[0] < target:
        a, b = grid[best_i], grid[best_i + 1]
        for _ in range(int(bisect_steps)):
            mid = 0.5 * (a + b)
            cost = evaluate(mid)[2]
            if cost <= target:
                if cost > best[0]:
                    best = (cost, mid)
                a = mid
            else:
                b = mid
    log_q = best[1]
    thr, taken, _ = evaluate(log_q)
    out = dict(target_mflops=target)
    out.update(_result(10.0**log_q, thr, taken, held, test, costs))
    return out
