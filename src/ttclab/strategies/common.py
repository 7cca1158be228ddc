"""Shared checks and helpers for strategies: budgets, undefined entries, per-code tallies."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ttclab.errors import DataError
from ttclab.strategies.arrays import SampleArrays
from ttclab.strategies.base import StrategyResult

K_TOO_LARGE = "k > n_q (fewer stored samples than the budget) for some questions"


def default_ks(n_max: int) -> np.ndarray:
    """Powers of two up to N, plus N itself."""
    ks = [1 << i for i in range(max(int(n_max), 1).bit_length()) if (1 << i) <= n_max]
    if n_max >= 1 and ks[-1] != n_max:
        ks.append(int(n_max))
    return np.array(ks, dtype=np.int64)


def check_ks(ks: Iterable[int] | np.ndarray | None, arrays: SampleArrays) -> np.ndarray:
    """Budgets as a sorted-as-given int array; DataError for non-positive or non-integer k."""
    if ks is None:
        return default_ks(arrays.n_samples)
    arr = np.atleast_1d(np.asarray(ks))
    if arr.size == 0:
        raise DataError("no budgets given; pass ks like [1, 2, 4, 8]")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError(f"budgets must be whole numbers of samples, got {arr.tolist()}")
    arr = arr.astype(np.int64)
    if (arr < 1).any():
        raise DataError(f"budget k must be >= 1, got {int(arr.min())}")
    return arr


def check_arrays(arrays: SampleArrays) -> None:
    """DataError for a run with no samples at all."""
    if arrays.n_questions == 0 or arrays.n_samples == 0 or not arrays.present.any():
        raise DataError(f"run {arrays.run_id or '?'} has no samples to evaluate (all calls failed or nothing sampled)")


def finish(
    name: str,
    arrays: SampleArrays,
    ks: np.ndarray,
    accuracy: np.ndarray,
    *,
    se: np.ndarray | None = None,
    samples_used: np.ndarray | None = None,
    exact: bool,
    uses_reward_model: bool = False,
    reason: str = "",
) -> StrategyResult:
    """Assemble a StrategyResult; entries with k > n_q are NaN and explained in ``nan_reason``."""
    n_q = arrays.n_per_question[:, None]
    too_big = ks[None, :] > n_q
    acc = np.clip(np.where(too_big, np.nan, accuracy).astype(np.float64), 0.0, 1.0)  # rounding only
    if se is None:
        se = np.zeros_like(acc)
    se = np.where(np.isnan(acc), np.nan, se)
    if samples_used is None:
        samples_used = np.broadcast_to(ks[None, :].astype(np.float64), acc.shape).copy()
    used = np.where(np.isnan(acc), np.nan, samples_used)
    reasons = [reason] if reason else []
    if too_big.any():
        reasons.append(K_TOO_LARGE)
    return StrategyResult(
        strategy=name, k=ks.copy(), accuracy=acc, accuracy_se=se, samples_used=used, exact=exact,
        uses_reward_model=uses_reward_model, nan_reason="; ".join(reasons),
    )


def undefined(name: str, arrays: SampleArrays, ks: np.ndarray, reason: str, *, exact: bool,
              uses_reward_model: bool = False) -> StrategyResult:
    """An all-NaN result with its reason (e.g. the run has no reward scores)."""
    nan = np.full((arrays.n_questions, ks.size), np.nan)
    return StrategyResult(strategy=name, k=ks.copy(), accuracy=nan, accuracy_se=nan.copy(), samples_used=nan.copy(),
                          exact=exact, uses_reward_model=uses_reward_model, nan_reason=reason)


def code_tallies(arrays: SampleArrays) -> tuple[np.ndarray, np.ndarray]:
    """(Q, A) number of samples of each answer code and the fraction of them graded correct."""
    codes = np.where(arrays.present, arrays.answers, -1).astype(np.int64)
    n_codes = int(codes.max(initial=-1)) + 1
    q = arrays.n_questions
    if n_codes == 0:
        return np.zeros((q, 0), dtype=np.int64), np.zeros((q, 0))
    valid = codes >= 0
    rows = np.broadcast_to(np.arange(q)[:, None], codes.shape)
    flat = (rows * n_codes + codes)[valid]
    counts = np.bincount(flat, minlength=q * n_codes).reshape(q, n_codes)
    good = np.bincount(flat, weights=arrays.correct[valid].astype(np.float64), minlength=q * n_codes).reshape(q, n_codes)
    frac = np.divide(good, counts, out=np.zeros_like(good), where=counts > 0)
    return counts, frac
