"""Order statistics over uniformly random k-subsets (without replacement) of each question's samples.

The one implementation used by the strategy estimators (best-of-k under a ranking) and the compute
ledger (E[max]/E[min] of m samples: the longest sample of a batch, the first to finish).

The i-th ranked of n values is the best of a random k-subset with probability C(n - i, k - 1) / C(n, k)
(docs/estimators.md); all k at once are one matrix product per distinct n.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln


def log_factorials(n_max: int) -> np.ndarray:
    """Table ``lf[i] = log(i!)`` for i = 0..n_max."""
    return np.asarray(gammaln(np.arange(int(n_max) + 1, dtype=np.float64) + 1.0))


def log_comb(n: np.ndarray, k: np.ndarray, lf: np.ndarray | None = None) -> np.ndarray:
    """log C(n, k) elementwise; -inf where k < 0 or k > n."""
    n, k = np.broadcast_arrays(np.asarray(n, dtype=np.int64), np.asarray(k, dtype=np.int64))
    bad = (k < 0) | (k > n) | (n < 0)
    nn = np.where(bad, 0, n)
    kk = np.where(bad, 0, k)
    if lf is None:
        out = gammaln(nn + 1.0) - gammaln(kk + 1.0) - gammaln(nn - kk + 1.0)
    else:
        out = lf[nn] - lf[kk] - lf[nn - kk]
    return np.where(bad, -np.inf, out)


def as_ks(ks: Sequence[int] | np.ndarray) -> np.ndarray:
    """Budgets as a flat int64 array."""
    return np.asarray(ks).reshape(-1).astype(np.int64)


def order_stat_weights(n: int, ks: Sequence[int] | np.ndarray, lf: np.ndarray | None = None) -> np.ndarray:
    """(n, K) matrix: P(the best of a random k-subset has rank i), i = 1..n (row i - 1).

    Columns for k outside 1..n are NaN. ``lf`` is an optional :func:`log_factorials` table (at least n).
    """
    ks = as_ks(ks)
    if lf is None:
        lf = log_factorials(max(n, int(ks.max(initial=0)), 1))
    i = np.arange(1, n + 1, dtype=np.int64)[:, None]
    k = ks[None, :]
    with np.errstate(invalid="ignore"):
        w = np.exp(log_comb(n - i, k - 1, lf) - log_comb(np.full_like(k, n), k, lf))
    w[:, (ks > n) | (ks < 1)] = np.nan
    return np.asarray(w)


def tie_group_means(sorted_keys: np.ndarray, sorted_values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace each value by the mean of its run of equal keys (rows sorted by key; invalid at the end)."""
    rows, n = sorted_keys.shape
    if n == 0:
        return sorted_values.astype(np.float64)
    new = np.ones((rows, n), dtype=bool)
    new[:, 1:] = sorted_keys[:, 1:] != sorted_keys[:, :-1]
    new |= ~valid
    gid = np.cumsum(new, axis=1) - 1 + (np.arange(rows) * n)[:, None]
    flat = gid.ravel()
    sums = np.bincount(flat, weights=np.where(valid, sorted_values, 0.0).ravel(), minlength=rows * n)
    cnts = np.bincount(flat, minlength=rows * n)
    means = sums / np.maximum(cnts, 1)
    return np.asarray(np.where(valid, means[gid], 0.0))


def expected_best(
    key: np.ndarray,
    value: np.ndarray,
    present: np.ndarray,
    ks: Sequence[int] | np.ndarray,
    *,
    descending: bool = True,
) -> np.ndarray:
    """(R, K) E[value of the best-ranked sample of a random k-subset of the present samples].

    Ranking is by ``key`` (largest first when ``descending``); NaN keys rank last; ties in the key
    are broken uniformly at random (exactly: tied samples share their group's mean value).
    NaN where k > n_q.
    """
    key = np.asarray(key, dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    present = np.asarray(present, dtype=bool)
    ks = as_ks(ks)
    rows, n_max = key.shape
    out = np.full((rows, ks.size), np.nan)
    if rows == 0 or n_max == 0:
        return out
    k2 = -key if descending else key.copy()
    k2 = np.where(np.isnan(k2), np.inf, k2)
    order = np.lexsort((k2, ~present), axis=1)  # present first, then by key ascending (best first)
    sk = np.take_along_axis(k2, order, axis=1)
    sv = np.take_along_axis(value, order, axis=1)
    sp = np.take_along_axis(present, order, axis=1)
    vals = tie_group_means(sk, sv, sp)
    n_q = present.sum(axis=1)
    lf = log_factorials(max(n_max, int(ks.max(initial=0)), 1))
    for n in np.unique(n_q):
        n = int(n)
        if n == 0:
            continue
        idx = np.flatnonzero(n_q == n)
        res = vals[idx, :n] @ np.nan_to_num(order_stat_weights(n, ks, lf))
        res[:, ks > n] = np.nan
        out[idx] = res
    return out


@dataclass(frozen=True)
class SortedSamples:
    """Each question's present values sorted descending (absent ones last, as 0), for order statistics."""

    values: np.ndarray  # (Q, N)
    n_q: np.ndarray  # (Q,)
    has_nan: np.ndarray  # (Q,) a present value is NaN


def sort_samples(values: np.ndarray, present: np.ndarray) -> SortedSamples:
    """Sort once, then take :func:`expected_max` for any number of budgets / strategies."""
    values = np.asarray(values, dtype=np.float64)
    present = np.asarray(present, dtype=bool)
    keyed = np.where(present, values, -np.inf)
    keyed = np.where(np.isnan(keyed), np.inf, keyed)  # NaN rows are dropped anyway; keep the sort total
    sorted_vals = -np.sort(-keyed, axis=1)
    sorted_vals[~np.isfinite(sorted_vals)] = 0.0
    has_nan = np.asarray(np.isnan(np.where(present, values, 0.0)).any(axis=1))
    return SortedSamples(sorted_vals, np.asarray(present.sum(axis=1)), has_nan)


def expected_max(
    values: np.ndarray | None,
    present: np.ndarray | None,
    m: np.ndarray,
    *,
    presorted: SortedSamples | None = None,
) -> np.ndarray:
    """E[max of m samples drawn without replacement from each question's present values].

    ``values``/``present`` are (Q, N) (or give ``presorted`` from :func:`sort_samples`), ``m`` is
    (Q, K) (float: a non-integer m interpolates linearly between floor and ceil). NaN where m is NaN,
    m < 1, m > n_q, or a present value is NaN.
    """
    if presorted is None:
        if values is None or present is None:
            raise ValueError("expected_max needs values and present, or presorted")
        presorted = sort_samples(values, present)
    srt = presorted
    m = np.asarray(m, dtype=np.float64)
    out = np.full(m.shape, np.nan)
    finite_m = np.isfinite(m)
    lo = np.where(finite_m, np.floor(m), 0).astype(np.int64)
    hi = np.where(finite_m, np.ceil(m), 0).astype(np.int64)
    frac = np.where(finite_m, m - lo, 0.0)
    for n in np.unique(srt.n_q):
        rows = np.flatnonzero((srt.n_q == n) & ~srt.has_nan)
        if n == 0 or rows.size == 0:
            continue
        needed = np.unique(np.concatenate([lo[rows].ravel(), hi[rows].ravel()]))
        needed = needed[(needed >= 1) & (needed <= n)]
        if needed.size == 0:
            continue
        table = srt.values[rows, :n] @ order_stat_weights(int(n), needed)  # (rows, len(needed))
        lo_r, hi_r, fr = lo[rows], hi[rows], frac[rows]
        valid = finite_m[rows] & (lo_r >= 1) & (hi_r <= n)
        col_lo = np.minimum(np.searchsorted(needed, lo_r), needed.size - 1)
        col_hi = np.minimum(np.searchsorted(needed, hi_r), needed.size - 1)
        r_idx = np.arange(rows.size)[:, None]
        val = (1 - fr) * table[r_idx, col_lo] + fr * table[r_idx, col_hi]
        out[rows] = np.where(valid, val, np.nan)
    return out


def expected_min(values: np.ndarray, present: np.ndarray, m: np.ndarray) -> np.ndarray:
    """E[min of m samples drawn without replacement]; see :func:`expected_max`."""
    return -expected_max(-np.asarray(values, dtype=np.float64), present, m)


__all__ = [
    "SortedSamples",
    "as_ks",
    "expected_best",
    "expected_max",
    "expected_min",
    "log_comb",
    "log_factorials",
    "order_stat_weights",
    "sort_samples",
    "tie_group_means",
]
