"""Builders for small hand-checkable SampleArrays / StrategyResult objects."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ttclab.strategies.arrays import SampleArrays
from ttclab.strategies.base import StrategyResult

TOY_MODELS = """
version: test
models:
  toy:
    n_params: 1000
    n_layers: 2
    hidden_size: 4
    n_heads: 2
    n_kv_heads: 1
    head_dim: 2
    context: 100
  toy-local:
    n_params: 1000
    n_layers: 2
    hidden_size: 4
    n_heads: 2
    n_kv_heads: 1
    head_dim: 2
    context: 100
    sliding_window: 2
    n_local_layers: 1
  toy-rm:
    n_params: 500
    n_layers: 1
    hidden_size: 4
    n_heads: 1
    n_kv_heads: 1
    head_dim: 4
    context: 100
"""

TOY_PRICES = """
version: "test-1"
source: tests
models:
  toy: {input: 1.0, output: 2.0, cached_input: 0.1}
  toy-rm: {input: 3.0, output: 3.0}
"""


def make_arrays(
    prompt: list[list[float]],
    completion: list[list[float]],
    *,
    latency: list[list[float]] | None = None,
    present: list[list[bool]] | None = None,
    correct: list[list[bool]] | None = None,
    model: str = "toy",
) -> SampleArrays:
    p = np.asarray(prompt, dtype=np.float64)
    q, n = p.shape
    pres = np.ones((q, n), bool) if present is None else np.asarray(present, bool)
    return SampleArrays(
        answers=np.where(pres, 0, -1).astype(np.int32),
        correct=np.zeros((q, n), bool) if correct is None else np.asarray(correct, bool),
        present=pres,
        completion_tokens=np.asarray(completion, dtype=np.float64),
        prompt_tokens=p,
        rewards=np.full((q, n), np.nan),
        mean_logprob=np.full((q, n), np.nan),
        latency_s=np.full((q, n), np.nan) if latency is None else np.asarray(latency, dtype=np.float64),
        question_ids=np.array([f"q{i}" for i in range(q)]),
        difficulty=np.full(q, np.nan),
        model=model,
        run_id="run-test",
    )


def make_result(
    q: int,
    ks: list[int],
    *,
    strategy: str = "majority",
    accuracy: np.ndarray | None = None,
    samples_used: np.ndarray | None = None,
    uses_reward_model: bool = False,
) -> StrategyResult:
    k = np.asarray(ks)
    acc = np.full((q, k.size), 0.5) if accuracy is None else np.asarray(accuracy, dtype=np.float64)
    used = np.tile(k.astype(np.float64), (q, 1)) if samples_used is None else np.asarray(samples_used, dtype=np.float64)
    return StrategyResult(strategy, k, acc, np.zeros_like(acc), used, True, uses_reward_model)


@pytest.fixture
def toy_files(tmp_path: Path) -> tuple[Path, Path]:
    models = tmp_path / "models.yaml"
    models.write_text(TOY_MODELS)
    prices = tmp_path / "prices.yaml"
    prices.write_text(TOY_PRICES)
    return models, prices


@pytest.fixture
def arrays_factory() -> Callable[..., SampleArrays]:
    return make_arrays


@pytest.fixture
def result_factory() -> Callable[..., StrategyResult]:
    return make_result
