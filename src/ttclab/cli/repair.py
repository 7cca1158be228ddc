"""``ttclab repair RUN``: move damaged files of a run aside and regenerate their samples."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ttclab.store.integrity import RepairReport


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("repair", help="check a run's files, move damaged ones aside, regenerate their samples (a "
                                      "pipeline run: name the `ttclab run` that runs its lost questions again)")
    p.add_argument("run", help="run id (or a unique prefix) or run folder")
    p.add_argument("--store", help="store folder (default: $TTCLAB_STORE or ./runs)")
    p.add_argument("--no-regenerate", action="store_true", help="only move damaged files aside")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress while regenerating (without a terminal: lines, not a bar)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.cli._common import progress_of
    from ttclab.repair import repair

    bar, lines = progress_of(args)
    result = repair(args.run, store=args.store, regenerate=not args.no_regenerate, progress=bar, log=lines)
    report = result.report
    if report.meta_rebuilt:
        print(f"rebuilt run.json ({report.meta_rebuilt.split(';')[0]})")
    if report.questions_moved:
        where, why = report.questions_moved
        print(f"moved aside: {why.split(';')[0]} -> {where}")
    for where, why in report.moved:
        if ".missing." in where.name:  # nothing to move: what was lost is recorded there
            print(f"lost: {why.split(';')[0]} (its manifest entry kept in {where})")
        else:
            print(f"moved aside: {why.split(';')[0]} -> {where}")
    tables = report.tables
    if tables is not None:
        for name, rows in tables.kept.items():
            print(f"kept the {rows} intact row(s) of {name}")
        n = len(tables.dropped)
        if tables.unknown:
            print(f"dropped the results of all {n} finished question(s): the questions of the lost rows cannot be "
                  "told; they run again")
        elif tables.dropped:
            shown = ", ".join(map(str, tables.dropped[:20])) + (" ..." if n > 20 else "")
            print(f"dropped the results of {n} question(s) that lost calls, candidates or judgments ({shown}); "
                  "they run again")
        if tables.samples_dropped:
            print(f"dropped {tables.samples_dropped} samples/ row(s) of questions without a result")
    if not report.changed:
        print(f"{report.run_dir}: {_verified(report)}; nothing to repair")
    elif not report.lost:
        print(f"nothing lost: {_verified(report)}")
    elif result.regenerated:
        print(f"regenerated {result.regenerated} sample(s)")
    if result.note:
        print(result.note)
    return 0


def _verified(report: RepairReport) -> str:
    if report.tables is None:
        return f"all {report.ok_parts} part file(s) verified ({report.rows} rows)"
    counts = ", ".join(f"{name} {rows}" for name, rows in report.tables.rows.items())
    return f"all {report.ok_parts + report.tables.files} file(s) verified (samples {report.rows}, {counts} rows)"
