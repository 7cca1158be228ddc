"""Difficulty bins, the held-out split and the per-bin compute-optimal policy."""

from __future__ import annotations

import numpy as np
import pytest

from ttclab.errors import ConfigError, DataError
from ttclab.optimize.difficulty import bin_labels, difficulty_bins, heldout_split, optimal_by_bin, pass_rate
from ttclab.strategies.arrays import SampleArrays


def arrays(q: int = 6, n: int = 8, seed: int = 0) -> SampleArrays:
    rng = np.random.default_rng(seed)
    present = np.ones((q, n), bool)
    present[0, 6:] = False
    answers = rng.integers(0, 3, (q, n)).astype(np.int32)
    answers[~present] = -1
    answers[1, 0] = -1  # an unparseable sample
    return SampleArrays(
        answers=answers, correct=(answers == 0) & present, present=present,
        completion_tokens=rng.integers(1, 100, (q, n)).astype(float), prompt_tokens=np.full((q, n), 10.0),
        rewards=rng.random((q, n)), mean_logprob=np.full((q, n), np.nan), latency_s=rng.random((q, n)),
        question_ids=np.array([f"q{i}" for i in range(q)]), difficulty=np.full(q, np.nan), model="m", run_id="r",
    )


def test_pass_rate_and_reward_signal():
    a = arrays()
    pr = pass_rate(a)
    np.testing.assert_allclose(pr, (a.correct & a.present).sum(1) / a.present.sum(1))
    assert np.all(np.isfinite(pass_rate(a, "reward")))
    with pytest.raises(ConfigError):
        pass_rate(a, "vibes")


def test_bins_order_easy_to_hard_and_keep_ties_together():
    score = np.array([1.0, 1.0, 1.0, 0.9, 0.5, 0.1, 0.0, np.nan])
    bins = difficulty_bins(score, 4)
    assert bins[-1] == -1
    assert len(set(bins[:3])) == 1  # tied scores share a bin
    assert np.all(np.diff(bins[:7]) >= 0)  # lower pass rate -> harder bin
    rank = difficulty_bins(score, 2, method="rank")
    assert np.bincount(rank[rank >= 0]).tolist() == [4, 3]
    with pytest.raises(DataError):
        difficulty_bins(np.full(3, np.nan))


def test_heldout_split_partitions_the_samples():
    a = arrays()
    sel, ev = heldout_split(a, np.random.default_rng(3))
    n = a.n_per_question
    np.testing.assert_array_equal(sel.n_per_question + ev.n_per_question, n)
    np.testing.assert_array_equal(sel.n_per_question, np.rint(n / 2))
    for q in range(a.n_questions):  # together the halves hold exactly the original samples
        orig = sorted(zip(a.completion_tokens[q][a.present[q]], a.correct[q][a.present[q]]))
        both = sorted(list(zip(sel.completion_tokens[q][sel.present[q]], sel.correct[q][sel.present[q]]))
                      + list(zip(ev.completion_tokens[q][ev.present[q]], ev.correct[q][ev.present[q]])))
        assert orig == both
        for part in (sel, ev):  # answer codes dense from 0 again
            codes = part.answers[q][part.answers[q] >= 0]
            assert set(codes.tolist()) == set(range(len(set(codes.tolist()))))
    again, _ = heldout_split(a, np.random.default_rng(3))
    np.testing.assert_array_equal(again.completion_tokens, sel.completion_tokens)
    with pytest.raises(ConfigError):
        heldout_split(a, np.random.default_rng(0), fraction=1.0)


def test_per_bin_choice_and_policy(ledger_factory):
    # 4 questions: 0,1 easy (bin 0), 2,3 hard (bin 1). Strategy "cheap" is perfect on easy questions at
    # k=1; "deep" only helps hard ones, and only at k=4.
    ks = [1, 2, 4]
    cheap = ledger_factory("cheap", ks, np.array([[1, 1, 1], [1, 1, 1], [0, 0, 0.1], [0, 0, 0.1]]), np.array([1.0, 2.0, 4.0]))
    deep = ledger_factory("deep", ks, np.array([[0.9, 0.9, 0.9], [0.9, 0.9, 0.9], [0, 0.2, 0.8], [0, 0.2, 0.8]]),
                          np.array([1.5, 3.0, 6.0]))
    bins = np.array([0, 0, 1, 1])
    result = optimal_by_bin([cheap, deep], "tokens", bins, [4.0, 6.0], labels={0: "easy", 1: "hard"})
    table, policy = result.bins, result.policy
    assert set(table["bin"].tolist()) == {0, 1}  # no placeholder rows: the policy is its own table
    rows = {(int(b), float(x)): i for i, (b, x) in enumerate(zip(table["bin"], table["budget"]))}
    easy, hard = rows[(0, 6.0)], rows[(1, 6.0)]
    assert table["difficulty"][easy] == "easy" and table["difficulty"][hard] == "hard"
    assert (table["strategy"][easy], table["k"][easy]) == ("cheap", 1)
    assert (table["strategy"][hard], table["k"][hard]) == ("deep", 4)
    # gain over one sample of the chosen model ("deep" at k=1 is 0 on the hard questions)
    assert table["one_sample_accuracy"][hard] == pytest.approx(0.0) and table["gain"][hard] == pytest.approx(0.8)
    p6 = int(np.flatnonzero(policy["budget"] == 6.0)[0])
    assert policy["policy_accuracy"][p6] == pytest.approx((1 + 0.8) / 2)
    assert policy["policy_cost"][p6] == pytest.approx((1 + 6) / 2)
    # the best single choice for all questions at 6 tokens is deep@4 (0.85) < per-bin 0.9
    assert policy["single_strategy"][p6] == "deep" and policy["single_accuracy"][p6] == pytest.approx(0.85)
    assert policy["gain_over_single"][p6] == pytest.approx(0.9 - 0.85)
    assert table["single_accuracy"][easy] == pytest.approx(0.9)
    # at 4 tokens the hard bin cannot afford deep@4; deep@2 (0.2) beats cheap@4 (0.1)
    assert (table["strategy"][rows[(1, 4.0)]], table["k"][rows[(1, 4.0)]]) == ("deep", 2)


def test_bin_labels_name_bins_by_meaning():
    score = np.array([0.9, 0.8, 0.5, 0.4, 0.1, 0.0])
    bins = difficulty_bins(score, 3, method="rank")
    labels = bin_labels(score, bins)
    assert labels[0].startswith("easy (pass rate 0.80–0.90)") and labels[2].startswith("hard (pass rate 0.00–0.10)")
    assert labels[1].startswith("medium")


def test_choice_is_evaluated_on_the_held_out_ledgers(ledger_factory):
    ks = [1, 2]
    select = [ledger_factory("a", ks, np.array([[0.9, 0.9]]), np.array([1.0, 2.0])),
              ledger_factory("b", ks, np.array([[0.5, 0.6]]), np.array([1.0, 2.0]))]
    evaluate = [ledger_factory("a", ks, np.array([[0.4, 0.5]]), np.array([1.0, 2.0])),
                ledger_factory("b", ks, np.array([[0.7, 0.8]]), np.array([1.0, 2.0]))]
    table = optimal_by_bin(select, "tokens", np.array([0]), [1.0], evaluate=evaluate).bins
    assert table["strategy"][0] == "a" and table["accuracy"][0] == pytest.approx(0.4)  # honest, not 0.9
    with pytest.raises(DataError, match="lack strategy 'b'"):
        optimal_by_bin(select, "tokens", np.array([0]), [1.0], evaluate=evaluate[:1])
    with pytest.raises(DataError):
        optimal_by_bin(select, "tokens", np.array([0, 1]), [1.0])
