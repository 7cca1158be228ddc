"""Pure parts: stop rules, trace confidence, judge-reply parsing, offline re-selection estimators."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttclab.online.budget import Budget, BudgetExhausted, Limit, prompt_token_bound
from ttclab.online.offline import score_select_accuracy, tournament_accuracy
from ttclab.online.steps.score import p_yes, parse_grade
from ttclab.online.steps.search import aggregate
from ttclab.online.steps.select import parse_index, parse_letter
from ttclab.online.stopping import (
    beta_consensus,
    beta_stop_probability,
    first_window_below,
    plurality,
    sliding_means,
    trace_confidence,
    window_consensus,
)


def test_beta_rule_matches_closed_form_and_monte_carlo() -> None:
    for v1 in range(0, 8):  # P(Beta(v1 + 1, 1) > 1/2) = 1 - 2^-(v1 + 1)
        assert beta_stop_probability(v1, 0) == pytest.approx(1 - 0.5 ** (v1 + 1))
    rng = np.random.default_rng(0)
    x = rng.beta(6, 3, size=200_000)
    assert beta_stop_probability(5, 2) == pytest.approx((x > 0.5).mean(), abs=0.005)
    assert not beta_consensus(["4", "4"], 0.95)  # 0.875
    assert beta_consensus(["4"] * 4, 0.95)  # 0.969
    assert not beta_consensus([None] * 6, 0.95)  # unparseable answers never vote
    assert not beta_consensus(["4", "4", "5", "4", "5"], 0.95)


def test_window_consensus() -> None:
    assert window_consensus(["1", "2", "2", "2"], 3)
    assert not window_consensus(["2", "2"], 3)
    assert not window_consensus([None, None, None], 3)
    assert not window_consensus(["2", "1", "2"], 3)


@given(st.lists(st.floats(-10, 0), min_size=1, max_size=40), st.integers(1, 10))
@settings(max_examples=60, deadline=None)
def test_sliding_windows_match_brute_force(lp: list[float], w: int) -> None:
    means = sliding_means(lp, w)
    brute = [np.mean(lp[i:i + w]) for i in range(len(lp) - w + 1)] if len(lp) > w else [np.mean(lp)]
    np.testing.assert_allclose(means, brute, atol=1e-9)
    assert trace_confidence(lp, w) == pytest.approx(min(brute))
    thr = float(np.median(brute))
    first = first_window_below(lp, w, thr)
    if len(lp) < w:
        assert first is None
    else:
        below = [i for i, m in enumerate(means) if m < thr]  # (means == brute up to rounding, checked above)
        assert first == (below[0] + w if below else None)


def test_trace_confidence_without_logprobs_is_nan() -> None:
    assert math.isnan(trace_confidence([], 4))


def test_plurality_and_weights() -> None:
    assert plurality(["a", "b", "a", None]) == ["a"]
    assert plurality(["a", "b"]) == ["a", "b"]
    assert plurality(["a", "b", "b"], [5.0, 1.0, 1.0]) == ["a"]
    assert plurality([None, None]) == []


@pytest.mark.parametrize("text, n, idx", [
    ("Best: 3", 4, 2), ("The best solution is Solution 2.", 4, 1), ("**Best: 4**", 4, 3), ("2", 3, 1),
    ("Solution 9 is best", 4, None), ("I cannot tell", 4, None), ("Best: 0, no wait, Best: 1", 2, 0),
])
def test_parse_index(text: str, n: int, idx: int | None) -> None:
    assert parse_index(text, n) == idx


@pytest.mark.parametrize("text, letter", [("A", 0), ("B.", 1), ("Solution B", 1), ("**A**", 0), ("Answer: B", 1),
                                          ("Both A and B", None), ("neither", None)])
def test_parse_letter(text: str, letter: int | None) -> None:
    assert parse_letter(text) == letter


def test_parse_grade_and_p_yes() -> None:
    assert parse_grade("Score: 7") == 7.0
    assert parse_grade("I give it 8/10") == 8.0
    assert parse_grade("Score: 42") is None
    assert parse_grade("no idea") is None
    assert p_yes("Yes", (math.log(0.8),)) == pytest.approx(0.8)
    assert p_yes(" no", (math.log(0.7),)) == pytest.approx(0.3)
    assert p_yes("Maybe", (-0.1,)) is None and p_yes("Yes", None) is None


def test_aggregate_path_scores() -> None:
    assert aggregate([0.5, 0.9], "last") == 0.9
    assert aggregate([0.5, 0.9], "min") == 0.5
    assert aggregate([0.5, 0.8], "product") == pytest.approx(0.4)
    assert aggregate([0.5, None], "last") is None


def _brute_score(scores: list[float], correct: list[bool], k: int) -> float:
    vals = []
    for sub in itertools.combinations(range(len(scores)), k):
        best = max(scores[i] for i in sub)
        leaders = [i for i in sub if scores[i] == best]
        vals.append(np.mean([correct[i] for i in leaders]))
    return float(np.mean(vals))


@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=7))
@settings(max_examples=60, deadline=None)
def test_score_selection_is_exact(items: list[tuple[int, bool]]) -> None:
    scores = [float(s) for s, _ in items]
    correct = [c for _, c in items]
    ks = list(range(1, len(items) + 1))
    got = score_select_accuracy(scores, correct, ks)
    for k, g in zip(ks, got):
        assert g == pytest.approx(_brute_score(scores, correct, k))


def test_tournament_exact_and_resampled() -> None:
    rng = np.random.default_rng(1)
    n = 7
    wins = np.zeros((n, n))
    for i, j in itertools.combinations(range(n), 2):
        if rng.random() < 0.5:
            wins[i, j] = 1
        else:
            wins[j, i] = 1
    correct = [True, False, True, False, False, True, False]
    exact, flags = tournament_accuracy(wins, correct, [1, 3, 7], rng=np.random.default_rng(0))
    assert flags.all()
    assert exact[0] == pytest.approx(np.mean(correct))  # k = 1: a random candidate
    full = wins.sum(axis=1)
    assert exact[2] == pytest.approx(np.mean([correct[i] for i in np.flatnonzero(full == full.max())]))
    approx, flags2 = tournament_accuracy(wins, correct, [3], rng=np.random.default_rng(0), max_subsets=1, draws=4000)
    assert not flags2[0] and approx[0] == pytest.approx(exact[1], abs=0.03)


def test_budget_caps_tokens_and_calls_and_never_exceeds() -> None:
    b = Budget()
    b.push(Limit(tokens=50, calls=3))
    m, reserve = b.admit("x", 2, 40)
    assert m == 25  # 50 tokens left for 2 samples
    b.settle(reserve, 10, 30, 2)
    m, reserve = b.admit("x", 1, 40)
    assert m == 20
    b.settle(reserve, 10, 20, 1)
    with pytest.raises(BudgetExhausted):
        b.admit("x", 1, 40)  # no calls left
    assert b.spent.completion_tokens == 50 and b.spent.calls == 3
    b2 = Budget()
    b2.push(Limit(total_tokens=200))
    with pytest.raises(BudgetExhausted):
        b2.admit("y" * 300, 1, 10)  # the prompt bound alone exceeds it
    assert prompt_token_bound("abc") == 3 + 64
