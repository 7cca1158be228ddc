"""``ttclab optimize RUN...``: the compute-optimal strategy and k per budget and per difficulty."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ttclab.cli.evaluate import add_analysis_args

    p = sub.add_parser("optimize", help="compute-optimal strategy per budget and per difficulty; efficiency ratios")
    add_analysis_args(p)
    p.add_argument("--budgets", help="comma-separated budgets in the unit (default: spread over the range)")
    p.add_argument("--bins", type=int, default=3, help="difficulty bins (default 3)")
    p.add_argument("--difficulty", choices=["oracle", "heldout"], default="oracle",
                   help="bins from the oracle pass rate, or predicted from a held-out half (Snell-style)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.analysis import optimize
    from ttclab.cli._table import format_table
    from ttclab.cli.evaluate import evaluation_from_args
    from ttclab.errors import ConfigError

    try:
        budgets = [float(b) for b in args.budgets.split(",")] if args.budgets else None
    except ValueError:
        raise ConfigError(f"--budgets: expected comma-separated numbers, got {args.budgets!r}") from None
    ev = evaluation_from_args(args)
    opt = optimize(ev, unit=args.unit, budgets=budgets, n_bins=args.bins, difficulty=args.difficulty, seed=args.seed)
    print(f"compute-optimal choice per budget ({args.unit} per question)")
    print(format_table([[r["budget"], r["model"], r["strategy"], r["k"], r["accuracy"], r["cost"]] for r in opt.best],
                       ["budget", "model", "strategy", "k", "accuracy", args.unit]))
    if opt.efficiency:
        print("\nefficiency ratio: baseline compute / compute-optimal compute at the same accuracy")
        print(format_table([[r["baseline"], r["model"], r.get("target_accuracy"), r.get("ratio"), r.get("reason", "")]
                            for r in opt.efficiency], ["baseline", "model", "target acc", "ratio", "note"]))
    print(f"\nper difficulty: {opt.difficulty_note}")
    if opt.by_difficulty:
        print(format_table([[r["bin"], r["budget"], r["strategy"], r["k"], r["accuracy"]] for r in opt.by_difficulty],
                           ["bin", "budget", "strategy", "k", "accuracy"]))
    return 0
