"""Budgeted batch classification (hdkd_mm.evaluation.budgeted) against a
slow, obviously-correct per-sample reference written here independently,
following the MSDNet reference's loops (sort, count the not-yet-filtered
samples until the n-th, filter with ``>=``)."""
import math
from fractions import Fraction

import numpy as np
import pytest

from hdkd_mm.evaluation.budgeted import (apply_thresholds,
                                         budget_distributions,
                                         evaluate_budgets, exit_confidences,
                                         exit_counts, expected_mflops,
                                         fit_thresholds,
                                         geometric_shares, search_budget,
                                         topk_correct)
from hdkd_mm.evaluation.confidence import (CONFIDENCES, check_confidence,
                                           confidence)

INF = float('inf')
MSDNET_CIFAR = [6.86, 14.35, 27.29, 48.45, 81.57, 112.64, 152.92, 192.69]


# --------------------------------------------------------------------------
# slow references
# --------------------------------------------------------------------------
def ref_counts(n, num_exits, p):
    """floor(n * q^k / sum_j q^j) in exact rational arithmetic, q = p/20."""
    q = Fraction(p, 20)
    w = [q**k for k in range(1, num_exits + 1)]
    s = sum(w)
    return [math.floor(n * wk / s) for wk in w]


def ref_fit(conf, counts):
    """MSDNet's greedy threshold fit, one sample at a time."""
    n, num_exits = len(conf), len(conf[0])
    filtered = [False] * n
    thr = [INF] * num_exits
    for k in range(num_exits - 1):
        order = sorted(range(n), key=lambda i: -conf[i][k])
        seen = 0
        for i in order:
            if not filtered[i]:
                seen += 1
                if seen == counts[k]:
                    thr[k] = conf[i][k]
                    break
        for i in range(n):
            if conf[i][k] >= thr[k]:
                filtered[i] = True
    thr[num_exits - 1] = -INF
    return thr


def ref_apply(conf, thr):
    out = []
    for row in conf:
        for k, c in enumerate(row):
            if k == len(row) - 1 or c >= thr[k]:
                out.append(k)
                break
    return out


def ref_rank(scores, label):
    """Position of ``label`` when classes are sorted by (-score, index)."""
    order = sorted(range(len(scores)), key=lambda c: (-scores[c], c))
    return order.index(label)


def ref_confidence(row, name):
    """One exit's confidence from its logits with math.exp, per definition:
    max p, sum p log p (the negative entropy) or p_top1 - p_top2."""
    m = max(row)
    z = sum(math.exp(v - m) for v in row)
    probs = sorted((math.exp(v - m) / z for v in row), reverse=True)
    if name == 'max_softmax':
        return probs[0]
    if name == 'entropy':
        return sum(p * math.log(p) for p in probs if p > 0)
    return probs[0] - (probs[1] if len(probs) > 1 else 0.0)


def ref_evaluate(hl, hy, tl, ty, costs, num_budgets, conf_name='max_softmax'):
    """Everything from scratch, per sample; confidences from the module
    (checked separately against math.exp) so thresholds compare exactly."""
    hconf = exit_confidences(hl, conf_name)[0].tolist()
    tconf = exit_confidences(tl, conf_name)[0].tolist()
    n_t, num_exits = len(tconf), len(tconf[0])
    rows = []
    for p in range(1, num_budgets + 1):
        thr = ref_fit(hconf, ref_counts(len(hconf), num_exits, p))
        exits = ref_apply(tconf, thr)
        hits1 = hits5 = 0
        taken = [0] * num_exits
        cost = 0.0
        for i, k in enumerate(exits):
            rank = ref_rank(list(tl[i, k]), int(ty[i]))
            hits1 += rank < 1
            hits5 += rank < 5
            taken[k] += 1
            cost += costs[k]
        rows.append(dict(thresholds=thr, taken=taken, hits1=hits1,
                         hits5=hits5, mflops=cost / n_t))
    return rows


def tied_logits(rng, n, num_exits, num_classes, pool):
    """Logits whose rows repeat exactly (so confidences tie exactly)."""
    base = np.round(rng.standard_normal((pool, num_exits, num_classes)) * 2)
    return base[rng.integers(0, pool, n)]


# --------------------------------------------------------------------------
# confidences and correctness
# --------------------------------------------------------------------------
def test_exit_confidences_match_math_reference():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((9, 3, 6)) * 5
    logits[0, 0] = [1000.0, 999.0, -1000.0, 0.0, 3.0, 1000.0]  # big, tied max
    logits[1, 1] = -5000.0  # all equal and very negative
    conf, pred = exit_confidences(logits)
    assert conf.shape == pred.shape == (9, 3)
    assert conf.dtype == np.float64 and pred.dtype == np.int64
    for i in range(9):
        for k in range(3):
            row = logits[i, k].tolist()
            m = max(row)
            expected = 1.0 / sum(math.exp(v - m) for v in row)
            assert conf[i, k] == pytest.approx(expected, rel=1e-12)
            assert pred[i, k] == row.index(m)  # first maximum
    assert pred[0, 0] == 0 and conf[1, 1] == pytest.approx(1 / 6)
    # float32 input, chunked: same as float64 of the same values
    l32 = rng.standard_normal((3000, 2, 700)).astype(np.float32)
    c32, p32 = exit_confidences(l32)
    c64, p64 = exit_confidences(l32.astype(np.float64))
    np.testing.assert_array_equal(c32, c64)
    np.testing.assert_array_equal(p32, p64)


@pytest.mark.parametrize('name', ['entropy', 'margin'])
def test_entropy_and_margin_match_math_reference(name):
    """The other confidence measures against their definitions, with tied
    maxima, all-equal rows, huge logits and one class; the prediction is the
    same argmax (first maximum) for every measure."""
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((9, 3, 6)) * 5
    logits[0, 0] = [1000.0, 999.0, -1000.0, 0.0, 3.0, 1000.0]  # tied max
    logits[1, 1] = -5000.0  # all equal: maximal entropy, zero margin
    logits[2, 2] = [60.0, 0, 0, 0, 0, 0]  # p_top1 = 1.0 in float64
    conf, pred = exit_confidences(logits, name)
    np.testing.assert_array_equal(pred, exit_confidences(logits)[1])
    for i in range(9):
        for k in range(3):
            expected = ref_confidence(logits[i, k].tolist(), name)
            # the float64 sums of 6 terms: agreement to a few ulps of 1
            assert conf[i, k] == pytest.approx(expected, rel=1e-12,
                                               abs=1e-14)
    if name == 'entropy':
        assert conf[1, 1] == pytest.approx(-math.log(6), rel=1e-15)
        assert np.all(conf <= 0) and np.all(conf >= -math.log(6) - 1e-15)
    else:
        assert conf[0, 0] == 0.0 and conf[1, 1] == 0.0
        assert np.all((conf >= 0) & (conf <= 1)) and conf[2, 2] == 1.0
    assert confidence(np.array([[3.0]]), name)[0][0] == (
        0.0 if name == 'entropy' else 1.0)  # one class
    # row by row through confidence() = exit_confidences, bit for bit
    c2, p2 = confidence(logits.astype(np.float32), name)
    np.testing.assert_array_equal(
        c2, exit_confidences(logits.astype(np.float32), name)[0])
    np.testing.assert_array_equal(p2, pred)


def test_unknown_confidence_name():
    l = np.zeros((2, 2, 3))
    for call in (lambda: exit_confidences(l, 'softmax'),
                 lambda: confidence(l[0], 'entropie'),
                 lambda: check_confidence(None),
                 lambda: evaluate_budgets(l, [0, 1], l, [0, 1], [1., 2.],
                                          confidence='max'),
                 lambda: search_budget(l, [0, 1], l, [0, 1], [1., 2.], 1.5,
                                       confidence='max')):
        with pytest.raises(ValueError, match=r"max_softmax, entropy, margin"):
            call()
    assert CONFIDENCES == ('max_softmax', 'entropy', 'margin')


def test_topk_correct_matches_sorted_reference():
    rng = np.random.default_rng(1)
    logits = np.round(rng.standard_normal((40, 3, 7)))  # many ties
    labels = rng.integers(0, 7, 40)
    pred = exit_confidences(logits)[1]
    for k in (1, 2, 5, 7, 9):
        got = topk_correct(logits, labels, k)
        for i in range(40):
            for e in range(3):
                assert got[i, e] == (ref_rank(list(logits[i, e]),
                                              labels[i]) < k)
    np.testing.assert_array_equal(topk_correct(logits, labels, 1),
                                  pred == labels[:, None])
    # fewer than 5 classes: top-5 is always right
    small = rng.standard_normal((5, 2, 3))
    assert topk_correct(small, rng.integers(0, 3, 5), 5).all()


# --------------------------------------------------------------------------
# budgets and counts
# --------------------------------------------------------------------------
@pytest.mark.parametrize('num_exits', [1, 2, 3, 5, 8])
def test_budget_distributions_and_counts_are_exact(num_exits):
    shares = budget_distributions(num_exits)
    assert shares.shape == (39, num_exits)
    np.testing.assert_allclose(shares.sum(1), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(shares[19], 1.0 / num_exits)  # q = 1
    for p in (1, 7, 20, 33, 39):
        q = Fraction(p, 20)
        w = [q**k for k in range(1, num_exits + 1)]
        exact = [float(x / sum(w)) for x in w]
        np.testing.assert_allclose(shares[p - 1], exact, rtol=1e-14)
    for n in list(range(1, 400)) + [2000, 4999, 5000, 10000, 50000]:
        counts = exit_counts(n, shares)
        for p in range(1, 40):
            ref = ref_counts(n, num_exits, p)
            assert counts[p - 1, :-1].tolist() == ref[:-1], (n, p)
            assert counts[p - 1].sum() == n


def test_geometric_shares_extreme_q():
    s = geometric_shares(np.array([1e-13, 1.0, 1e13]), 30)
    assert np.all(np.isfinite(s))
    assert s[0, 0] == pytest.approx(1.0) and s[2, -1] == pytest.approx(1.0)
    assert exit_counts(5000, s[0])[0] == 5000
    assert exit_counts(5000, s[2])[:-1].sum() == 0


# --------------------------------------------------------------------------
# fit / apply against the reference
# --------------------------------------------------------------------------
def _check_fit(conf, num_budgets=39):
    n, num_exits = conf.shape
    shares = budget_distributions(num_exits, num_budgets)
    fast = fit_thresholds(conf, shares)
    assert fast.shape == (num_budgets, num_exits)
    lists = conf.tolist()
    for p in range(1, num_budgets + 1):
        ref = ref_fit(lists, ref_counts(n, num_exits, p))
        assert fast[p - 1].tolist() == ref, p
        # single-budget call gives the same row
        assert fit_thresholds(conf, shares[p - 1]).tolist() == ref
        assert apply_thresholds(conf, fast[p - 1]).tolist() == ref_apply(
            lists, ref)
    return fast


@pytest.mark.parametrize('n,num_exits', [(7, 1), (7, 3), (7, 8), (50, 4),
                                         (2000, 5)])
def test_fit_matches_reference_random(n, num_exits):
    rng = np.random.default_rng(n * 10 + num_exits)
    conf = exit_confidences(rng.standard_normal((n, num_exits, 10)) * 2)[0]
    thr = _check_fit(conf)
    assert np.all(thr[:, -1] == -INF)
    if n == 7:  # tiny budgets leave exits with count 0 -> +inf
        assert num_exits == 1 or np.isinf(thr[0, 1:-1]).all()


@pytest.mark.parametrize('n,num_exits', [(7, 3), (60, 4), (2000, 6)])
def test_fit_matches_reference_with_ties(n, num_exits):
    rng = np.random.default_rng(7 + n)
    # few distinct confidence values: heavy ties at every threshold
    conf = rng.integers(1, 6, (n, num_exits)) / 5.0
    thr = _check_fit(conf)
    # ties make some exit take more than its count, and a later exit then
    # finds fewer samples left than its count -> +inf
    assert np.isinf(thr[:, :-1]).any()


def test_tie_and_empty_exit_semantics_by_hand():
    # 6 samples, 3 exits; exit 1 confidences tie at the 2nd most confident
    conf = np.array([[0.9, 0.1, 0.5], [0.8, 0.2, 0.5], [0.8, 0.3, 0.5],
                     [0.8, 0.9, 0.5], [0.1, 0.8, 0.5], [0.2, 0.7, 0.5]])
    shares = np.array([2 / 6, 3 / 6, 1 / 6])  # counts 2, 3, rest
    thr = fit_thresholds(conf, shares)
    # exit 1: 2nd largest is 0.8 -> all three 0.8's exit too (4 samples);
    # exit 2: count 3 but only 2 remain -> +inf, nobody exits there
    assert thr.tolist() == [0.8, INF, -INF]
    assert apply_thresholds(conf, thr).tolist() == [0, 0, 0, 0, 2, 2]
    # count 0 -> +inf and the exit is skipped
    thr = fit_thresholds(conf, [0.0, 3 / 6, 3 / 6])
    assert thr.tolist() == [INF, 0.7, -INF]  # 3rd of 0.9, 0.8, 0.7, ...
    assert apply_thresholds(conf, thr).tolist() == [2, 2, 2, 1, 1, 1]
    # everyone at exit 1
    assert apply_thresholds(conf, fit_thresholds(conf, [1, 0, 0])).tolist() \
        == [0] * 6


def test_heldout_assignment_is_exact_without_ties():
    rng = np.random.default_rng(3)
    conf = exit_confidences(rng.standard_normal((997, 6, 20)) * 3)[0]
    shares = budget_distributions(6)
    thr = fit_thresholds(conf, shares)
    counts = exit_counts(997, shares)
    for b in range(39):
        taken = np.bincount(apply_thresholds(conf, thr[b]), minlength=6)
        np.testing.assert_array_equal(taken, counts[b])


# --------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------
@pytest.mark.parametrize('n_h,n_t,num_exits,ties', [(7, 7, 3, False),
                                                    (7, 9, 1, False),
                                                    (200, 150, 4, True),
                                                    (2000, 300, 3, False),
                                                    (2000, 300, 3, True)])
def test_evaluate_budgets_matches_reference(n_h, n_t, num_exits, ties):
    rng = np.random.default_rng(n_h + n_t + num_exits + ties)
    num_classes = 8
    if ties:
        hl = tied_logits(rng, n_h, num_exits, num_classes, pool=12)
        tl = tied_logits(rng, n_t, num_exits, num_classes, pool=12)
    else:
        hl = rng.standard_normal((n_h, num_exits, num_classes)) * 2
        tl = rng.standard_normal((n_t, num_exits, num_classes)) * 2
    hy = rng.integers(0, num_classes, n_h)
    ty = rng.integers(0, num_classes, n_t)
    costs = np.cumsum(rng.uniform(1, 10, num_exits)).tolist()
    got = evaluate_budgets(hl, hy, tl, ty, costs, num_budgets=39)
    ref = ref_evaluate(hl, hy, tl, ty, costs, 39)
    assert len(got) == 39
    for p, (g, r) in enumerate(zip(got, ref), start=1):
        assert g['budget_index'] == p and g['q'] == p / 20
        assert g['thresholds'] == r['thresholds']
        assert g['exit_shares'] == [t / n_t for t in r['taken']]
        assert round(g['top1'] * n_t / 100) == r['hits1']
        assert round(g['top5'] * n_t / 100) == r['hits5']
        assert g['top1'] == pytest.approx(100 * r['hits1'] / n_t, rel=1e-12)
        assert g['top5'] == pytest.approx(100 * r['hits5'] / n_t, rel=1e-12)
        assert g['mflops'] == pytest.approx(r['mflops'], rel=1e-12)
        assert sum(g['heldout_exit_shares']) == pytest.approx(1.0)


@pytest.mark.parametrize('name', ['entropy', 'margin'])
@pytest.mark.parametrize('n_h,n_t,num_exits,ties', [(7, 9, 3, False),
                                                    (200, 150, 4, True),
                                                    (1000, 300, 3, False),
                                                    (1000, 300, 3, True)])
def test_evaluate_budgets_other_confidences_match_reference(
        name, n_h, n_t, num_exits, ties):
    """The threshold search and the simulation with the entropy and margin
    measures against the per-sample reference, ties included (repeated
    logit rows tie exactly in every measure)."""
    rng = np.random.default_rng(n_h + n_t + num_exits + ties + len(name))
    if ties:
        hl = tied_logits(rng, n_h, num_exits, 8, pool=12)
        tl = tied_logits(rng, n_t, num_exits, 8, pool=12)
    else:
        hl = rng.standard_normal((n_h, num_exits, 8)) * 2
        tl = rng.standard_normal((n_t, num_exits, 8)) * 2
    hy, ty = rng.integers(0, 8, n_h), rng.integers(0, 8, n_t)
    costs = np.cumsum(rng.uniform(1, 10, num_exits)).tolist()
    got = evaluate_budgets(hl, hy, tl, ty, costs, confidence=name)
    ref = ref_evaluate(hl, hy, tl, ty, costs, 39, name)
    for g, r in zip(got, ref):
        assert g['thresholds'] == r['thresholds']
        assert g['exit_shares'] == [t / n_t for t in r['taken']]
        assert round(g['top1'] * n_t / 100) == r['hits1']
        assert round(g['top5'] * n_t / 100) == r['hits5']
    if ties:  # the ties reach the thresholds
        conf = exit_confidences(hl, name)[0]
        assert any(np.sum(conf[:, 0] == g['thresholds'][0]) > 1
                   for g in got)
    # the --budget search with the measure: feasible on held-out, and its
    # test numbers are the simulation of its thresholds
    target = 0.5 * (costs[0] + costs[-1])
    res = search_budget(hl, hy, tl, ty, costs, target, confidence=name)
    assert res['heldout_mflops'] <= target
    exits = ref_apply(exit_confidences(tl, name)[0].tolist(),
                      res['thresholds'])
    assert res['exit_shares'] == (np.bincount(exits, minlength=num_exits)
                                  / n_t).tolist()


def _budget_costs(seed, n_h, n_t, num_exits, ties):
    rng = np.random.default_rng(seed)
    if ties:
        hl = tied_logits(rng, n_h, num_exits, 10, pool=15)
        tl = tied_logits(rng, n_t, num_exits, 10, pool=15)
    else:
        hl = rng.standard_normal((n_h, num_exits, 10)) * rng.uniform(0.5, 3)
        tl = rng.standard_normal((n_t, num_exits, 10)) * rng.uniform(0.5, 3)
    costs = np.cumsum(rng.uniform(0.5, 10, num_exits))
    rows = evaluate_budgets(hl, rng.integers(0, 10, n_h), tl,
                            rng.integers(0, 10, n_t), costs)
    return rows, costs


def test_cost_guarantees_in_budget():
    """What the greedy procedure guarantees as q grows (budget index up):

    * the share leaving at exit 1 never grows, on the held-out and the test
      split, ties or not (its count floor(N p_1) shrinks with q and exit 1
      sees every sample, so its threshold never drops);
    * without ties, the held-out cost lies in [ideal, ideal + (K-1)(c_K -
      c_1)/N_h), where ideal = sum_k p_k c_k is non-decreasing in q; so the
      held-out cost can drop between budgets by less than that slack.

    Neither cost is monotone in general (see the next test)."""
    for seed in range(40):
        rng = np.random.default_rng(seed)
        num_exits = int(rng.integers(2, 7))
        n_h, n_t = int(rng.integers(5, 200)), int(rng.integers(5, 200))
        ties = seed % 2 == 1
        rows, costs = _budget_costs(seed, n_h, n_t, num_exits, ties)
        for key in ('heldout_exit_shares', 'exit_shares'):
            first = [r[key][0] for r in rows]
            assert all(b <= a for a, b in zip(first, first[1:])), (seed, key)
        if ties:
            continue
        ideal = budget_distributions(num_exits) @ costs
        assert np.all(np.diff(ideal) >= -1e-12)
        held = np.array([r['heldout_mflops'] for r in rows])
        slack = (num_exits - 1) * (costs[-1] - costs[0]) / n_h
        assert np.all(held >= ideal - 1e-9)
        assert np.all(held < ideal + slack + 1e-9)


def test_cost_is_not_monotone_in_general_but_is_at_scale():
    # small held-out split: floored counts make the held-out cost dip
    dips = 0
    for seed in range(40):
        rows, _ = _budget_costs(seed, 37, 37, 5, ties=False)
        held = np.array([r['heldout_mflops'] for r in rows])
        dips += bool(np.any(np.diff(held) < 0))
    assert dips > 0
    # 5000 held-out samples, K = 8, MSDNet costs: the slack 7 * 185.8 / 5000
    # = 0.26 MFLOPs is below the smallest step of the ideal cost between
    # budgets (0.45), so the held-out cost is monotone for ANY tie-free data.
    ideal = budget_distributions(8) @ np.array(MSDNET_CIFAR)
    assert np.diff(ideal).min() > 7 * (MSDNET_CIFAR[-1] - MSDNET_CIFAR[0]) \
        / 5000


# --------------------------------------------------------------------------
# search_budget
# --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def search_data():
    rng = np.random.default_rng(11)
    num_exits, num_classes = 8, 10
    y = rng.integers(0, num_classes, 3000)
    logits = rng.standard_normal((3000, num_exits, num_classes))
    logits[np.arange(3000), :, y] += np.linspace(0.2, 3, num_exits)
    return logits[:2000], y[:2000], logits[2000:], y[2000:]


def test_search_budget_hits_target_from_below(search_data):
    hl, hy, tl, ty = search_data
    rows = evaluate_budgets(hl, hy, tl, ty, MSDNET_CIFAR)
    for target in (6.86, 10.0, 25.0, 50.0, 100.0, 150.0, 192.69):
        res = search_budget(hl, hy, tl, ty, MSDNET_CIFAR, target)
        assert res['target_mflops'] == target
        assert res['heldout_mflops'] <= target
        # at least as close as any of the 39 standard budgets that fit
        fit = [r['heldout_mflops'] for r in rows
               if r['heldout_mflops'] <= target]
        if fit:
            assert res['heldout_mflops'] >= max(fit)
        # within one sample's worth of the gap between adjacent exits
        assert target - res['heldout_mflops'] <= 185.83 / 2000 + 1e-9
        # reported test numbers are those of the reported thresholds
        conf = exit_confidences(tl)[0]
        exits = apply_thresholds(conf, res['thresholds'])
        assert res['exit_shares'] == (np.bincount(exits, minlength=8) /
                                      1000).tolist()
        assert res['mflops'] == pytest.approx(
            float(np.dot(res['exit_shares'], MSDNET_CIFAR)))
    lo = search_budget(hl, hy, tl, ty, MSDNET_CIFAR, 6.86)
    assert lo['heldout_exit_shares'][0] == 1.0 and lo['exit_shares'][0] == 1.0
    hi = search_budget(hl, hy, tl, ty, MSDNET_CIFAR, 192.69)
    assert hi['heldout_exit_shares'][-1] == 1.0
    assert hi['exit_shares'][-1] == 1.0


def test_search_budget_range_errors(search_data):
    hl, hy, tl, ty = search_data
    for bad in (6.85, 192.7, 0.0, float('nan')):
        with pytest.raises(ValueError, match=r'\[6\.86, 192\.69\] MFLOPs'):
            search_budget(hl, hy, tl, ty, MSDNET_CIFAR, bad)


def test_single_exit():
    rng = np.random.default_rng(5)
    l = rng.standard_normal((7, 1, 4))
    y = rng.integers(0, 4, 7)
    res = search_budget(l, y, l, y, [3.0], 3.0)
    assert res['thresholds'] == [-INF] and res['mflops'] == 3.0
    with pytest.raises(ValueError, match=r'\[3, 3\] MFLOPs'):
        search_budget(l, y, l, y, [3.0], 3.5)


# --------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------
def test_validation_errors():
    rng = np.random.default_rng(6)
    l = rng.standard_normal((10, 3, 4))
    y = rng.integers(0, 4, 10)
    conf = exit_confidences(l)[0]
    with pytest.raises(ValueError, match='expected K = 3'):
        apply_thresholds(conf, [0.5, -INF])
    with pytest.raises(ValueError, match='NaN'):
        apply_thresholds(conf, [0.5, float('nan'), -INF])
    with pytest.raises(ValueError, match='K = 3'):
        fit_thresholds(conf, [0.5, 0.5])
    with pytest.raises(ValueError, match='sum to 1'):
        fit_thresholds(conf, [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match='non-negative'):
        fit_thresholds(conf, [1.5, -0.5, 0.0])
    with pytest.raises(ValueError, match='NaN'):
        fit_thresholds(np.where(conf > 0.5, np.nan, conf),
                       [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match=r'K = 3'):
        evaluate_budgets(l, y, l, y, [1.0, 2.0])
    with pytest.raises(ValueError, match='cumulative'):
        evaluate_budgets(l, y, l, y, [1.0, 3.0, 2.0])
    with pytest.raises(ValueError, match='K = 3 exits but test'):
        evaluate_budgets(l, y, l[:, :2], y, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match='C = 4 classes'):
        evaluate_budgets(l, y, l[:, :, :3], y % 3, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r'shape \(10,\)'):
        evaluate_budgets(l, y[:9], l, y, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r'\[0, 4\)'):
        evaluate_budgets(l, y + 1, l, y, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r'\(N, K, C\)'):
        exit_confidences(l[0])
    bad = l.copy()
    bad[3, 1, 2] = np.inf
    with pytest.raises(ValueError, match='NaN or infinite'):
        exit_confidences(bad)
    assert expected_mflops(np.array([0, 2, 2, 1]), [1.0, 2.0, 4.0]) == 2.75
    with pytest.raises(ValueError, match='K = len'):
        expected_mflops(np.array([0, 3]), [1.0, 2.0, 4.0])
    with pytest.raises(ValueError, match='num_budgets'):
        evaluate_budgets(l, y, l, y, [1.0, 2.0, 3.0], num_budgets=0)
