"""Exact expectations over uniformly random k-subsets (without replacement) of a question's samples.

Pure, vectorised maths over (rows × samples) arrays; see ``../shared/spec/estimators.md``.

* :func:`pass_at_k` — 1 − C(n − c, k) / C(n, k) as a product of min(c, k) factors in log space.
* :func:`order_stat_weights` / :func:`expected_best` — the best of a random k-subset under a ranking
  is the sample of rank i with probability C(n − i, k − 1) / C(n, k); all k at once as one matrix
  product per distinct n. Ties in the ranking key: every tied sample gets the average value of its
  tie group, which is exactly the expectation under a uniformly random tie-break.
* :func:`majority_win_prob` — plurality vote with ties split (a tie among t leaders counts 1/t),
  via the multivariate hypergeometric generating function. For each k and each count x of the
  target answer, only competitors that can reach x need the truncated factor (fact 2 of the notes,
  sharpened by a Chernoff tail bound); the others and the invalid samples form one closed-form
  pool. Given X_a = x the remaining draws are Poissonised with p = r / (n − c) (independent
  binomials conditioned on their sum), so every coefficient is a probability ≤ 1 and the truncated
  products are computed as batched FFT convolutions (numpy.fft) with no overflow for any n.

Numerical contract ("exact"): terms whose probability is below ``TOL`` (1e-18) are dropped and the
FFT adds ~1e-15 absolute error; results agree with brute-force enumeration to ~1e-12.
k > n_q gives NaN (the caller states the reason).
"""

from __future__ import annotations

import numpy as np
from scipy.fft import next_fast_len
from scipy.special import gammaln

#: Probability below which a term is treated as zero (see module docstring).
TOL = 1e-18
_LOG_TOL = float(np.log(TOL))


def log_factorials(n_max: int) -> np.ndarray:
    """Table ``lf[i] = log(i!)`` for i = 0..n_max."""
    return gammaln(np.arange(int(n_max) + 1, dtype=np.float64) + 1.0)


def log_comb(n: np.ndarray, k: np.ndarray, lf: np.ndarray | None = None) -> np.ndarray:
    """log C(n, k) elementwise; -inf where k < 0 or k > n."""
    n = np.asarray(n, dtype=np.int64)
    k = np.asarray(k, dtype=np.int64)
    n, k = np.broadcast_arrays(n, k)
    bad = (k < 0) | (k > n) | (n < 0)
    nn = np.where(bad, 0, n)
    kk = np.where(bad, 0, k)
    if lf is None:
        out = gammaln(nn + 1.0) - gammaln(kk + 1.0) - gammaln(nn - kk + 1.0)
    else:
        out = lf[nn] - lf[kk] - lf[nn - kk]
    return np.where(bad, -np.inf, out)


def _check_ks(ks: np.ndarray) -> np.ndarray:
    ks = np.asarray(ks)
    if ks.ndim != 1:
        ks = ks.reshape(-1)
    return ks.astype(np.int64)


def pass_at_k(n_correct: np.ndarray, n: np.ndarray, ks: np.ndarray, *, max_cells: int = 1 << 22) -> np.ndarray:
    """(R, K) unbiased pass@k = 1 − C(n − c, k) / C(n, k); NaN where k > n.

    The failure probability is the product ``prod_{i=n-c+1}^{n} (1 - k/i)`` (c factors), or equally
    ``prod_{j=0}^{k-1} (1 - c/(n-j))`` (k factors): the shorter of the two is summed in log space
    (``log1p`` per factor) and ``1 - exp`` taken with ``expm1``, so the result is exact to float
    rounding (relative error ~1e-14 at n = 100,000), unlike differences of log-Gamma values.
    Each distinct (c, n) is computed once; memory is bounded by ``max_cells`` factors at a time.
    """
    c = np.asarray(n_correct, dtype=np.int64).reshape(-1)
    n = np.asarray(n, dtype=np.int64).reshape(-1)
    ks = _check_ks(ks)
    out = np.full((c.size, ks.size), np.nan)
    if c.size == 0 or ks.size == 0:
        return out
    pairs, inverse = np.unique(np.stack([c, n], axis=1), axis=0, return_inverse=True)
    uc, un = pairs[:, 0], pairs[:, 1]
    res = np.full((pairs.shape[0], ks.size), np.nan)
    for j, k in enumerate(ks):
        k = int(k)
        col = np.full(uc.size, np.nan)
        ok = k <= un
        col[ok & (uc == 0)] = 0.0
        col[ok & (uc > 0) & (k > un - uc)] = 1.0  # every k-subset holds a correct sample
        todo = np.flatnonzero(ok & (uc > 0) & (k <= un - uc))
        if todo.size:
            col[todo] = -np.expm1(_log_fail(uc[todo], un[todo], k, max_cells))
        res[:, j] = col
    out[:] = res[inverse.reshape(-1)]
    return out


def _log_fail(c: np.ndarray, n: np.ndarray, k: int, max_cells: int) -> np.ndarray:
    """log C(n − c, k) / C(n, k) for 0 < c, k <= n − c, as a sum of min(c, k) log1p terms per row."""
    out = np.empty(c.size)
    terms = np.minimum(c, k)
    order = np.argsort(terms, kind="stable")  # similar lengths together: little padding
    start = 0
    while start < order.size:
        stop = start + 1
        while stop < order.size and (stop - start + 1) * int(terms[order[stop]]) <= max_cells:
            stop += 1
        rows = order[start:stop]
        width = int(terms[rows].max())
        t = np.arange(width)[None, :]
        cc, nn = c[rows][:, None].astype(np.float64), n[rows][:, None].astype(np.float64)
        by_c = (c[rows] <= k)[:, None]
        # c factors (1 - k/i), i = n-c+1..n  |  k factors (1 - c/(n-j)), j = 0..k-1
        denom = np.where(by_c, nn - cc + 1 + t, nn - t)
        numer = np.where(by_c, float(k), cc)
        valid = t < terms[rows][:, None]
        out[rows] = np.log1p(-np.where(valid, numer, 0.0) / np.where(valid, denom, 1.0)).sum(axis=1)
        start = stop
    return out


def order_stat_weights(n: int, ks: np.ndarray, lf: np.ndarray | None = None) -> np.ndarray:
    """(n, K) matrix: P(best of a random k-subset has rank i), i = 1..n; NaN columns where k > n."""
    ks = _check_ks(ks)
    if lf is None:
        lf = log_factorials(max(n, int(ks.max(initial=0)), 1))
    i = np.arange(1, n + 1, dtype=np.int64)[:, None]
    k = ks[None, :]
    with np.errstate(invalid="ignore"):
        w = np.exp(log_comb(n - i, k - 1, lf) - log_comb(np.full_like(k, n), k, lf))
    w[:, (ks > n) | (ks < 1)] = np.nan
    return w


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
    return np.where(valid, means[gid], 0.0)


def expected_best(
    key: np.ndarray,
    value: np.ndarray,
    present: np.ndarray,
    ks: np.ndarray,
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
    ks = _check_ks(ks)
    rows, n_max = key.shape
    out = np.full((rows, ks.size), np.nan)
    if rows == 0 or n_max == 0:
        return out
    k2 = -key if descending else key.copy()
    k2 = np.where(np.isnan(k2), np.inf, k2)
    # present first, then by key ascending (best first)
    order = np.lexsort((k2, ~present), axis=1)
    sk = np.take_along_axis(k2, order, axis=1)
    sv = np.take_along_axis(value, order, axis=1)
    sp = np.take_along_axis(present, order, axis=1)
    vals = tie_group_means(sk, sv, sp)
    n_q = present.sum(axis=1)
    lf = log_factorials(max(n_max, int(ks.max(initial=0)), 1))
    for n in np.unique(n_q):
        n = int(n)
        idx = np.flatnonzero(n_q == n)
        if n == 0:
            continue
        w = order_stat_weights(n, ks, lf)
        res = vals[idx, :n] @ np.nan_to_num(w)
        res[:, ks > n] = np.nan
        out[idx] = res
    return out


# ----------------------------------------------------------------------------------------------
# majority@k


def majority_win_prob(
    target: np.ndarray,
    competitors: np.ndarray,
    n: np.ndarray,
    ks: np.ndarray,
    *,
    max_batch_cells: int = 1 << 22,
) -> np.ndarray:
    """(R, K) expected plurality credit of a target answer in a random k-subset (ties split).

    ``target`` (R,) is the target answer's count c, ``competitors`` (R, S) the counts of the other
    valid answers (any order, zeros for padding), ``n`` (R,) the number of samples (invalid samples
    are ``n − c − Σ competitors``; they are drawn but never vote). A k-subset where the target gets
    x votes and T other answers also get x (and none more) credits 1/(1 + T); x = 0 credits 0.
    NaN where k > n.
    """
    c = np.asarray(target, dtype=np.int64)
    comp = np.asarray(competitors, dtype=np.int64)
    if comp.ndim == 1:
        comp = comp[:, None]
    n = np.asarray(n, dtype=np.int64)
    ks = _check_ks(ks)
    rows = c.shape[0]
    out = np.zeros((rows, ks.size))
    if rows == 0:
        return out
    comp = -np.sort(-comp, axis=1)  # descending
    if comp.shape[1] == 0:
        comp = np.zeros((rows, 1), dtype=np.int64)
    keep = comp.any(axis=0)
    keep[0] = True
    comp = comp[:, keep]
    n_other = n - c
    lf = log_factorials(max(int(n.max(initial=0)), int(ks.max(initial=0)), 1) + 1)
    for ki, k in enumerate(ks):
        k = int(k)
        ok = (k <= n) & (c > 0)
        out[k > n, ki] = np.nan
        if k < 1:
            out[:, ki] = np.nan
            continue
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            continue
        # x grid 1..min(c_max, k) over rows, processed in row chunks
        xmax = int(min(c[idx].max(), k))
        chunk = max(1, max_batch_cells // max(xmax, 1))
        for start in range(0, idx.size, chunk):
            rr = idx[start:start + chunk]
            out[rr, ki] = _majority_rows_k(c[rr], comp[rr], n[rr], n_other[rr], k, xmax, lf, max_batch_cells)
    return out


def _majority_rows_k(c, comp, n, n_other, k, xmax, lf, max_batch_cells) -> np.ndarray:
    rows = c.size
    x = np.arange(1, xmax + 1, dtype=np.int64)[None, :]  # (1, X)
    cc = c[:, None]
    r = k - x  # (1, X)
    valid = (x <= cc) & (r >= 0) & (r <= n_other[:, None])
    logp = (log_comb(cc, x, lf) + log_comb(n_other[:, None], np.broadcast_to(r, (rows, xmax)), lf)
            - log_comb(n, np.full(rows, k), lf)[:, None])
    px = np.where(valid, np.exp(np.where(valid, logp, -np.inf)), 0.0)
    relevant = valid & (logp > _LOG_TOL)
    # Which competitors can plausibly reach x given r draws from the n_other others?
    no = np.maximum(n_other, 1)[:, None, None].astype(np.float64)
    cj = comp[:, None, :].astype(np.float64)  # (R, 1, S)
    xr = x[:, :, None].astype(np.float64)
    rr = r[:, :, None].astype(np.float64)
    # Chernoff bound (valid without replacement): P(X_j >= x) <= exp(-r KL(x/r || c_j/n_other))
    q = np.clip(cj / no, 1e-300, 1.0)
    a = np.clip(xr / np.maximum(rr, 1.0), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(a > 0, a * np.log(a / q), 0.0) + np.where(a < 1, (1 - a) * np.log((1 - a) / np.maximum(1 - q, 1e-300)), 0.0)
    plausible = (cj >= xr) & (xr <= rr) & ((a <= q) | (-rr * kl > _LOG_TOL))
    big = plausible & relevant[:, :, None]  # (R, X, S)
    need = big.any(axis=2)
    total = np.where(relevant & ~need, px, 0.0).sum(axis=1)
    pr, px_idx = np.nonzero(need)
    if pr.size:
        xs = x[0, px_idx]
        inner = _inner_batch(comp[pr], big[pr, px_idx], xs, k - xs, n_other[pr], k, lf, max_batch_cells)
        np.add.at(total, pr, px[pr, px_idx] * inner)
    return total


def _inner_batch(comp, big, xs, rs, n_other, k, lf, max_batch_cells) -> np.ndarray:
    """For each pair: tie-weighted P(no competitor exceeds x) given r draws from the others."""
    m = comp.shape[0]
    out = np.empty(m)
    # Aliasing-free length: the Poissonised total has mean <= r and variance <= r, so by Bernstein
    # P(total >= r + t) < TOL for t >= 2/3 L + sqrt(4/9 L^2 + 2 L r), L = -log(TOL).
    r_max = int(rs.max())
    lt = -_LOG_TOL
    t = 2.0 / 3.0 * lt + np.sqrt(4.0 / 9.0 * lt * lt + 2.0 * lt * r_max)
    length = next_fast_len(int(min(int(n_other.max()) + 1, r_max + 1 + np.ceil(t))), real=True)
    roots = np.exp(-2j * np.pi * np.arange(length) / length)  # numpy's rfft sign convention
    # small chunks keep the working set in cache; pairs sorted by their number of big competitors
    order = np.argsort(big.sum(axis=1), kind="stable")
    step = max(16, min(max_batch_cells, 1 << 16) // length)
    for s in range(0, m, step):
        sl = order[s:s + step]
        out[sl] = _inner_fft(comp[sl], big[sl], xs[sl], rs[sl], n_other[sl], length, roots, lf)
    return np.clip(out, 0.0, 1.0)


def _log_binom_pmf(count: np.ndarray, y: np.ndarray, lp: np.ndarray, l1p: np.ndarray, lf: np.ndarray) -> np.ndarray:
    """log Binomial(count, p).pmf(y) with broadcasting; -inf outside 0..count (lp, l1p finite-clipped)."""
    ok = (y >= 0) & (y <= count)
    yy = np.where(ok, y, 0)
    cy = np.where(ok, count - y, 0)
    val = lf[np.maximum(count, 0)] - lf[yy] - lf[cy] + yy * lp + cy * l1p
    return np.where(ok, val, -np.inf)


def _inner_fft(comp, big, xs, rs, n_other, length, roots, lf) -> np.ndarray:
    m, slots = comp.shape
    p = rs / np.maximum(n_other, 1).astype(np.float64)  # Poissonisation: E[draws] = r
    # finite stand-ins for log(0): multiplied by a positive integer they still give exp(.) == 0
    lp = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), -1e4)
    l1p = np.where(p < 1, np.log1p(-np.where(p < 1, p, 0.0)), -1e4)
    lp_, l1p_ = lp[:, None], l1p[:, None]
    freqs = np.arange(length // 2 + 1)
    rmax = int(rs.max())
    y = np.arange(rmax + 1, dtype=np.int64)[None, :]
    xcol = xs[:, None]
    # e[T]: spectrum of the coefficient of u^T (T tied competitors) of the big competitors' product
    e: list[np.ndarray] = [np.ones((m, freqs.size), dtype=np.complex128)]
    pool = n_other.copy()
    for j in range(slots):
        bj = big[:, j]
        if not bj.any():
            continue
        cj = np.where(bj, comp[:, j], 0)
        pool = pool - cj
        # truncated binomial pmf of competitor j: y < x (A part) and y == x (tie part);
        # pairs where j is not big get cj = 0, i.e. the identity factor
        yy = y[:, : int(xs[bj].max())]
        pmf = np.exp(_log_binom_pmf(cj[:, None], yy, lp_, l1p_, lf))
        pmf[yy >= xcol] = 0.0
        a = np.fft.rfft(pmf, n=length, axis=1)
        tie = np.exp(_log_binom_pmf(cj, xs, lp, l1p, lf))[:, None] * roots[(freqs[None, :] * xcol) % length]
        e.append(e[-1] * tie)
        for t in range(len(e) - 2, 0, -1):
            e[t] *= a
            e[t] += e[t - 1] * tie
        e[0] *= a
    spec = e[0]
    for t in range(1, len(e)):
        spec += e[t] * (1.0 / (t + 1))
    dist = np.fft.irfft(spec, n=length, axis=1)[:, : rmax + 1]  # big competitors' tie-weighted sums
    # the pool (invalid samples and competitors that cannot reach x) is an untruncated binomial
    lpool = _log_binom_pmf(pool[:, None], rs[:, None] - y, lp_, l1p_, lf)
    coef = (dist * np.exp(lpool)).sum(axis=1)
    denom = np.exp(_log_binom_pmf(n_other, rs, lp, l1p, lf))
    return coef / denom


__all__ = [
    "TOL",
    "expected_best",
    "log_comb",
    "log_factorials",
    "majority_win_prob",
    "order_stat_weights",
    "pass_at_k",
    "tie_group_means",
]
