"""A thin class over the pure functions: one market (providers + parameters), analysed at any β."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ttclab.errors import ConfigError
from ttclab.market.auction import AuctionResult, run_auction
from ttclab.market.economics import (
    Economics,
    MarketParams,
    economics,
    logit_shares,
    outside_share,
    potential,
    profile_values,
    utilities,
    welfare,
)
from ttclab.market.equilibrium import (
    RTOL,
    DynamicsResult,
    all_equilibria,
    deviation_gains,
    improvement_dynamics,
    is_equilibrium,
)
from ttclab.market.providers import Provider, check_providers
from ttclab.market.welfare import Optimum, optimum, optimum_enumeration

#: Enumerate every pure equilibrium (worst / best: PoA / PoS) only up to this many profiles.
DEFAULT_ENUMERATE_LIMIT = 200_000


@dataclass(frozen=True)
class ProfileStats:
    """The published summary statistics at a profile, plus shares, surplus and profits (USD per query).

    ``wV, V, wP, P, wU, U``: Σ s_i V_i, mean V_i, Σ s_i p_i, mean p_i, Σ s_i (p_i − c_i), mean (p_i − c_i)
    (weighted ones use the raw shares, which sum to 1 − s₀ < 1).
    """

    welfare: float
    wV: float  # noqa: N815 - the published names
    V: float
    wP: float  # noqa: N815
    P: float
    wU: float  # noqa: N815
    U: float
    shares: np.ndarray
    outside_share: float
    user_surplus: float
    provider_profits: np.ndarray
    values: np.ndarray
    prices: np.ndarray

    def published(self) -> dict[str, float]:
        return {"wV": self.wV, "V": self.V, "wP": self.wP, "P": self.P, "wU": self.wU, "U": self.U}


@dataclass(frozen=True)
class BetaAnalysis:
    """Everything at one β: optimum, the equilibrium reached, PoA, statistics, enumerated equilibria."""

    beta: float
    optimum: Optimum
    dynamics: DynamicsResult
    equilibrium: np.ndarray
    equilibrium_checked: bool
    max_deviation_gain: float
    stats: ProfileStats
    optimum_stats: ProfileStats
    poa: float
    inefficiency_pct: float
    equilibria: np.ndarray | None  # every pure equilibrium, if enumerated
    equilibria_welfare: np.ndarray | None
    poa_worst: float | None
    pos: float | None


class MarketGame:
    """Providers and market parameters; every method is a pure function of (profile, β)."""

    def __init__(self, providers: Sequence[Provider], params: MarketParams | None = None) -> None:
        check_providers(providers)
        self.providers = list(providers)
        self.params = params or MarketParams()
        self.names = tuple(p.name for p in self.providers)
        self.levels = self.providers[0].levels
        self.eco: Economics = economics(
            np.stack([p.accuracy for p in self.providers]),
            np.stack([p.tokens for p in self.providers]),
            np.array([p.output_price for p in self.providers]),
            self.params,
            input_usd=np.array([p.input_usd for p in self.providers]),
        )

    @classmethod
    def from_economics(cls, q: np.ndarray, p: np.ndarray, c: np.ndarray, names: Sequence[str] | None = None,
                       v0: float = 0.0) -> MarketGame:
        """A game straight from quality / price / cost tables (n, L) — for random games and tests."""
        self = cls.__new__(cls)
        q, p, c = (np.asarray(a, dtype=float) for a in (q, p, c))
        self.providers = []
        self.params = MarketParams(v0=v0)
        self.names = tuple(names) if names is not None else tuple(f"P{i}" for i in range(q.shape[0]))
        self.levels = np.arange(1, q.shape[1] + 1, dtype=float)
        self.eco = Economics(q=q, p=p, c=c)
        return self

    def with_params(self, **changes: Any) -> MarketGame:
        """The same providers under changed market parameters (margin, alpha, value_curve, ...)."""
        if not self.providers:
            raise ConfigError("this game was built from economics tables; it has no providers to re-price")
        return MarketGame(self.providers, self.params.with_(**changes))

    # -- the pure functions, bound --------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.eco.V.shape[0])

    @property
    def v0(self) -> float:
        return self.params.v0

    def shares(self, profile: np.ndarray, beta: float) -> np.ndarray:
        return logit_shares(profile_values(self.eco.V, profile), beta, self.v0)

    def welfare(self, profile: np.ndarray, beta: float) -> np.ndarray:
        return welfare(self.eco, profile, beta, self.v0)

    def utilities(self, profile: np.ndarray, beta: float) -> np.ndarray:
        return utilities(self.eco, profile, beta, self.v0)

    def potential(self, profile: np.ndarray, beta: float) -> np.ndarray:
        return potential(self.eco, profile, beta, self.v0)

    def optimum(self, beta: float) -> Optimum:
        return optimum(self.eco, beta, self.v0)

    def optimum_enumeration(self, beta: float) -> Optimum:
        return optimum_enumeration(self.eco, beta, self.v0)

    def dynamics(self, beta: float, seed: int | np.random.Generator = 0, method: str = "nearest",
                 max_rounds: int = 1000, track: bool = True) -> DynamicsResult:
        return improvement_dynamics(self.eco, beta, v0=self.v0, rng=seed, method=method, max_rounds=max_rounds,
                                    track=track)

    def is_equilibrium(self, profile: np.ndarray, beta: float, rtol: float = RTOL) -> bool:
        return is_equilibrium(self.eco, profile, beta, self.v0, rtol)

    def equilibria(self, beta: float) -> np.ndarray:
        return all_equilibria(self.eco, beta, self.v0)

    def auction(self) -> AuctionResult:
        return run_auction(self.eco.q, self.eco.c, self.names)

    def stats(self, profile: np.ndarray, beta: float) -> ProfileStats:
        prof = np.asarray(profile, dtype=np.intp)
        V = profile_values(self.eco.V, prof)
        p = profile_values(self.eco.p, prof)
        m = profile_values(self.eco.profit, prof)
        s = logit_shares(V, beta, self.v0)
        s0 = float(outside_share(V, beta, self.v0))
        return ProfileStats(
            welfare=float((s * profile_values(self.eco.w, prof)).sum()),
            wV=float((s * V).sum()), V=float(V.mean()), wP=float((s * p).sum()), P=float(p.mean()),
            wU=float((s * m).sum()), U=float(m.mean()), shares=s, outside_share=s0,
            user_surplus=float((s * V).sum() + s0 * self.v0), provider_profits=s * m, values=V, prices=p,
        )

    def analyse(self, beta: float, seed: int | np.random.Generator = 0, method: str = "nearest",
                enumerate_limit: int = DEFAULT_ENUMERATE_LIMIT, track: bool = True) -> BetaAnalysis:
        """Optimum, the equilibrium reached by the dynamics (checked), PoA, statistics; PoA / PoS if enumerable."""
        opt = self.optimum(beta)
        dyn = self.dynamics(beta, seed, method, track=track)
        eq = dyn.profile
        gains = deviation_gains(self.eco, eq, beta, self.v0)
        checked = bool(np.all(gains <= np.log1p(RTOL)))
        st = self.stats(eq, beta)
        poa = opt.welfare / st.welfare if st.welfare > 0 else float("nan")
        eqs = sws = None
        poa_worst = pos = None
        if self.eco.V.shape[1] ** self.n <= enumerate_limit:
            eqs = self.equilibria(beta)
            if len(eqs):
                sws = self.welfare(eqs, beta)
                worst, best = float(sws.min()), float(sws.max())
                poa_worst = opt.welfare / worst if worst > 0 else float("nan")
                pos = opt.welfare / best if best > 0 else float("nan")
        return BetaAnalysis(
            beta=float(beta), optimum=opt, dynamics=dyn, equilibrium=eq, equilibrium_checked=checked,
            max_deviation_gain=float(np.max(gains)), stats=st, optimum_stats=self.stats(opt.profile, beta),
            poa=poa, inefficiency_pct=(poa - 1.0) * 100.0, equilibria=eqs, equilibria_welfare=sws,
            poa_worst=poa_worst, pos=pos,
        )


#: The paper's symbols, as the market text and the HTML page explain them.
SYMBOLS: dict[str, str] = {
    "θ": "compute level (samples aggregated, or effort bin)",
    "β": "user rationality of the logit demand (large β: users pick the best net value)",
    "q": "quality, the user's dollar value of the answer: α (b + (1 − b) f(accuracy))",
    "p": "price the user pays per query (output tokens × list price)",
    "V": "user's net value q − p; wV = Σ s_i V_i (share-weighted), V = mean over providers",
    "P": "price per query; wP = Σ s_i p_i, P = mean",
    "U": "provider profit per query p − c; wU = Σ s_i (p_i − c_i), U = mean",
    "u": "a provider's utility, its expected profit per query of the market s (p − c) (U per query it serves)",
    "s": "market share (the outside option takes the rest)",
    "SW": "social welfare Σ s_i (q_i − c_i) at the equilibrium reached; SW* at the welfare optimum",
    "PoA": "price of anarchy SW* / SW (1 = efficient); inefficiency = (PoA − 1) × 100 %",
    "PoS": "price of stability: SW* / SW of the best equilibrium (when equilibria are enumerated)",
}
