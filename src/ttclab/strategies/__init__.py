"""Offline test-time-compute strategies over stored samples, with exact / resampled estimators.

Entry points: :func:`arrays_from_samples` (store table -> SampleArrays) and :func:`evaluate`
(SampleArrays -> list of StrategyResult for every registered strategy and budget k).
"""

from ttclab.strategies.arrays import SampleArrays
from ttclab.strategies.base import StrategyResult
from ttclab.strategies.bootstrap import bootstrap_ci
from ttclab.strategies.load import arrays_from_samples
from ttclab.strategies.registry import REGISTRY, evaluate, get_strategy, list_strategies

__all__ = [
    "REGISTRY",
    "SampleArrays",
    "StrategyResult",
    "arrays_from_samples",
    "bootstrap_ci",
    "evaluate",
    "get_strategy",
    "list_strategies",
]
