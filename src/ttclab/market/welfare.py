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


def _best_levels(z: np.ndarray, w: np.ndarray, lam: float) -> np.ndarray:
    """Per provider, argmax_k e^{z_k}(w_k − λ), compared in the log domain (lowest index on ties)."""
    d = w - lam
    pos = d > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        key_pos = np.where(pos, z + np.log(np.where(pos, d, 1.0)), -np.inf)
        # no positive term: the least negative e^{z}(w − λ), i.e. the smallest z + log(λ − w); 0 if w == λ
        key_neg = np.where(d < 0, -(z + np.log(np.where(d < 0, -d, 1.0))), np.inf)
    best_pos = np.argmax(key_pos, axis=-1)
    best_neg = np.argmax(key_neg, axis=-1)
    return np.where(pos.any(axis=-1), best_pos, best_neg)


def optimum(eco: Economics, beta: float, v0: float = 0.0, max_iter: int = 100) -> Optimum:
    """Exact SW*(β) by Dinkelbach's method (see module docstring)."""
    z = beta * eco.V
    w = eco.w
    # start from the better of "max welfare per query" and "max user value" profiles
    starts = [np.argmax(w, axis=1), np.argmax(eco.V, axis=1)]
    sws = [float(welfare(eco, s, beta, v0)) for s in starts]
    j = int(np.argmax(sws))
    prof, lam = starts[j], sws[j]
    for it in range(1, max_iter + 1):
        cand = _best_levels(z, w, lam)
        if np.array_equal(cand, prof):
            return Optimum(prof, lam, it)
        sw = float(welfare(eco, cand, beta, v0))
        if not sw > lam:
            return Optimum(prof, lam, it)
        prof, lam = cand, sw
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
