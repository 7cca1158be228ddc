"""Builders for constructed ledgers and curves."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from ttclab.ledger.costs import COST_FIELDS, StrategyLedger


def make_ledger(strategy: str, ks: list[int], accuracy: np.ndarray, tokens: np.ndarray, model: str = "m") -> StrategyLedger:
    """A ledger with (Q, K) accuracy and (Q, K) total tokens (other costs follow tokens)."""
    acc = np.asarray(accuracy, dtype=np.float64)
    tok = np.broadcast_to(np.asarray(tokens, dtype=np.float64), acc.shape).copy()
    costs = {name: tok.copy() for name in COST_FIELDS}
    costs["samples_used"] = np.tile(np.asarray(ks, dtype=np.float64), (acc.shape[0], 1))
    return StrategyLedger(model, "run", strategy, np.asarray(ks), True, acc, np.zeros_like(acc), costs,
                          question_ids=np.array([f"q{i}" for i in range(acc.shape[0])]))


@pytest.fixture
def ledger_factory() -> Callable[..., StrategyLedger]:
    return make_ledger
