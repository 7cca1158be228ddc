"""Market providers from stored runs: each run sells one strategy at compute levels k."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ttclab.analysis.evaluate import evaluate_runs, run_kind, run_model_name
from ttclab.errors import DataError
from ttclab.store.reader import list_runs, store_root


def market_curves(
    refs: Sequence[str] | None = None,
    *,
    strategy: str = "majority",
    levels: Sequence[int] | None = None,
    store: str | Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Scaling curves for :func:`ttclab.market.providers.providers_from_curves`: one provider per run,
    selling ``strategy`` at compute levels k (its exact expected accuracy and output tokens per query).
    Without ``refs``: every sampled run of the store (pipeline runs and served traffic sell no strategy at k)."""
    if refs is None:
        refs = [str(r.path) for r in list_runs(store) if run_kind(r) == "samples"]
        if not refs:
            raise DataError(f"{store_root(store)}: no sampled runs to build providers from; run `ttclab sample "
                            "CONFIG` first (pipeline runs and served traffic sell no strategy at k samples)")
    ev = evaluate_runs(refs, strategies=[strategy], ks=levels, n_bootstrap=0, store=store)
    rows = ev.rows()
    curves: dict[str, dict[str, Any]] = {}
    for part in ev.parts:
        label = part.ledgers[0].model if part.ledgers else part.run.model
        mine = [r for r in rows if r["run_id"] == part.run.run_id and r["strategy"] == strategy
                and np.isfinite(r["accuracy"]) and np.isfinite(r["completion_tokens"])]
        if not mine:
            raise DataError(f"run {part.run.run_id}: strategy {strategy!r} has no finite accuracy; pick another strategy")
        curves[label] = {"levels": [r["k"] for r in mine], "accuracy": [r["accuracy"] for r in mine],
                         "tokens_per_query": [r["completion_tokens"] for r in mine], "model": run_model_name(part.run)}
    return curves
