"""``ttclab evaluate RUN...``: every strategy at every budget k, with the compute ledger."""

from __future__ import annotations

import argparse


def add_analysis_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="*", help="run ids, prefixes or folders (default: every run in the store)")
    p.add_argument("--store", help="store folder (default: $TTCLAB_STORE or ./runs)")
    p.add_argument("--strategies", help="comma-separated strategy names (default: all that apply)")
    p.add_argument("--ks", help="comma-separated budgets k (default: powers of two up to N, and N)")
    p.add_argument("--unit", default="tokens", help="cost unit: tokens, flops, usd, latency, memory (default tokens)")
    p.add_argument("--prices", help="price file name or path (e.g. local, pricing_reversal_2026-02-28)")
    p.add_argument("--rm-model", help="reward model for best-of-N / weighted-vote costs")
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
                         seed=args.seed, store=args.store)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="strategies x budgets on stored runs: accuracy (exact) and compute ledger")
    add_analysis_args(p)
    p.add_argument("--out", default="out/evaluation.csv", help="CSV with every column (default out/evaluation.csv)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.analysis import write_csv
    from ttclab.cli._table import format_table
    from ttclab.ledger.costs import unit_column

    column = unit_column(args.unit)
    ev = evaluation_from_args(args)
    rows = ev.rows()
    print(format_table(
        [[r["model"], r["strategy"], r["k"], r["accuracy"], f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]",
          r["samples_used"], r[column], "exact" if r["exact"] else "resampled"] for r in rows],
        ["model", "strategy", "k", "accuracy", "95% CI", "samples", args.unit, "estimator"]))
    path = write_csv(rows, args.out)
    print(f"\nwrote {path} ({len(rows)} rows; all units and notes)")
    return 0
