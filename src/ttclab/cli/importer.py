"""``ttclab import FORMAT FILE``: bring existing runs into the store."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import runs from other tools (strategic-ttc JSONL)")
    p.add_argument("format", choices=["strategic-ttc"], help="the file format")
    p.add_argument("files", nargs="+", help="run files")
    p.add_argument("--model", help="model name (default: from the file)")
    p.add_argument("--task", help="task name (default: the file's folder name)")
    p.add_argument("--verifier", default="numeric", help="verifier that extracts canonical answers (default numeric)")
    p.add_argument("--store", help="store folder (default: $TTCLAB_STORE or ./runs)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.store.importers import import_strategic_ttc

    for file in args.files:
        run = import_strategic_ttc(file, model=args.model, task=args.task, verifier=args.verifier, store=args.store)
        print(f"imported {file} -> {run.path}")
    return 0
