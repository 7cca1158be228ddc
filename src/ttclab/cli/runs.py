"""``ttclab runs``: the runs in the store with their status, counts, truncation, accuracy and tokens."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ttclab.cli._common import add_format, add_store

    p = sub.add_parser("runs", help="list stored runs: status, counts, truncated %%, accuracy, tokens")
    add_store(p)
    add_format(p)
    p.set_defaults(func=_main)


def status_of(summary: dict) -> str:
    """The run's status for people: empty and failed runs say so."""
    status = str(summary.get("status") or "unknown")
    if summary["rows"] == 0:
        return f"empty ({status})" if status not in ("", "unknown") else "empty"
    return status


def _main(args: argparse.Namespace) -> int:
    from ttclab.cli._common import emit, info
    from ttclab.errors import StoreError
    from ttclab.online.results import is_pipeline_run, pipeline_summary
    from ttclab.store import list_runs, store_root
    from ttclab.store.journal import check_tables
    from ttclab.store.summary import run_summary
    from ttclab.tables import Table

    runs = list_runs(args.store)
    if not runs:
        info(f"no runs in {store_root(args.store)}", args)
        return 0
    rows, notes = [], []
    for run in runs:
        try:
            s = run_summary(run)
            if is_pipeline_run(run):
                if (run.path / "results").is_dir():  # served traffic: unlabelled requests count
                    s |= pipeline_summary(run)
                check_tables(run.path)  # damage in calls, candidates, judgments (and results' other columns)
        except StoreError as exc:  # one damaged run must not hide the others
            try:  # its run.json may still say what it is
                model, task = run.model, str((run.meta.get("task") or {}).get("name", ""))
            except StoreError:
                model, task = "", ""
            rows.append([run.path.name, model, task, "damaged", None, None, None, None, None, None, None, None, None])
            notes.append(str(exc))
            continue
        rows.append([s["run_id"], s["model"], s["task"], status_of(s), s["questions"], s["samples_per_question"] or None,
                     s["rows"], s["errors"], s["truncated_pct"], s["accuracy"], s["majority_accuracy"],
                     s["completion_tokens"], s["latency_s_mean"]])
        if s.get("unlabelled"):
            notes.append(f"{s['run_id']}: {s['unlabelled']} of {s['rows']} served answers carry no reference "
                         "(ttc.reference): their tokens count here; acc is over the labelled ones")
        elif s["rows"] == 0:
            again = "run its pipeline again (ttclab run)" if is_pipeline_run(run) else "sample it again"
            notes.append(f"{s['run_id']} has no samples: {again}, or remove it with `ttclab rm {s['run_id']}`")
        elif s["status"] in ("interrupted", "failed"):
            why = run.meta.get("error") or "run.json says running but no process is writing it (killed?)"
            again = "`ttclab run PIPELINE`" if is_pipeline_run(run) else "`ttclab sample CONFIG`"
            notes.append(f"{s['run_id']} {s['status']}: {' '.join(str(why).split())[:160]}; the same {again} resumes it")
    table = Table(["run", "model", "task", "status", "questions", "N", "samples", "errors", "truncated %", "acc",
                   "maj@N", "completion tokens", "s per sample"], rows, decimals={"truncated %": 1, "s per sample": 2})
    emit(table, args, notes)
    return 0
