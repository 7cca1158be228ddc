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
a difficulty estimate. :func:`bin_labels` names them by meaning (easy / medium / hard) with their
pass-rate range.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ttclab.errors import ConfigError, DataError
from ttclab.ledger.costs import StrategyLedger
from ttclab.optimize.curves import Curves
from ttclab.optimize.optimal import DiffSE, compute_optimal, default_budgets
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
        raise DataError(f"question {bad!r} has {int(n_q[n_q < 2][0])} sample(s); a held-out split needs >= 2 per "
                        "question: sample more (--samples) or use --difficulty oracle")
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


def bin_labels(score: np.ndarray, bins: np.ndarray) -> dict[int, str]:
    """Each bin named by meaning with its pass-rate range: ``easy (pass rate 0.62-1.00)``.

    Three bins are easy / medium / hard, two easy / hard; more are numbered from 1 (easiest).
    """
    score = np.asarray(score, dtype=np.float64)
    present = sorted(int(b) for b in np.unique(bins) if b >= 0)
    n = max(present) + 1 if present else 0
    names = {1: ["all"], 2: ["easy", "hard"], 3: ["easy", "medium", "hard"]}.get(n)
    out = {}
    for b in present:
        vals = score[bins == b]
        name = names[b] if names else f"{b + 1} of {n}" + (" (easiest)" if b == 0 else " (hardest)" if b == n - 1 else "")
        out[b] = f"{name} (pass rate {np.nanmin(vals):.2f}–{np.nanmax(vals):.2f})"
    return out


def _key(led: StrategyLedger) -> tuple[str, str]:
    return (led.model, led.strategy)


@dataclass(frozen=True)
class ByDifficulty:
    """The compute-optimal choice per difficulty bin (``bins``: one row per bin and budget) and the
    policy that applies each bin's choice to its questions (``policy``: one row per budget)."""

    bins: dict[str, np.ndarray]
    policy: dict[str, np.ndarray]
    labels: dict[int, str]


def optimal_by_bin(
    ledgers: Sequence[StrategyLedger],
    unit: str,
    bins: np.ndarray,
    budgets: Sequence[float] | np.ndarray | None = None,
    *,
    evaluate: Sequence[StrategyLedger] | None = None,
    labels: dict[int, str] | None = None,
    diff_se_for: Callable[[np.ndarray], DiffSE] | None = None,
) -> ByDifficulty:
    """Compute-optimal (model, strategy, k) per difficulty bin and budget, and the per-bin policy.

    In each bin the choice is made on ``ledgers`` averaged over the bin's questions (expected cost per
    question <= budget; the noise rules of :func:`compute_optimal`, with ``diff_se_for(mask)`` giving
    paired standard errors on those questions); its accuracy and cost are read from ``evaluate`` (the
    held-out half's ledgers: same models, strategies and k) when given, else from ``ledgers``.
    ``one_sample_accuracy`` is the chosen model's accuracy with one sample on the bin's questions and
    ``gain`` the choice's accuracy above it; ``cheapest`` is the bin's cheapest candidate (mean cost over
    the bin's questions: a budget below it has no choice in that bin). The ``single_*`` columns give, on the same questions,
    the one choice that is optimal for the whole set at that budget -- the comparison that shows what
    adapting to difficulty buys.
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
            raise DataError(f"evaluate ledgers lack strategy {led.strategy!r} of model {led.model!r}; "
                            "evaluate the same strategies on both halves")
        if other.accuracy.shape[0] != q_count or not np.array_equal(np.asarray(other.k), np.asarray(led.k)):
            raise DataError(f"select and evaluate ledgers of {led.strategy!r} differ in questions or k")
    binned = bins >= 0
    groups = [int(b) for b in np.unique(bins[binned])]
    labels = labels or {b: f"bin {b}" for b in groups}

    cheapest: dict[int, float] = {}  # per bin: the cheapest candidate's mean cost over the bin's questions

    def choose(mask: np.ndarray, at: np.ndarray, b: int = -1) -> dict[str, np.ndarray]:
        se = diff_se_for(mask) if diff_se_for is not None else None
        curves = Curves.from_ledgers(ledgers, unit, mask=mask)
        cheapest[b] = curves.cheapest()
        return compute_optimal(curves, at, diff_se=se)

    whole = Curves.from_ledgers(ledgers, unit, mask=binned)
    budgets = default_budgets(whole) if budgets is None else np.asarray(budgets, dtype=np.float64).ravel()
    single = choose(binned, budgets)
    choices = {b: choose(bins == b, budgets, b) for b in groups}
    cache: dict[tuple[int, str, str], Curves] = {}

    def measured(mask_id: int, model: str, strategy: str, k: int) -> tuple[float, float]:
        """Accuracy and cost of (model, strategy, k) on a bin's questions (-1: all binned), from ``evaluate``."""
        if (mask_id, model, strategy) not in cache:
            mask = binned if mask_id < 0 else bins == mask_id
            cache[(mask_id, model, strategy)] = Curves.from_ledgers([eval_index[(model, strategy)]], unit, mask=mask)
        curve = cache[(mask_id, model, strategy)]
        hit = np.flatnonzero(curve.k == k)
        return (float(curve.accuracy[hit[0]]), float(curve.cost[hit[0]])) if hit.size else (np.nan, np.nan)

    def one_sample(mask_id: int, model: str) -> float:
        for (m, s), led in eval_index.items():
            if m == model and 1 in set(np.asarray(led.k).tolist()):
                return measured(mask_id, m, s, 1)[0]
        return float("nan")

    def chosen(table: dict[str, np.ndarray], i: int, mask_id: int) -> tuple[str, str, int, float, float]:
        if table["reason"][i]:
            return "", "", -1, np.nan, np.nan
        model, strategy, k = str(table["model"][i]), str(table["strategy"][i]), int(table["k"][i])
        return (model, strategy, k, *measured(mask_id, model, strategy, k))

    bin_cols = ("bin", "difficulty", "n_questions", "budget", "model", "strategy", "k", "choice", "accuracy", "cost",
                "one_sample_accuracy", "gain", "ties", "single_model", "single_strategy", "single_k",
                "single_accuracy", "cheapest", "reason")
    pol_cols = ("budget", "n_questions", "policy_accuracy", "policy_cost", "single_model", "single_strategy", "single_k",
                "single_accuracy", "single_cost", "gain_over_single", "reason")
    rows: dict[str, list[Any]] = {c: [] for c in bin_cols}
    policy: dict[str, list[Any]] = {c: [] for c in pol_cols}
    n_all = int(binned.sum())
    for i, budget in enumerate(budgets):
        s_model, s_strategy, s_k, _, _ = chosen(single, i, -1)
        acc_total = cost_total = 0.0
        reasons = []
        for b in groups:
            n = int((bins == b).sum())
            model, strategy, k, acc, cost = chosen(choices[b], i, b)
            one = one_sample(b, model) if model else np.nan
            s_acc = measured(b, s_model, s_strategy, s_k)[0] if s_model else np.nan
            reason = str(choices[b]["reason"][i])
            if reason:
                reasons.append(f"{labels.get(b, b)}: {reason}")
            values = (b, labels.get(b, f"bin {b}"), n, float(budget), model, strategy, k, str(choices[b]["choice"][i]),
                      acc, cost, one, acc - one, str(choices[b]["ties"][i]), s_model, s_strategy, s_k, s_acc,
                      cheapest[b], reason)
            for col, v in zip(bin_cols, values):
                rows[col].append(v)
            acc_total += n * acc
            cost_total += n * cost
        s_acc, s_cost = measured(-1, s_model, s_strategy, s_k) if s_model else (np.nan, np.nan)
        p_acc = acc_total / n_all if n_all else np.nan
        totals = (float(budget), n_all, p_acc, cost_total / n_all if n_all else np.nan, s_model, s_strategy, s_k,
                  s_acc, s_cost, p_acc - s_acc, "; ".join(reasons))
        for col, v in zip(pol_cols, totals):
            policy[col].append(v)
    text = {"difficulty", "model", "strategy", "choice", "ties", "single_model", "single_strategy", "reason"}
    as_arrays = lambda cols: {c: np.asarray(v, dtype=object if c in text else None) for c, v in cols.items()}  # noqa: E731
    return ByDifficulty(as_arrays(rows), as_arrays(policy), dict(labels))
