"""Economics of the test-time compute game (``docs/market.md``): pure numpy.

Per provider i and compute level k (arrays of shape ``(n, L)``):

- price per query   p = input_usd + T · π / 10⁶         (π: USD per 1M output tokens)
- provider cost     c = p / (1 + m)                      (margin m)
- quality           q = α · (b + (1 − b) · f(a))         (value curve f, baseline fraction b)
- user net value    V = q − p;  welfare per served query w = q − c;  profit per query p − c

Demand is multinomial logit with an outside option v₀ and rationality β; everything here works in the
log domain (shift by the largest exponent) so that β = 10⁶ neither overflows nor loses the leader.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from ttclab.errors import ConfigError

ValueCurve = Literal["linear", "power", "exp"]
VALUE_CURVES: tuple[str, ...] = ("linear", "power", "exp")


@dataclass(frozen=True, slots=True)
class MarketParams:
    """Market parameters; defaults are the published GSM8K ones (linear curve, α = 0.008)."""

    alpha: float = 0.008
    baseline: float = 0.1
    margin: float = 0.25
    value_curve: ValueCurve = "linear"
    gamma: float = 3.5
    kappa: float = 6.0
    v0: float = 0.0

    def __post_init__(self) -> None:
        if self.value_curve not in VALUE_CURVES:
            raise ConfigError(f"value_curve: {self.value_curve!r} is unknown; use one of {', '.join(VALUE_CURVES)}")
        for name in ("alpha", "gamma", "kappa", "v0"):
            if not np.isfinite(getattr(self, name)):
                raise ConfigError(f"{name}: must be a finite number, got {getattr(self, name)}")
        if not 0.0 <= self.baseline <= 1.0:
            raise ConfigError(f"baseline: must be in [0, 1], got {self.baseline}")
        if not self.margin > -1.0 or not np.isfinite(self.margin):
            raise ConfigError(f"margin: must be > -1 (cost = price / (1 + margin)), got {self.margin}")
        if self.value_curve == "exp" and self.kappa == 0:
            raise ConfigError("kappa: must be non-zero for the exp value curve")

    def with_(self, **changes: object) -> MarketParams:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


def value_curve(accuracy: np.ndarray, kind: str = "linear", gamma: float = 3.5, kappa: float = 6.0) -> np.ndarray:
    """f(a): linear a; power a^γ; exp (e^{κa} − 1)/(e^κ − 1)."""
    a = np.asarray(accuracy, dtype=float)
    if kind == "linear":
        return a.copy()
    if kind == "power":
        return a**gamma
    if kind == "exp":
        return np.asarray(np.expm1(kappa * a) / np.expm1(kappa))
    raise ConfigError(f"value_curve: {kind!r} is unknown; use one of {', '.join(VALUE_CURVES)}")


@dataclass(frozen=True)
class Economics:
    """Per-(provider, level) quantities, each of shape ``(n, L)`` (USD per query)."""

    q: np.ndarray
    p: np.ndarray
    c: np.ndarray

    @property
    def V(self) -> np.ndarray:  # noqa: N802 - the spec's name
        """User net value q − p."""
        return np.asarray(self.q - self.p)

    @property
    def w(self) -> np.ndarray:
        """Welfare created per served query q − c."""
        return np.asarray(self.q - self.c)

    @property
    def profit(self) -> np.ndarray:
        """Provider profit per served query p − c."""
        return np.asarray(self.p - self.c)


def economics(
    accuracy: np.ndarray,
    tokens: np.ndarray,
    output_price: np.ndarray,
    params: MarketParams,
    input_usd: np.ndarray | None = None,
) -> Economics:
    """q, p, c for accuracy and tokens of shape ``(n, L)`` and per-provider prices of shape ``(n,)``."""
    acc = np.asarray(accuracy, dtype=float)
    tok = np.asarray(tokens, dtype=float)
    pi = np.asarray(output_price, dtype=float).reshape(-1, *([1] * (tok.ndim - 1)))
    p = tok * pi / 1e6
    if input_usd is not None:
        p = p + np.asarray(input_usd, dtype=float).reshape(pi.shape)
    c = p / (1.0 + params.margin)
    f = value_curve(acc, params.value_curve, params.gamma, params.kappa)
    q = params.alpha * (params.baseline + (1.0 - params.baseline) * f)
    return Economics(q=q, p=p, c=c)


# ---------------------------------------------------------------------------------------------------
# Logit demand, stable in the log domain
# ---------------------------------------------------------------------------------------------------


def log_denominator(values: np.ndarray, beta: float, v0: float = 0.0) -> np.ndarray:
    """log(e^{βv₀} + Σ_j e^{βV_j}) along the last axis (log-sum-exp, shifted by the max)."""
    z = beta * np.asarray(values, dtype=float)
    z0 = beta * v0
    m = np.maximum(z.max(axis=-1), z0)
    return np.asarray(m + np.log(np.exp(z0 - m) + np.exp(z - m[..., None]).sum(axis=-1)))


def log_shares(values: np.ndarray, beta: float, v0: float = 0.0) -> np.ndarray:
    """log s_i for chosen values V (last axis = providers)."""
    z = beta * np.asarray(values, dtype=float)
    return np.asarray(z - log_denominator(values, beta, v0)[..., None])


def logit_shares(values: np.ndarray, beta: float, v0: float = 0.0) -> np.ndarray:
    """Market shares s_i = e^{βV_i} / (e^{βv₀} + Σ_j e^{βV_j}); they sum to 1 − s₀ < 1."""
    return np.asarray(np.exp(log_shares(values, beta, v0)))


def outside_share(values: np.ndarray, beta: float, v0: float = 0.0) -> np.ndarray:
    """Share of users who take the outside option."""
    return np.exp(beta * v0 - log_denominator(values, beta, v0))


def _log_profit(profit: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(profit > 0, np.log(np.where(profit > 0, profit, 1.0)), -np.inf)


def profile_values(table: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """table[i, θ_i] for a profile (shape ``(n,)``) or a batch of profiles (shape ``(m, n)``)."""
    prof = np.asarray(profile, dtype=np.intp)
    return table[np.arange(table.shape[0]), prof]


def welfare(eco: Economics, profile: np.ndarray, beta: float, v0: float = 0.0) -> np.ndarray:
    """SW(θ) = Σ_i s_i (q_i − c_i) for a profile or a batch of profiles."""
    V = profile_values(eco.V, profile)
    return np.asarray((logit_shares(V, beta, v0) * profile_values(eco.w, profile)).sum(axis=-1))


def utilities(eco: Economics, profile: np.ndarray, beta: float, v0: float = 0.0) -> np.ndarray:
    """u_i = s_i (p_i − c_i)."""
    V = profile_values(eco.V, profile)
    return np.asarray(logit_shares(V, beta, v0) * profile_values(eco.profit, profile))


def potential(eco: Economics, profile: np.ndarray, beta: float, v0: float = 0.0) -> np.ndarray:
    """Φ(θ) = Σ log(p_i − c_i) + β Σ V_i − log(e^{βv₀} + Σ e^{βV_j}); −inf if some profit is 0."""
    V = profile_values(eco.V, profile)
    lp = _log_profit(profile_values(eco.profit, profile)).sum(axis=-1)
    return np.asarray(lp + beta * V.sum(axis=-1) - log_denominator(V, beta, v0))


def lse_excluding(z: np.ndarray, z0: float) -> np.ndarray:
    """For each i along the last axis: log(e^{z0} + Σ_{j≠i} e^{z_j}), without cancellation."""
    z = np.asarray(z, dtype=float)
    n = z.shape[-1]
    neg = np.full(z.shape[:-1] + (1,), -np.inf)
    prefix = np.concatenate([neg, np.logaddexp.accumulate(z[..., :-1], axis=-1)], axis=-1) if n > 1 else neg
    suffix = (
        np.concatenate([np.logaddexp.accumulate(z[..., :0:-1], axis=-1)[..., ::-1], neg], axis=-1) if n > 1 else neg
    )
    return np.asarray(np.logaddexp(np.logaddexp(prefix, suffix), z0))


def deviation_log_utilities(eco: Economics, profile: np.ndarray, beta: float, v0: float = 0.0) -> np.ndarray:
    """log u_i(k, θ_{−i}) for every provider i and every level k: shape ``(..., n, L)``."""
    V = profile_values(eco.V, profile)
    others = lse_excluding(beta * V, beta * v0)  # (..., n)
    zk = beta * eco.V  # (n, L)
    return np.asarray(_log_profit(eco.profit) + zk - np.logaddexp(others[..., None], zk))
