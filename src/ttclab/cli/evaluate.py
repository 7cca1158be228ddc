"""``ttclab evaluate RUN...``: every strategy at every budget k, with the compute ledger."""

from __future__ import annotations

import argparse

from ttclab.cli._common import add_format, add_out, add_store


def add_analysis_args(p: argparse.ArgumentParser) -> None:
    """The options of every analysis verb (evaluate, optimize, report)."""
    from ttclab.analysis.evaluate import TRUNCATED_POLICIES

    p.add_argument("runs", nargs="*", help="run ids, prefixes or folders (default: every run in the store)")
    add_store(p)
    add_format(p)
    p.add_argument("--strategies", help="comma-separated strategy names (default: all that apply; see ttclab strategies)")
    p.add_argument("--ks", help="comma-separated budgets k (default: powers of two up to N, and N)")
    p.add_argument("--unit", help="budget unit: total_tokens (default; completion_tokens when a run has no prompt "
                                  "tokens; 'tokens' is its older name), completion_tokens, flops, usd, latency, memory")
    p.add_argument("--prices", help="price file name or path (see ttclab prices); needed for --unit usd")
    p.add_argument("--rm-model", help="reward model for best-of-N / weighted-vote costs")
    p.add_argument("--truncated", choices=TRUNCATED_POLICIES, default="keep",
                   help="samples that hit max_tokens: keep (default), drop, or count as wrong")
    p.add_argument("--seed", type=int, default=0, help="seed of resampled estimators and bootstrap (default 0)")


def evaluation_from_args(args: argparse.Namespace):
    from ttclab.analysis import evaluate_runs
    from ttclab.errors import ConfigError

    try:
        ks = [int(k) for k in args.ks.split(",")] if args.ks else None
    except ValueError:
        raise ConfigError(f"--ks: expected comma-separated integers, got {args.ks!r}") from None
    strategies = [s.strip() for s in args.strategies.split(",")] if args.strategies else None
    return evaluate_runs(args.runs, strategies=strategies, ks=ks, prices=args.prices, rm_model=args.rm_model,
                         seed=args.seed, truncated=args.truncated, unit=args.unit, store=args.store)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="strategies x budgets on stored runs: accuracy (exact) and compute ledger")
    add_analysis_args(p)
    add_out(p, "out/evaluate", "evaluation.csv (every column)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.cli._common import emit, info, out_dir
    from ttclab.ledger.costs import unit_column, unit_name
    from ttclab.tables import Table, write_csv

    ev = evaluation_from_args(args)
    if args.unit:
        unit = unit_name(args.unit)
        alias = f" (--unit {args.unit} is the older name of {unit})" if args.unit != unit else ""
        unit_note = f"budget axis: {unit} per question{alias}"
    else:
        unit, unit_note = ev.default_unit()
    column = unit_column(unit)
    rows = ev.rows()
    extra = [c for c in (column,) if c not in ("completion_tokens", "total_tokens")]
    cols = ["model", "strategy", "k", "accuracy", "ci_low", "ci_high", "completion_tokens", "total_tokens", *extra,
            "estimator"]
    table = Table.from_records(rows, cols, ["model", "strategy", "k", "accuracy", "CI low", "CI high",
                                            "completion tokens", "total tokens", *extra, "estimator"])
    notes = [*ev.notes, f"truncated samples: {ev.options.truncated}"]
    if any(r["total_tokens"] != r["total_tokens"] and r["completion_tokens"] == r["completion_tokens"] for r in rows):
        notes.append("total tokens '-': the run has no prompt-token counts (e.g. imported); completion tokens are shown")
    if unit_note:
        notes.append(unit_note)
    notes += _ks_above_n(ev)
    notes += few_questions_notes(rows)
    emit(table, args, notes)
    out = out_dir(args)
    if out is not None:
        path = write_csv(rows, out / "evaluation.csv")
        info(f"wrote {path} ({len(rows)} rows; every unit and note)", args)
    return 0


FEW_QUESTIONS = 10


def few_questions_notes(rows: list[dict]) -> list[str]:
    """Intervals are over questions: with one question there is no spread to resample (an interval of one
    question's value is a point, not a finding), with a handful they are rough."""
    counts = [int(r["n_questions"]) for r in rows if r.get("n_questions")]
    if not counts or min(counts) >= FEW_QUESTIONS:
        return []
    n = min(counts)
    if n == 1:
        return ["1 question: intervals are over questions, and one question has no spread to resample (a CI that is "
                "a point is not a precise finding); sample more questions (--limit) before reading differences"]
    return [f"only {n} questions: intervals over so few questions are rough; sample more (--limit) for a finding"]


def _ks_above_n(ev) -> list[str]:
    """A note per N for the asked budgets k above a run's N samples per question (their rows are '-')."""
    runs_by_n: dict[int, list[str]] = {}
    for part in ev.sample_parts:
        runs_by_n.setdefault(part.arrays.n_samples, []).append(part.run.run_id)
    notes = []
    for n, runs in sorted(runs_by_n.items()):
        above = [str(k) for k in ev.options.ks or () if k > n]
        if above:
            which = runs[0] if len(runs) == 1 else f"{len(runs)} runs"
            notes.append(f"k={','.join(above)} > N={n} samples per question ({which}): budgets above N cannot be "
                         "evaluated from stored samples ('-' rows)")
    return notes
