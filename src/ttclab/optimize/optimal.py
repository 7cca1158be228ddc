"""Compute-optimal choice per budget, cost to reach an accuracy, and the efficiency ratio.

Budgets are expected cost per question in the curves' unit. The compute-optimal choice at budget B is
the affordable point (cost <= B) with the highest accuracy, the cheapest among equals (then the first
in the input order). Between two frontier points the cost needed for an accuracy is interpolated
linearly in log cost (linearly where a cost is 0); no extrapolation beyond the observed points.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ttclab.errors import ConfigError, DataError
from ttclab.optimize.curves import Curves
from ttclab.optimize.pareto import pareto_frontier

#: Accuracies equal to this many decimals are equal: an exact estimator's 0.25 may come out as 0.24999999999999994,
#: and a strategy must not look cheaper (or a baseline twice as costly) for a difference of rounding.
ACCURACY_DECIMALS = 12
#: A point costing at most budget x (1 + COST_RTOL) is affordable: a budget set at the cheapest point's mean cost,
#: summed in another order, is not "below the cheapest point".
COST_RTOL = 1e-9


def default_budgets(curves: Curves, n: int = 12) -> np.ndarray:
    """``n`` budgets spaced geometrically from the cheapest to the most expensive valid point."""
    cost = curves.cost[curves.valid]
    if cost.size == 0:
        raise DataError("no point has both a finite accuracy and a finite cost; cannot choose budgets")
    positive = cost[cost > 0]
    if positive.size == 0:
        return np.array([0.0])
    lo, hi = positive.min(), positive.max()
    return np.unique(np.geomspace(lo, hi, n)) if hi > lo else np.array([lo])


Pick = tuple[str, str, int]
"""A point of the curves: (model, strategy, k)."""

DiffSE = Callable[[Pick, Pick], float]
"""Standard error of ``accuracy(a) - accuracy(b)`` (paired over questions where possible)."""


def compute_optimal(
    curves: Curves,
    budgets: Sequence[float] | np.ndarray | None = None,
    *,
    diff_se: DiffSE | None = None,
    z: float = 1.96,
) -> dict[str, np.ndarray]:
    """For each budget, the most accurate affordable (model, strategy, k) that noise cannot explain.

    Rules, in order:

    * points that provably equal an exact strategy (``curves.same_as``) are that strategy's point:
      they are not candidates of their own;
    * the most accurate affordable point wins (the cheapest among equals, then input order), except
      that a resampled estimate never beats an exact one by less than the standard error of their
      difference (``diff_se``; default ``sqrt(se_a^2 + se_b^2)``): the best exact point wins then;
    * ``ties`` lists the other strategies whose best affordable point is within ``z`` standard errors
      of the choice, each named like the choice (``choice``): ``strategy@k``, or ``model strategy@k``
      for every point when the curves hold more than one model ("majority@8 ≈ esc@8").

    Returns columns ``budget, model, strategy, k, choice, accuracy, ci_low, ci_high, cost, exact, ties,
    note, reason`` (one row per budget); a budget below every valid point gets NaN accuracy with the reason.
    """
    budgets = default_budgets(curves) if budgets is None else np.asarray(budgets, dtype=np.float64).ravel()
    se_of = diff_se or (lambda a, b: float(np.hypot(_point_se(curves, a), _point_se(curves, b))))
    valid = curves.candidates
    names = ("budget", "model", "strategy", "k", "choice", "accuracy", "ci_low", "ci_high", "cost", "exact", "ties",
             "note", "reason")
    rows: dict[str, list[Any]] = {c: [] for c in names}
    idx = np.flatnonzero(valid)
    # order: accuracy descending, then cost ascending, then input order
    ranked = idx[np.lexsort((idx, curves.cost[idx], -curves.accuracy[idx]))]

    def pick(i: int) -> Pick:
        return (str(curves.model[i]), str(curves.strategy[i]), int(curves.k[i]))

    many = len({str(m) for m in curves.model[idx]}) > 1  # name the model of every point, the choice's too

    for b in budgets:
        affordable = ranked[curves.cost[ranked] <= b * (1 + COST_RTOL)] if not np.isnan(b) else ranked[:0]
        if affordable.size == 0:
            if idx.size == 0:
                reason = "no point has a finite accuracy and cost"
            elif np.isnan(b):
                reason = "budget is not a number"
            else:
                cheapest = " ".join(filter(None, [f"{curves.cheapest():.4g}", curves.unit]))
                reason = f"budget below the cheapest point ({cheapest})"
            empty = {"model": "", "strategy": "", "k": -1, "choice": "", "accuracy": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                     "cost": np.nan, "exact": False, "ties": "", "note": "", "reason": reason}
            for col in names:
                rows[col].append(float(b) if col == "budget" else empty[col])
            continue
        i = int(affordable[0])
        note = ""
        if not curves.exact[i]:
            exact_aff = affordable[curves.exact[affordable]]
            if exact_aff.size:
                e = int(exact_aff[0])
                se = se_of(pick(i), pick(e))
                if curves.accuracy[i] - curves.accuracy[e] <= se or not np.isfinite(se):
                    note = (f"{_label(pick(i), model=many)} ({curves.accuracy[i]:.3f}, resampled) is within one "
                            f"standard error ({se:.3f}) of exact {_label(pick(e), model=many)}")
                    i = e
        ties = []
        seen = {(pick(i)[0], pick(i)[1])}
        for j in affordable:
            key = (str(curves.model[j]), str(curves.strategy[j]))
            if key in seen:
                continue
            seen.add(key)
            se = se_of(pick(i), pick(int(j)))
            if np.isfinite(se) and curves.accuracy[i] - curves.accuracy[j] <= z * se:
                ties.append(_label(pick(int(j)), model=many))
        values = {"budget": float(b), "model": str(curves.model[i]), "strategy": str(curves.strategy[i]),
                  "k": int(curves.k[i]), "choice": _label(pick(i), model=many), "accuracy": float(curves.accuracy[i]),
                  "ci_low": float(curves.ci_low[i]), "ci_high": float(curves.ci_high[i]), "cost": float(curves.cost[i]),
                  "exact": bool(curves.exact[i]), "ties": ", ".join(ties), "note": note, "reason": ""}
        for col in names:
            rows[col].append(values[col])
    text = {"model", "strategy", "choice", "ties", "note", "reason"}
    return {c: np.asarray(v, dtype=object if c in text else None) for c, v in rows.items()}


def _point_se(curves: Curves, p: Pick) -> float:
    hit = np.flatnonzero((curves.model == p[0]) & (curves.strategy == p[1]) & (curves.k == p[2]))
    return float(curves.se[hit[0]]) if hit.size else float("nan")


def is_pipeline_point(model: Any, strategy: Any) -> bool:
    """A pipeline run's point: its model label is 'pipeline (llm)' and its strategy the pipeline (k = 1)."""
    return str(model).startswith(str(strategy).removesuffix(" (oracle)") + " (")


def point_name(model: Any, strategy: Any, k: Any, *, with_model: bool = False) -> str:
    """'majority@8', or 'smollm2-135m majority@8' ``with_model``; a pipeline run by its own label, which
    names its model ('aggregate-vote (smollm2-135m)', not 'aggregate-vote (smollm2-135m) aggregate-vote@1')."""
    if is_pipeline_point(model, strategy):
        return str(model) + (" (oracle)" if str(strategy).endswith(" (oracle)") else "")
    return f"{model} {strategy}@{k}" if with_model else f"{strategy}@{k}"


def _label(p: Pick, *, model: bool = False) -> str:
    return point_name(*p, with_model=model)


def _merge_ties(*lists: str) -> str:
    """Ties of consecutive budgets as one list: each (model, strategy) once, at the k of the last budget
    it tied at (the largest budget of the range, where the runner-up is read too)."""
    named: dict[str, str] = {}
    for text in lists:
        for t in str(text or "").split(", "):
            if t:
                named[t.rsplit("@", 1)[0]] = t
    return ", ".join(named.values())


def collapse_budgets(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive budgets with the same choice (model, strategy, k) as one row with ``budget_from``
    and ``budget_to``: a larger budget that buys nothing better is not a new finding."""
    out: list[dict[str, Any]] = []
    for r in rows:
        key = (r["model"], r["strategy"], r["k"], r.get("reason", ""))
        if out and out[-1]["_key"] == key:
            out[-1]["budget_to"] = r["budget"]
            out[-1]["ties"] = _merge_ties(out[-1]["ties"], r.get("ties", ""))
            continue
        out.append({"budget_from": r["budget"], "budget_to": r["budget"], **r, "_key": key})
    for r in out:
        del r["_key"]
    return out


def cost_to_reach(cost: np.ndarray, accuracy: np.ndarray, targets: Sequence[float] | np.ndarray) -> np.ndarray:
    """(T,) least cost at which the points reach each target accuracy, on their Pareto frontier.

    A target at or below the cheapest frontier point costs that point; between frontier points the
    cost is interpolated linearly in log cost; a target above the best accuracy is NaN (not reached).
    """
    curves = Curves.from_points(np.round(np.asarray(accuracy, dtype=np.float64), ACCURACY_DECIMALS), cost)
    front = pareto_frontier(curves)
    # duplicates on the frontier add nothing; accuracy is strictly increasing after this
    _, first = np.unique(front.accuracy, return_index=True)
    c, a = front.cost[np.sort(first)], front.accuracy[np.sort(first)]
    targets = np.round(np.asarray(targets, dtype=np.float64).ravel(), ACCURACY_DECIMALS)
    out = np.full(targets.shape, np.nan)
    if a.size == 0:
        return out
    for t, target in enumerate(targets):
        if not np.isfinite(target) or target > a[-1]:
            continue
        j = int(np.searchsorted(a, target, side="left"))
        if j == 0:
            out[t] = c[0]
            continue
        frac = (target - a[j - 1]) / (a[j] - a[j - 1])
        if c[j - 1] > 0:
            out[t] = float(np.exp(np.log(c[j - 1]) + frac * (np.log(c[j]) - np.log(c[j - 1]))))
        else:
            out[t] = float(c[j - 1] + frac * (c[j] - c[j - 1]))
    return out


def efficiency_ratio(
    curves: Curves,
    baseline: str,
    *,
    model: str | None = None,
    targets: Sequence[float] | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """How many times more compute the ``baseline`` strategy needs than the compute-optimal choice.

    For each target accuracy (default: the accuracies of the baseline's own frontier points), the
    baseline's cost to reach it over the compute-optimal cost (Pareto frontier of all points, of one
    ``model`` if given), both by :func:`cost_to_reach`. Columns: ``target_accuracy, baseline_cost,
    optimal_cost, ratio, optimal_model, optimal_strategy, optimal_k, reason``; ``ratio > 1`` means the
    compute-optimal choice is cheaper. NaN with a reason where a side never reaches the target.
    """
    pool = curves.where(model=model) if model is not None else curves
    base = pool.where(strategy=baseline)
    if len(base) == 0:
        known = ", ".join(sorted({str(s) for s in pool.strategy})) or "none"
        for_model = f" for model {model!r}" if model else ""
        raise ConfigError(f"baseline strategy {baseline!r} has no points{for_model}; known: {known}")
    if not base.valid.any():
        raise DataError(f"baseline strategy {baseline!r} has no point with a finite accuracy and cost")
    if targets is None:
        targets = np.unique(np.round(pareto_frontier(base).accuracy, ACCURACY_DECIMALS))
    targets = np.round(np.asarray(targets, dtype=np.float64).ravel(), ACCURACY_DECIMALS)
    base_cost = cost_to_reach(base.cost, base.accuracy, targets)
    opt_cost = cost_to_reach(pool.cost, pool.accuracy, targets)
    front = pareto_frontier(pool)
    cols: dict[str, list[Any]] = {
        c: []
        for c in (
            "target_accuracy",
            "baseline_cost",
            "optimal_cost",
            "ratio",
            "optimal_model",
            "optimal_strategy",
            "optimal_k",
            "reason",
        )
    }
    best_base = np.nanmax(base.accuracy[base.valid])
    best_all = np.nanmax(pool.accuracy[pool.valid])
    for t, target in enumerate(targets):
        reason = ""
        if np.isnan(base_cost[t]):
            reason = f"{baseline} never reaches {target:.4g} (best {best_base:.4g})"
        elif np.isnan(opt_cost[t]):
            reason = f"no strategy reaches {target:.4g} (best {best_all:.4g})"
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = base_cost[t] / opt_cost[t] if not reason else np.nan
        if not reason and not np.isfinite(ratio):
            reason, ratio = "the compute-optimal cost is 0", np.nan
        # the frontier point that first reaches the target (the choice one would actually make)
        reached = np.round(front.accuracy, ACCURACY_DECIMALS) >= target
        reach = np.flatnonzero(reached) if np.isfinite(target) else np.array([], dtype=int)
        i = reach[0] if reach.size else None
        cols["target_accuracy"].append(float(target))
        cols["baseline_cost"].append(float(base_cost[t]))
        cols["optimal_cost"].append(float(opt_cost[t]))
        cols["ratio"].append(float(ratio))
        cols["optimal_model"].append(str(front.model[i]) if i is not None else "")
        cols["optimal_strategy"].append(str(front.strategy[i]) if i is not None else "")
        cols["optimal_k"].append(int(front.k[i]) if i is not None else -1)
        cols["reason"].append(reason)
    return {
        c: np.asarray(v, dtype=object if c in ("optimal_model", "optimal_strategy", "reason") else None)
        for c, v in cols.items()
    }
