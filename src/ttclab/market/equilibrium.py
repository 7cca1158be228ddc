"""Pure Nash equilibria of the test-time compute game: improvement dynamics, enumeration, checks.

The game is an exact potential game: a unilateral move of provider i changes log u_i by exactly ΔΦ
(:func:`ttclab.market.economics.potential`), so improvement dynamics terminate at a pure equilibrium.
Utilities are compared in the log domain: "u' exceeds u by more than rtol·|u|" is
log u' > log u + log1p(rtol) for u > 0, which stays exact at β = 10⁶ where linear shares underflow.
A provider with zero utility (p = c, e.g. a zero price) moves to any level with positive utility
(the published code used an absolute 1e-9 there; its linear-domain shares also underflow at large β).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ttclab.market.economics import (
    Economics,
    _log_profit,
    deviation_log_utilities,
    potential,
    profile_values,
    welfare,
)
from ttclab.market.welfare import profiles_chunk

RTOL = 1e-8


@dataclass(frozen=True)
class DynamicsResult:
    """Outcome of improvement dynamics.

    ``path`` (k+1, n): the start and the profile after each move; ``moves`` (k, 4): round, provider,
    from level, to level; ``phi`` and ``welfare`` along the path; ``converged``: a full round without a move.
    """

    profile: np.ndarray
    converged: bool
    rounds: int
    moves: np.ndarray
    path: np.ndarray
    phi: np.ndarray
    welfare: np.ndarray
    method: str


def _scan_orders(L: int) -> list[np.ndarray]:
    """For each current level, the other levels by increasing distance, lower index first at ties."""
    out = []
    for cur in range(L):
        order = []
        for d in range(1, L):
            for k in (cur - d, cur + d):
                if 0 <= k < L:
                    order.append(k)
        out.append(np.array(order, dtype=np.intp))
    return out


def _others(zc: np.ndarray, i: int, z0: float) -> float:
    """log(e^{z0} + Σ_{j≠i} e^{zc_j}), computed afresh (no cancellation)."""
    zo = np.append(np.delete(zc, i), z0)
    m = zo.max()
    return float(m + np.log(np.exp(zo - m).sum()))


def improvement_dynamics(
    eco: Economics,
    beta: float,
    *,
    v0: float = 0.0,
    rng: np.random.Generator | int | None = 0,
    method: str = "nearest",
    max_rounds: int = 1000,
    rtol: float = RTOL,
    start: np.ndarray | None = None,
    track: bool = True,
) -> DynamicsResult:
    """Round-robin improvement dynamics from ``start`` (default: every provider at its lowest level).

    Each round visits the providers in a random order drawn from ``rng`` (a Generator or a seed).
    ``method="nearest"`` is the published rule: scan the other levels by increasing distance from the
    current one (lower index first at equal distance) and move to the first whose utility exceeds the
    current by more than ``rtol``·|u|. ``method="best_response"`` moves to the utility-maximising level
    (lowest index on ties) under the same threshold. Stops after a round without a move, or after
    ``max_rounds`` rounds (``converged=False``). ``track=False`` skips Φ / welfare along the path.
    """
    if method not in ("nearest", "best_response"):
        raise ValueError(f"method must be 'nearest' or 'best_response', got {method!r}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n, L = eco.V.shape
    z = beta * eco.V
    lp = _log_profit(eco.profit)
    z0 = beta * v0
    log_step = np.log1p(rtol)
    prof = np.zeros(n, dtype=np.intp) if start is None else np.array(start, dtype=np.intp)
    zc = z[np.arange(n), prof]
    orders = _scan_orders(L)
    moves: list[tuple[int, int, int, int]] = []
    path = [prof.copy()]
    converged = False
    rounds = 0
    for r in range(max_rounds):
        rounds = r + 1
        moved = False
        for i in gen.permutation(n):
            others = _others(zc, i, z0) if n > 1 else z0
            logu = lp[i] + z[i] - np.logaddexp(others, z[i])
            cur = prof[i]
            ucur = logu[cur]
            if np.isneginf(ucur):
                better = np.isfinite(logu)
            else:
                better = logu > ucur + log_step
            if not better.any():
                continue
            if method == "nearest":
                order = orders[cur]
                new = int(order[np.argmax(better[order])])
            else:
                new = int(np.argmax(logu))
            prof[i] = new
            zc[i] = z[i, new]
            moved = True
            moves.append((r, int(i), int(cur), new))
            if track:
                path.append(prof.copy())
        if not moved:
            converged = True
            break
    if track:
        path_arr = np.array(path)
        phi = potential(eco, path_arr, beta, v0)
        sw = welfare(eco, path_arr, beta, v0)
    else:
        path_arr = np.array([path[0], prof])
        phi = potential(eco, path_arr, beta, v0)
        sw = welfare(eco, path_arr, beta, v0)
    return DynamicsResult(
        profile=prof.copy(), converged=converged, rounds=rounds,
        moves=np.array(moves, dtype=np.int64).reshape(-1, 4), path=path_arr, phi=np.asarray(phi),
        welfare=np.asarray(sw), method=method,
    )


def deviation_gains(eco: Economics, profile: np.ndarray, beta: float, v0: float = 0.0) -> np.ndarray:
    """Per provider, max_k log u_i(k, θ_{−i}) − log u_i(θ) ≥ 0 (inf if a zero utility can become positive).

    Works on one profile ``(n,)`` or a batch ``(m, n)``.
    """
    logu = deviation_log_utilities(eco, profile, beta, v0)  # (..., n, L)
    prof = np.asarray(profile, dtype=np.intp)
    cur = np.take_along_axis(logu, prof[..., None], axis=-1)[..., 0]
    best = logu.max(axis=-1)
    with np.errstate(invalid="ignore"):
        gain = best - cur
    return np.where(np.isneginf(best), 0.0, np.where(np.isneginf(cur), np.inf, gain))


def is_equilibrium(eco: Economics, profile: np.ndarray, beta: float, v0: float = 0.0, rtol: float = RTOL) -> bool:
    """True if no provider gains more than ``rtol``·u by a unilateral deviation."""
    return bool(np.all(deviation_gains(eco, profile, beta, v0) <= np.log1p(rtol)))


def all_equilibria(
    eco: Economics,
    beta: float,
    v0: float = 0.0,
    rtol: float = RTOL,
    chunk: int = 1 << 14,
) -> np.ndarray:
    """Every pure equilibrium, by checking all |Θ|ⁿ profiles (small games only); shape ``(k, n)``."""
    n, L = eco.V.shape
    total = L**n
    found = []
    thresh = np.log1p(rtol)
    for start in range(0, total, chunk):
        profs = profiles_chunk(n, L, start, min(total, start + chunk))
        ok = np.all(deviation_gains(eco, profs, beta, v0) <= thresh, axis=-1)
        if ok.any():
            found.append(profs[ok])
    return np.concatenate(found) if found else np.zeros((0, n), dtype=np.intp)


def equilibrium_values(eco: Economics, profile: np.ndarray) -> np.ndarray:
    """V_i(θ_i) at a profile (convenience)."""
    return profile_values(eco.V, profile)
