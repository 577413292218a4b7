"""Benchmark: fitting and applying budgeted-classification thresholds.

    .venv/bin/python bench/budgeted_search.py [--repeats 5] [--naive-n 5000]

Random logits, 50,000 test and 5,000 held-out samples, K = 8 exits, 100
classes (later exits more accurate).  Times, as the median of ``--repeats``
runs, fitting the greedy thresholds of all 39 MSDNet budgets and applying
them (exit index of every test sample), with the vectorised numpy code of
``hdkd_mm.evaluation.budgeted``; then, in the same run, a naive per-sample
Python loop (the MSDNet reference's structure) on ``--naive-n`` samples,
scaled linearly to the full size (an underestimate: its sort is n log n),
and checks both give the same thresholds on that subsample.

Two configurations: fit on the 5,000 held-out + apply to the 50,000 test
samples (the real use), and, as a stress test, fit on 50,000 + apply to
50,000 (the last line).
"""
import argparse
import os.path as osp
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from hdkd_mm.evaluation.budgeted import (  # noqa: E402
    apply_thresholds, budget_distributions, evaluate_budgets,
    exit_confidences, exit_counts, fit_thresholds, search_budget)

N_TEST, N_HELD, K, C, BUDGETS = 50_000, 5_000, 8, 100, 39
MSDNET_CIFAR = [6.86, 14.35, 27.29, 48.45, 81.57, 112.64, 152.92, 192.69]


def make_logits(rng, n):
    labels = rng.integers(0, C, n)
    logits = rng.standard_normal((n, K, C)).astype(np.float32)
    logits[np.arange(n), :, labels] += np.linspace(0.5, 4.0, K,
                                                   dtype=np.float32)
    return logits, labels


def fast(held_conf, test_conf, shares):
    thr = fit_thresholds(held_conf, shares)
    return thr, [apply_thresholds(test_conf, t) for t in thr]


def naive_fit(conf, counts):
    n, k = len(conf), len(conf[0])
    filtered = [False] * n
    thr = [float('inf')] * k
    for j in range(k - 1):
        order = sorted(range(n), key=lambda i: -conf[i][j])
        seen = 0
        for i in order:
            if not filtered[i]:
                seen += 1
                if seen == counts[j]:
                    thr[j] = conf[i][j]
                    break
        for i in range(n):
            if conf[i][j] >= thr[j]:
                filtered[i] = True
    thr[k - 1] = -float('inf')
    return thr


def naive_apply(conf, thr):
    out = []
    for row in conf:
        for j, c in enumerate(row):
            if j == len(row) - 1 or c >= thr[j]:
                out.append(j)
                break
    return out


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--naive-n', type=int, default=5000)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    test_logits, test_labels = make_logits(rng, N_TEST)
    held_logits, held_labels = make_logits(rng, N_HELD)
    shares = budget_distributions(K, BUDGETS)

    t_conf, (test_conf, _) = timed(lambda: exit_confidences(test_logits), 1)
    held_conf = exit_confidences(held_logits)[0]
    print(f'confidences of {N_TEST} x {K} x {C} logits: {t_conf:.3f} s '
          f'(once per split, not in the times below)')

    t_real, _ = timed(lambda: fast(held_conf, test_conf, shares),
                      args.repeats)
    t_fast, (thr_full, _) = timed(lambda: fast(test_conf, test_conf, shares),
                                  args.repeats)

    # naive per-sample loops on a subsample, same run
    n = min(args.naive_n, N_HELD)
    sub_h, sub_t = held_conf[:n].tolist(), test_conf[:n].tolist()
    counts = exit_counts(n, shares)
    t0 = time.perf_counter()
    naive_thr = [naive_fit(sub_h, c) for c in counts]
    t_nfit = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in naive_thr:
        naive_apply(sub_t, t)
    t_napply = time.perf_counter() - t0
    fast_thr = fit_thresholds(held_conf[:n], shares)
    assert fast_thr.tolist() == naive_thr, 'fast and naive thresholds differ'
    naive_real = t_nfit * N_HELD / n + t_napply * N_TEST / n
    naive_full = (t_nfit + t_napply) * N_TEST / n
    print(f'naive loops on {n} samples: fit {t_nfit:.3f} s + apply '
          f'{t_napply:.3f} s for {BUDGETS} budgets (thresholds identical to '
          f'the fast version)')

    t_eval, _ = timed(
        lambda: evaluate_budgets(held_logits, held_labels, test_logits,
                                 test_labels, MSDNET_CIFAR, BUDGETS), 1)
    t_search, res = timed(
        lambda: search_budget(held_logits, held_labels, test_logits,
                              test_labels, MSDNET_CIFAR, 50.0), 1)
    print(f'evaluate_budgets end to end (logits in, incl. softmax and top-5 '
          f'of both splits): {t_eval:.2f} s')
    print(f'search_budget(target 50 MFLOPs) end to end: {t_search:.2f} s -> '
          f'q = {res["q"]:.4f}, held-out {res["heldout_mflops"]:.2f} / test '
          f'{res["mflops"]:.2f} MFLOPs, top-1 {res["top1"]:.2f} %')
    print(f'fit on {N_HELD} held-out + apply to {N_TEST} test, {BUDGETS} '
          f'budgets: {t_real:.3f} s (naive loop est. {naive_real:.1f} s, '
          f'speedup {naive_real / t_real:.0f}x)')
    print(f'budgeted_search: {BUDGETS} budgets x {N_TEST} samples: '
          f'{t_fast:.2f} s (naive loop est. {naive_full:.0f} s, speedup '
          f'{naive_full / t_fast:.0f}x)')


if __name__ == '__main__':
    main()
