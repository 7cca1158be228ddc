"""``ttclab rm RUN...``: delete runs from the store (asks first unless ``--yes``)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ttclab.cli._common import add_store

    p = sub.add_parser("rm", help="delete runs from the store (asks for confirmation unless --yes)")
    p.add_argument("runs", nargs="+", help="run ids, unique prefixes or run folders")
    add_store(p)
    p.add_argument("--yes", "-y", action="store_true", help="delete without asking")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    import sys

    from ttclab.errors import ConfigError

    runs = [_find(ref, args.store) for ref in args.runs]
    if not args.yes:
        if not sys.stdin.isatty():
            raise ConfigError("not deleting without confirmation (stdin is not a terminal); pass --yes to delete "
                              + ", ".join(r.path.name for r in runs))
        names = "\n".join(f"  {r.path}" for r in runs)
        answer = input(f"delete {len(runs)} run(s)?\n{names}\n[y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("nothing deleted")
            return 1
    for run in runs:
        _remove(run.path)
        print(f"deleted {run.path}")
    return 0


def _looks_like_run(path) -> bool:
    from ttclab.store.writer import META_FILE, QUESTIONS_FILE, SAMPLES_DIR

    return path.is_dir() and any((path / name).exists() for name in (META_FILE, QUESTIONS_FILE, SAMPLES_DIR))


def _find(ref: str, store: str | None):
    """A run by id / prefix / folder; a folder whose run.json is gone still counts."""
    from pathlib import Path

    from ttclab.store.reader import Run, open_run, store_root

    for path in (Path(ref), store_root(store) / ref):
        if _looks_like_run(path):
            return Run(path)
    return open_run(ref, store)


def _remove(path) -> None:
    import shutil

    from ttclab.errors import StoreError

    if not _looks_like_run(path):  # never delete a folder that is not a run
        raise StoreError(f"{path}: not a ttclab run folder (no run.json, questions.parquet or samples/); not deleted")
    shutil.rmtree(path)
