"""Real data: 100 MATH problems x 8 Qwen2.5-Math samples with Qwen2.5-Math-RM-72B scores."""

from __future__ import annotations

import json
import lzma

import numpy as np
import pytest
from scipy.stats import spearmanr

from ttclab.ledger.costs import CostSpec, build_ledger, summarize
from ttclab.optimize.difficulty import difficulty_bins, heldout_split, pass_rate
from ttclab.strategies.arrays import SampleArrays
from ttclab.strategies.base import StrategyResult


@pytest.fixture(scope="module")
def qwen_math(shared_data) -> tuple[SampleArrays, np.ndarray]:
    path = shared_data / "traj_qwen25math_rm_maj8" / "math_cot_100.jsonl.xz"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    with lzma.open(path, "rt") as fh:
        rows = [json.loads(line) for line in fh]
    answers = np.array([np.unique(r["pred"], return_inverse=True)[1] for r in rows], dtype=np.int32)
    q, n = answers.shape
    arrays = SampleArrays(
        answers=answers, correct=np.array([r["score"] for r in rows], bool), present=np.ones((q, n), bool),
        completion_tokens=np.full((q, n), np.nan), prompt_tokens=np.full((q, n), np.nan),  # not in the file
        rewards=np.array([[s[0] for s in r["pred_score"]] for r in rows], float),
        mean_logprob=np.full((q, n), np.nan), latency_s=np.full((q, n), np.nan),
        question_ids=np.array([str(r["idx"]) for r in rows]), difficulty=np.full(q, np.nan),
        model="Qwen2.5-Math-7B-Instruct", run_id="traj_qwen25math_rm_maj8",
    )
    levels = np.array([int(r["level"].split()[-1]) for r in rows])
    return arrays, levels


def test_oracle_pass_rate_and_bins(qwen_math):
    arrays, _ = qwen_math
    pr = pass_rate(arrays)
    assert pr.mean() == pytest.approx(0.91)  # the README's mean per-sample accuracy
    bins = difficulty_bins(pr, 5)
    # 86 questions solved by all 8 samples are tied: they share the easiest bin
    assert (bins[pr == 1.0] == 0).all() and (bins == 0).sum() == 86
    assert pr[bins == bins.max()].max() < 1.0


def test_reward_predicted_difficulty_on_held_out_half_tracks_the_other_half(qwen_math):
    arrays, _ = qwen_math
    rhos = []
    for seed in range(3):
        select, evaluate = heldout_split(arrays, np.random.default_rng(seed))
        assert (select.n_per_question == 4).all() and (evaluate.n_per_question == 4).all()
        rho = spearmanr(pass_rate(select, "reward"), pass_rate(evaluate)).statistic
        rhos.append(rho)
    # the RM's mean score on 4 samples (no ground truth) predicts the pass rate of the other 4
    assert min(rhos) > 0.3


def test_missing_token_counts_give_nan_costs_with_a_reason(qwen_math):
    arrays, _ = qwen_math
    k = np.array([1, 2, 4, 8])
    acc = np.tile(pass_rate(arrays)[:, None], (1, 4))
    result = StrategyResult("best_of_n", k, acc, np.zeros_like(acc), np.tile(k.astype(float), (arrays.n_questions, 1)),
                            True, uses_reward_model=True)
    led = build_ledger(arrays, result, CostSpec(rm_model="Qwen2.5-Math-RM-72B", units=("tokens", "flops", "memory")))
    table = summarize([led])
    assert np.isnan(table["flops"]).all() and np.isnan(table["completion_tokens"]).all()
    assert "no prompt or completion token counts" in table["notes"][0]
    np.testing.assert_allclose(table["accuracy"], 0.91)
    np.testing.assert_allclose(table["samples_used"], k)
