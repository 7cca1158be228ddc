"""``ttclab runs``: the runs in the store with counts, accuracy and tokens."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list stored runs with counts, accuracy and tokens")
    p.add_argument("--store", help="store folder (default: $TTCLAB_STORE or ./runs)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.cli._table import format_table
    from ttclab.store import list_runs, store_root
    from ttclab.store.summary import run_summary

    runs = list_runs(args.store)
    if not runs:
        print(f"no runs in {store_root(args.store)}")
        return 0
    keys = ["run_id", "model", "task", "status", "questions", "samples_per_question", "rows", "errors",
            "accuracy", "majority_accuracy", "completion_tokens", "tokens_per_s"]
    headers = ["run", "model", "task", "status", "questions", "N", "samples", "errors", "acc", "maj@N", "tokens", "tok/s"]
    from ttclab.errors import StoreError

    rows, notes = [], []
    for run in runs:
        try:
            s = run_summary(run)
        except StoreError as exc:  # one damaged run must not hide the others
            rows.append([run.path.name, "", "", "damaged"] + [None] * (len(keys) - 4))
            notes.append(str(exc))
            continue
        rows.append([s[k] for k in keys])
    print(format_table(rows, headers))
    for note in notes:
        print(note)
    return 0
