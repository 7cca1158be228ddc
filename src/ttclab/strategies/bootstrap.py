"""Confidence intervals over questions by the (percentile) bootstrap."""

from __future__ import annotations

import warnings

import numpy as np

from ttclab.errors import DataError
from ttclab.strategies.base import StrategyResult


def bootstrap_means(accuracy: np.ndarray, rng: np.random.Generator, n_boot: int = 2000) -> np.ndarray:
    """(n_boot, K) mean accuracy over questions resampled with replacement (NaN entries skipped)."""
    acc = np.asarray(accuracy, dtype=np.float64)
    q = acc.shape[0]
    if q == 0:
        raise DataError("cannot bootstrap over zero questions")
    weights = rng.multinomial(q, np.full(q, 1.0 / q), size=n_boot).astype(np.float64)  # (B, Q)
    defined = np.isfinite(acc)
    num = weights @ np.where(defined, acc, 0.0)
    den = weights @ defined.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def bootstrap_ci(
    result: StrategyResult | np.ndarray,
    rng: np.random.Generator,
    *,
    level: float = 0.95,
    n_boot: int = 2000,
) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi), each (K,): percentile bootstrap CI of the mean accuracy over questions.

    Questions are the resampling unit (the per-question expectations are exact or have small SE).
    Budgets where no question is defined give NaN.
    """
    if not 0.0 < level < 1.0:
        raise DataError(f"confidence level must be in (0, 1), got {level}")
    acc = result.accuracy if isinstance(result, StrategyResult) else np.asarray(result)
    means = bootstrap_means(acc, rng, n_boot)
    alpha = (1.0 - level) / 2.0
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN budgets give NaN
        lo = np.nanquantile(means, alpha, axis=0)
        hi = np.nanquantile(means, 1.0 - alpha, axis=0)
    return lo, hi
