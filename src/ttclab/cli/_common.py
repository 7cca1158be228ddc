"""Options every verb shares, defined once: ``--store``, ``--format``, ``--out`` (a folder).

``--store`` and ``--format`` also work before the verb (``ttclab --store X runs``): the global ones
are kept apart (``global_store``, ``global_format``) and fill in where the verb's own option is unset
(:func:`apply_global`); a verb's option after it wins.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ttclab.tables import FORMATS, Table

STORE_HELP = "store folder (default: $TTCLAB_STORE or ./runs)"


def add_global(parser: argparse.ArgumentParser) -> None:
    """The options accepted before the verb."""
    parser.add_argument("--store", dest="global_store", metavar="DIR", default=None, help=STORE_HELP)
    parser.add_argument("--format", dest="global_format", metavar="{table,csv,json}", default=None, choices=FORMATS,
                        help="table output: table (default), csv, json")


def apply_global(args: argparse.Namespace) -> argparse.Namespace:
    """The global --store / --format where the verb's own option was not given."""
    if getattr(args, "store", None) is None:
        args.store = args.global_store
    if getattr(args, "format", None) is None:
        args.format = args.global_format or "table"
    return args


def add_store(p: argparse.ArgumentParser, help: str = STORE_HELP) -> None:
    p.add_argument("--store", default=argparse.SUPPRESS, help=help)


def add_format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default=argparse.SUPPRESS, choices=FORMATS,
                   help="table output: table (default), csv or json")


def progress_of(args: argparse.Namespace) -> tuple[bool, Callable[[str], None] | None]:
    """(bar, lines) for a long verb: a bar on a terminal; without one, progress lines on stderr (a piped bar
    would print every update); neither with ``--no-progress``."""
    if args.no_progress:
        return False, None
    if sys.stderr.isatty():
        return True, None
    return False, lambda line: print(line, file=sys.stderr, flush=True)


def add_out(p: argparse.ArgumentParser, default: str | None, what: str, shown: str | None = None) -> None:
    """``-o/--out DIR``; ``shown`` says what the default is when it is not a fixed folder."""
    shown = shown or (f"default {default}" if default else "default: no files")
    p.add_argument("-o", "--out", default=default, metavar="DIR", help=f"output folder for {what} ({shown})")


def emit(tables: Table | Iterable[Table], args: argparse.Namespace, notes: Iterable[str] = ()) -> None:
    """Print tables in ``--format``; notes go under the text tables, or to stderr for csv / json."""
    fmt = getattr(args, "format", "table") or "table"
    items = [tables] if isinstance(tables, Table) else list(tables)
    notes = [n for n in notes if n]
    if fmt == "json" and len(items) > 1:
        import json

        print(json.dumps({t.title or f"table{i}": t.records() for i, t in enumerate(items)}, indent=1, default=str))
    else:
        print("\n\n".join(t.render(fmt) for t in items))
    stream = sys.stdout if fmt == "table" else sys.stderr
    for n in notes:
        print(f"note: {n}", file=stream)


def info(message: str, args: argparse.Namespace) -> None:
    """A line for people (stdout with text tables, stderr when stdout carries csv / json)."""
    print(message, file=sys.stdout if getattr(args, "format", "table") == "table" else sys.stderr)


def out_dir(args: argparse.Namespace) -> Path | None:
    return Path(args.out) if getattr(args, "out", None) else None


def value(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    return getattr(args, name, default)
