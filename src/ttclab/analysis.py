"""Offline analysis of stored runs: strategies × budgets with the compute ledger, the compute-optimal
choice, and the HTML report. Each CLI verb (evaluate / optimize / report) calls one function here.

Oracle strategies (``pass_at_k``) are reported but never chosen as compute-optimal: they need the
gold answer at inference time.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ttclab.errors import DataError
from ttclab.ledger.costs import CostSpec, StrategyLedger, build_ledgers, summarize, to_arrow, unit_column
from ttclab.store.reader import Run, list_runs, open_run
from ttclab.strategies import SampleArrays, arrays_from_samples, evaluate

ORACLE_STRATEGIES = frozenset({"pass_at_k"})


def is_oracle(strategy: str) -> bool:
    """Oracle strategies, and online pipeline runs that used the ground truth ("name (oracle)", issue 8)."""
    return strategy in ORACLE_STRATEGIES or strategy.endswith(" (oracle)")


@dataclass
class Evaluation:
    """Every (run, strategy, k) with per-question accuracy and costs, and their summary."""

    runs: list[Run]
    arrays: list[SampleArrays]
    ledgers: list[StrategyLedger]
    summary: dict[str, np.ndarray]
    spec: dict[str, Any] = field(default_factory=dict)

    def table(self) -> Any:
        return to_arrow(self.summary)

    def rows(self) -> list[dict[str, Any]]:
        return self.table().to_pylist()


def resolve_runs(refs: Sequence[str] | None, store: str | Path | None = None) -> list[Run]:
    """Runs by reference, or every run in the store when none is given."""
    runs = [open_run(r, store) for r in refs] if refs else list_runs(store)
    if not runs:
        raise DataError("no runs to analyse; sample some first (ttclab sample CONFIG) or give run ids / folders")
    return runs


def load_arrays(run: Run) -> SampleArrays:
    arrays = arrays_from_samples(run.samples(), run.questions())
    return dataclasses.replace(arrays, model=run.model, run_id=run.run_id)


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
    store: str | Path | None = None,
) -> Evaluation:
    """Evaluate strategies on stored runs at every budget k, with the compute ledger."""
    runs = resolve_runs(refs, store)
    labels = [r.model for r in runs]
    all_arrays, ledgers = [], []
    for run in runs:
        arrays = load_arrays(run)
        if labels.count(run.model) > 1:  # two runs of one model: keep their rows apart
            arrays = dataclasses.replace(arrays, model=f"{run.model} ({run.run_id[-6:]})")
        model_name = str((run.meta.get("model") or {}).get("name") or run.model)
        spec = CostSpec(model=model_name, rm_model=rm_model, prices=str(prices) if prices else None,
                        price_overrides=price_overrides)
        all_arrays.append(arrays)
        # --- online pipelines hook (issue 8): a pipeline run is one (pipeline, k=1) point with the full
        # ledger of all its calls (every role); the lead integrates this with the issue-12 restructuring.
        if run.meta.get("kind") == "pipeline":
            from ttclab.online.results import pipeline_ledgers

            ledgers += pipeline_ledgers(run, spec)
            continue
        # --- end of the online pipelines hook
        results = evaluate(arrays, strategies, ks, rng=seed)
        ledgers += build_ledgers(arrays, results, spec)
    summary = summarize(ledgers, n_bootstrap=n_bootstrap, rng=np.random.default_rng(seed) if n_bootstrap else None)
    return Evaluation(runs, all_arrays, ledgers, summary,
                      {"strategies": strategies, "ks": ks, "prices": str(prices) if prices else None, "seed": seed})


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        path.write_text("")
        return path
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


# --------------------------------------------------------------------------------------------------
# Optimise
# --------------------------------------------------------------------------------------------------


@dataclass
class Optimization:
    unit: str
    best: list[dict[str, Any]]  # per budget
    efficiency: list[dict[str, Any]]  # per baseline strategy and target accuracy
    by_difficulty: list[dict[str, Any]]  # per bin and budget (bin -1: the per-bin policy)
    difficulty_note: str
    frontier: list[dict[str, Any]]
    saturation: list[dict[str, Any]]


def _rows(columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    keys = list(columns)
    n = len(columns[keys[0]]) if keys else 0
    return [{k: _py(columns[k][i]) for k in keys} for i in range(n)]


def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def optimize(
    ev: Evaluation,
    *,
    unit: str = "tokens",
    budgets: Sequence[float] | None = None,
    n_bins: int = 3,
    difficulty: str = "oracle",
    baselines: Sequence[str] = ("majority", "best_of_n"),
    epsilon: float = 0.01,
    seed: int = 0,
) -> Optimization:
    """Compute-optimal strategy and k per budget, overall and per difficulty bin; efficiency ratios;
    Pareto frontier; saturation points. ``difficulty``: ``oracle`` (bins from the pass rate of all
    samples) or ``heldout`` (Snell-style: bins and choices from one half of each question's samples,
    accuracy measured on the other half)."""
    from ttclab.optimize.curves import Curves
    from ttclab.optimize.difficulty import difficulty_bins, heldout_split, optimal_by_bin, pass_rate
    from ttclab.optimize.optimal import compute_optimal, efficiency_ratio
    from ttclab.optimize.pareto import pareto_mask
    from ttclab.optimize.saturation import saturation_points, saturation_table

    unit_column(unit)  # one-line error for an unknown unit
    curves = Curves.from_summary(ev.summary, unit)
    deploy = curves.select(np.array([not is_oracle(s) for s in curves.strategy], dtype=bool))
    if not deploy.valid.any():
        raise DataError(f"no strategy has a finite accuracy and {unit} cost; try --unit tokens or give --prices")
    best = _rows(compute_optimal(deploy, budgets))
    efficiency = []
    for base in baselines:
        if base in set(deploy.strategy):
            for model in sorted(set(deploy.model)):
                try:
                    r = efficiency_ratio(deploy, base, model=model)
                except DataError as exc:  # e.g. no cost for the baseline in this unit
                    efficiency.append({"baseline": base, "model": model, "ratio": float("nan"), "reason": str(exc)})
                    continue
                efficiency += [{"baseline": base, "model": model, **row} for row in _rows(r)]
    mask = pareto_mask(deploy.cost, deploy.accuracy)
    frontier = [{"model": deploy.model[i], "strategy": deploy.strategy[i], "k": int(deploy.k[i]),
                 "accuracy": float(deploy.accuracy[i]), "cost": float(deploy.cost[i])} for i in np.flatnonzero(mask)]
    frontier.sort(key=lambda r: r["cost"])
    sat = _rows(saturation_table(saturation_points(deploy, epsilon=epsilon)))

    by_bin: list[dict[str, Any]] = []
    note = ""
    deploy_ledgers = [lg for lg in ev.ledgers if not is_oracle(lg.strategy)]
    ids = [tuple(a.question_ids) for a in ev.arrays]
    if len(set(ids)) != 1:
        note = "per-difficulty choice needs runs on the same questions; these runs differ"
    elif difficulty == "oracle":
        score = np.nanmean(np.stack([pass_rate(a) for a in ev.arrays]), axis=0)
        bins = difficulty_bins(score, n_bins)
        by_bin = _rows(optimal_by_bin(deploy_ledgers, unit, bins, budgets))
        note = f"{n_bins} bins by oracle pass rate over all samples (0 = hardest)"
    elif difficulty == "heldout":
        rng = np.random.default_rng(seed)
        select_l, eval_l, scores = [], [], []
        for run, arrays in zip(ev.runs, ev.arrays):
            sel, evl = heldout_split(arrays, rng)
            spec = CostSpec(model=str((run.meta.get("model") or {}).get("name") or run.model),
                            prices=ev.spec.get("prices"))
            strategies = sorted({lg.strategy for lg in deploy_ledgers if lg.run_id == arrays.run_id})
            ks = sorted({int(k) for lg in deploy_ledgers if lg.run_id == arrays.run_id for k in lg.k})
            n_half = int(min(sel.n_per_question.min(), evl.n_per_question.min()))
            ks = [k for k in ks if k <= n_half] or [1]
            select_l += build_ledgers(sel, evaluate(sel, strategies, ks, rng=seed), spec)
            eval_l += build_ledgers(evl, evaluate(evl, strategies, ks, rng=seed), spec)
            scores.append(pass_rate(sel))
        bins = difficulty_bins(np.nanmean(np.stack(scores), axis=0), n_bins)
        by_bin = _rows(optimal_by_bin(select_l, unit, bins, budgets, evaluate=eval_l))
        note = (f"{n_bins} bins predicted from a held-out half of each question's samples; choices made on that "
                "half, accuracy measured on the other half (k up to half of N)")
    else:
        raise DataError(f"difficulty must be 'oracle' or 'heldout', got {difficulty!r}")
    return Optimization(unit, best, efficiency, by_bin, note, frontier, sat)


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def write_report(
    ev: Evaluation,
    out_dir: str | Path,
    *,
    unit: str = "tokens",
    opt: Optimization | None = None,
    market: Any = None,
    title: str = "ttclab report",
) -> Path:
    """A self-contained HTML report (figures inlined as SVG, also saved as PNG/SVG) plus CSV tables."""
    from ttclab.report.html import Report
    from ttclab.report.plots import difficulty_plot, pareto_plot, scaling_curves
    from ttclab.store.summary import run_summary

    out = Path(out_dir)
    opt = opt or optimize(ev, unit=unit)
    column = unit_column(unit)
    rep = Report(title, figure_dir=out / "figures",
                 subtitle=f"{len(ev.runs)} run(s); costs in {unit}; accuracy is the exact expectation over random "
                          "k-subsets of the stored samples (resampled where marked), 95% bootstrap intervals over questions.")
    runs = rep.section("Runs")
    rows = []
    for run in ev.runs:
        s = run_summary(run)
        rows.append([s["model"], s["task"], s["questions"], s["samples_per_question"], s["errors"], s["accuracy"],
                     s["majority_accuracy"], s["completion_tokens"], run.run_id])
    runs.table(rows, ["model", "task", "questions", "N", "errors", "accuracy", "maj@N", "tokens", "run"])

    table = ev.table()
    scaling = rep.section("Accuracy vs compute")
    for i, model in enumerate(sorted(set(table["model"].to_pylist()))):
        scaling.figure(scaling_curves(table, column, unit, model=model), f"accuracy_vs_compute_{i}",
                       f"{model}: each strategy's expected accuracy at k = 1..N samples against its expected {unit} "
                       "per question; bands are 95% intervals over questions.")
    cols = ["model", "strategy", "k", "accuracy", "ci_low", "ci_high", "samples_used", column, "exact"]
    data = table.select(cols).to_pylist()
    scaling.table([[r[c] for c in cols] for r in data], cols)

    best = rep.section("Compute-optimal choice")
    best.table([[r["budget"], r["model"], r["strategy"], r["k"], r["accuracy"], r["cost"]] for r in opt.best],
               ["budget", "model", "strategy", "k", "accuracy", unit], "the most accurate affordable choice per budget")
    if opt.efficiency:
        best.text("Efficiency ratio: how many times more compute the baseline strategy needs than the "
                  "compute-optimal choice to reach the same accuracy.")
        best.table([[r["baseline"], r["model"], r.get("target_accuracy"), r.get("baseline_cost"),
                     r.get("optimal_cost"), r.get("ratio"), r.get("reason", "")] for r in opt.efficiency],
                   ["baseline", "model", "target accuracy", "baseline cost", "optimal cost", "ratio", "note"])
    diff = rep.section("Per difficulty")
    diff.text(opt.difficulty_note, note=True)
    if opt.by_difficulty:
        diff.figure(difficulty_plot(opt.by_difficulty), "per_difficulty",
                    "Accuracy of the compute-optimal choice in each difficulty bin, by budget.")
        keys = [k for k in ("bin", "budget", "model", "strategy", "k", "accuracy", "cost", "single_strategy",
                            "single_k", "single_accuracy") if k in opt.by_difficulty[0]]
        diff.table([[r[k] for k in keys] for r in opt.by_difficulty], keys)

    from ttclab.optimize.pareto import pareto_mask

    par = rep.section("Pareto frontier")
    cost = np.asarray(table[column].to_pylist(), dtype=float)
    acc = np.asarray(table["accuracy"].to_pylist(), dtype=float)
    oracle = np.array([is_oracle(s) for s in table["strategy"].to_pylist()], dtype=bool)
    mask = pareto_mask(np.where(oracle, np.nan, cost), acc)
    par.figure(pareto_plot(table, column, unit, mask), "pareto", "Accuracy vs cost of every (model, strategy, k); "
               "the line is the frontier of deployable strategies (pass@k is an oracle and excluded).")
    par.table([[r["model"], r["strategy"], r["k"], r["accuracy"], r["cost"]] for r in opt.frontier],
              ["model", "strategy", "k", "accuracy", unit])

    sat = rep.section("Saturation")
    sat.text(f"Budget beyond which doubling compute gains less than 0.01 accuracy, from a fitted saturating curve "
             f"(unit: {unit}).")
    if opt.saturation:
        keys = [k for k in opt.saturation[0] if not k.endswith("_se")]
        sat.table([[r[k] for k in keys] for r in opt.saturation], keys)

    if market is not None:
        sec = rep.section("Market")
        sec.text(f"Market '{market.name}': equilibrium vs optimum at each β, and the reverse second-price auction.")
        summary = market.summary_rows()
        if summary:
            keys = list(summary[0])
            sec.table([[r[k] for k in keys] for r in summary], keys)
        auction = market.auction_dict()
        sec.table([[k, v] for k, v in auction.items() if not isinstance(v, (list, dict))], ["auction", "value"])

    write_csv(ev.rows(), out / "evaluation.csv")
    write_csv(opt.best, out / "compute_optimal.csv")
    return rep.write(out / "report.html")


# --------------------------------------------------------------------------------------------------
# Market providers from stored runs
# --------------------------------------------------------------------------------------------------


def market_curves(
    refs: Sequence[str] | None = None,
    *,
    strategy: str = "majority",
    levels: Sequence[int] | None = None,
    store: str | Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Scaling curves for :func:`ttclab.market.providers.providers_from_curves`: one provider per run,
    selling ``strategy`` at compute levels k (its exact expected accuracy and output tokens per query)."""
    ev = evaluate_runs(refs, strategies=[strategy], ks=levels, n_bootstrap=0, store=store)
    curves: dict[str, dict[str, Any]] = {}
    for run, arrays in zip(ev.runs, ev.arrays):
        rows = [r for r in ev.rows() if r["model"] == arrays.model and r["strategy"] == strategy]
        rows = [r for r in rows if np.isfinite(r["accuracy"]) and np.isfinite(r["completion_tokens"])]
        if not rows:
            raise DataError(f"run {run.run_id}: strategy {strategy!r} has no finite accuracy; pick another strategy")
        curves[arrays.model] = {
            "levels": [r["k"] for r in rows], "accuracy": [r["accuracy"] for r in rows],
            "tokens_per_query": [r["completion_tokens"] for r in rows],
            "model": str((run.meta.get("model") or {}).get("name") or run.model),
        }
    return curves
