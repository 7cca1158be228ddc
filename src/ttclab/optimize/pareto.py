"""Pareto frontier of accuracy (higher is better) against cost (lower is better)."""

from __future__ import annotations

import numpy as np

from ttclab.errors import DataError
from ttclab.optimize.curves import Curves


def pareto_mask(cost: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """(n,) True for the points no other point dominates.

    Point j dominates i when ``cost_j <= cost_i`` and ``acc_j >= acc_i`` with one of them strict.
    Exact duplicates of a frontier point are all kept (neither dominates the other). Points with a NaN
    (or negative) cost or a NaN accuracy are never on the frontier.
    """
    cost = np.asarray(cost, dtype=np.float64)
    accuracy = np.asarray(accuracy, dtype=np.float64)
    if cost.shape != accuracy.shape or cost.ndim != 1:
        raise DataError(f"pareto: cost {cost.shape} and accuracy {accuracy.shape} must be equal 1-d shapes")
    valid = np.isfinite(cost) & np.isfinite(accuracy) & (cost >= 0)
    keep = np.zeros(cost.shape, dtype=bool)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return keep
    order = idx[np.lexsort((-accuracy[idx], cost[idx]))]  # cost ascending, accuracy descending
    best_acc, best_cost = -np.inf, np.nan
    for i in order:
        a, c = accuracy[i], cost[i]
        if a > best_acc:
            keep[i] = True
            best_acc, best_cost = a, c
        elif a == best_acc and c == best_cost:
            keep[i] = True  # a duplicate of the frontier point just kept
    return keep


def pareto_frontier(curves: Curves) -> Curves:
    """The non-dominated points across all models x strategies x k, sorted by cost."""
    keep = np.flatnonzero(pareto_mask(curves.cost, curves.accuracy))
    keep = keep[np.lexsort((-curves.accuracy[keep], curves.cost[keep]))]
    return curves.select(keep)
