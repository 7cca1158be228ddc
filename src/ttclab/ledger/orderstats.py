"""Order statistics over uniformly random m-subsets of each question's samples (the ledger's maxima
and minima: the longest sample of a batch, the first to finish).

The i-th largest of n values is the maximum of a random k-subset with probability
C(n - i, k - 1) / C(n, k); E[max] is one matrix product per distinct n.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln



def order_stat_weights(n: int, ks: Sequence[int] | np.ndarray) -> np.ndarray:
    """(n, K) weights: the i-th largest of n values (row i-1) is the max of a random k-subset with
    probability C(n-i, k-1) / C(n, k). Columns for k outside 1..n are NaN."""
    ks = np.asarray(ks, dtype=np.int64)
    i = np.arange(1, n + 1, dtype=np.float64)[:, None]
    kk = ks.astype(np.float64)[None, :]
    ok = (n - i) >= (kk - 1)
    with np.errstate(invalid="ignore"):
        log_num = gammaln(n - i + 1) - gammaln(kk) - gammaln(np.where(ok, n - i - kk + 2, 1.0))
        log_den = gammaln(n + 1.0) - gammaln(kk + 1) - gammaln(np.maximum(n - kk + 1, 1.0))
        w = np.where(ok, np.exp(log_num - log_den), 0.0)
    bad = (ks < 1) | (ks > n)
    w[:, bad] = np.nan
    return w


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
    return SortedSamples(sorted_vals, present.sum(axis=1), np.isnan(np.where(present, values, 0.0)).any(axis=1))


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
    srt = presorted if presorted is not None else sort_samples(values, present)
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


