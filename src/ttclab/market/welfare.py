"""The welfare optimum SW*(β) = max_θ SW(θ), exactly, without enumerating |Θ|ⁿ profiles.

SW(θ) = N(θ) / D(θ) with N = Σ_i e^{βV_i} w_i and D = e^{βv₀} + Σ_i e^{βV_i}, both separable sums.
Dinkelbach's parametric method: for λ, G(λ) = max_θ N(θ) − λ D(θ) decomposes into independent
per-provider problems max_k e^{βV_ik}(w_ik − λ); set λ ← SW(θ of that max) and repeat. λ increases
strictly until G(λ) = 0, where λ = SW* (finitely many profiles, so it terminates, superlinearly in
practice: 2–5 passes over n × |Θ|). All comparisons are done in the log domain, so β = 10⁶ is exact.

:func:`optimum_enumeration` is the published brute force (all profiles, numpy in chunks): the
reference for tests and the baseline of ``bench/market.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ttclab.market.economics import Economics, welfare


@dataclass(frozen=True)
class Optimum:
    """The welfare-maximising profile (level indices), SW* and the number of Dinkelbach passes."""

    profile: np.ndarray
    welfare: float
    iterations: int


def _log_gaps(z: np.ndarray, w: np.ndarray, prof: np.ndarray, z0: float) -> tuple[np.ndarray, np.ndarray]:
    """Sign and log-magnitude of ``(w_ik − λ) D`` with λ = SW(prof), for every provider i and level k.

    ``(w_ik − λ) D = e^{z0} w_ik + Σ_j e^{z_j} (w_ik − w_j)`` over the profile's providers j: each term
    is formed without subtracting the rounded λ, so the sign stays right when one provider's share is
    e^{-300} of another's (at large β, ``w_ik − λ`` computed directly is pure rounding noise).
    """
    idx = np.arange(z.shape[0])
    zj, wj = z[idx, prof], w[idx, prof]
    diff = w[:, :, None] - wj[None, None, :]  # (n, L, n)
    with np.errstate(divide="ignore"):
        logs = np.concatenate([np.broadcast_to(zj, diff.shape) + np.log(np.abs(diff)),
                               (z0 + np.log(np.abs(w)))[:, :, None]], axis=2)
    signs = np.concatenate([np.sign(diff), np.sign(w)[:, :, None]], axis=2)

    def lse(mask: np.ndarray) -> np.ndarray:
        x = np.where(mask, logs, -np.inf)
        top = x.max(axis=2)
        safe = np.where(np.isfinite(top), top, 0.0)
        with np.errstate(divide="ignore"):
            return np.asarray(safe + np.log(np.exp(x - safe[:, :, None]).sum(axis=2)))

    pos, neg = lse(signs > 0), lse(signs < 0)
    sign = np.where(pos > neg, 1.0, np.where(neg > pos, -1.0, 0.0))
    hi, lo = np.maximum(pos, neg), np.minimum(pos, neg)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = hi + np.log1p(-np.exp(lo - hi))
    return sign, np.where(sign != 0, mag, -np.inf)


def _logsumexp_signed(logs: np.ndarray, signs: np.ndarray) -> float:
    """The sign of Σ signs · e^{logs} (+1, -1 or 0), exactly in the log domain."""
    def lse(x: np.ndarray) -> float:
        if x.size == 0 or not np.isfinite(x).any():
            return -np.inf
        top = float(np.max(x))
        return top + float(np.log(np.exp(x - top).sum()))

    pos, neg = lse(logs[signs > 0]), lse(logs[signs < 0])
    return 1.0 if pos > neg else (-1.0 if neg > pos else 0.0)


def _improves(z: np.ndarray, w: np.ndarray, prof: np.ndarray, cand: np.ndarray, z0: float, sign: np.ndarray,
              mag: np.ndarray) -> bool:
    """Whether SW(cand) > SW(prof) exactly: the sign of (N(cand) − λ D(cand)) · D(prof) at λ = SW(prof).

    That is Σ_i e^{z_i}(w_i − λ)D over cand's levels minus e^{z0} λ D = e^{z0} Σ_j e^{z_j} w_j over
    prof's -- decided in the log domain, where two welfares equal in float64 still differ.
    """
    idx = np.arange(z.shape[0])
    zc, sc, mc = z[idx, cand], sign[idx, cand], mag[idx, cand]
    zp, wp = z[idx, prof], w[idx, prof]
    with np.errstate(divide="ignore"):
        logs = np.concatenate([zc + mc, z0 + zp + np.log(np.abs(wp))])
    signs = np.concatenate([sc, -np.sign(wp)])
    return _logsumexp_signed(logs, signs) > 0


def _best_levels(z: np.ndarray, w: np.ndarray, prof: np.ndarray, z0: float) -> np.ndarray:
    """Per provider, argmax_k e^{z_k}(w_k − λ) at λ = SW(prof), in the log domain (lowest index on ties)."""
    sign, mag = _log_gaps(z, w, prof, z0)
    return _argmax_levels(z, sign, mag)


def _argmax_levels(z: np.ndarray, sign: np.ndarray, mag: np.ndarray) -> np.ndarray:
    pos = sign > 0
    key_pos = np.where(pos, z + mag, -np.inf)
    # no positive term: the least negative e^{z}(w − λ); a zero gap (w == λ) beats every negative one
    key_neg = np.where(sign < 0, -(z + mag), np.where(sign == 0, np.inf, -np.inf))
    best_pos = np.argmax(key_pos, axis=-1)
    best_neg = np.argmax(key_neg, axis=-1)
    return np.asarray(np.where(pos.any(axis=-1), best_pos, best_neg))


def optimum(eco: Economics, beta: float, v0: float = 0.0, max_iter: int = 100) -> Optimum:
    """Exact SW*(β) by Dinkelbach's method (see module docstring)."""
    z = beta * eco.V
    w = eco.w
    # start from the better of "max welfare per query" and "max user value" profiles
    starts = [np.argmax(w, axis=1), np.argmax(eco.V, axis=1)]
    sws = [float(welfare(eco, s, beta, v0)) for s in starts]
    j = int(np.argmax(sws))
    prof, lam = starts[j], sws[j]
    z0 = beta * v0
    for it in range(1, max_iter + 1):
        sign, mag = _log_gaps(z, w, prof, z0)
        cand = _argmax_levels(z, sign, mag)
        # stop when the maximiser of N - λD is the profile itself, or does not raise SW exactly
        if np.array_equal(cand, prof) or not _improves(z, w, prof, cand, z0, sign, mag):
            return Optimum(prof, lam, it)
        prof, lam = cand, float(welfare(eco, cand, beta, v0))
    return Optimum(prof, lam, max_iter)  # pragma: no cover - Dinkelbach converges long before


def profiles_chunk(n: int, levels: int, start: int, stop: int) -> np.ndarray:
    """Profiles start..stop-1 of the |Θ|ⁿ grid in mixed-radix order (provider 0 most significant)."""
    idx = np.arange(start, stop, dtype=np.int64)
    out = np.empty((idx.size, n), dtype=np.intp)
    for i in range(n - 1, -1, -1):
        out[:, i] = idx % levels
        idx //= levels
    return out


def optimum_enumeration(eco: Economics, beta: float, v0: float = 0.0, chunk: int = 1 << 20) -> Optimum:
    """SW* by evaluating all |Θ|ⁿ profiles (the published approach), chunked and vectorised."""
    n, L = eco.V.shape
    total = L**n
    best_sw, best_prof = -np.inf, np.zeros(n, dtype=np.intp)
    for start in range(0, total, chunk):
        profs = profiles_chunk(n, L, start, min(total, start + chunk))
        sw = welfare(eco, profs, beta, v0)
        k = int(np.argmax(sw))
        if sw[k] > best_sw:
            best_sw, best_prof = float(sw[k]), profs[k]
    return Optimum(best_prof, best_sw, total)
