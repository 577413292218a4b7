"""The verdict rule of a suite's claims, fixed in advance: a paired 95 %
t-interval over seeds, and whether the seeds and the baseline could have
shown the paper's effect at all.

A claim compares two cells *a* and *b* at one exit (``first``, ``last``,
``mean`` over the exits, or a 1-based exit number): the differences a − b of
test top-1, paired by seed. With n ≥ 2 common seeds, mean m and sample std s:

* **interval**: m ± h, with h = t₀.₉₇₅,ₙ₋₁ · s / √n (Student t);
* **detectable effect** = h: the smallest mean difference whose interval
  excludes 0, i.e. the smallest effect these seeds could show at the rule's
  95 % level with the spread they had;
* **power** at the paper's effect E: the probability that the interval
  lies on the claimed side of 0 when the true effect is |E| and the std is
  s, ``P(T > t₀.₉₇₅,ₙ₋₁)`` with T noncentral t (n − 1 degrees of freedom,
  noncentrality |E|·√n / s). A true effect equal to h has a power of
  0.61 with 3 seeds (0.56 with 5); 80 % needs 1.31 h with 3 seeds;
* **room**: b's last exit − its first exit, top-1 on the test split (and,
  for the reader, on the training subset), mean over b's seeds: how far
  b's later exits are ahead, which bounds what distillation from them can
  add to an earlier exit;
* **paper's effect** E: the signed numbers of the claim's ``paper`` text
  (``'+6.48 / +6.73'``: 6.48 and 6.73; unsigned numbers such as the 1 of
  "exit 1" are not effects); the rule uses the smallest in magnitude, the
  least the paper reports.

The verdict:

* ``expect: '+'`` / ``'-'``: **reproduced** when the interval lies on the
  claimed side of 0, **contradicted** when it lies on the other side;
* ``expect: '='``: **reproduced** when the interval lies within
  (−margin, +margin), **contradicted** when it lies outside;
* otherwise **not testable here** when the seeds could not have shown the
  effect: h > |E| (for ``'='``: h ≥ margin, so the interval can never fit),
  or, at an exit before the last, the room < |E|; and **inconclusive**
  when they could have (or when the paper gives no number to judge by);
* one common seed: **one seed** (no interval, no verdict yet: a suite in
  progress); none: **not run yet**.

Beside the verdict, whether E lies outside the interval: the seeds may
disagree with the paper's size even where they cannot decide the sign.
"""
import math
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ['LEVEL', 't_quantile', 'paired_differences',
           'detectable_effect', 'power_at', 'room', 'paper_effect',
           'claim_effect']

#: The two-sided level of the claims' intervals.
LEVEL = 0.95

_SIGNED = re.compile(r'(?<![\w.])([+\-−])\s?(\d+(?:\.\d+)?)')


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom."""
    from scipy import stats
    return float(stats.t.ppf(p, df))


def _exit_value(exits: Sequence[Dict], ex) -> float:
    acc = [e['top1'] for e in exits]
    if ex == 'first':
        return acc[0]
    if ex == 'last':
        return acc[-1]
    if ex == 'mean':
        return float(np.mean(acc))
    return acc[int(ex) - 1]


def paired_differences(done: List[Dict], claim: Dict
                       ) -> Tuple[List[int], np.ndarray]:
    """The seeds that both cells of the claim have, and the differences
    a − b of their test top-1 at the claim's exit, seed by seed."""
    a = {d['seed']: d for d in done if d['label'] == claim['a']}
    b = {d['seed']: d for d in done if d['label'] == claim['b']}
    seeds = sorted(set(a) & set(b))
    ex = claim.get('exit', 'last')
    diffs = np.array([_exit_value(a[s]['test'], ex) -
                      _exit_value(b[s]['test'], ex) for s in seeds])
    return seeds, diffs


def detectable_effect(std: float, n: int, level: float = LEVEL) -> float:
    """The half-width of the two-sided ``level`` t-interval of a mean over
    n paired differences with sample std ``std`` (NaN for n < 2)."""
    if n < 2:
        return math.nan
    return t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n)


def power_at(effect: float, std: float, n: int,
             level: float = LEVEL) -> float:
    """The probability that the ``level`` t-interval of n paired
    differences lies on the side of 0 of a true ``effect`` when their std
    is ``std`` (noncentral t; NaN for n < 2)."""
    if n < 2:
        return math.nan
    crit = t_quantile(0.5 + level / 2, n - 1)
    if std == 0:
        return 1.0 if effect != 0 else 0.0
    from scipy import stats
    return float(stats.nct.sf(crit, n - 1, abs(effect) * math.sqrt(n) / std))


def room(done: List[Dict], label: str) -> Dict[str, float]:
    """A cell's last exit − first exit of top-1, mean over its seeds, on
    the test split (``test``) and the training subset (``train``; NaN when
    the runs were read without it)."""
    runs = [d for d in done if d['label'] == label]
    out = {}
    for key in ('test', 'train'):
        spans = [d[key][-1]['top1'] - d[key][0]['top1'] for d in runs
                 if d.get(key)]
        out[key] = float(np.mean(spans)) if spans else math.nan
    return out


def paper_effect(text) -> Optional[float]:
    """The paper's effect the rule uses: of the signed numbers in ``text``,
    the one smallest in magnitude (None when there is none)."""
    values = [float(num) * (1 if sign == '+' else -1)
              for sign, num in _SIGNED.findall(str(text or ''))]
    return min(values, key=abs) if values else None


def _interval_verdict(expect: str, lo: float, hi: float,
                      margin: float) -> str:
    if expect == '+':
        return ('reproduced' if lo > 0 else
                'contradicted' if hi < 0 else 'inconclusive')
    if expect == '-':
        return ('reproduced' if hi < 0 else
                'contradicted' if lo > 0 else 'inconclusive')
    return ('reproduced' if -margin < lo and hi < margin else
            'contradicted' if lo >= margin or hi <= -margin
            else 'inconclusive')


def _before_last(done: List[Dict], claim: Dict) -> bool:
    """Whether the claim's exit lies before the last exit of b's runs."""
    ex = claim.get('exit', 'last')
    if ex in ('first', 'mean'):
        return True
    if ex == 'last':
        return False
    num_exits = max((len(d['test']) for d in done
                     if d['label'] == claim['b']), default=0)
    return int(ex) < num_exits


def claim_effect(done: List[Dict], claim: Dict) -> Dict:
    """The claim's paired effect and its verdict (see the module's
    docstring). ``done``: finished runs, each ``{label, seed, test: [{exit,
    top1}, ...]}`` (and ``train``, the same on the training subset).

    Returns ``{n, diffs, mean, std, lo, hi, detectable, power, room_test,
    room_train, paper, paper_outside, limits, verdict}``: ``paper`` is the
    effect E used (None: none given, or an ``'='`` claim, which is judged
    against its margin), ``power`` the power at E, ``paper_outside``
    whether E lies outside the interval (the data disagree with the
    paper's size, whatever the verdict), ``limits`` why the claim is not
    testable here (``'power'``, ``'room'``)."""
    seeds, diffs = paired_differences(done, claim)
    n = len(diffs)
    space = room(done, claim['b'])
    expect = claim['expect']
    margin = float(claim.get('margin', 1.0))
    paper = paper_effect(claim.get('paper')) if expect != '=' else None
    out = dict(n=n, diffs=diffs.tolist(), mean=math.nan, std=math.nan,
               lo=math.nan, hi=math.nan, detectable=math.nan,
               power=math.nan, room_test=space['test'],
               room_train=space['train'], paper=paper, paper_outside=False,
               limits=[],
               verdict='not run yet' if n == 0 else 'one seed')
    if n == 0:
        return out
    out['mean'] = float(diffs.mean())
    if n < 2:
        return out
    std = float(diffs.std(ddof=1))
    half = detectable_effect(std, n)
    out.update(std=std, lo=out['mean'] - half, hi=out['mean'] + half,
               detectable=half)
    if paper is not None:
        out['power'] = power_at(paper, std, n)
        out['paper_outside'] = not out['lo'] <= paper <= out['hi']
    verdict = _interval_verdict(expect, out['lo'], out['hi'], margin)
    limits = []
    if expect == '=':
        if half >= margin:
            limits.append('power')
    elif paper is not None:
        if half > abs(paper):
            limits.append('power')
        if _before_last(done, claim) and space['test'] < abs(paper):
            limits.append('room')
    out['limits'] = limits
    if verdict == 'inconclusive' and limits:
        verdict = 'not testable here'
    out['verdict'] = verdict
    return out
