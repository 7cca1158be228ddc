"""The HTML report of an evaluation: what a reader wants first comes first.

1. Overview: every run on one accuracy-vs-compute chart with the frontier; the runs; notes.
2. The compute-optimal choice per budget (figure with intervals; collapsed table with paired gains).
3. Per difficulty: a heatmap of the best strategy and its gain over one sample; the per-bin policy.
4. The Pareto frontier, efficiency ratios, saturation.
5. Every (model, strategy, k) with all costs (collapsed), and the market when given.
Plus one drill-down page per run (``questions/<run>.html``) and the CSV tables.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import numpy as np

from ttclab.analysis.evaluate import Evaluation, is_oracle
from ttclab.analysis.optimize import (
    Optimization,
    affordable_policy,
    choice_label,
    names_models,
    optimize,
    single_label,
    unaffordable_notes,
    without_model,
)
from ttclab.ledger.costs import unit_column
from ttclab.report.html import Report
from ttclab.tables import Table, write_csv

ESTIMATOR_NOTE = ("Accuracy is the exact expectation over random k-subsets of the stored samples where a closed form "
                  "exists (resampled where marked); intervals are 95% bootstrap intervals over questions, the same "
                  "question resamples for every strategy.")


def runs_table(ev: Evaluation, links: dict[str, str] | None = None) -> Table:
    from ttclab.store.summary import run_summary

    rows = []
    for part in ev.parts:
        run = part.run
        s = run_summary(run) | part.counts  # a pipeline run counts from its results (served traffic too)
        link = (links or {}).get(run.run_id, "")
        rows.append([s["model"], s["task"], s["questions"], s["samples_per_question"], s["errors"],
                     round(s.get("truncated_pct", float("nan")), 1), s["accuracy"], s["majority_accuracy"],
                     s["completion_tokens"], run.run_id, link])
    return Table(["model", "task", "questions", "N", "errors", "truncated %", "mean accuracy", "majority@N",
                  "completion tokens", "run", "questions page"], rows, decimals={"truncated %": 1})


def pipeline_bases(ev: Evaluation) -> dict[str, str]:
    """Each pipeline run's label in the evaluation -> its base model's label (run.json ``model.llm``: the
    display name an offline run of that model is labelled with), so the figures draw it in that colour."""
    return {led.model: str(part.run.meta["model"]["llm"]) for part in ev.parts
            if part.run.meta.get("kind") == "pipeline" and (part.run.meta.get("model") or {}).get("llm")
            for led in part.ledgers}


def interval(lo: Any, hi: Any) -> str:
    """``[0.327, 0.453]`` (signed for differences), ``-`` when undefined."""
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return "-"
    signed = lo < 0 or hi < 0
    return f"[{lo:+.3f}, {hi:+.3f}]" if signed else f"[{lo:.3f}, {hi:.3f}]"  # noqa: E501


def budget_range(row: dict[str, Any]) -> str:
    lo, hi = row["budget_from"], row["budget_to"]
    from ttclab.report.plots import si

    return si(lo) if lo == hi else f"{si(lo)}–{si(hi)}"


def with_interval(value: Any, lo: Any, hi: Any) -> str:
    """``0.731 [0.654, 0.801]``: a value and its 95% interval in one cell."""
    if value is None or not np.isfinite(value):
        return "-"
    signed = any(v is not None and np.isfinite(v) and v < 0 for v in (value, lo, hi))
    text = f"{value:+.3f}" if signed else f"{value:.3f}"
    ci = interval(lo, hi)
    return text if ci == "-" else f"{text} {ci}"


def choices_table(opt: Optimization, unit: str) -> Table:
    """The collapsed choices; a choice kept over a resampled estimate within its error is marked †. When
    the choices are made across models they name their model, and no model column repeats it."""
    rows = []
    for r in opt.choices:
        diff = with_interval(r["vs_runner_up"], r["vs_runner_up_ci_low"], r["vs_runner_up_ci_high"])
        rows.append([budget_range(r), r["model"], choice_label(r) + (" †" if r["note"] else ""),
                     with_interval(r["accuracy"], r["ci_low"], r["ci_high"]) if not r["reason"] else r["reason"],
                     r["cost"], with_interval(r["gain_vs_one_sample"], r["gain_ci_low"], r["gain_ci_high"]),
                     f"{r['runner_up']}: {diff}" if r["runner_up"] else "-"])
    table = Table(["budget", "model", "choice", "accuracy (95% CI)", "cost", "gain vs 1 sample (95% CI)",
                   "choice − runner-up (95% CI)"], rows)
    return without_model(table) if names_models(opt.choices) else table


def few(names: list[str], shown: int) -> str:
    """The first ``shown`` names, then how many more (all of them when one more would be left)."""
    return ", ".join(names) if len(names) <= shown + 1 else f"{', '.join(names[:shown])} and {len(names) - shown} more"


def difficulty_table(opt: Optimization, unit: str) -> Table:
    """The choice per difficulty (collapsed), named like the overall choices; a budget where a difficulty
    affords nothing is a note under the table, not a row of dashes."""
    rows = opt.by_difficulty_collapsed
    table = Table(["difficulty", f"budget from ({unit})", "to", "model", "choice", "accuracy", "one-sample accuracy",
                   "gain", "within error", "questions"],
                  [[r["difficulty"], r["budget_from"], r["budget_to"], r["model"], r["choice"] or f"{r['strategy']}@{r['k']}",
                    r["accuracy"], r["one_sample_accuracy"], r["gain"], few([t for t in (r["ties"] or "").split(", ") if t], 2),
                    r["n_questions"]]
                   for r in rows if not r["reason"]],
                  decimals={"gain": 3}, notes=unaffordable_notes([r for r in rows if r["reason"]], unit))
    return without_model(table) if names_models(rows) else table


def results_table(ev: Evaluation, column: str) -> Table:
    cols = ["model", "strategy", "k", "accuracy", "ci_low", "ci_high", column, "completion_tokens", "total_tokens",
            "flops", "usd", "latency_parallel_s", "estimator", "n_questions"]
    cols = list(dict.fromkeys(cols))
    return Table.from_records(ev.rows(), cols, [c.replace("_", " ") for c in cols])


def write_report(
    ev: Evaluation,
    out_dir: str | Path,
    *,
    unit: str | None = None,
    opt: Optimization | None = None,
    market: Any = None,
    title: str = "ttclab report",
    drilldown: bool = True,
    max_questions: int = 200,
    search: list[str | Path] | None = None,
) -> Path:
    """A self-contained HTML report (figures inlined as SVG, also saved as PNG/SVG), one per-question
    page per run, and CSV tables, in ``out_dir``."""
    from ttclab.report import plots

    out = Path(out_dir)
    opt = opt or optimize(ev, unit=unit)
    unit = opt.unit
    column = unit_column(unit)
    table = ev.table()
    links: dict[str, str] = {}
    if drilldown:
        from ttclab.report.drilldown import write_question_pages

        links = {rid: str(p.relative_to(out)) for rid, p in
                 write_question_pages(ev, out / "questions", max_questions=max_questions).items()}
    rep = Report(title, figure_dir=out / "figures", subtitle=f"{len(ev.runs)} run(s) · {opt.unit_note}. {ESTIMATOR_NOTE}",
                 meta=[f"truncated samples: {ev.options.truncated}", f"seed {ev.options.seed}"])

    bases = pipeline_bases(ev)
    figures = run_figures(ev, opt)
    sec = rep.section("Overview")
    on_frontier = _frontier_points(opt, len(set(table["model"].to_pylist())) > 1)
    sec.figure(figures["overview"], "overview",
               f"Expected accuracy against expected {unit} per question for every model (colour) and strategy (marker "
               "and line) at k = 1..N samples" + ("; a pipeline run is one point in its model's colour, its marker "
                                                  "names the pipeline" if bases else "") +
               "; light bars are 95% intervals. The black line is the compute-optimal "
               "frontier of deployable strategies: the best accuracy affordable at each budget, set by the circled "
               f"points ({on_frontier}) and flat after the last one. pass@k, an oracle, is faint and never "
               "chosen.")
    runs = runs_table(ev, links)
    sec.raw(_runs_html(runs, links))
    sec.notes(ev.notes)

    sec = rep.section("Compute-optimal choice")
    sec.figure(figures["compute_optimal"], "compute_optimal",
               "The most accurate affordable choice at each budget with its 95% interval, in its model's colour and "
               "its strategy's (or pipeline's) marker, as on the overview. A resampled estimate never beats an exact "
               "one by less than its standard error; a dashed ring: other strategies are within error (listed "
               "after ≈).")
    sec.table(choices_table(opt, unit), None, caption=f"budget and cost in {unit} per question; budgets that choose "
              "the same collapsed into one row; differences are paired over the same questions (bootstrap 95% intervals)")
    notes = [r["note"] for r in opt.choices if r.get("note")]
    if notes:
        sec.notes([f"† {n}" for n in dict.fromkeys(notes)])

    sec = rep.section("Per difficulty")
    sec.text(opt.difficulty_note, note=True)
    if opt.by_difficulty:
        none_fits = any(r["reason"] for r in opt.by_difficulty)
        sec.figure(plots.difficulty_heatmap(opt.by_difficulty, unit), "per_difficulty",
                   "Each cell: the compute-optimal strategy@k on that difficulty's questions at that budget (and its "
                   "model, when several compete), and its accuracy minus the chosen model's accuracy with one sample "
                   "(colour)." + (" —: nothing fits that budget on that difficulty's questions (a difficulty's costs "
                                  "are means over its own questions, so its cheapest point can cost more than the "
                                  "cheapest over all questions)." if none_fits else ""))
        if opt.policy:
            many = names_models(opt.by_difficulty)
            policy, left_out = affordable_policy(opt)
            sec.table(Table([f"budget ({unit})", "per-difficulty policy accuracy", "one choice for all", "its accuracy",
                             "policy gain", f"policy cost ({unit})"],
                            [[r["budget"], r["policy_accuracy"], single_label(r, many), r["single_accuracy"],
                              r["gain_over_single"], r["policy_cost"]] for r in policy],
                            decimals={"policy gain": 3}),
                      "per-difficulty policy vs one choice for all questions")
            sec.notes(left_out)
        per_bin = difficulty_table(opt, unit)
        sec.table(per_bin, "the choice per difficulty (budgets that choose the same collapsed)")
        sec.notes(per_bin.notes)

    sec = rep.section("Pareto frontier")
    sec.figure(figures["pareto"], "pareto",
               "Accuracy against cost of every deployable (model, strategy, k); the frontier points carry their "
               "strategy@k and 95% intervals.")
    sec.table(Table.from_records(opt.frontier, ["model", "strategy", "k", "accuracy", "ci_low", "ci_high", "cost"],
                                 ["model", "strategy", "k", "accuracy", "CI low", "CI high", f"cost ({unit})"]),
              "frontier points")
    if opt.efficiency:
        sec.text("Efficiency ratio: how many times more compute the baseline strategy needs than the compute-optimal "
                 "choice to reach the same accuracy.")
        sec.table(Table.from_records(opt.efficiency, ["baseline", "model", "target_accuracy", "ratio", "baseline_cost",
                                                      "optimal_cost", "reason"],
                                     ["baseline", "model", "target accuracy", "ratio", f"baseline cost ({unit})",
                                      f"optimal cost ({unit})", "note"]), "efficiency ratios")

    sec = rep.section("Saturation")
    sec.text("Budget beyond which doubling compute gains less than 0.01 accuracy, from a fitted saturating curve. "
             "A budget beyond the measured ones is an extrapolation and flagged as such, not a finding.")
    sec.notes(opt.saturation_notes)
    if opt.saturation:
        sec.table(Table.from_records(opt.saturation, ["model", "strategy", "finding", "asymptote", "form", "rmse",
                                                      "n_points"]), "saturation fits")

    sec = rep.section("All results")
    sec.table(results_table(ev, column), f"every (model, strategy, k): {len(table)} rows with all costs")

    if market is not None:
        from ttclab.report.market import market_section

        market_section(rep.section("Market"), market)

    for folder in search or []:  # `ttclab search` output folders: fronts, trajectory, the chosen graph
        from ttclab.report.search import search_section

        search_section(rep, folder)

    write_csv(ev.rows(), out / "evaluation.csv")
    write_csv(opt.best, out / "compute_optimal.csv")
    write_csv(opt.choices, out / "compute_optimal_collapsed.csv")
    if opt.by_difficulty:  # as ttclab optimize writes it, and collapsed as on the page (with every tie in full)
        write_csv(opt.by_difficulty, out / "per_difficulty.csv")
        write_csv(opt.by_difficulty_collapsed, out / "per_difficulty_collapsed.csv")
    return rep.write(out / "report.html")


def run_figures(ev: Evaluation, opt: Optimization) -> dict[str, Any]:
    """The figures that draw runs (``overview``, ``compute_optimal``, ``pareto``), all with one
    :func:`~ttclab.report.plots.run_styles` assignment: a run, a pipeline run above all, has one colour and
    one marker in every figure."""
    from ttclab.report import plots

    table = ev.table()
    column = unit_column(opt.unit)
    oracles = tuple(s for s in dict.fromkeys(map(str, table["strategy"].to_pylist())) if is_oracle(s))
    styles = plots.run_styles(table["model"].to_pylist(), table["strategy"].to_pylist(), pipeline_bases(ev))
    return {"overview": plots.overview(table, column, opt.unit, opt.frontier, oracles, styles=styles),
            "compute_optimal": plots.choice_plot(opt.best, opt.unit, styles),
            "pareto": plots.pareto_plot(table, column, opt.unit, opt.frontier, oracles, styles=styles)}


def _frontier_points(opt: Optimization, many: bool) -> str:
    from ttclab.optimize.optimal import point_name

    names = [point_name(r["model"], r["strategy"], r["k"], with_model=many) for r in opt.frontier]
    return few(names, 4) if names else "none"


def _runs_html(runs: Table, links: dict[str, str]) -> str:
    """The runs table with the drill-down page linked (the link column rendered as anchors)."""
    shown = Table(runs.headers[:-1], [r[:-1] for r in runs.rows], decimals=dict(runs.decimals))
    block = shown.html(caption="runs (truncated %: samples that hit max_tokens)")
    for run_id, href in links.items():
        anchor = f'<a href="{html.escape(href)}">{html.escape(run_id)}</a></td>'

        def link(m: re.Match[str], anchor: str = anchor) -> str:
            return m.group(1) + anchor

        block = re.sub(f"(<td[^>]*>){re.escape(html.escape(run_id))}</td>", link, block, count=1)
    return block


__all__ = ["pipeline_bases", "run_figures", "write_report"]
