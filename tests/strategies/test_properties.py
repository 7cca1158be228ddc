"""Properties of the strategies: invariances, monotonicity, agreement of resampling with exact."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from strategy_helpers import make_arrays
from test_estimators import questions

from ttclab.strategies import evaluate
from ttclab.strategies.bootstrap import bootstrap_ci
from ttclab.strategies.common import code_tallies
from ttclab.strategies.resample import resample_vote
from ttclab.strategies.selection import best_of_n, pass_at_k_strategy
from ttclab.strategies.voting import majority, weighted_reward


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.booleans(), st.integers(0, 3))
def test_majority_of_identical_answers_is_that_answer(n, right, invalid):
    answers = [0 if right else 1] * n + [-1] * invalid
    arrays = make_arrays(answers)
    ks = np.arange(1, n + invalid + 1)
    acc = majority(arrays, ks).accuracy[0]
    # a subset wins iff it holds at least one valid sample
    from math import comb
    p_valid = np.array([1 - comb(invalid, int(k)) / comb(n + invalid, int(k)) for k in ks])
    np.testing.assert_allclose(acc, p_valid if right else 0.0, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(questions(max_n=10, max_q=4))
def test_best_of_1_is_mean_accuracy_and_pass_monotone(arrays):
    ks = np.arange(1, arrays.n_samples + 1)
    mean_acc = (arrays.correct & arrays.present).sum(1) / arrays.present.sum(1)
    if arrays.has_rewards:
        np.testing.assert_allclose(best_of_n(arrays, ks).accuracy[:, 0], mean_acc, atol=1e-12)
    np.testing.assert_allclose(majority(arrays, ks).accuracy[:, 0], mean_acc, atol=1e-12)
    pk = pass_at_k_strategy(arrays, ks).accuracy
    for q in range(arrays.n_questions):
        row = pk[q][np.isfinite(pk[q])]
        assert np.all(np.diff(row) >= -1e-12)
        assert abs(row[0] - mean_acc[q]) < 1e-12


@settings(max_examples=25, deadline=None)
@given(questions(max_n=8, max_q=3), st.randoms(use_true_random=False))
def test_invariant_under_permuting_samples(arrays, rnd):
    ks = np.arange(1, arrays.n_samples + 1)
    perm_rows = []
    for q in range(arrays.n_questions):
        n = int(arrays.present[q].sum())
        p = list(range(n))
        rnd.shuffle(p)
        perm_rows.append(p + list(range(n, arrays.n_samples)))
    idx = np.array(perm_rows)

    def take(a):
        return np.take_along_axis(a, idx, axis=1)

    shuffled = make_arrays(take(arrays.answers), take(arrays.correct), take(arrays.rewards),
                           take(arrays.completion_tokens), take(arrays.present))
    names = ["majority", "pass_at_k", "shortest_of_k", "first_finish"] + (["best_of_n"] if arrays.has_rewards else [])
    for a, b in zip(evaluate(arrays, names, ks), evaluate(shuffled, names, ks)):
        np.testing.assert_allclose(a.accuracy, b.accuracy, atol=1e-12, equal_nan=True)


def _synthetic(q=40, n=12, seed=3):
    rng = np.random.default_rng(seed)
    answers = rng.choice([-1, 0, 1, 2], p=[0.1, 0.45, 0.3, 0.15], size=(q, n))
    rewards = rng.normal(size=(q, n)) + (answers == 0)
    return make_arrays(answers, rewards=rewards)


def test_resampled_vote_agrees_with_exact_within_4_se():
    arrays = _synthetic()
    ks = np.array([1, 2, 3, 5, 8, 12])
    exact = majority(arrays, ks).accuracy
    _, frac = code_tallies(arrays)
    mean, se = resample_vote(arrays.answers, arrays.present, frac, ks, np.random.default_rng(11), draws=400)
    z = np.abs(mean - exact) / np.maximum(se, 1e-12)
    assert np.all((z <= 4) | (np.abs(mean - exact) < 1e-12))
    # averaged over questions as well (the quantity reported)
    se_mean = np.sqrt((se**2).sum(0)) / arrays.n_questions
    assert np.all(np.abs(mean.mean(0) - exact.mean(0)) <= 4 * se_mean + 1e-12)


def test_tie_break_first_at_full_budget_is_counter_most_common():
    # codes 0 (correct) and 1 tie 2-2; the answer seen first in stored order wins
    arrays = make_arrays([[1, 0, 0, 1], [0, 1, 1, 0]])
    res = majority(arrays, np.array([4]), np.random.default_rng(0), ties="first")
    np.testing.assert_allclose(res.accuracy[:, 0], [0.0, 1.0])
    np.testing.assert_allclose(majority(arrays, np.array([4])).accuracy[:, 0], [0.5, 0.5])


def test_weighted_vote_with_equal_rewards_is_majority():
    arrays = _synthetic(q=20)
    arrays = make_arrays(arrays.answers, arrays.correct, rewards=np.ones(arrays.answers.shape))
    ks = np.array([1, 3, 6])
    w = weighted_reward(arrays, ks, np.random.default_rng(5), draws=300)
    exact = majority(arrays, ks).accuracy
    assert np.all(np.abs(w.accuracy - exact) <= 4 * w.accuracy_se + 1e-12)


def test_bootstrap_ci_brackets_the_mean():
    arrays = _synthetic(q=60)
    res = majority(arrays, np.array([1, 4, 12]))
    lo, hi = bootstrap_ci(res, np.random.default_rng(0), n_boot=500)
    mean = res.mean_accuracy()
    assert np.all(lo <= mean) and np.all(mean <= hi) and np.all(hi - lo > 0)
    lo2, hi2 = bootstrap_ci(res, np.random.default_rng(0), n_boot=500)
    np.testing.assert_array_equal(lo, lo2)
