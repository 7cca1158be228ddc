"""One module for order statistics: the estimators and the ledger share it, and its two entry points
(best-of-k under a ranking, E[max of m]) agree with each other and with enumeration."""

from __future__ import annotations

import itertools

import numpy as np

import ttclab.ledger.costs as costs
import ttclab.strategies.estimators as estimators
from ttclab.strategies import orderstats


def test_one_implementation_is_shared():
    assert estimators.order_stat_weights is orderstats.order_stat_weights
    assert estimators.expected_best is orderstats.expected_best
    assert costs.order_stat_weights is orderstats.order_stat_weights
    assert costs.expected_max is orderstats.expected_max


def test_expected_max_equals_expected_best_ranked_by_itself():
    rng = np.random.default_rng(3)
    vals = rng.integers(0, 6, size=(5, 9)).astype(float)  # ties on purpose
    present = rng.random((5, 9)) < 0.8
    present[:, 0] = True
    ks = np.arange(1, 10)
    best = orderstats.expected_best(vals, vals, present, ks, descending=True)
    mx = orderstats.expected_max(vals, present, np.broadcast_to(ks.astype(float), (5, 9)))
    np.testing.assert_allclose(best, mx, rtol=0, atol=1e-12, equal_nan=True)
    worst = orderstats.expected_best(vals, vals, present, ks, descending=False)
    mn = orderstats.expected_min(vals, present, np.broadcast_to(ks.astype(float), (5, 9)))
    np.testing.assert_allclose(worst, mn, rtol=0, atol=1e-12, equal_nan=True)


def test_expected_best_matches_enumeration_with_ties():
    key = np.array([[3.0, 1.0, 3.0, 2.0, np.nan]])
    value = np.array([[1.0, 0.0, 0.0, 1.0, 1.0]])
    present = np.ones((1, 5), dtype=bool)
    for k in range(1, 6):
        total, count = 0.0, 0
        for subset in itertools.combinations(range(5), k):
            keys = [(-np.inf if np.isnan(key[0, j]) else key[0, j]) for j in subset]
            top = max(keys)
            tied = [j for j, kk in zip(subset, keys, strict=True) if kk == top]
            total += float(np.mean(value[0, tied]))
            count += 1
        got = orderstats.expected_best(key, value, present, [k])[0, 0]
        assert abs(got - total / count) < 1e-12


def test_weights_need_no_table_and_reject_bad_k():
    w = orderstats.order_stat_weights(6, [0, 1, 3, 7])
    assert np.isnan(w[:, 0]).all() and np.isnan(w[:, 3]).all()
    np.testing.assert_allclose(w[:, 1:3].sum(axis=0), 1.0)
    np.testing.assert_allclose(w, orderstats.order_stat_weights(6, np.array([0, 1, 3, 7]), orderstats.log_factorials(10)))
