"""What a strategy evaluation returns (consumed by the ledger, optimiser, market and report)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StrategyResult:
    """Expected outcome of one strategy at every budget k, per question.

    ``accuracy[q, i]`` is the expectation, over uniformly random ``k[i]``-subsets of question q's
    stored samples, of the strategy's correctness (NaN with ``nan_reason`` where undefined, e.g.
    k > n_q). ``samples_used`` is the expected number of samples actually generated (k for fixed
    strategies, fewer for adaptive stopping). ``accuracy_se`` is the Monte-Carlo standard error of
    each entry (zeros when ``exact``). ``same_as[i]`` names the exact strategy this one provably
    equals at ``k[i]`` (same outcome, same samples used; e.g. ESC below its window is majority@k),
    "" elsewhere; such columns are exact.
    """

    strategy: str
    k: np.ndarray  # (K,) int
    accuracy: np.ndarray  # (Q, K)
    accuracy_se: np.ndarray  # (Q, K)
    samples_used: np.ndarray  # (Q, K)
    exact: bool
    uses_reward_model: bool = False
    nan_reason: str = ""
    same_as: tuple[str, ...] = ()

    @property
    def exact_at(self) -> np.ndarray:
        """(K,) whether each budget's column is exact (the strategy is, or equals an exact one there)."""
        same = np.array([bool(s) for s in self.same_as] or [False] * len(self.k), dtype=bool)
        return np.asarray(np.full(len(self.k), bool(self.exact)) | same[: len(self.k)])

    def mean_accuracy(self) -> np.ndarray:
        """(K,) accuracy averaged over the questions where it is defined."""
        return np.asarray(np.nanmean(self.accuracy, axis=0))
