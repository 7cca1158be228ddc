"""ReplayEnv: SC@k equals the offline majority@k, costs add up, impossible actions are refused;
reference controllers and the family run; controller search end to end on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from ttclab.search.controllers import REFERENCE, family, plurality, sc
from ttclab.search.replay import ReplayData, ReplayEnv, ReplayError, synthetic
from ttclab.strategies.arrays import SampleArrays
from ttclab.strategies.voting import majority_accuracy


def arrays_of(d: ReplayData) -> SampleArrays:
    q, n = d.final.shape
    correct = np.take_along_axis(d.correct, np.maximum(d.final, 0), axis=1) & (d.final >= 0)
    nan = np.full((q, n), np.nan)
    return SampleArrays(answers=d.final.astype(np.int32), correct=correct, present=d.present,
                        completion_tokens=d.length.astype(float), prompt_tokens=np.zeros((q, n)), rewards=nan,
                        mean_logprob=nan, latency_s=nan, question_ids=np.array(d.question_ids),
                        difficulty=np.full(q, np.nan))


@pytest.mark.parametrize("k", [1, 3, 5, 12])
def test_sc_in_the_env_equals_offline_majority_within_mc_error(k):
    d = synthetic(30, 12, every=100, seed=4, mean_tokens=600)
    exact = majority_accuracy(arrays_of(d), np.array([k]))[:, 0]
    orders = 400
    acc = np.zeros((30, orders))
    for q in range(30):
        for r in range(orders):
            rng = np.random.default_rng([9, q, r])
            env = ReplayEnv(d, q, rng)
            sc(env, k, rng)
            acc[q, r] = env.correct
    # per question and overall, within 4 standard errors of the Monte Carlo mean
    se = np.sqrt(np.maximum(exact * (1 - exact), 1e-4) / orders)
    assert np.all(np.abs(acc.mean(axis=1) - exact) <= 4 * se + 1e-9)
    assert abs(acc.mean() - exact.mean()) <= 4 * np.sqrt((exact * (1 - exact)).sum()) / (30 * np.sqrt(orders)) + 1e-9
    if k == 12:  # all traces: the order only matters through ties
        ties = np.array([len({a for a in d.final[q] if a >= 0}) and
                         sorted(np.bincount(d.final[q][d.final[q] >= 0]))[-2:].count(
                             max(np.bincount(d.final[q][d.final[q] >= 0]))) > 1 for q in range(30)])
        assert np.array_equal(acc.mean(axis=1)[~ties], exact[~ties])


def test_costs_add_up():
    d = synthetic(3, 8, every=50, seed=1, mean_tokens=300)
    env = ReplayEnv(d, 0, 7)
    handles = [env.branch() for _ in range(8)]
    assert env.decode_tokens == sum(min(50, env._len[i]) for i in handles)
    spent_probe = 0.0
    for i in handles:
        if not env.finished(i):
            before = env.probe_tokens
            env.probe(i)
            spent_probe += env.probe_tokens - before
    finals = [env.finish(i) for i in handles]
    assert env.decode_tokens == int(d.length[0].sum())
    assert env.probe_tokens == pytest.approx(spent_probe)
    assert env.tokens == pytest.approx(env.decode_tokens + env.probe_tokens)
    assert env.sequential_tokens == int(d.length[0].max())
    assert sorted(finals) == sorted(d.final[0].tolist())
    # finished traces answer for free
    before = env.probe_tokens
    assert env.probe(handles[0])[0] == finals[0] and env.probe_tokens == before


def test_impossible_actions_are_refused():
    d = synthetic(2, 3, every=50, seed=2, mean_tokens=400)
    env = ReplayEnv(d, 1, 0)
    with pytest.raises(ReplayError, match="not started"):
        env.cont(0)
    i = env.branch()
    env.prune(i)
    for action in (env.cont, env.probe, env.prune, env.finish):
        with pytest.raises(ReplayError, match="pruned"):
            action(i)
    j = env.branch()
    env.finish(j)
    with pytest.raises(ReplayError, match="finished"):
        env.cont(j)
    with pytest.raises(ReplayError, match="already finished"):
        env.prune(j)
    env.branch()
    with pytest.raises(ReplayError, match="all 3 stored traces"):
        env.branch()
    with pytest.raises(ReplayError, match="has not finished"):
        env.final_answer(2)
    env.answer(plurality(env.finals(), np.random.default_rng(0)))
    with pytest.raises(ReplayError, match="episode has ended"):
        env.branch()


def test_trace_orders_are_seeded():
    d = synthetic(1, 16, seed=3)
    a, b, c = ReplayEnv(d, 0, 5), ReplayEnv(d, 0, 5), ReplayEnv(d, 0, 6)
    assert a.order.tolist() == b.order.tolist() != c.order.tolist()
    assert sorted(a.order.tolist()) == list(range(16))


def test_reference_controllers_spend_more_with_beta():
    from ttclab.search.controller_search import evaluate_controller

    d = synthetic(20, 16, every=200, seed=5, mean_tokens=1000)
    for name, (fn, grid) in REFERENCE.items():
        grid = [b for b in grid if name != "sc" or b <= 16]
        tokens = [evaluate_controller(d, lambda env, rng, b=b, fn=fn: fn(env, b, rng), orders=3, seed=1).tokens.mean()
                  for b in grid]
        assert all(t2 >= t1 - 1e-9 for t1, t2 in zip(tokens, tokens[1:])), (name, tokens)
        assert tokens[-1] > tokens[0], name


def test_family_prunes_and_stops_early():
    d = synthetic(10, 16, every=200, seed=6, mean_tokens=1500)
    from ttclab.search.controller_search import evaluate_controller

    full = evaluate_controller(d, lambda env, rng: sc(env, 16, rng), orders=2, seed=0)
    lean = evaluate_controller(d, lambda env, rng: family(env, {"width": 16, "patience": 1, "agree": 0.5, "period": 1,
                                                                  "max_rounds": 1000}, rng), orders=2, seed=0)
    assert lean.tokens.mean() < 0.8 * full.tokens.mean() and lean.probe_tokens.mean() > 0


def test_controller_search_end_to_end_and_resumes(tmp_path):
    from ttclab.search.controller_search import ControllerSearchConfig, search_controllers

    cfg = ControllerSearchConfig.model_validate({
        "name": "syn", "data": {"synthetic": {"n_questions": 24, "n_traces": 16, "seed": 2, "every": 200,
                                              "mean_tokens": 1200}},
        "orders": 3, "method": {"name": "reinforce", "evaluations": 8, "batch": 4}, "out": str(tmp_path / "o")})
    r = search_controllers(cfg, progress=False)
    assert len(r.trials) == 8 and {p["controller"] for p in r.curves} >= {"sc", "adaptive", "esc", "probe_prune",
                                                                          "confidence", "searched"}
    for p in r.curves:
        assert p["ci"][0] <= p["accuracy"] <= p["ci"][1] and p["questions"] == 12
        if p["controller"] == "sc":  # SC itself saves nothing (a dominated SC@k: it loses tokens)
            assert p["tokens_saved"] <= 1e-9
    assert r.front and all(a["tokens"] <= b["tokens"] and a["accuracy"] < b["accuracy"]
                           for a, b in zip(r.front, r.front[1:]))
    assert r.headline
    again = search_controllers(cfg, progress=False)
    assert [t["key"] for t in again.trials] == [t["key"] for t in r.trials]


def test_headline_noise_note_flags_a_difference_the_questions_cannot_resolve():
    from ttclab.search.controller_search import _noise_note, paired_difference_ci

    rng = np.random.default_rng(0)
    same = [0.5, 0.25, 1.0, 0.0]
    assert paired_difference_ci(same, same, rng) == (0.0, 0.0, 0.0)
    mean, lo, hi = paired_difference_ci([1, 0, 1, 0, 1, 0], [0, 1, 0, 1, 1, 0], rng)
    assert mean == 0.0 and lo < 0 < hi
    noisy = _noise_note({"per_question": [1, 0, 1, 0, 1, 0]}, {"per_question": [0, 1, 0, 1, 1, 0]}, rng)
    assert "could be noise" in noisy and "over 6 questions" in noisy
    many = [1.0] * 200
    clear = _noise_note({"per_question": many}, {"per_question": [0.5] * 200}, rng)
    assert "+0.500" in clear and "noise" not in clear
    assert _noise_note({}, {"per_question": many}, rng) == ""


def test_headline_never_calls_matching_zero_or_a_point_interval_a_finding():
    from ttclab.search.controller_search import _noise_note

    rng = np.random.default_rng(0)
    # found on the embedded traces: SC@4 at 0.000 'matched' with 75% fewer tokens, CI [+0.000, +0.000]
    zero = _noise_note({"per_question": [0.0, 0.0]}, {"per_question": [0.0, 0.0]}, rng)
    assert "SC gets no held-out question right" in zero and "not a finding" in zero
    point = _noise_note({"per_question": [1.0, 0.0, 0.5]}, {"per_question": [1.0, 0.0, 0.5]}, rng)
    assert "the interval is a point" in point and "only 3 questions" in point
    many = _noise_note({"per_question": [1.0, 0.0] * 10}, {"per_question": [1.0, 0.0] * 10}, rng)
    assert "finding" not in many  # 20 questions that agree: the point interval is the data's


def test_an_accuracy_of_zero_on_every_question_has_a_wilson_interval_not_a_point():
    from ttclab.search.controller_search import ControllerEval

    zeros = np.zeros(2)
    ev = ControllerEval(zeros, zeros + 10, zeros + 10, zeros, zeros + 10, 0)
    lo, hi = ev.summary(np.random.default_rng(0))["ci"]
    assert lo == 0.0 and hi > 0.5  # before: [0.00, 0.00] over 2 questions
    mixed = ControllerEval(np.array([0.0, 1.0]), zeros + 10, zeros + 10, zeros, zeros + 10, 0)
    lo, hi = mixed.summary(np.random.default_rng(0))["ci"]
    assert lo == 0.0 and hi == 1.0  # the bootstrap, as before
