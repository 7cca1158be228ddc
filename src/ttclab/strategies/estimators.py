"""Exact expectations over uniformly random k-subsets (without replacement) of a question's samples.

Pure, vectorised maths over (rows × samples) arrays; the derivations are in ``docs/estimators.md``.

* :func:`pass_at_k` — 1 − C(n − c, k) / C(n, k) as a product of min(c, k) factors in log space.
* :func:`order_stat_weights` / :func:`expected_best` — re-exported from :mod:`ttclab.strategies.orderstats`
  (the one module for order statistics): the best of a random k-subset under a ranking is the sample of
  rank i with probability C(n − i, k − 1) / C(n, k); ties share their group's mean value.
* :func:`majority_win_prob` — plurality vote with ties split (a tie among t leaders counts 1/t),
  via the multivariate hypergeometric generating function. Per k and row only the target's vote
  counts x that matter are visited: P(X = x) > TOL, not surely beaten (the other answers' counts
  are negatively associated, so P(all <= x) is at most the product of their Chernoff lower tails),
  and the other draws must fit below x. Competitors that cannot plausibly reach x (Chernoff upper
  tail < TOL) join the invalid samples in one closed-form pool; when none can, the target wins.
  The rest is Poissonised (independent binomials with p = r / (n − c), conditioned on their sum,
  so every coefficient is a probability ≤ 1 for any n), the tie weight 1/(1+T) is an integral over
  s computed exactly by Gauss-Legendre, and competitors with equal counts are one power of their
  factor in the frequency domain: the cost follows the number of distinct counts, so long tails of
  rare answers are cheap. Rows are processed in chunks whose arrays are bounded by
  ``max_batch_cells``.

Numerical contract ("exact"): terms whose probability is below ``TOL`` (1e-18) are dropped and the
FFT adds ~1e-15 absolute error; results agree with brute-force enumeration and with exact integer
arithmetic to ~1e-12 (tests/strategies/test_estimators.py).
k > n_q gives NaN (the caller states the reason).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
from scipy.fft import next_fast_len

from ttclab.strategies.orderstats import as_ks, expected_best, log_comb, log_factorials, order_stat_weights, tie_group_means

#: Probability below which a term is treated as zero (see module docstring).
TOL = 1e-18
_LOG_TOL = float(np.log(TOL))


def _check_ks(ks: np.ndarray) -> np.ndarray:
    return as_ks(ks)


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

    Per k and row the sum runs over the target's vote count x only where it matters: where
    P(X = x) > TOL (an interval: the hypergeometric is unimodal), and not below the x at which
    the largest competitor surely has more votes (Chernoff lower tail < TOL: the target cannot
    win there). Competitors that cannot plausibly reach x (Chernoff upper tail < TOL) join the
    invalid samples in one closed-form pool; when none can, the target wins outright. The rest is
    an exact truncated-polynomial product per (row, x), batched over rows with the same x (so the
    same number r = k − x of other draws): direct convolutions for short ones, FFTs for long ones.
    ``max_batch_cells`` bounds the size of every intermediate array (memory is O(that), not O(R)).
    """
    c = np.asarray(target, dtype=np.int64).reshape(-1)
    comp = np.asarray(competitors, dtype=np.int64)
    if comp.ndim == 1:
        comp = comp[:, None]
    n = np.asarray(n, dtype=np.int64).reshape(-1)
    ks = _check_ks(ks)
    rows = c.shape[0]
    out = np.zeros((rows, ks.size))
    if rows == 0:
        return out
    comp = -np.sort(-comp, axis=1)  # descending: competitor 0 is the largest
    width = int((comp > 0).sum(axis=1).max(initial=0))
    comp = comp[:, : max(width, 1)]
    lf = log_factorials(max(int(n.max(initial=0)), int(ks.max(initial=0)), 1) + 1)
    for ki, k in enumerate(ks):
        k = int(k)
        if k < 1:
            out[:, ki] = np.nan
            continue
        out[k > n, ki] = np.nan
        idx = np.flatnonzero((k <= n) & (c > 0))
        # rows in chunks so that every (rows x k) and (rows x competitors) array stays small
        step = max(1, max_batch_cells // max(k, comp.shape[1], 1))
        for start in range(0, idx.size, step):
            rr = idx[start:start + step]
            out[rr, ki] = _majority_k(c[rr], comp[rr], n[rr], k, lf, max_batch_cells)
    return out


def _bisect_last(pred: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Largest x in [lo, hi] with pred(x) True, for a predicate True on a prefix; lo - 1 when none."""
    lo = lo.astype(np.int64).copy()
    hi = hi.astype(np.int64).copy()
    ans = lo - 1
    while True:
        live = lo <= hi
        if not live.any():
            return ans
        mid = (lo + hi) // 2
        ok = pred(np.where(live, mid, np.maximum(ans, 1))) & live
        ans = np.where(ok, mid, ans)
        lo = np.where(ok, mid + 1, lo)
        hi = np.where(live & ~ok, mid - 1, hi)


def _bisect_first(pred: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Smallest x in [lo, hi] with pred(x) True, for a predicate True on a suffix; hi + 1 when none."""
    lo = lo.astype(np.int64)
    hi = hi.astype(np.int64)
    last = _bisect_last(lambda z: pred(hi - (z - lo)), lo, hi)  # z = lo + (hi - x): a prefix in z
    return np.asarray(hi - (last - lo))


def _kl_exponent(x: np.ndarray, r: np.ndarray, q: np.ndarray) -> np.ndarray:
    """r · KL(x/r || q): the Chernoff exponent of Binomial / hypergeometric tails (0 where r = 0)."""
    rr = np.maximum(r, 1).astype(np.float64)
    a = np.clip(x / rr, 0.0, 1.0)
    q = np.clip(q, 1e-300, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = (np.where(a > 0, a * np.log(a / q), 0.0)
              + np.where(a < 1, (1 - a) * np.log((1 - a) / np.maximum(1 - q, 1e-300)), 0.0))
    return np.where(r > 0, rr * kl, 0.0)


def _majority_k(c: np.ndarray, comp: np.ndarray, n: np.ndarray, k: int, lf: np.ndarray,
               max_batch_cells: int) -> np.ndarray:
    rows = c.size
    n_other = n - c
    lognk = log_comb(n, np.full(rows, k), lf)

    def logpx(x: np.ndarray, at: np.ndarray | slice = slice(None)) -> np.ndarray:
        """log P(X_target = x) for the rows ``at`` (x of shape (rows,) or (rows, m)); -inf outside the support."""
        cc, no, base = c[at], n_other[at], lognk[at]
        if x.ndim == 2:
            cc, no, base = cc[:, None], no[:, None], base[:, None]
        return np.asarray(log_comb(cc, x, lf) + log_comb(no, k - x, lf) - base)

    # support of X and where P(X = x) > TOL (an interval around the mode)
    x_min = np.maximum(1, k - n_other)
    x_max = np.minimum(c, k)
    mode = np.clip(((k + 1) * (c + 1)) // (n + 2), x_min, x_max)
    lo = _bisect_first(lambda x: logpx(x) > _LOG_TOL, x_min, mode)
    hi = _bisect_last(lambda x: logpx(x) > _LOG_TOL, mode, x_max)
    # the largest competitor surely has more than x votes below x_exceed: the target cannot win there
    big, q0 = comp[:, 0], comp[:, 0] / np.maximum(n_other, 1)

    def surely_beaten(x: np.ndarray) -> np.ndarray:
        r = k - x
        return np.asarray((x < q0 * r) & (-_kl_exponent(x, r, q0) < _LOG_TOL) & (big > x))

    lo = np.maximum(lo, _bisect_last(surely_beaten, np.ones(rows, np.int64), hi) + 1)
    total = np.zeros(rows)
    alive = lo <= hi
    if not alive.any():
        return total
    # per competitor: the last x it can plausibly reach (upper tail >= TOL), a prefix in x
    qj = comp / np.maximum(n_other, 1)[:, None]
    live_r, live_j = np.nonzero((comp > 0) & alive[:, None])  # the competitors that exist (sparse)
    c_live, q_live = comp[live_r, live_j], qj[live_r, live_j]

    def reaches(x: np.ndarray) -> np.ndarray:  # competitor (live_r, live_j) can plausibly get x votes
        r = k - x
        plausible = (x <= q_live * np.maximum(r, 0)) | (-_kl_exponent(x, r, q_live) > _LOG_TOL)
        return np.asarray((c_live >= x) & (x <= r) & plausible)

    reach = np.zeros(comp.shape, dtype=np.int64)
    reach[live_r, live_j] = _bisect_last(reaches, np.ones(c_live.size, np.int64), np.minimum(hi[live_r], c_live))
    # x above every competitor's reach: the target wins outright (within TOL per competitor)
    free_lo = np.maximum(lo, reach[:, 0] + 1)
    span = int(np.maximum(hi - free_lo + 1, 0).max(initial=0))
    if span:
        xs = free_lo[:, None] + np.arange(span)[None, :]
        ok = xs <= hi[:, None]
        lp = logpx(np.where(ok, xs, 1))
        total += np.where(ok, np.exp(lp), 0.0).sum(axis=1)
    # the rest: an exact truncated product over the competitors that can reach x, for each x
    dp_hi = np.minimum(hi, reach[:, 0])
    for x in range(int(lo[alive].min()), int(dp_hi.max(initial=0)) + 1):
        sel = np.flatnonzero((lo <= x) & (x <= dp_hi))
        if sel.size == 0:
            continue
        # the counts of different answers are negatively associated, so P(every competitor <= x)
        # <= the product of the competitors' own P(<= x), each at most its Chernoff lower-tail bound
        r = k - x
        cols = max(int((comp[sel] > x).sum(axis=1).max(initial=0)), 1)  # only competitors above x can beat it
        q_sel = qj[sel, :cols]
        bi, bj = np.nonzero(x < q_sel * r)  # competitors expected above x: their lower tails bound the win
        bound = np.bincount(bi, weights=-_kl_exponent(np.full(bi.size, x), np.full(bi.size, r), q_sel[bi, bj]),
                            minlength=sel.size)
        keep = logpx(np.full(sel.size, x), sel) + bound > _LOG_TOL
        # and the r other draws must fit with every competitor at <= x votes (else the target loses surely)
        keep &= r <= n_other[sel] - np.maximum(comp[sel] - x, 0).sum(axis=1)
        sel = sel[keep]
        if sel.size == 0:
            continue
        n_big = (reach[sel] >= x).sum(axis=1)
        order = np.argsort(n_big, kind="stable")
        sel, n_big = sel[order], n_big[order]
        # batches of rows that need the same number of Gauss nodes (one competitor: no product at all)
        nodes = np.where(n_big == 1, 0, np.minimum(n_big, r // x) // 2 + 1)
        cuts = np.flatnonzero(np.diff(nodes)) + 1
        for run in np.split(np.arange(sel.size), cuts):
            per_pair = (int(nodes[run[0]]) + 1) * (r + 1 + 64) * 3  # Gauss nodes x spectrum length, complex
            step = max(1, max_batch_cells // per_pair)
            for s in range(0, run.size, step):
                part = run[s:s + step]
                b, nb = sel[part], n_big[part]
                j_max = int(nb.max())
                slots = comp[b, :j_max] * (np.arange(j_max)[None, :] < nb[:, None])
                inner = _tie_weighted_inner(slots, n_other[b], x, r, lf)
                total[b] += np.exp(logpx(np.full(b.size, x), b)) * inner
    return total


def _log_binom_pmf(count: np.ndarray, y: np.ndarray, lp: np.ndarray, l1p: np.ndarray, lf: np.ndarray) -> np.ndarray:
    """log Binomial(count, p).pmf(y) with broadcasting; -inf outside 0..count (lp, l1p finite-clipped)."""
    ok = (y >= 0) & (y <= count)
    yy = np.where(ok, y, 0)
    cy = np.where(ok, count - y, 0)
    val = lf[np.maximum(count, 0)] - lf[yy] - lf[cy] + yy * lp + cy * l1p
    return np.where(ok, val, -np.inf)


@lru_cache(maxsize=256)
def _gauss01(points: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1] (exact for polynomials of degree < 2 * points)."""
    nodes, weights = np.polynomial.legendre.leggauss(points)
    return (nodes + 1.0) / 2.0, weights / 2.0


def _poisson_tail_end(mu: float) -> int:
    """Smallest m > mu with e^-mu (e mu / m)^m < TOL: a sum of independent Bernoullis with mean mu
    reaches m with probability below TOL (Chernoff)."""
    m = np.arange(int(mu) + 1, int(mu + 20 * np.sqrt(mu + 1) + 80))
    with np.errstate(divide="ignore"):
        bound = -mu + m * (1.0 + np.log(max(mu, 1e-300)) - np.log(m))
    hit = np.flatnonzero(bound < _LOG_TOL)
    return int(m[hit[0]]) if hit.size else int(m[-1])


def _x1_product(u_counts: np.ndarray, mult: np.ndarray, r: int, lp: np.ndarray, l1p: np.ndarray,
                lf: np.ndarray) -> np.ndarray:
    """x = 1: the tie-weighted product of the competitors' (pmf(0) + s pmf(1) t), degrees 0..r.

    Every tie is one vote, so the product is a polynomial in u = s t and the weight 1/(1+T) is
    1/(1+d) at degree d. m competitors with the same count are one binomial expansion
    sum_i C(m, i) pmf(0)^(m-i) pmf(1)^i u^i (every term <= 1, so nothing overflows).
    """
    b, n_groups = u_counts.shape
    poly = np.zeros((b, r + 1))
    poly[:, 0] = 1.0
    i = np.arange(r + 1)[None, :]
    for g in range(n_groups):
        cg, mg = u_counts[:, g], mult[:, g]
        if not cg.any():
            continue
        l0 = _log_binom_pmf(cg, np.zeros(b, np.int64), lp, l1p, lf)[:, None]
        l1 = _log_binom_pmf(cg, np.ones(b, np.int64), lp, l1p, lf)[:, None]
        mm = mg[:, None]
        ok = i <= mm
        ii = np.where(ok, i, 0)
        with np.errstate(invalid="ignore"):
            terms = lf[mm] - lf[ii] - lf[np.where(ok, mm - i, 0)] + (mm - ii) * l0 + ii * np.where(ii > 0, l1, 0.0)
        coef = np.where(ok & (cg[:, None] > 0), np.exp(terms), np.where(i == 0, 1.0, 0.0))
        new = poly * coef[:, :1]
        for d in range(1, min(int(mg.max()), r) + 1):
            new[:, d:] += poly[:, : r + 1 - d] * coef[:, d:d + 1]
        poly = new
    return poly * (1.0 / (1.0 + np.arange(r + 1)))[None, :]


def _tie_weighted_inner(slots: np.ndarray, n_other: np.ndarray, x: int, r: int, lf: np.ndarray) -> np.ndarray:
    """For each row: E[1/(1+T); every competitor in ``slots`` has <= x votes] given r draws from the
    n_other non-target samples (T = competitors with exactly x). Slots with count 0 are empty; the
    samples outside ``slots`` form the pool (it never reaches x).

    Poissonised: competitors are independent Binomial(c_j, p) with p = r / n_other, conditioned on
    their total being r (exact for any p), so every coefficient is a probability <= 1. The tie
    weight is 1/(1+T) = ∫_0^1 s^T ds, and the coefficient of t^r is a polynomial of degree
    <= r // x in s, so Gauss-Legendre with r // (2x) + 1 nodes integrates it exactly. For each
    node the product over competitors of (truncated pmf + s · tie term) is taken in the frequency
    domain, where competitors with equal counts are one power: the cost grows with the number of
    *distinct* counts, not of competitors (the long tail of singletons is one factor).
    """
    b, slots_n = slots.shape
    p = r / np.maximum(n_other, 1).astype(np.float64)
    lp = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), -1e4)
    l1p = np.where(p < 1, np.log1p(-np.where(p < 1, p, 0.0)), -1e4)
    lp_, l1p_ = lp[:, None], l1p[:, None]
    pool = n_other - slots.sum(axis=1)
    denom = np.exp(_log_binom_pmf(n_other, np.full(b, r), lp, l1p, lf))
    if slots_n == 1:  # one competitor: sum over its votes y < x (and a tie at x, weight 1/2) directly
        cj = slots[:, 0]
        y = np.arange(min(x, r + 1))[None, :]
        below = np.exp(_log_binom_pmf(cj[:, None], y, lp_, l1p_, lf) + _log_binom_pmf(pool[:, None], r - y, lp_, l1p_, lf))
        tie = np.exp(_log_binom_pmf(cj, np.full(b, x), lp, l1p, lf) + _log_binom_pmf(pool, np.full(b, r - x), lp, l1p, lf))
        return np.asarray(np.clip((below.sum(axis=1) + 0.5 * tie) / denom, 0.0, 1.0))
    # distinct counts per row and how many competitors have each (0 = empty)
    srt = -np.sort(-slots, axis=1)
    first = np.ones_like(srt, dtype=bool)
    first[:, 1:] = srt[:, 1:] != srt[:, :-1]
    first &= srt > 0
    group = np.cumsum(first, axis=1) - 1
    n_groups = int(first.sum(axis=1).max(initial=0))
    flat = (np.arange(b)[:, None] * max(n_groups, 1) + np.maximum(group, 0))[srt > 0]
    mult = np.bincount(flat, minlength=b * max(n_groups, 1)).reshape(b, max(n_groups, 1))[:, :n_groups]
    u_counts = np.zeros((b, max(n_groups, 1)), dtype=np.int64)
    u_counts[np.nonzero(first)[0], group[first]] = srt[first]
    u_counts = u_counts[:, :n_groups]
    # cyclic length without aliasing worth TOL: the competitors' Poissonised total (a sum of
    # independent Bernoullis with mean mu <= r) exceeds m with probability <= e^-mu (e mu / m)^m
    # (Chernoff), so coefficients from degree m on are < TOL; and it never exceeds the degree bound
    degree = int(np.minimum(slots, x).sum(axis=1).max(initial=0))
    mu = float((slots * p[:, None]).sum(axis=1).max(initial=0.0))
    length = next_fast_len(max(min(degree, _poisson_tail_end(mu)) + 1, r + 1), real=True)
    freqs = np.arange(length // 2 + 1)
    shift = np.exp(-2j * np.pi * ((freqs * x) % length) / length)[None, :]  # t^x (numpy's rfft sign)
    s_nodes, s_weights = _gauss01(max(1, min(r // x if x else 0, slots_n) // 2 + 1))
    y = np.arange(min(x, length))[None, :]
    if x == 1:
        dist = _x1_product(u_counts, mult, r, lp, l1p, lf)
        d = np.arange(r + 1)[None, :]
        coef = (dist * np.exp(_log_binom_pmf(pool[:, None], r - d, lp_, l1p_, lf))).sum(axis=1)
        return np.asarray(np.clip(coef / denom, 0.0, 1.0))
    factors: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
    for g in range(n_groups):
        cg = u_counts[:, g]
        pmf = np.exp(_log_binom_pmf(cg[:, None], y, lp_, l1p_, lf))  # y < x: the competitor stays below x
        tie = np.exp(_log_binom_pmf(cg, np.full(b, x), lp, l1p, lf))[:, None] * shift
        mg = mult[:, g][:, None]
        factors.append((np.fft.rfft(pmf, n=length, axis=1), tie, mg if mg.max() > 1 else None))
    spec = np.zeros((b, freqs.size), dtype=np.complex128)
    for sv, wv in zip(s_nodes, s_weights):
        prod = np.full((b, freqs.size), wv, dtype=np.complex128)
        for a, tie, power in factors:
            z = a + sv * tie
            prod *= z if power is None else np.power(z, power)
        spec += prod
    dist = np.fft.irfft(spec, n=length, axis=1)[:, : r + 1]
    d = np.arange(r + 1)[None, :]
    coef = (dist * np.exp(_log_binom_pmf(pool[:, None], r - d, lp_, l1p_, lf))).sum(axis=1)
    return np.asarray(np.clip(coef / denom, 0.0, 1.0))


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
