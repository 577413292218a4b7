"""The claims' verdict rule (hdkd_mm/experiments/verdict.py): the paired
t-interval, the detectable effect, the power at the paper's effect, the
room of the baseline, the paper's effect read from text, and when a claim
is 'not testable here'."""
import math

import pytest

from hdkd_mm.experiments.verdict import (claim_effect, detectable_effect,
                                         paper_effect, power_at, room,
                                         t_quantile)


def _run(label, seed, test, train=None):
    d = dict(label=label, seed=seed,
             test=[dict(exit=k + 1, top1=v) for k, v in enumerate(test)])
    if train is not None:
        d['train'] = [dict(exit=k + 1, top1=v) for k, v in enumerate(train)]
    return d


@pytest.fixture
def runs():
    """b: exits 70 → 80 on test (room 10), 80 → 95 on train (room 15);
    a: +5, +6, +4 at exit 1 (mean 5, std 1), ±0.15 at the last exit."""
    out = [_run('b', s, [70, 80], [80, 95]) for s in range(3)]
    out += [_run('a', 0, [75, 80.2]), _run('a', 1, [76, 79.9]),
            _run('a', 2, [74, 80.1])]
    return out


def test_t_quantile_and_detectable_effect():
    # the two-sided 95 % quantiles of the textbook table (3 decimals)
    assert t_quantile(0.975, 2) == pytest.approx(4.303, abs=5e-4)
    assert t_quantile(0.975, 30) == pytest.approx(2.042, abs=5e-4)
    assert detectable_effect(1.0, 3) == pytest.approx(4.3027 / math.sqrt(3),
                                                      abs=1e-4)
    assert math.isnan(detectable_effect(1.0, 1))


def test_power_at_the_paper_effect():
    h = detectable_effect(1.0, 3)
    # an effect equal to the detectable one: noncentral t with
    # noncentrality = the critical value → a bit over one half (0.615 by
    # scipy's nct; 2 decimals are enough to pin the definition)
    assert power_at(h, 1.0, 3) == pytest.approx(0.615, abs=0.005)
    assert power_at(-h, 1.0, 3) == power_at(h, 1.0, 3)  # either side
    assert power_at(0.0, 1.0, 3) == pytest.approx(0.025, abs=1e-6)
    assert power_at(10 * h, 1.0, 3) > 0.99
    assert power_at(1.0, 0.0, 3) == 1.0 and math.isnan(power_at(1, 1, 1))


def test_paper_effect_takes_the_smallest_signed_number():
    assert paper_effect('+6.48 / +6.73') == 6.48
    assert paper_effect('-1.46 / -4.04 (last exit)') == -1.46
    # unsigned numbers (exit 1, Fixed-1, CIFAR(150)) are not effects
    assert paper_effect('+0.83 (exit 1)') == 0.83
    assert paper_effect('-0.72 (Fixed-1), -1.62 (Fixed-2)') == -0.72
    assert paper_effect('−1.01') == -1.01  # typographic minus
    assert paper_effect('CIFAR(150), exit 1') is None
    assert paper_effect(None) is None and paper_effect('') is None


def test_room_of_a_cell(runs):
    assert room(runs, 'b') == dict(test=10.0, train=15.0)
    r = room(runs, 'a')  # no training-subset numbers: NaN
    assert r['test'] == pytest.approx((5.2 + 3.9 + 6.1) / 3)
    assert math.isnan(r['train'])
    assert all(math.isnan(v) for v in room(runs, 'c').values())


def test_interval_verdicts(runs):
    e = claim_effect(runs, dict(a='a', b='b', exit='first', expect='+'))
    assert e['n'] == 3 and e['mean'] == 5 and e['verdict'] == 'reproduced'
    # 95 % t-interval: 5 ± 4.303 · 1 / √3
    assert e['lo'] == pytest.approx(5 - 4.3027 / 3 ** 0.5, abs=1e-4)
    assert e['detectable'] == pytest.approx(e['hi'] - e['mean'])
    e = claim_effect(runs, dict(a='a', b='b', exit='first', expect='-'))
    assert e['verdict'] == 'contradicted'
    e = claim_effect(runs, dict(a='a', b='b', exit='last', expect='='))
    assert e['verdict'] == 'reproduced'  # ±0.37 inside ±1
    e = claim_effect(runs, dict(a='a', b='b', exit='last', expect='+'))
    assert e['verdict'] == 'inconclusive'  # no paper effect to judge by
    # mean over exits: 2.5, 2.95, 2.05 → 2.5 ± 1.12, outside ±1
    e = claim_effect(runs, dict(a='a', b='b', exit='mean', expect='=',
                                margin=1.0))
    assert e['verdict'] == 'contradicted'
    e = claim_effect(runs, dict(a='a', b='b', exit='mean', expect='=',
                                margin=3.0))
    assert e['verdict'] == 'inconclusive'
    # one paired seed: no interval, so no verdict (not 'inconclusive',
    # which says the seeds could have shown the effect); no paired seed:
    # the cell is not run yet
    e = claim_effect(runs[:1] + runs[3:4], dict(a='a', b='b', exit='first',
                                                expect='+', paper='+9'))
    assert e['n'] == 1 and e['verdict'] == 'one seed'
    assert math.isnan(e['detectable']) and e['limits'] == []
    e = claim_effect(runs, dict(a='a', b='c', exit='first', expect='+'))
    assert e['n'] == 0 and e['verdict'] == 'not run yet'


def test_not_testable_by_power_or_room(runs):
    # last exit: +0.07 ± 0.15, detectable 0.38
    last = dict(a='a', b='b', exit='last', expect='+')
    e = claim_effect(runs, dict(last, paper='+0.2 / +0.9'))
    assert e['paper'] == 0.2 and e['limits'] == ['power']
    assert e['verdict'] == 'not testable here' and e['power'] < 0.5
    e = claim_effect(runs, dict(last, paper='+0.9'))
    assert e['limits'] == [] and e['verdict'] == 'inconclusive'
    assert e['power'] > 0.9 and e['paper_outside']  # 0.9 > hi = 0.45
    # the room (10 points) bounds exits before the last only
    first = dict(a='a', b='b', exit='first', expect='-', paper='-12')
    e = claim_effect(runs, first)
    assert e['room_test'] == 10 and e['room_train'] == 15
    assert e['limits'] == ['room'] and e['verdict'] == 'contradicted'
    # c − b at exit 1: +3, −2, +1 (mean 0.67, std 2.52, detectable 6.27)
    runs = runs + [_run('c', s, [70 + x, 80]) for s, x in
                   enumerate((3, -2, 1))]
    noisy = dict(a='c', b='b', exit='first', expect='+')
    e = claim_effect(runs, dict(noisy, paper='+7'))
    assert e['detectable'] == pytest.approx(6.26, abs=0.01)
    assert e['limits'] == [] and e['verdict'] == 'inconclusive'
    e = claim_effect(runs, dict(noisy, paper='+12'))
    assert e['limits'] == ['room'] and e['verdict'] == 'not testable here'
    e = claim_effect(runs, dict(noisy, paper='+3'))
    assert e['limits'] == ['power'] and e['verdict'] == 'not testable here'
    e = claim_effect(runs, dict(noisy, exit='mean', paper='+12'))
    assert e['limits'] == ['room']  # the mean: before the last exit too
    # exit 2 is b's last: no room limit (and no spread: detectable 0)
    e = claim_effect(runs, dict(noisy, exit=2, paper='+12'))
    assert e['limits'] == [] and e['verdict'] == 'inconclusive'
    # '=': judged against the margin, not the paper's number
    e = claim_effect(runs, dict(a='a', b='b', exit='mean', expect='=',
                                margin=3.0, paper='+0.1'))
    assert e['paper'] is None and e['limits'] == []
    e = claim_effect(runs, dict(a='a', b='b', exit='first', expect='=',
                                margin=2.0))
    assert e['limits'] == ['power']  # detectable 2.48 ≥ 2: can never fit
    assert e['verdict'] == 'contradicted'  # [2.52, 7.48] lies outside ±2
