"""Contract suite applied to every registered strategy."""

from __future__ import annotations

import numpy as np
import pytest
from strategy_helpers import imported_like_table, make_arrays

from ttclab.errors import DataError
from ttclab.strategies import arrays_from_samples, evaluate, list_strategies
from ttclab.strategies.base import StrategyResult

ALL = list_strategies()


def _full_arrays(q=8, n=6, seed=0):
    rng = np.random.default_rng(seed)
    answers = rng.choice([-1, 0, 1, 2], p=[0.1, 0.5, 0.25, 0.15], size=(q, n))
    return make_arrays(answers, rewards=rng.normal(size=(q, n)), tokens=rng.integers(5, 50, size=(q, n)),
                       logprob=-rng.random((q, n)), latency=rng.random((q, n)))


def _check_shape(res: StrategyResult, arrays, ks):
    assert isinstance(res, StrategyResult)
    assert res.accuracy.shape == res.accuracy_se.shape == res.samples_used.shape == (arrays.n_questions, ks.size)
    acc = res.accuracy[np.isfinite(res.accuracy)]
    assert np.all((acc >= 0) & (acc <= 1))
    used = res.samples_used
    assert np.all(used[np.isfinite(used)] <= np.broadcast_to(ks, used.shape)[np.isfinite(used)] + 1e-12)
    if res.exact:
        assert np.all(res.accuracy_se[np.isfinite(res.accuracy)] == 0)


@pytest.mark.parametrize("name", ALL)
def test_deterministic_under_seed(name):
    arrays = _full_arrays()
    ks = np.array([1, 2, 4, 6])
    a = evaluate(arrays, [name], ks, rng=7)[0]
    b = evaluate(arrays, [name], ks, rng=7)[0]
    c = evaluate(arrays, [name, "majority"], ks, rng=7)[0]
    g1 = evaluate(arrays, [name], ks, rng=np.random.default_rng(3))[0]
    g2 = evaluate(arrays, [name], ks, rng=np.random.default_rng(3))[0]
    np.testing.assert_array_equal(g1.accuracy, g2.accuracy)
    _check_shape(a, arrays, ks)
    np.testing.assert_array_equal(a.accuracy, b.accuracy)
    np.testing.assert_array_equal(a.accuracy, c.accuracy)  # independent of the other strategies run
    np.testing.assert_array_equal(a.samples_used, b.samples_used)


@pytest.mark.parametrize("name", ALL)
def test_handles_one_sample(name):
    arrays = make_arrays([[0], [1], [-1]], rewards=[[0.3], [0.2], [0.1]], tokens=[[3], [4], [5]],
                         logprob=[[-0.1], [-0.2], [-0.3]], latency=[[1.0], [2.0], [3.0]])
    res = evaluate(arrays, [name], [1, 2])[0]
    _check_shape(res, arrays, np.array([1, 2]))
    np.testing.assert_allclose(res.accuracy[:, 0], [1.0, 0.0, 0.0])
    assert np.all(np.isnan(res.accuracy[:, 1])) and "k > n_q" in res.nan_reason


@pytest.mark.parametrize("name", ALL)
def test_question_without_valid_answer_is_never_right(name):
    arrays = make_arrays([[-1, -1, -1], [0, 0, 1]], rewards=[[0.9, 0.8, 0.7], [0.1, 0.2, 0.3]],
                         tokens=[[1, 2, 3], [4, 5, 6]], logprob=-np.ones((2, 3)), latency=np.ones((2, 3)))
    res = evaluate(arrays, [name], [1, 2, 3])[0]
    _check_shape(res, arrays, np.array([1, 2, 3]))
    np.testing.assert_array_equal(res.accuracy[0], 0.0)  # abstaining / unparseable is wrong, never 1.0


@pytest.mark.parametrize("name", ALL)
def test_works_on_imported_run(name):
    table = imported_like_table()
    arrays = arrays_from_samples(table)
    ks = np.array([1, 2, 4, 5])
    res = evaluate(arrays, [name], ks, rng=1)[0]
    assert res.accuracy.shape == (6, 4)
    if name == "weighted_confidence":  # imported runs have no log-probs
        assert np.all(np.isnan(res.accuracy)) and "log-prob" in res.nan_reason
        return
    _check_shape(res, arrays, ks)
    assert np.all(res.accuracy[0][np.isfinite(res.accuracy[0])] == 0.0)
    assert np.isfinite(res.accuracy[:, 0]).all()


def test_default_strategies_skip_missing_inputs_and_errors():
    arrays = arrays_from_samples(imported_like_table())
    names = [r.strategy for r in evaluate(arrays)]
    assert "weighted_confidence" not in names and "majority" in names and "best_of_n" in names
    with pytest.raises(DataError):
        evaluate(arrays, ks=[0])
    empty = make_arrays(np.zeros((2, 3)), present=np.zeros((2, 3), bool))
    with pytest.raises(DataError, match="no samples"):
        evaluate(empty)
    with pytest.raises(Exception, match="unknown strategy"):
        evaluate(arrays, ["nope"])


def test_every_strategy_on_a_real_strategic_ttc_import(tmp_path):
    importers = pytest.importorskip("ttclab.store.importers")
    pytest.importorskip("ttclab.verify.registry")
    import json

    rng = np.random.default_rng(0)
    lines = []
    for q in range(5):
        gold = str(q + 10)
        answers, correct, expl, toks, rewards = [], [], [], [], []
        for _ in range(6):
            a = gold if rng.random() < 0.6 else (str(rng.integers(3)) if rng.random() < 0.8 else "no idea")
            answers.append(f"The answer is \\boxed{{{a}}}" if a != "no idea" else "no idea")
            correct.append(a == gold)
            expl.append(f"boxed='{a}'" if a != "no idea" else "")
            toks.append(int(rng.integers(20, 200)))
            rewards.append(float(rng.normal()))
        lines.append(json.dumps({"qid": f"q{q}", "prompt": "?", "answers": answers, "correct": correct,
                                 "explanations": expl, "num_tokens": toks, "rewards": rewards,
                                 "ground_truths": [gold], "model_name": "toy"}))
    path = tmp_path / "toy.jsonl"
    path.write_text("\n".join(lines) + "\n")
    run = importers.import_strategic_ttc(path, store=tmp_path / "runs")
    arrays = arrays_from_samples(run.samples(), run.questions())
    assert arrays.n_questions == 5 and arrays.n_samples == 6 and arrays.has_rewards
    ks = np.array([1, 3, 6])
    for res in evaluate(arrays, ALL, ks, rng=3):
        if res.strategy == "weighted_confidence":
            assert np.isnan(res.accuracy).all()
            continue
        _check_shape(res, arrays, ks)
        assert np.isfinite(res.accuracy).all(), res.strategy
