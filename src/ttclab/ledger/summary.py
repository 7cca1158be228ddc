"""Ledgers averaged over questions: one row per (model, strategy, k) with accuracy, its error and
every expected cost per question.

The standard error combines the spread over questions with the estimators' Monte-Carlo error
(``mc_se = sqrt(sum se_q^2) / n``). The interval is normal (no bootstrap) or the percentile bootstrap
of :class:`ttclab.strategies.bootstrap.QuestionBootstrap`: the same question resamples for every
strategy of a run (drawn from the seed and the number of questions), so intervals do not change
with the set of strategies asked for and paired differences are consistent with them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy.special import ndtri

from ttclab.errors import ConfigError, DataError
from ttclab.ledger.costs import COST_FIELDS, CostSpec, StrategyLedger, build_ledgers
from ttclab.strategies.arrays import SampleArrays
from ttclab.strategies.base import StrategyResult
from ttclab.strategies.bootstrap import QuestionBootstrap, mc_standard_error, wilson

SUMMARY_COLUMNS: tuple[str, ...] = (
    "model", "run_id", "strategy", "k", "n_questions", "accuracy", "accuracy_se", "mc_se", "ci_low", "ci_high",
    *COST_FIELDS, "exact", "estimator", "same_as", "notes",
)
TEXT_COLUMNS = frozenset({"model", "run_id", "strategy", "estimator", "same_as", "notes"})


def summarize(
    ledgers: Iterable[StrategyLedger],
    *,
    mask: np.ndarray | None = None,
    confidence: float = 0.95,
    n_bootstrap: int = 0,
    rng: np.random.Generator | None = None,
    seed: int | None = None,
) -> dict[str, np.ndarray]:
    """One row per (model, strategy, k): accuracy with its standard error and confidence interval,
    and every expected cost per question, averaged over the questions where the accuracy is defined.

    ``n_bootstrap > 0`` gives percentile bootstrap intervals from ``seed`` (or one draw of ``rng``);
    every ledger over the same number of questions gets the same resamples. Returns columns as
    arrays (see :func:`to_arrow` / :func:`to_pandas`); NaN rows keep their reason in ``notes``.
    """
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    if n_bootstrap and rng is None and seed is None:
        raise ConfigError("a bootstrap confidence interval needs a seed (or rng, a numpy Generator)")
    if n_bootstrap and seed is None:
        assert rng is not None
        seed = int(rng.integers(2**63))
    rows: dict[str, list[Any]] = {c: [] for c in SUMMARY_COLUMNS}
    z = float(ndtri(0.5 + confidence / 2))
    for led in ledgers:
        acc = led.accuracy
        keep = np.ones(acc.shape[0], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if keep.shape != (acc.shape[0],):
            raise DataError(f"question mask has shape {keep.shape}, expected ({acc.shape[0]},)")
        acc = np.where(keep[:, None], acc, np.nan)
        defined = np.isfinite(acc)
        n = defined.sum(axis=0)
        mc = mc_standard_error(led.accuracy_se, acc)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(defined, acc, 0.0).sum(axis=0) / np.where(n > 0, n, np.nan)
            var = np.where(defined, (acc - mean) ** 2, 0.0).sum(axis=0) / np.where(n > 1, n - 1, np.nan)
            se = np.sqrt(var / n + mc**2)
            lo, hi = mean - z * se, mean + z * se
        if n_bootstrap and acc.shape[0]:
            assert seed is not None
            ci = QuestionBootstrap.draw(acc.shape[0], n_bootstrap, seed, confidence).interval(acc, mc)
            lo, hi = ci.low, ci.high
        lo, hi = _wilson_when_unanimous(acc, defined, n, mc, lo, hi, z)
        cost_means = _cost_means(led, defined, n)
        base_note = "; ".join(led.notes)
        exact_at = led.exact_at
        same = list(led.same_as) + [""] * (len(led.k) - len(led.same_as))
        for i, k in enumerate(led.k):
            note = base_note
            if n[i] == 0:
                note = "; ".join(filter(None, [f"no question has a defined accuracy at k={int(k)}", base_note]))
            rows["model"].append(led.model)
            rows["run_id"].append(led.run_id)
            rows["strategy"].append(led.strategy)
            rows["k"].append(int(k))
            rows["n_questions"].append(int(n[i]))
            rows["accuracy"].append(float(mean[i]))
            rows["accuracy_se"].append(float(se[i]))
            rows["mc_se"].append(float(mc[i]) if np.isfinite(mc[i]) else 0.0)
            rows["ci_low"].append(float(np.clip(lo[i], 0.0, 1.0)) if np.isfinite(lo[i]) else math.nan)
            rows["ci_high"].append(float(np.clip(hi[i], 0.0, 1.0)) if np.isfinite(hi[i]) else math.nan)
            for name in COST_FIELDS:
                rows[name].append(float(cost_means[name][i]))
            rows["exact"].append(bool(exact_at[i]))
            rows["estimator"].append(f"= {same[i]}" if same[i] else ("exact" if exact_at[i] else "resampled"))
            rows["same_as"].append(same[i])
            rows["notes"].append(note)
    return {c: np.asarray(v, dtype=object) if c in TEXT_COLUMNS else np.asarray(v) for c, v in rows.items()}


def _wilson_when_unanimous(acc: np.ndarray, defined: np.ndarray, n: np.ndarray, mc: np.ndarray, lo: np.ndarray,
                           hi: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Where every defined question is exactly right (or every one wrong) and there is no Monte-Carlo
    error, the normal and bootstrap intervals shrink to a point, as if 2 questions proved 100%: the
    Wilson interval of those n questions instead."""
    lo, hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    for i in range(acc.shape[1]):
        vals = acc[defined[:, i], i]
        if n[i] and not (mc[i] > 0) and (np.all(vals == 1.0) or np.all(vals == 0.0)):
            lo[i], hi[i] = wilson(float(vals.sum()), int(n[i]), z)
    return lo, hi


def _cost_means(led: StrategyLedger, defined: np.ndarray, n: np.ndarray) -> dict[str, np.ndarray]:
    """Each cost averaged over the defined questions; a NaN cost on a defined question makes it NaN."""
    out = {}
    for name in COST_FIELDS:
        values = np.where(defined, led.costs[name], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = values.sum(axis=0) / np.where(n > 0, n, np.nan)
        out[name] = np.where(np.isnan(values).any(axis=0), np.nan, mean)
    return out


def to_arrow(summary: Mapping[str, np.ndarray]) -> Any:
    """The summary as a pyarrow Table (one row per (model, strategy, k))."""
    import pyarrow as pa

    return pa.table({c: pa.array(list(v) if c in TEXT_COLUMNS else v) for c, v in summary.items()})


def to_pandas(summary: Mapping[str, np.ndarray]) -> Any:
    """The summary as a pandas DataFrame (needs pandas)."""
    return to_arrow(summary).to_pandas()


def ledger_table(
    arrays: SampleArrays,
    results: Iterable[StrategyResult],
    spec: CostSpec | None = None,
    **summary_options: Any,
) -> Any:
    """Convenience: :func:`build_ledgers` + :func:`summarize` as a pyarrow Table."""
    return to_arrow(summarize(build_ledgers(arrays, results, spec), **summary_options))


__all__ = ["SUMMARY_COLUMNS", "TEXT_COLUMNS", "ledger_table", "summarize", "to_arrow", "to_pandas"]
