"""``ttclab import FORMAT FILE``: bring existing results into the store (plain or compressed files)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import results of other tools (strategic-ttc JSONL, counts CSV/Parquet)")
    p.add_argument("format", choices=["strategic-ttc", "counts"],
                   help="strategic-ttc: JSONL run files; counts: a table with columns problem, n, correct "
                        "[, model, difficulty]")
    p.add_argument("files", nargs="+", help="files (.gz, .bz2, .xz and .zst are read as well)")
    p.add_argument("--model", help="model name (default: from the file)")
    p.add_argument("--task", help="task name (default: the file's folder name / file name)")
    p.add_argument("--verifier", default=None,
                   help="strategic-ttc: grade every sample again with this verifier (default: keep the file's "
                        "own correct flags)")
    p.add_argument("--store", help="store folder (default: $TTCLAB_STORE or ./runs)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.errors import ConfigError
    from ttclab.store.importers import import_counts, import_strategic_ttc

    if args.format == "counts" and args.verifier:
        raise ConfigError("--verifier: a counts table has no answers to verify; drop --verifier")
    for file in args.files:
        if args.format == "counts":
            for run in import_counts(file, model=args.model, task=args.task, store=args.store):
                print(f"imported {file} -> {run.path} ({run.meta.get('n_samples', '?')} samples, correctness only)")
            continue
        run = import_strategic_ttc(file, model=args.model, task=args.task, verifier=args.verifier, store=args.store)
        print(f"imported {file} -> {run.path}")
        skipped = (run.meta.get("import") or {}).get("not_reverified") or []
        if skipped:
            first = skipped[0]
            names = ", ".join(s["question_id"] for s in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
            print(f"  {len(skipped)} question(s) could not be re-verified with {args.verifier} and keep the "
                  f"file's own flags: {names} (e.g. {first['question_id']}: {first['reason']})")
    return 0
