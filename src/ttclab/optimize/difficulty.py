"""Difficulty bins and the compute-optimal choice per bin (Snell et al. 2024 style).

Two ways to bin questions:

* **oracle**: quantiles of each question's pass rate over all its samples (:func:`pass_rate`).
  Choosing and evaluating on the same samples is optimistic (the bin uses the answers it is scored on).
* **held-out** (predicted): split every question's samples into two random halves
  (:func:`heldout_split`, injected RNG); estimate difficulty on the *select* half only -- its pass rate,
  or with ``signal="reward"`` its mean reward-model score, which needs no ground truth -- then run the
  strategies on the *evaluate* half and pass both halves' ledgers to :func:`optimal_by_bin`: the choice
  per bin is made on the select ledgers and its accuracy is read from the evaluate ledgers.

Bins are numbered 0 (easiest: highest pass rate) to n_bins - 1 (hardest); -1 marks a question without
a difficulty estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ttclab.errors import ConfigError, DataError
from ttclab.ledger.costs import StrategyLedger
from ttclab.optimize.curves import Curves
from ttclab.optimize.optimal import compute_optimal, default_budgets
from ttclab.strategies.arrays import SampleArrays


def pass_rate(arrays: SampleArrays, signal: str = "correct") -> np.ndarray:
    """(Q,) mean correctness (``signal="correct"``) or mean reward (``"reward"``) over present samples.

    NaN for a question without samples (or without any reward score).
    """
    if signal == "correct":
        values = arrays.correct.astype(np.float64)
    elif signal == "reward":
        values = np.asarray(arrays.rewards, dtype=np.float64)
    else:
        raise ConfigError(f"difficulty signal must be 'correct' or 'reward', got {signal!r}")
    use = arrays.present & np.isfinite(values)
    n = use.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(use, values, 0.0).sum(axis=1) / np.where(n > 0, n, np.nan)


def difficulty_bins(score: np.ndarray, n_bins: int = 5, *, method: str = "quantile") -> np.ndarray:
    """(Q,) bin of each question from a pass-rate-like score (higher = easier); -1 where NaN.

    ``method="quantile"``: edges at the score quantiles; tied scores always share a bin, so with many
    ties some bins can be empty. ``"rank"``: equal-size bins by rank (ties split by question order).
    """
    score = np.asarray(score, dtype=np.float64)
    if n_bins < 1:
        raise ConfigError(f"n_bins must be >= 1, got {n_bins}")
    bins = np.full(score.shape, -1, dtype=np.int64)
    ok = np.isfinite(score)
    if not ok.any():
        raise DataError("no question has a difficulty estimate (all pass rates are NaN)")
    difficulty = -score[ok]  # ascending difficulty
    if method == "quantile":
        edges = np.quantile(difficulty, np.arange(1, n_bins) / n_bins)
        bins[ok] = np.searchsorted(edges, difficulty, side="left")
    elif method == "rank":
        order = np.argsort(difficulty, kind="stable")
        ranks = np.empty_like(order)
        ranks[order] = np.arange(order.size)
        bins[ok] = ranks * n_bins // order.size
    else:
        raise ConfigError(f"bin method must be 'quantile' or 'rank', got {method!r}")
    return bins


def heldout_split(arrays: SampleArrays, rng: np.random.Generator, fraction: float = 0.5) -> tuple[SampleArrays, SampleArrays]:
    """Split each question's present samples at random into (select, evaluate) halves.

    The select part gets ``round(fraction x n_q)`` samples (at least 1 and at most n_q - 1 when
    n_q >= 2). Both parts are re-packed to the left with answer codes made dense again.
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"held-out fraction must be in (0, 1), got {fraction!r}")
    q_count, n = arrays.answers.shape
    n_q = arrays.n_per_question
    if (n_q < 2).any():
        bad = str(arrays.question_ids[np.flatnonzero(n_q < 2)[0]])
        raise DataError(f"question {bad!r} has {int(n_q[n_q < 2][0])} sample(s); a held-out split needs >= 2 per question")
    n_sel = np.clip(np.rint(fraction * n_q).astype(np.int64), 1, n_q - 1)
    # random order of the present samples first (absent ones last)
    keys = np.where(arrays.present, rng.random((q_count, n)), np.inf)
    order = np.argsort(keys, axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(n)[None, :].repeat(q_count, 0), axis=1)
    in_select = arrays.present & (rank < n_sel[:, None])
    in_eval = arrays.present & ~in_select
    return _take(arrays, in_select, "select"), _take(arrays, in_eval, "evaluate")


def _take(arrays: SampleArrays, mask: np.ndarray, part: str) -> SampleArrays:
    q_count = mask.shape[0]
    width = int(mask.sum(axis=1).max())
    pos = np.argsort(~mask, axis=1, kind="stable")[:, :width]  # the kept samples first, in order
    present = np.take_along_axis(mask, pos, axis=1)

    def pick(a: np.ndarray, fill: Any) -> np.ndarray:
        return np.where(present, np.take_along_axis(a, pos, axis=1), fill)

    answers = pick(arrays.answers, -1).astype(np.int32)
    for q in range(q_count):  # dense codes again within each question
        row = answers[q]
        valid = row >= 0
        if valid.any():
            _, row[valid] = np.unique(row[valid], return_inverse=True)
    return replace(
        arrays,
        answers=answers,
        correct=pick(arrays.correct, False).astype(bool),
        present=present,
        completion_tokens=pick(arrays.completion_tokens, np.nan),
        prompt_tokens=pick(arrays.prompt_tokens, np.nan),
        rewards=pick(arrays.rewards, np.nan),
        mean_logprob=pick(arrays.mean_logprob, np.nan),
        latency_s=pick(arrays.latency_s, np.nan),
        meta={**arrays.meta, "heldout_part": part},
    )


def _key(led: StrategyLedger) -> tuple[str, str]:
    return (led.model, led.strategy)


def optimal_by_bin(
    ledgers: Sequence[StrategyLedger],
    unit: str,
    bins: np.ndarray,
    budgets: Sequence[float] | np.ndarray | None = None,
    *,
    evaluate: Sequence[StrategyLedger] | None = None,
) -> dict[str, np.ndarray]:
    """Compute-optimal (model, strategy, k) per difficulty bin and budget, plus the per-bin policy.

    In each bin the choice is made on ``ledgers`` averaged over the bin's questions (expected cost per
    question <= budget); its accuracy and cost are read from ``evaluate`` (the held-out half's
    ledgers: same models, strategies and k) when given, else from ``ledgers``. Rows with ``bin = -1``
    are the policy that applies each bin's choice to its questions (bin-size weighted averages). The
    ``single_*`` columns give, on the same questions, the one choice that is optimal for the whole set
    at that budget -- the comparison that shows what adapting to difficulty buys.
    """
    if not ledgers:
        raise DataError("no strategy ledgers to optimise over")
    bins = np.asarray(bins)
    q_count = ledgers[0].accuracy.shape[0]
    if bins.shape != (q_count,):
        raise DataError(f"bins has shape {bins.shape}, expected ({q_count},) like the ledgers' questions")
    eval_index = {_key(led): led for led in (evaluate if evaluate is not None else ledgers)}
    for led in ledgers:
        other = eval_index.get(_key(led))
        if other is None:
            raise DataError(f"evaluate ledgers lack strategy {led.strategy!r} of model {led.model!r}; evaluate the same strategies on both halves")
        if other.accuracy.shape[0] != q_count or not np.array_equal(np.asarray(other.k), np.asarray(led.k)):
            raise DataError(f"select and evaluate ledgers of {led.strategy!r} differ in questions or k")
    binned = bins >= 0
    labels = [int(b) for b in np.unique(bins[binned])]
    whole = Curves.from_ledgers(ledgers, unit, mask=binned)
    budgets = default_budgets(whole) if budgets is None else np.asarray(budgets, dtype=np.float64).ravel()
    single = compute_optimal(whole, budgets)
    choices = {b: compute_optimal(Curves.from_ledgers(ledgers, unit, mask=bins == b), budgets) for b in labels}
    cache: dict[tuple[int, str, str], Curves] = {}

    def evaluated(group: int, choice: dict[str, np.ndarray], i: int) -> tuple[float, float]:
        if choice["reason"][i]:
            return np.nan, np.nan
        model, strategy, k = str(choice["model"][i]), str(choice["strategy"][i]), int(choice["k"][i])
        if (group, model, strategy) not in cache:
            mask = binned if group < 0 else bins == group
            cache[(group, model, strategy)] = Curves.from_ledgers([eval_index[(model, strategy)]], unit, mask=mask)
        curve = cache[(group, model, strategy)]
        j = int(np.flatnonzero(curve.k == k)[0])
        return float(curve.accuracy[j]), float(curve.cost[j])

    names = ("bin", "n_questions", "budget", "model", "strategy", "k", "accuracy", "cost",
             "single_model", "single_strategy", "single_k", "single_accuracy", "single_cost", "reason")
    cols: dict[str, list[Any]] = {c: [] for c in names}

    def add(group: int, n: int, budget: float, model: str, strategy: str, k: int, acc: float, cost: float,
            i: int, reason: str) -> None:
        s_acc, s_cost = evaluated(group, single, i)
        values = (group, n, float(budget), model, strategy, k, acc, cost, str(single["model"][i]),
                  str(single["strategy"][i]), int(single["k"][i]), s_acc, s_cost, reason)
        for name, value in zip(names, values):
            cols[name].append(value)

    for i, budget in enumerate(budgets):
        acc_total = cost_total = 0.0
        reasons = []
        for b in labels:
            choice, n = choices[b], int((bins == b).sum())
            acc, cost = evaluated(b, choice, i)
            reason = str(choice["reason"][i])
            if reason:
                reasons.append(f"bin {b}: {reason}")
            add(b, n, budget, str(choice["model"][i]), str(choice["strategy"][i]), int(choice["k"][i]), acc, cost, i, reason)
            acc_total += n * acc
            cost_total += n * cost
        n_all = int(binned.sum())
        add(-1, n_all, budget, "per-bin", "per-bin", -1, acc_total / n_all, cost_total / n_all, i, "; ".join(reasons))
    text = {"model", "strategy", "single_model", "single_strategy", "reason"}
    return {c: np.asarray(v, dtype=object if c in text else None) for c, v in cols.items()}
