"""Exact estimators against brute-force enumeration over all k-subsets (property-based)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategy_helpers import brute, make_arrays

from ttclab.strategies.estimators import majority_win_prob, pass_at_k
from ttclab.strategies.selection import best_of_n, pass_at_k_strategy, shortest_of_k
from ttclab.strategies.voting import majority


@st.composite
def questions(draw, max_n: int = 7, max_q: int = 3):
    q = draw(st.integers(1, max_q))
    n = draw(st.integers(1, max_n))
    answers = np.array(draw(st.lists(st.integers(-1, 3), min_size=q * n, max_size=q * n))).reshape(q, n)
    gold = np.array(draw(st.lists(st.integers(0, 3), min_size=q, max_size=q)))
    correct = (answers == gold[:, None]) & (answers >= 0)
    # occasionally a grader disagrees within one canonical answer (fractional code correctness)
    flip = np.array(draw(st.lists(st.booleans(), min_size=q * n, max_size=q * n))).reshape(q, n)
    if draw(st.booleans()):
        correct = correct ^ (flip & (answers == 1))
    rewards = np.array(draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, np.nan]), min_size=q * n, max_size=q * n)))
    tokens = np.array(draw(st.lists(st.integers(1, 3), min_size=q * n, max_size=q * n)), float)
    n_q = np.array(draw(st.lists(st.integers(1, n), min_size=q, max_size=q)))
    present = np.arange(n)[None, :] < n_q[:, None]
    return make_arrays(answers, correct, rewards.reshape(q, n), tokens.reshape(q, n), present)


@settings(max_examples=60, deadline=None)
@given(questions())
def test_exact_estimators_equal_brute_force(arrays):
    ks = np.arange(1, arrays.n_samples + 2)  # includes k > N
    maj = majority(arrays, ks).accuracy
    bon = best_of_n(arrays, ks).accuracy if arrays.has_rewards else None
    pk = pass_at_k_strategy(arrays, ks).accuracy
    sk = shortest_of_k(arrays, ks).accuracy
    for q in range(arrays.n_questions):
        n = int(arrays.present[q].sum())
        sl = slice(0, n)
        for i, k in enumerate(ks):
            if k > n:
                assert np.isnan(maj[q, i]) and np.isnan(pk[q, i]) and np.isnan(sk[q, i])
                continue
            want = brute(arrays.answers[q, sl], arrays.correct[q, sl], arrays.rewards[q, sl],
                         arrays.completion_tokens[q, sl], int(k))
            assert abs(maj[q, i] - want[0]) < 1e-9
            if bon is not None:
                assert abs(bon[q, i] - want[1]) < 1e-9
            assert abs(pk[q, i] - want[2]) < 1e-9
            assert abs(sk[q, i] - want[3]) < 1e-9


def test_spec_example_counts_3_2_1():
    got = majority_win_prob(np.array([3]), np.array([[2, 1]]), np.array([6]), np.arange(1, 7))[0]
    np.testing.assert_allclose(got, [0.5, 0.5, 0.6, 0.7, 0.75, 1.0], atol=1e-12)


def _brute_majority(answers, k):
    total, count = 0.0, 0
    for sub in itertools.combinations(answers, k):
        votes = {}
        for a in sub:
            if a >= 0:
                votes[a] = votes.get(a, 0) + 1
        count += 1
        if votes.get(0):
            top = max(votes.values())
            if votes[0] == top:
                total += 1.0 / sum(v == top for v in votes.values())
    return total / count


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.lists(st.integers(0, 3), max_size=3), st.integers(0, 2))
def test_majority_dp_brute_force_with_invalid(c, comps, invalid):
    n = c + sum(comps) + invalid
    answers = [0] * c + sum(([j + 1] * cj for j, cj in enumerate(comps)), []) + [-1] * invalid
    ks = np.arange(1, n + 1)
    got = majority_win_prob(np.array([c]), np.array([comps + [0]]), np.array([n]), ks)[0]
    want = [_brute_majority(answers, int(k)) for k in ks]
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_majority_large_n_is_stable():
    # n well past where binomial coefficients overflow float64 (C(2000, 1000) ~ 1e600)
    n = 2000
    got = majority_win_prob(np.array([900]), np.array([[850, 200]]), np.array([n]), np.array([1, 64, 1000, 1999, 2000]))
    assert np.all(np.isfinite(got)) and np.all((got >= 0) & (got <= 1))
    assert got[0, -1] == 1.0  # all samples drawn: 900 beats 850
    assert got[0, 1] > 0.5 and got[0, 2] > got[0, 1]


def test_pass_at_k_large_n_log_space():
    got = pass_at_k(np.array([1, 0, 5000]), np.array([10000, 10000, 10000]), np.array([1, 5000, 10000]))
    np.testing.assert_allclose(got[0], [1e-4, 0.5, 1.0], rtol=1e-6)
    assert np.all(got[1] == 0.0)


def _pass_at_k_exact(c: int, n: int, k: int) -> Fraction:
    """1 - C(n - c, k) / C(n, k) in exact rational arithmetic."""
    from math import comb

    return 1 - Fraction(comb(n - c, k), comb(n, k))


@pytest.mark.parametrize("n", [10_000, 100_000])
def test_pass_at_k_matches_exact_fractions_at_large_n(n):
    cs = np.array([0, 1, 1, 2, 7, 100, n // 2, n - 1, n])
    ks = np.array([1, 2, 10, 100, 1000, n // 3, n - 1, n])
    got = pass_at_k(cs, np.full(cs.size, n), ks)
    worst = 0.0
    for i, c in enumerate(cs):
        for j, k in enumerate(ks):
            exact = _pass_at_k_exact(int(c), n, int(k))
            err = abs(Fraction(float(got[i, j])) - exact)
            rel = err / exact if exact else err
            worst = max(worst, float(rel))
            assert err <= Fraction(1, 10**14) and rel <= Fraction(1, 10**12), (c, k, float(got[i, j]), float(exact))
    assert worst < 1e-12


def _exact_majority(c: int, comps: list[int], invalid: int, k: int) -> Fraction:
    """Tie-split plurality credit of the target, exactly: Python integers over the multivariate hypergeometric."""
    from math import comb

    n = c + sum(comps) + invalid
    total = Fraction(0)
    for x in range(1, min(c, k) + 1):
        r = k - x
        poly = [[0] * (r + 1)]
        poly[0][0] = 1
        for cj in (v for v in comps if v):
            new = [[0] * (r + 1) for _ in range(len(poly) + 1)]
            for t, row in enumerate(poly):
                for d, v in enumerate(row):
                    if not v:
                        continue
                    for y in range(0, min(x - 1, r - d) + 1):
                        new[t][d + y] += v * comb(cj, y)
                    if x <= cj and d + x <= r:
                        new[t + 1][d + x] += v * comb(cj, x)
            poly = new
        inner = sum((Fraction(v * comb(invalid, r - d), t + 1) for t, row in enumerate(poly)
                     for d, v in enumerate(row) if v), Fraction(0))
        total += comb(c, x) * inner
    return total / comb(n, k)


@pytest.mark.parametrize("c, comps, invalid, ks", [
    (70, [65, 40, 10], 15, [1, 2, 7, 60, 110, 150, 199, 200]),
    (30, [30, 30, 5, 5, 1, 1, 1], 7, [3, 17, 64, 100]),  # three-way ties are likely
    (5, [60, 40, 3, 3], 9, [1, 4, 32, 90]),  # a minority target: most budgets cannot win
])
def test_majority_matches_exact_integers_on_larger_counts(c, comps, invalid, ks):
    n = c + sum(comps) + invalid
    got = majority_win_prob(np.array([c]), np.array([comps]), np.array([n]), np.array(ks))[0]
    want = np.array([float(_exact_majority(c, comps, invalid, k)) for k in ks])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_majority_matches_exact_integers_on_long_tail_spreads():
    """Many small answers (the long tail of singletons and pairs) with ties of several answers."""
    rng = np.random.default_rng(7)
    for _ in range(6):
        comps = sorted((int(v) for v in rng.geometric(0.45, size=int(rng.integers(8, 20)))), reverse=True)
        c, invalid = int(rng.integers(1, 6)), int(rng.integers(0, 4))
        n = c + sum(comps) + invalid
        ks = sorted({1, 2, 3, 5, 8, n // 2, n - 1, n})
        got = majority_win_prob(np.array([c]), np.array([comps]), np.array([n]), np.array(ks))[0]
        want = np.array([float(_exact_majority(c, comps, invalid, k)) for k in ks])
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=str((c, comps, invalid)))
