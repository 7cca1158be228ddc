"""Strategies registered by name with a uniform signature, and :func:`evaluate`.

Every strategy is ``fn(arrays: SampleArrays, ks: np.ndarray, rng: np.random.Generator, **options)
-> StrategyResult``. Exact strategies ignore ``rng``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ttclab.errors import ConfigError
from ttclab.strategies.adaptive import adaptive_consistency, early_stopping_sc
from ttclab.strategies.arrays import SampleArrays
from ttclab.strategies.base import StrategyResult
from ttclab.strategies.common import check_arrays, check_ks
from ttclab.strategies.selection import best_of_n, first_finish, pass_at_k_strategy, shortest_of_k
from ttclab.strategies.voting import majority, weighted_confidence, weighted_reward

StrategyFn = Callable[..., StrategyResult]


@dataclass(frozen=True)
class Strategy:
    """A registered strategy: its function, whether it is exact, and the inputs it needs."""

    name: str
    fn: StrategyFn
    exact: bool
    needs: tuple[str, ...] = ()  # subset of {"rewards", "logprobs", "tokens"}
    description: str = ""


REGISTRY: dict[str, Strategy] = {}


def register(name: str, fn: StrategyFn, *, exact: bool, needs: tuple[str, ...] = (), description: str = "") -> Strategy:
    """Add a strategy under ``name`` (replacing any previous one)."""
    REGISTRY[name] = Strategy(name=name, fn=fn, exact=exact, needs=needs, description=description)
    return REGISTRY[name]


register("majority", majority, exact=True, description="plurality vote (maj@k), ties split")
register("weighted_reward", weighted_reward, exact=False, needs=("rewards",), description="vote weighted by reward")
register("weighted_confidence", weighted_confidence, exact=False, needs=("logprobs",),
         description="vote weighted by exp(mean token log-prob)")
register("best_of_n", best_of_n, exact=True, needs=("rewards",), description="highest reward of k (rm@k)")
register("pass_at_k", pass_at_k_strategy, exact=True, description="oracle coverage pass@k")
register("shortest_of_k", shortest_of_k, exact=True, needs=("tokens",), description="fewest completion tokens of k")
register("first_finish", first_finish, exact=True, needs=("tokens",),
         description="first of k to finish (latency, else tokens)")
register("esc", early_stopping_sc, exact=False, description="early-stopping self-consistency (window 5)")
register("adaptive_consistency", adaptive_consistency, exact=False,
         description="adaptive consistency, Beta stopping at 0.95")


def list_strategies() -> list[str]:
    """Names of the registered strategies."""
    return list(REGISTRY)


def get_strategy(name: str) -> Strategy:
    """The registered strategy ``name``; ConfigError naming the choices otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r}; choose from: {', '.join(REGISTRY)}") from None


def available(arrays: SampleArrays) -> list[str]:
    """Strategies whose inputs exist in this run (rewards, log-probs, token counts)."""
    have = {
        "rewards": arrays.has_rewards,
        "logprobs": bool(np.isfinite(arrays.mean_logprob[arrays.present]).any()),
        "tokens": bool(np.isfinite(arrays.completion_tokens[arrays.present]).any()),
    }
    return [s.name for s in REGISTRY.values() if all(have[n] for n in s.needs)]


def strategy_rng(base_seed: int, name: str) -> np.random.Generator:
    """An independent generator per strategy, so a result does not depend on which others run."""
    return np.random.default_rng([int(base_seed) % (2**63), zlib.crc32(name.encode())])


def base_seed(rng: np.random.Generator | int | None) -> int:
    """A seed from an injected generator (one draw) or an int seed (None means 0)."""
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(2**63))
    return 0 if rng is None else int(rng)


def evaluate(
    arrays: SampleArrays,
    strategies: Iterable[str] | None = None,
    ks: Iterable[int] | np.ndarray | None = None,
    rng: np.random.Generator | int | None = None,
    **options,
) -> list[StrategyResult]:
    """Evaluate strategies at budgets ``ks`` (default: powers of two up to N, and N).

    ``strategies=None`` runs every registered strategy whose inputs exist in the run; a strategy
    named explicitly always runs (all-NaN with a ``nan_reason`` when its inputs are missing).
    ``rng`` (Generator or int seed; default seed 0) drives the resampled strategies, each from its own
    derived stream. ``options`` maps a strategy name to keyword options, e.g. ``esc={"window": 8}``.
    k > n_q gives NaN with a reason; a run without samples raises DataError.
    """
    check_arrays(arrays)
    ks_arr = check_ks(None if ks is None else np.asarray(list(ks) if not isinstance(ks, np.ndarray) else ks), arrays)
    names = available(arrays) if strategies is None else list(strategies)
    seed = base_seed(rng)
    results = []
    for name in names:
        spec = get_strategy(name)
        opts = options.get(name, {}) or {}
        results.append(spec.fn(arrays, ks_arr, strategy_rng(seed, name), **opts))
    return results
