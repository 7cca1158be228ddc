"""``ttclab sample CONFIG``: sample, verify and store; re-running resumes."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="sample models on a task N times per question, verify, store (resumable)")
    p.add_argument("config", help="YAML config (see configs/)")
    p.add_argument("--store", help="store folder (default: the config's store, $TTCLAB_STORE or ./runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.cli._table import format_table
    from ttclab.experiment import sample

    results = sample(args.config, progress=not args.no_progress, store=args.store)
    rows = []
    for r in results:
        s = r.summary
        rows.append([s["model"], s["questions"], s["rows"], s["errors"], s["accuracy"], s["majority_accuracy"],
                     s["completion_tokens"], r.stats.tokens_per_s, r.stats.generated, str(r.run.path)])
    print(format_table(rows, ["model", "questions", "samples", "errors", "acc", "maj@N", "tokens", "tok/s",
                              "new", "run"]))
    return 0 if all(r.summary["errors"] == 0 for r in results) else 1
