"""Evaluate stored runs: every strategy at every budget k, with the compute ledger.

Reads top to bottom: options -> each run turned into ledgers by its kind (``RUN_KINDS``) -> one
summary with bootstrap intervals shared by every strategy -> :class:`Evaluation`, which also answers
paired questions ("strategy A minus strategy B at these budgets, with a CI").

A run's kind is ``run.json``'s ``kind`` (default ``samples``: N stored samples per question). A new
kind of run -- e.g. an online pipeline, one accuracy point per pipeline with its own ledger -- slots
in by adding a function ``(run, options) -> RunLedgers`` to :data:`RUN_KINDS`; everything after
(summary, optimizer, report) works on ledgers and does not change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ttclab.errors import ConfigError, DataError
from ttclab.ledger.costs import CostSpec, StrategyLedger, build_ledgers, require_prices, unit_column, unit_name
from ttclab.ledger.summary import summarize, to_arrow
from ttclab.store.reader import Run, list_runs, open_run
from ttclab.strategies import SampleArrays, arrays_from_samples, evaluate
from ttclab.strategies.bootstrap import Interval, QuestionBootstrap
from ttclab.strategies.registry import DATA_KINDS, REGISTRY, available, get_strategy, missing_data

TRUNCATED_POLICIES: tuple[str, ...] = ("keep", "drop", "wrong")
"""What to do with samples that hit max_tokens (``finish_reason = length``): keep them as graded,
drop them (as if never sampled), or count them wrong (they never vote)."""

ORACLE_STRATEGIES = frozenset(s.name for s in REGISTRY.values() if s.oracle)


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate and how (see :func:`evaluate_runs`)."""

    strategies: tuple[str, ...] | None = None
    ks: tuple[int, ...] | None = None
    prices: str | None = None
    price_overrides: dict[str, dict[str, float]] | None = None
    rm_model: str | None = None
    seed: int = 0
    n_bootstrap: int = 1000
    truncated: str = "keep"

    def __post_init__(self) -> None:
        if self.truncated not in TRUNCATED_POLICIES:
            raise ConfigError(f"--truncated: unknown policy {self.truncated!r}; use one of: {', '.join(TRUNCATED_POLICIES)}")
        for name in self.strategies or ():
            get_strategy(name)  # one-line error naming the registered strategies


@dataclass
class RunLedgers:
    """What one run contributes: its sample arrays (None for kinds without them), ledgers, notes."""

    run: Run
    arrays: SampleArrays | None
    ledgers: list[StrategyLedger]
    notes: list[str] = field(default_factory=list)
    #: counts of the run's summary (:func:`~ttclab.store.summary.run_summary`) its kind knows better: a
    #: pipeline run's come from its results, served traffic without a reference included
    counts: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# runs of kind "samples"


def truncation_counts(samples: pa.Table) -> tuple[int, int]:
    """(truncated, successful) samples: ``finish_reason = length`` among the non-error rows."""
    ok = pc.fill_null(pc.not_equal(samples["verdict"], "error"), True)
    good = samples.filter(ok)
    if good.num_rows == 0:
        return 0, 0
    hit = pc.fill_null(pc.equal(good["finish_reason"], "length"), False)
    return int(pc.sum(hit).as_py() or 0), good.num_rows


def apply_truncated(samples: pa.Table, policy: str) -> pa.Table:
    """The samples table under a truncation policy (see :data:`TRUNCATED_POLICIES`)."""
    if policy == "keep":
        return samples
    hit = pc.fill_null(pc.and_(pc.equal(samples["finish_reason"], "length"), pc.not_equal(samples["verdict"], "error")),
                       False)
    if policy == "drop":
        return samples.filter(pc.invert(hit))
    cols = {name: samples[name] for name in samples.column_names}
    cols["answer"] = pc.if_else(hit, pa.scalar(None, pa.string()), samples["answer"])
    cols["verdict"] = pc.if_else(hit, pa.scalar("unparseable"), samples["verdict"])
    cols["correct"] = pc.if_else(hit, pa.scalar(False), samples["correct"])
    return pa.table(cols, schema=samples.schema)


def load_arrays(run: Run, truncated: str = "keep") -> SampleArrays:
    """A run's samples as dense arrays, under a truncation policy."""
    samples = apply_truncated(run.samples(), truncated)
    arrays = arrays_from_samples(samples, run.questions())
    return dataclasses.replace(arrays, model=run.model, run_id=run.run_id)


def run_model_name(run: Run) -> str:
    """The model's name for architectures and prices (the label is for display)."""
    return str((run.meta.get("model") or {}).get("name") or run.model)


def _strategies_for(arrays: SampleArrays, run: Run, opts: EvalOptions, notes: list[str]) -> list[str]:
    """The strategies to run: the asked ones whose data the run has (one note per skipped one)."""
    if opts.strategies is None:
        names = available(arrays)
        skipped = [f"{s} ({', '.join(missing_data(arrays, s))})" for s in REGISTRY if s not in names]
        if skipped:
            notes.append(f"run {run.run_id}: not applicable (missing data): {'; '.join(skipped)}")
        return names
    names = []
    for name in opts.strategies:
        missing = missing_data(arrays, name)
        if missing:
            notes.append(f"{name} skipped on run {run.run_id}: {DATA_KINDS[missing[0]]}")
        else:
            names.append(name)
    return names


def evaluate_sample_run(run: Run, label: str, opts: EvalOptions) -> RunLedgers:
    """Ledgers of every applicable strategy on a run of N samples per question."""
    notes: list[str] = []
    samples = run.samples()
    truncated, good = truncation_counts(samples)
    if good == 0:
        status = run.meta.get("status", "")
        what = f"all {samples.num_rows} samples are errors" if samples.num_rows else "no samples"
        return RunLedgers(run, None, [], [f"run {run.run_id} skipped: {what}{f' (status {status})' if status else ''}; "
                                          f"remove it with `ttclab rm {run.run_id}` or sample it again"])
    if truncated:
        notes.append(f"run {run.run_id}: {truncated} of {good} samples ({100 * truncated / good:.1f}%) hit max_tokens "
                     f"(truncated: {opts.truncated})")
    arrays = dataclasses.replace(load_arrays(run, opts.truncated), model=label)
    names = _strategies_for(arrays, run, opts, notes)
    if not names:
        notes.append(f"run {run.run_id}: no strategy to evaluate")
        return RunLedgers(run, arrays, [], notes)
    results = evaluate(arrays, names, opts.ks, rng=opts.seed)
    spec = CostSpec(model=run_model_name(run), rm_model=opts.rm_model, prices=opts.prices,
                    price_overrides=opts.price_overrides)
    return RunLedgers(run, arrays, build_ledgers(arrays, results, spec), notes)


RunKind = Callable[[Run, str, EvalOptions], RunLedgers]

RUN_KINDS: dict[str, RunKind | str] = {
    "samples": evaluate_sample_run,
    # a package above this layer is named, never imported here until a run of its kind is evaluated
    "pipeline": "ttclab.online.results:evaluate_pipeline_run",
}
"""How each kind of run becomes ledgers: ``fn(run, display_label, options) -> RunLedgers``, or
``"module:function"`` naming one (imported on first use, so higher layers plug in without a cycle)."""


def run_kind_function(kind: str) -> RunKind:
    """The ledger function of a run kind (resolving a ``"module:function"`` entry once)."""
    entry = RUN_KINDS[kind]
    if isinstance(entry, str):
        import importlib

        module, _, attr = entry.partition(":")
        entry = RUN_KINDS[kind] = getattr(importlib.import_module(module), attr)
    return entry


def is_oracle(strategy: str) -> bool:
    """Oracle points (they use the ground truth): oracle strategies such as pass@k, and online
    pipelines that used an oracle critic or scorer (labelled ``"name (oracle)"``). Never deployable."""
    return strategy in ORACLE_STRATEGIES or strategy.endswith(" (oracle)")


def run_kind(run: Run) -> str:
    return str(run.meta.get("kind") or "samples")


# --------------------------------------------------------------------------------------------------
# the evaluation of several runs


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` (accuracy) on the questions both runs share, with its paired bootstrap interval."""

    a: tuple[str, str, int]
    b: tuple[str, str, int]
    difference: float
    se: float
    ci_low: float
    ci_high: float
    n_questions: int
    paired: bool

    @property
    def within_error(self) -> bool:
        """The interval contains 0: the two cannot be told apart on these questions."""
        return bool(self.ci_low <= 0.0 <= self.ci_high) if np.isfinite(self.ci_low) else True


@dataclass
class Evaluation:
    """Every (run, strategy, k) with per-question accuracy and costs, and their summary."""

    parts: list[RunLedgers]
    summary: dict[str, np.ndarray]
    options: EvalOptions = field(default_factory=EvalOptions)
    notes: list[str] = field(default_factory=list)

    @property
    def runs(self) -> list[Run]:
        return [p.run for p in self.parts]

    @property
    def ledgers(self) -> list[StrategyLedger]:
        return [led for p in self.parts for led in p.ledgers]

    @property
    def sample_parts(self) -> list[RunLedgers]:
        """The runs with sample arrays (kind ``samples``)."""
        return [p for p in self.parts if p.arrays is not None]

    @property
    def arrays(self) -> list[SampleArrays]:
        return [p.arrays for p in self.sample_parts if p.arrays is not None]

    @property
    def spec(self) -> dict[str, Any]:
        return dataclasses.asdict(self.options)

    def table(self) -> Any:
        return to_arrow(self.summary)

    def rows(self) -> list[dict[str, Any]]:
        return self.table().to_pylist()

    def models(self) -> list[str]:
        return list(dict.fromkeys(str(m) for m in self.summary["model"]))

    def ledger(self, model: str, strategy: str) -> StrategyLedger:
        for led in self.ledgers:
            if led.model == model and led.strategy == strategy:
                return led
        raise DataError(f"no evaluated strategy {strategy!r} for model {model!r}")

    def default_unit(self) -> tuple[str, str]:
        """(unit, note): total_tokens, or completion_tokens when some run has no prompt-token counts."""
        total = np.asarray(self.summary["total_tokens"], dtype=float)
        completion = np.asarray(self.summary["completion_tokens"], dtype=float)
        lacking = sorted({str(m) for m, t, c in zip(self.summary["model"], total, completion)
                          if not np.isfinite(t) and np.isfinite(c)})
        if lacking:
            verb = "has" if len(lacking) == 1 else "have"
            return "completion_tokens", (f"budget axis: completion_tokens per question ({', '.join(lacking)} {verb} "
                                         "no prompt-token counts)")
        return "total_tokens", "budget axis: total_tokens per question (prompt + completion + reward-model)"

    def bootstrap(self, n_questions: int) -> QuestionBootstrap:
        """The question resamples every strategy on ``n_questions`` questions shares."""
        return QuestionBootstrap.draw(n_questions, max(self.options.n_bootstrap, 200), self.options.seed)

    def paired(self, a: tuple[str, str, int], b: tuple[str, str, int], mask: np.ndarray | None = None) -> PairedDifference:
        """``accuracy(a) - accuracy(b)`` for picks ``(model, strategy, k)``, paired over shared questions.

        Runs on different questions give an unpaired difference (SEs in quadrature, normal interval).
        ``mask`` restricts to a subset of the questions (e.g. one difficulty bin).
        """
        la, lb = self.ledger(a[0], a[1]), self.ledger(b[0], b[1])
        xa, sa = _column(la, a[2])
        xb, sb = _column(lb, b[2])
        if mask is not None:
            keep = np.asarray(mask, dtype=bool)
            xa, xb = np.where(keep, xa, np.nan), np.where(keep, xb, np.nan)
        if la.question_ids.shape == lb.question_ids.shape and np.array_equal(la.question_ids, lb.question_ids):
            both = np.isfinite(xa) & np.isfinite(xb)
            n = int(both.sum())
            with np.errstate(invalid="ignore", divide="ignore"):
                mc = float(np.sqrt(np.nansum(np.where(both, sa**2 + sb**2, 0.0))) / max(n, 1))
            if n == 0:
                return PairedDifference(a, b, np.nan, np.nan, np.nan, np.nan, 0, True)
            ci: Interval = self.bootstrap(xa.size).paired(xa, xb, mc)
            return PairedDifference(a, b, float(ci.mean[0]), float(ci.se[0]), float(ci.low[0]), float(ci.high[0]), n, True)
        ma, mb = np.nanmean(xa), np.nanmean(xb)
        na, nb = int(np.isfinite(xa).sum()), int(np.isfinite(xb).sum())
        se = float(np.sqrt(np.nanvar(xa, ddof=1) / na + np.nanvar(xb, ddof=1) / nb)) if min(na, nb) > 1 else np.nan
        z = self.bootstrap(1).z
        d = float(ma - mb)
        return PairedDifference(a, b, d, se, d - z * se, d + z * se, min(na, nb), False)


def _column(led: StrategyLedger, k: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.flatnonzero(np.asarray(led.k) == int(k))
    if idx.size == 0:
        raise DataError(f"strategy {led.strategy!r} of {led.model!r} was not evaluated at k={k}")
    return led.accuracy[:, idx[0]], np.nan_to_num(led.accuracy_se[:, idx[0]])


def resolve_runs(refs: Sequence[str] | None, store: str | Path | None = None) -> list[Run]:
    """Runs by reference, or every run in the store when none is given."""
    runs = [open_run(r, store) for r in refs] if refs else list_runs(store)
    if not runs:
        raise DataError("no runs to analyse; sample some first (ttclab sample CONFIG) or give run ids / folders")
    return runs


def check_unit(unit: str | None, prices: str | None, runs: Sequence[Run]) -> None:
    """Fail early, in one line, for a budget unit the runs cannot be priced in."""
    if unit is None:
        return
    unit_column(unit)
    if unit_name(unit) != "usd":
        return
    table = require_prices(prices)
    for run in runs:
        if run_kind(run) == "samples":
            table.get(run_model_name(run))  # one-line error naming the model and the file's models


def evaluate_runs(
    refs: Sequence[str] | None = None,
    *,
    strategies: Sequence[str] | None = None,
    ks: Sequence[int] | None = None,
    prices: str | Path | None = None,
    price_overrides: dict[str, dict[str, float]] | None = None,
    rm_model: str | None = None,
    seed: int = 0,
    n_bootstrap: int = 1000,
    truncated: str = "keep",
    unit: str | None = None,
    store: str | Path | None = None,
) -> Evaluation:
    """Evaluate strategies on stored runs at every budget k, with the compute ledger.

    Strategies whose data a run lacks are skipped with a note (``Evaluation.notes``); runs without
    samples are skipped with a note. ``unit`` (optional) is checked up front: ``usd`` without a price
    file, or with one that lacks a run's model, is a one-line error.
    """
    opts = EvalOptions(tuple(strategies) if strategies else None, tuple(int(k) for k in ks) if ks else None,
                       str(prices) if prices else None, price_overrides, rm_model, seed, n_bootstrap, truncated)
    runs = resolve_runs(refs, store)
    check_unit(unit, opts.prices, runs)
    labels = [r.model for r in runs]
    parts: list[RunLedgers] = []
    for run in runs:
        kind = run_kind(run)
        if kind not in RUN_KINDS:
            parts.append(RunLedgers(run, None, [], [f"run {run.run_id} skipped: kind {kind!r} is not evaluated here"]))
            continue
        label = f"{run.model} ({run.run_id[-6:]})" if labels.count(run.model) > 1 else run.model
        parts.append(run_kind_function(kind)(run, label, opts))
    used = [p for p in parts if p.ledgers]
    notes = [n for p in parts for n in p.notes]
    if not used:
        raise DataError("nothing to evaluate: " + " | ".join(notes) if notes else "nothing to evaluate")
    summary = summarize([led for p in used for led in p.ledgers], n_bootstrap=n_bootstrap,
                        seed=seed if n_bootstrap else None)
    return Evaluation(used, summary, opts, notes)


__all__ = ["EvalOptions", "Evaluation", "ORACLE_STRATEGIES", "PairedDifference", "RUN_KINDS", "RunLedgers",
           "TRUNCATED_POLICIES", "apply_truncated", "check_unit", "evaluate_runs", "evaluate_sample_run", "is_oracle",
           "load_arrays", "resolve_runs", "run_kind", "run_kind_function", "run_model_name", "truncation_counts"]
