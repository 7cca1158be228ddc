"""Selection strategies (exact): pass@k, best-of-k by reward, shortest-of-k, first-finish.

All are expectations over uniformly random k-subsets of each question's present samples, computed
with the order-statistic weights of :mod:`ttclab.strategies.estimators`. Ties in the ranking key
(equal rewards, equal token counts) are broken uniformly at random, i.e. a tied group contributes
its mean correctness. Samples without a key (NaN reward / token count / latency) rank last.
"""

from __future__ import annotations

import numpy as np

from ttclab.strategies.arrays import SampleArrays
from ttclab.strategies.base import StrategyResult
from ttclab.strategies.common import finish, undefined
from ttclab.strategies.estimators import expected_best, pass_at_k


def pass_at_k_strategy(arrays: SampleArrays, ks: np.ndarray, rng: np.random.Generator | None = None) -> StrategyResult:
    """Oracle coverage: P(at least one of k random samples is correct) = 1 − C(n−c, k)/C(n, k)."""
    c = (arrays.correct & arrays.present).sum(axis=1)
    acc = pass_at_k(c, arrays.n_per_question, ks)
    return finish("pass_at_k", arrays, ks, acc, exact=True)


def best_of_n(arrays: SampleArrays, ks: np.ndarray, rng: np.random.Generator | None = None) -> StrategyResult:
    """Best-of-k by outcome reward: the highest-reward sample of k random ones is the answer."""
    if not arrays.has_rewards:
        return undefined("best_of_n", arrays, ks, "no reward-model scores in this run", exact=True, uses_reward_model=True)
    acc = expected_best(arrays.rewards, arrays.correct, arrays.present, ks, descending=True)
    return finish("best_of_n", arrays, ks, acc, exact=True, uses_reward_model=True)


def shortest_of_k(arrays: SampleArrays, ks: np.ndarray, rng: np.random.Generator | None = None) -> StrategyResult:
    """The sample with the fewest completion tokens among k random ones is the answer."""
    tokens = np.where(arrays.present, arrays.completion_tokens, np.nan)
    if not np.isfinite(tokens).any():
        return undefined("shortest_of_k", arrays, ks, "no completion token counts in this run", exact=True)
    acc = expected_best(tokens, arrays.correct, arrays.present, ks, descending=False)
    return finish("shortest_of_k", arrays, ks, acc, exact=True)


def first_finish(arrays: SampleArrays, ks: np.ndarray, rng: np.random.Generator | None = None) -> StrategyResult:
    """The first of k parallel samples to finish is the answer.

    Finishing order is the measured ``latency_s`` when every present sample of the run has one;
    otherwise it is the completion token count (equal decode speed), as shortest-of-k.
    """
    lat = np.where(arrays.present, arrays.latency_s, np.nan)
    use_latency = bool(np.isfinite(lat[arrays.present]).all()) and arrays.present.any()
    key = lat if use_latency else np.where(arrays.present, arrays.completion_tokens, np.nan)
    if not np.isfinite(key).any():
        return undefined("first_finish", arrays, ks, "no latencies or completion token counts in this run", exact=True)
    acc = expected_best(key, arrays.correct, arrays.present, ks, descending=False)
    return finish("first_finish", arrays, ks, acc, exact=True)
