"""``ttclab optimize RUN...``: the compute-optimal strategy and k per budget and per difficulty."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ttclab.cli._common import add_out
    from ttclab.cli.evaluate import add_analysis_args

    p = sub.add_parser("optimize", help="compute-optimal strategy per budget and per difficulty; efficiency ratios")
    add_analysis_args(p)
    p.add_argument("--budgets", help="comma-separated budgets in the unit (default: spread over the range)")
    p.add_argument("--bins", type=int, default=3, help="difficulty bins (default 3: easy, medium, hard)")
    p.add_argument("--difficulty", choices=["oracle", "heldout"], default="oracle",
                   help="bins from the oracle pass rate, or predicted from a held-out half (Snell-style)")
    add_out(p, None, "compute_optimal.csv and per_difficulty.csv")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.analysis import optimize
    from ttclab.analysis.optimize import (
        affordable_policy,
        choice_label,
        names_models,
        single_label,
        unaffordable_notes,
        without_model,
    )
    from ttclab.cli._common import emit, info, out_dir
    from ttclab.cli.evaluate import evaluation_from_args, few_questions_notes
    from ttclab.errors import ConfigError
    from ttclab.tables import Table, write_csv

    try:
        budgets = [float(b) for b in args.budgets.split(",")] if args.budgets else None
    except ValueError:
        raise ConfigError(f"--budgets: expected comma-separated numbers, got {args.budgets!r}") from None
    if budgets is not None and not all(b > 0 and b == b and b != float("inf") for b in budgets):
        raise ConfigError(f"--budgets: every budget must be a positive number, got {args.budgets!r}")
    ev = evaluation_from_args(args)
    opt = optimize(ev, unit=args.unit, budgets=budgets, n_bins=args.bins, difficulty=args.difficulty, seed=args.seed)
    u = opt.unit
    best = Table([f"budget ({u})", "to", "model", "choice", "accuracy", "CI low", "CI high", f"cost ({u})",
                  "gain vs 1 sample", "gain CI", "runner-up", "choice − runner-up", "diff CI"],
                 [[r["budget_from"], r["budget_to"], r["model"], choice_label(r), r["accuracy"], r["ci_low"],
                   r["ci_high"], r["cost"], r["gain_vs_one_sample"], _ci(r["gain_ci_low"], r["gain_ci_high"]),
                   r["runner_up"], r["vs_runner_up"], _ci(r["vs_runner_up_ci_low"], r["vs_runner_up_ci_high"])]
                  for r in opt.choices],
                 title=f"compute-optimal choice per budget ({opt.unit_note}; budgets that choose the same collapsed)",
                 decimals=DIFFERENCES, notes=_no_choice_notes(opt.choices, u) + _no_difference_notes(ev))
    tables = [without_model(best) if names_models(opt.choices) else best]
    if opt.efficiency:
        tables.append(Table(["baseline", "model", "target accuracy", "ratio", "note"],
                            [[r["baseline"], r["model"], r.get("target_accuracy"), r.get("ratio"), r.get("reason", "")]
                             for r in opt.efficiency],
                            title="efficiency ratio: baseline compute / compute-optimal compute at the same accuracy"))
    if opt.by_difficulty:
        rows = opt.by_difficulty_collapsed
        shown = [r for r in rows if not r["reason"]]
        notes = unaffordable_notes([r for r in rows if r["reason"]], u)
        if args.difficulty == "heldout":
            notes.append("held-out: each choice is made on one half of every question's samples; accuracy, one sample "
                         "and gain are measured on the other half (a negative gain: the choice did not carry over)")
        one_bin = len({r["difficulty"] for r in rows}) == 1  # the policy is then the one choice, row for row
        if one_bin:
            notes.append("one difficulty bin (the questions' pass rates do not separate): a per-difficulty policy is "
                         "the single choice, so it is not tabled")
        many = names_models(rows)
        per_bin = Table(["difficulty", f"budget ({u})", "to", "model", "choice", "accuracy", "one sample", "gain"],
                        [[r["difficulty"], r["budget_from"], r["budget_to"], r["model"], choice_label(r),
                          r["accuracy"], r["one_sample_accuracy"], r["gain"]] for r in shown],
                        title=f"per difficulty: {opt.difficulty_note}", decimals=DIFFERENCES, notes=notes)
        tables.append(without_model(per_bin) if many else per_bin)
        policy, left_out = affordable_policy(opt)
        if not one_bin:
            tables.append(Table([f"budget ({u})", "to", "per-difficulty policy", "one choice for all", "its accuracy",
                                 "gain"],
                                [[lo, hi, r["policy_accuracy"], single_label(r, many), r["single_accuracy"],
                                  r["gain_over_single"]] for lo, hi, r in _collapsed_policy(policy, many)],
                                title="applying each difficulty's choice to its questions vs one choice for all",
                                decimals=DIFFERENCES, notes=left_out))
    if opt.saturation:
        tables.append(Table.from_records(opt.saturation, ["model", "strategy", "finding"], title="saturation"))
    notes = [*ev.notes, *opt.saturation_notes, *dict.fromkeys(r["note"] for r in opt.best if r.get("note")),
             *few_questions_notes(ev.rows())]
    if not opt.by_difficulty:
        notes.append(f"per difficulty: {opt.difficulty_note}")
    emit(tables, args, notes)
    out = out_dir(args)
    if out is not None:
        paths = [write_csv(opt.best, out / "compute_optimal.csv"),
                 write_csv(opt.choices, out / "compute_optimal_collapsed.csv")]
        if opt.by_difficulty:
            paths.append(write_csv(opt.by_difficulty, out / "per_difficulty.csv"))
        info("wrote " + ", ".join(map(str, paths)), args)
    return 0


def _collapsed_policy(policy: list[dict], many: bool) -> list[tuple[float, float, dict]]:
    """Consecutive budgets whose policy row reads the same (accuracies, the one choice, the gain) as one row
    from-to, as the other tables collapse budgets that buy nothing better (before: a dozen identical rows)."""
    from ttclab.analysis.optimize import single_label

    out: list[tuple[float, float, dict]] = []

    def same(a: dict, b: dict) -> bool:
        keys = ("policy_accuracy", "single_accuracy", "gain_over_single")
        return single_label(a, many) == single_label(b, many) and all(
            round(float(a[k]), 12) == round(float(b[k]), 12) for k in keys)

    for r in policy:
        if out and same(out[-1][2], r):
            out[-1] = (out[-1][0], r["budget"], out[-1][2])
        else:
            out.append((r["budget"], r["budget"], r))
    return out


def _no_choice_notes(choices: list[dict], unit: str) -> list[str]:
    """Why a budget's row chooses nothing ('—'), e.g. a budget below the cheapest point."""
    out = []
    for r in choices:
        if r.get("reason"):
            lo, hi = r["budget_from"], r["budget_to"]
            budget = f"{lo:.4g}" if lo == hi else f"{lo:.4g}–{hi:.4g}"
            out.append(f"budget {budget} {unit}: no choice ('—'): {r['reason']}")
    return out


def _no_difference_notes(ev) -> list[str]:
    """Every strategy at every budget with the same accuracy (e.g. every answer wrong): the 'choice' is only the
    cheapest of equals, not a finding."""
    values = {round(float(r["accuracy"]), 12) for r in ev.rows() if r["accuracy"] == r["accuracy"]}
    if len(values) != 1:
        return []
    return [f"every strategy has accuracy {values.pop():.3f} at every budget: there is nothing to choose between, "
            "the row lists the cheapest of equals"]


DIFFERENCES = {"gain vs 1 sample": 3, "choice − runner-up": 3, "gain": 3}
"""Differences of accuracies: three decimals in every row (never 8.33e-17 for a difference of 0)."""


def _ci(lo: float, hi: float) -> str:
    return f"[{lo:+.3f}, {hi:+.3f}]" if lo == lo and hi == hi else "-"
