"""Strategies registered by name with a uniform signature, and :func:`evaluate`.

Every strategy is ``fn(arrays: SampleArrays, ks: np.ndarray, rng: np.random.Generator, **options)
-> StrategyResult``. Exact strategies ignore ``rng``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ttclab.errors import ConfigError
from ttclab.registry import Registry
from ttclab.strategies.adaptive import adaptive_consistency, early_stopping_sc
from ttclab.strategies.arrays import SampleArrays
from ttclab.strategies.base import StrategyResult
from ttclab.strategies.common import check_arrays, check_ks
from ttclab.strategies.selection import best_of_n, first_finish, pass_at_k_strategy, shortest_of_k
from ttclab.strategies.voting import majority, weighted_confidence, weighted_reward

StrategyFn = Callable[..., StrategyResult]
Coincides = Callable[..., "str | None"]

#: What a run must hold for a strategy: each kind of data and how to add it when it is missing.
DATA_KINDS: dict[str, str] = {
    "answers": "the run has correct/incorrect verdicts but no extracted answers (e.g. an import from counts); "
               "sample or import the completions' answers to vote",
    "rewards": "the run has no reward-model scores; add a reward-model step or import a file with rewards",
    "logprobs": "the run has no token log-probs; sample with sampling.logprobs: true",
    "tokens": "the run has no completion token counts; sample again or import a file with token counts",
}


@dataclass(frozen=True)
class Strategy:
    """A registered strategy: its function, whether it is exact, the data it needs, and where it
    provably equals an exact strategy (``coincides(k, **options)`` -> that strategy's name or None)."""

    name: str
    fn: StrategyFn
    exact: bool
    needs: tuple[str, ...] = ()  # subset of DATA_KINDS
    description: str = ""
    coincides: Coincides | None = None
    oracle: bool = False  # needs the gold answer at inference time: reported, never chosen

    def same_as(self, k: int, options: dict[str, Any] | None = None) -> str:
        """The exact strategy this one equals at budget k ("" when it does not)."""
        if self.coincides is None:
            return ""
        return self.coincides(int(k), **(options or {})) or ""


#: name -> :class:`Strategy` (add with :func:`register`).
REGISTRY: Registry[Strategy] = Registry("strategy")


def register(name: str, fn: StrategyFn, *, exact: bool, needs: tuple[str, ...] = (), description: str = "",
             coincides: Coincides | None = None, oracle: bool = False) -> Strategy:
    """Add a strategy under ``name`` (replacing any previous one)."""
    unknown = set(needs) - set(DATA_KINDS)
    if unknown:
        raise ConfigError(f"strategy {name!r}: unknown data kind(s) {sorted(unknown)}; use {', '.join(DATA_KINDS)}")
    strategy = Strategy(name, fn, exact, tuple(needs), description, coincides, oracle)
    REGISTRY.register(name, strategy)
    return strategy


def _one_sample(k: int, **_: object) -> str | None:
    """Every selection or vote over a single sample is that sample: majority@1."""
    return "majority" if k == 1 else None


def _esc_same(k: int, window: int = 5, **_: object) -> str | None:
    # within the first window no stop can happen before k samples: the plurality of all k
    return "majority" if k <= window else None


def _adaptive_same(k: int, threshold: float = 0.95, **_: object) -> str | None:
    # the Beta rule first can fire after s0 samples all agreeing: P(Beta(s0+1, 1) > 1/2) = 1 - 2^-(s0+1)
    s0 = math.ceil(math.log2(1.0 / (1.0 - threshold)) - 1.0)
    return "majority" if k <= max(s0, 1) else None


register("majority", majority, exact=True, needs=("answers",), description="plurality vote (maj@k), ties split")
register("weighted_reward", weighted_reward, exact=False, needs=("answers", "rewards"),
         description="vote weighted by reward", coincides=_one_sample)
register("weighted_confidence", weighted_confidence, exact=False, needs=("answers", "logprobs"),
         description="vote weighted by exp(mean token log-prob)", coincides=_one_sample)
register("best_of_n", best_of_n, exact=True, needs=("rewards",), description="highest reward of k (rm@k)",
         coincides=_one_sample)
register("pass_at_k", pass_at_k_strategy, exact=True, description="oracle coverage pass@k (needs the gold answer)",
         oracle=True)
register("shortest_of_k", shortest_of_k, exact=True, needs=("tokens",), description="fewest completion tokens of k",
         coincides=_one_sample)
register("first_finish", first_finish, exact=True, needs=("tokens",),
         description="first of k to finish (latency, else tokens)", coincides=_one_sample)
register("esc", early_stopping_sc, exact=False, needs=("answers",),
         description="early-stopping self-consistency (window 5)", coincides=_esc_same)
register("adaptive_consistency", adaptive_consistency, exact=False, needs=("answers",),
         description="adaptive consistency, Beta stopping at 0.95", coincides=_adaptive_same)


def list_strategies() -> list[str]:
    """Names of the registered strategies."""
    return list(REGISTRY)


def get_strategy(name: str) -> Strategy:
    """The registered strategy ``name``; ConfigError naming the choices otherwise."""
    return REGISTRY.get(name)


def data_present(arrays: SampleArrays) -> dict[str, bool]:
    """Which kinds of data (:data:`DATA_KINDS`) the run holds."""
    present = arrays.present
    return {
        "answers": bool(arrays.meta.get("answers_recorded", True)),
        "rewards": arrays.has_rewards,
        "logprobs": bool(np.isfinite(arrays.mean_logprob[present]).any()),
        "tokens": bool(np.isfinite(arrays.completion_tokens[present]).any()),
    }


def missing_data(arrays: SampleArrays, name: str) -> list[str]:
    """The data kinds strategy ``name`` needs that the run lacks (empty: it can run)."""
    have = data_present(arrays)
    return [kind for kind in get_strategy(name).needs if not have[kind]]


def available(arrays: SampleArrays) -> list[str]:
    """Strategies whose inputs exist in this run (answers, rewards, log-probs, token counts)."""
    return [name for name in REGISTRY if not missing_data(arrays, name)]


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
    **options: Any,
) -> list[StrategyResult]:
    """Evaluate strategies at budgets ``ks`` (default: powers of two up to N, and N).

    ``strategies=None`` runs every registered strategy whose inputs exist in the run; a strategy
    named explicitly always runs (all-NaN with a ``nan_reason`` when its inputs are missing).
    ``rng`` (Generator or int seed; default seed 0) drives the resampled strategies, each from its own
    derived stream. Where a strategy provably equals an exact one at a budget (``Strategy.coincides``:
    ESC within its first window, any selection at k = 1, ...) that column is the exact strategy's
    (``StrategyResult.same_as`` says so), never a resampled estimate. ``options`` maps a strategy name to keyword
    options, e.g. ``esc={"window": 8}``.
    k > n_q gives NaN with a reason; a run without samples raises DataError.
    """
    check_arrays(arrays)
    ks_arr = check_ks(None if ks is None else np.asarray(list(ks) if not isinstance(ks, np.ndarray) else ks), arrays)
    names = available(arrays) if strategies is None else list(strategies)
    seed = base_seed(rng)
    done: dict[str, StrategyResult] = {}

    def run(name: str, at: np.ndarray) -> StrategyResult:
        spec = get_strategy(name)
        return spec.fn(arrays, at, strategy_rng(seed, name), **(options.get(name, {}) or {}))

    for name in names:
        spec = get_strategy(name)
        same = [spec.same_as(int(k), options.get(name)) for k in ks_arr]
        same = [t if t and not missing_data(arrays, t) else "" for t in same]  # substitute only what can run
        if not any(same) or missing_data(arrays, name):  # a strategy without its data stays undefined
            done[name] = run(name, ks_arr)
            continue
        own = np.array([k for k, s in zip(ks_arr, same) if not s], dtype=np.int64)
        parts = {target: done[target] if target in done and np.array_equal(done[target].k, ks_arr)
                 else run(target, ks_arr) for target in set(filter(None, same))}
        mine = run(name, own) if own.size else None
        done[name] = _merge(name, spec, ks_arr, same, parts, mine)
    return [done[name] for name in names]


def _merge(name: str, spec: Strategy, ks: np.ndarray, same: list[str], parts: dict[str, StrategyResult],
           mine: StrategyResult | None) -> StrategyResult:
    """One result over all budgets: the strategy's own columns where it differs, the exact strategy's
    columns where it provably coincides."""
    q = next(iter(parts.values())).accuracy.shape[0]
    acc, se, used = (np.full((q, ks.size), np.nan) for _ in range(3))
    own_col = 0
    reasons = []
    for i, target in enumerate(same):
        src, j = (parts[target], i) if target else (mine, own_col)
        if not target:
            own_col += 1
        assert src is not None
        acc[:, i], se[:, i], used[:, i] = src.accuracy[:, j], src.accuracy_se[:, j], src.samples_used[:, j]
        if src.nan_reason and src.nan_reason not in reasons:
            reasons.append(src.nan_reason)
    uses_rm = mine.uses_reward_model if mine is not None else spec.needs.count("rewards") > 0
    return StrategyResult(strategy=name, k=ks.copy(), accuracy=acc, accuracy_se=se, samples_used=used,
                          exact=spec.exact, uses_reward_model=uses_rm, nan_reason="; ".join(reasons),
                          same_as=tuple(same))


def describe() -> list[dict[str, object]]:
    """One record per registered strategy: name, estimator, data it needs, what it is."""
    return [{"strategy": s.name, "estimator": "exact" if s.exact else "resampled",
             "needs": ", ".join(("correct", *s.needs)), "oracle": s.oracle, "description": s.description}
            for s in REGISTRY.values()]
