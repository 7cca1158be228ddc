"""``--record DIR``: every request stored as online-pipeline runs, so ``ttclab evaluate`` reads traffic.

One run per (model, strategy, endpoint) -- ``DIR/serve-majority-8-smollm2-135m-<hash>/`` -- of kind
``pipeline`` (the online issue's layout): each strategy run of a request (one per choice) is a
question, with every call (generator, judge, critic, reward model; failed and cancelled ones as
error rows) in ``calls/``, its candidates, judgments and final answer. Calls are journaled as they
finish (crash-safe, :mod:`ttclab.store.journal`). Every few seconds and when the server stops,
``questions.parquet`` and ``samples/`` catch up with what was recorded since the last time: only the
new requests are converted (the questions file is rewritten from Arrow tables kept in memory; new
samples are one more part, and the parts are merged once there are :data:`COMPACT_PARTS` of them),
so a flush does not grow with the traffic recorded before it. The first flush after the server
starts rebuilds ``samples/`` from the results table (catching up after a crash). A request that carries
``ttc.reference`` is graded; an unlabelled one has verdict ``unlabelled`` (its costs count, its
correctness is unknown). Restarting the server appends to the same runs.

Question rows are journaled in ``serve_questions.jsonl`` (checksummed lines as the pipeline journals'):
a torn last line is dropped; a damaged line is recovered from ``questions.parquet`` (the damaged file
kept in ``damaged/``) or, when it never reached it, refuses to open that run (a 503 naming the line),
because the questions after a skipped one would take its index.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from ttclab import __version__
from ttclab.errors import StoreError
from ttclab.online.runner import _slug, result_sample, write_samples
from ttclab.store.integrity import DAMAGED_DIR, RunContext, compact_parts, read_parts, visible_parts
from ttclab.store.journal import TableLog, compact_table, journal_line, journal_rows
from ttclab.store.schema import PIPELINE_TABLES, QUESTIONS_SCHEMA, SAMPLES_SCHEMA, SCHEMA_VERSION, rows_table
from ttclab.store.writer import (
    META_FILE,
    QUESTIONS_FILE,
    SAMPLES_DIR,
    SampleWriter,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_table,
)
from ttclab.tasks.base import Question

QUESTIONS_JOURNAL = "serve_questions.jsonl"
UNLABELLED = "unlabelled"
#: samples/ parts of a recorded run merged into one once there are this many.
COMPACT_PARTS = 16


def recorded_questions(run_dir: Path) -> tuple[list[dict[str, Any]], bool]:
    """The question rows of a recorded run, from its questions journal (checksummed lines, a torn last
    line ignored: :mod:`ttclab.store.journal`), and whether damaged lines were recovered. Row ``i`` is
    line ``i + 1``; a damaged line's row is taken from ``questions.parquet`` (rewritten at every flush)
    when it is there, else this is a StoreError naming the line (a lost question is never skipped: the
    questions after it would take its index)."""
    path = run_dir / QUESTIONS_JOURNAL
    if not path.exists():
        return [], False
    rows, bad = journal_rows(path, QUESTIONS_SCHEMA, run_dir)
    if not bad:
        return [row for _, row in rows], False
    by_line = dict(rows)
    saved = _saved_questions(run_dir)
    out = []
    for line in range(1, len(rows) + len(bad) + 1):
        row = by_line.get(line) or saved.get(line - 1)
        if row is None:
            why = dict(bad).get(line, "missing")
            raise StoreError(f"{path}:{line}: damaged ({why}) and its question is not in {QUESTIONS_FILE}; "
                             f"record to another folder, or move {run_dir} aside")
        out.append(row)
    return out, True


def _ends_whole(path: Path) -> bool:
    """The file is missing, empty or ends with a newline (no torn last write to append after)."""
    try:
        with open(path, "rb") as fh:
            if fh.seek(0, os.SEEK_END) == 0:
                return True
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"
    except FileNotFoundError:
        return True


def _saved_questions(run_dir: Path) -> dict[int, dict[str, Any]]:
    """``questions.parquet``'s rows by question index (none when it is missing or unreadable)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(run_dir / QUESTIONS_FILE, page_checksum_verification=True)
    except (OSError, pa.ArrowException):
        return {}
    fields = [f for f in QUESTIONS_SCHEMA.names if f != "run_id" and f in table.column_names]
    return {r["question_index"]: r for r in table.select(fields).to_pylist()}


class RecordedRun:
    """One run folder being appended to (held locked while the server runs)."""

    def __init__(self, root: Path, run_id: str, meta: dict[str, Any]) -> None:
        self.run_id = run_id
        self.dir = root / run_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.dir / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise StoreError(f"{self.dir}: another ttclab process is writing this run; stop it or record "
                             "to another folder") from None
        self.meta = meta
        self.journal = self.dir / QUESTIONS_JOURNAL
        try:
            self.questions, recovered = recorded_questions(self.dir)
            if recovered or not _ends_whole(self.journal):  # rewritten whole: appending continues a whole file
                if recovered:  # the damaged journal is kept aside; a torn last line (a crash) is just dropped
                    (self.dir / DAMAGED_DIR).mkdir(exist_ok=True)
                    shutil.copy2(self.journal,
                                 self.dir / DAMAGED_DIR / f"{QUESTIONS_JOURNAL}.{datetime.now(UTC):%Y%m%dT%H%M%S}")
                atomic_write_bytes(self.journal, b"".join(journal_line(q) for q in self.questions))
        except BaseException:  # unlocked now, not when the error is collected: a retry says why again
            self._lock.close()
            raise
        self.logs = {name: TableLog(self.dir, name, flush_rows=500) for name in PIPELINE_TABLES}
        self.dirty = True
        self._question_tables: list[pa.Table] = []  # questions[:self._converted] as Arrow, for questions.parquet
        self._converted = 0
        self._new_results: list[dict[str, Any]] = []  # results rows not yet in samples/
        self._caught_up = False  # samples/ rebuilt from the results table since this server started
        if not (self.dir / META_FILE).exists():
            atomic_write_json(self.dir / META_FILE, {**meta, "status": "running"})

    def new_question(self, row: dict[str, Any]) -> int:
        index = len(self.questions)
        row = {"question_index": index, **row}
        self.questions.append(row)
        with open(self.journal, "ab") as fh:
            fh.write(journal_line(row))
        self.dirty = True
        return index

    def flush(self) -> None:
        """Bring questions.parquet and samples/ up to date with what is recorded (new rows only)."""
        if not self.dirty:
            return
        for log in self.logs.values():
            log.flush()
        self._write_questions()
        if not self._caught_up:  # once per server start: samples/ from every stored result
            questions = [Question(q["question_id"], q["question"] or "", q["gold"] or "") for q in self.questions]
            write_samples(self.dir, self.run_id, self.meta["model"]["label"], questions)
            self._caught_up = True
        else:
            self._append_samples()
        self._new_results.clear()
        meta = {**self.meta, "n_questions": len(self.questions), "status": "running",
                "updated_at": datetime.now(UTC).isoformat()}
        atomic_write_json(self.dir / META_FILE, meta)
        self.dirty = False

    def add_result(self, row: dict[str, Any]) -> None:
        """A finished request's results row (journaled now, in samples/ at the next flush)."""
        self.logs["results"].add(row)
        self._new_results.append(row)
        self.dirty = True

    def _write_questions(self) -> None:
        new = self.questions[self._converted:]
        if new or not self._question_tables:
            self._question_tables.append(rows_table(
                [{**{k: v for k, v in q.items() if k != "run_id"}, "run_id": self.run_id} for q in new],
                QUESTIONS_SCHEMA))
            self._converted = len(self.questions)
        if len(self._question_tables) > COMPACT_PARTS:
            self._question_tables = [pa.concat_tables(self._question_tables).combine_chunks()]
        atomic_write_table(self.dir / QUESTIONS_FILE, pa.concat_tables(self._question_tables))

    def _append_samples(self) -> None:
        label = self.meta["model"]["label"]
        rows = [row for r in self._new_results if (row := result_sample(self.run_id, label, r)) is not None]
        samples = self.dir / SAMPLES_DIR
        if rows:
            SampleWriter(self.dir).write_table(rows_table(rows, SAMPLES_SCHEMA))
        parts = visible_parts(samples)
        if len(parts) >= COMPACT_PARTS:  # the server holds the run's lock
            ctx = RunContext(self.dir, run_id=self.run_id, n_questions=len(self.questions))
            merged = pa.concat_tables(read_parts(samples, ctx))
            compact_parts(samples, merged, parts[-1].stem.split("-")[1])

    def close(self) -> None:
        self.dirty = True
        self.flush()
        for log in self.logs.values():
            log.close()
        for name in PIPELINE_TABLES:
            compact_table(self.dir, name)
        atomic_write_json(self.dir / META_FILE, {**self.meta, "n_questions": len(self.questions), "status": "complete",
                                                  "finished_at": datetime.now(UTC).isoformat()})
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()


class Recording:
    """One strategy run of a request being recorded (a question of its run)."""

    def __init__(self, run: RecordedRun, index: int, question_id: str, labelled: bool) -> None:
        self.run = run
        self.index = index
        self.question_id = question_id
        self.labelled = labelled
        self.calls = run.logs["calls"]

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def finish(self, q: Any, outcome: Any, final: Any) -> None:
        """Store the run's candidates, judgments and result row."""
        logs = self.run.logs
        for c in q.candidates.values():
            logs["candidates"].add(c.row(self.run_id))
        for j in q.judgments:
            logs["judgments"].add(j)
        ok = final is not None and outcome.error is None
        if not ok:
            verdict = "error" if outcome.error else "unparseable"
        elif not self.labelled:
            verdict = UNLABELLED
        else:
            verdict = final.verdict or "unparseable"
        rows = [r for r in outcome.rows]
        self.run.add_result({
            "run_id": self.run_id, "question_index": self.index, "question_id": self.question_id,
            "candidate_id": final.id if ok else None, "text": final.text if ok else None,
            "answer": final.answer if ok else None, "verdict": verdict,
            "correct": bool(ok and self.labelled and final.correct), "n_calls": len(rows),
            "prompt_tokens": sum(int(r["prompt_tokens"] or 0) for r in rows),
            "completion_tokens": sum(int(r["completion_tokens"] or 0) for r in rows),
            "latency_s": sum(float(r["latency_s"] or 0.0) for r in rows), "wall_s": None,
            "notes": "; ".join(q.notes) or None, "error": outcome.error, "created_at": datetime.now(UTC),
            "finish_reason": final.finish_reason if ok else None,
        })


class Recorder:
    """The recorded runs of a server, by (model, strategy, endpoint)."""

    def __init__(self, root: str | Path, gateway_config: Any) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = gateway_config
        self.runs: dict[str, RecordedRun] = {}

    def run_for(self, job: Any) -> RecordedRun:
        label = job.plan.label
        served = job.served
        identity: dict[str, Any] = {"model": served.identity, "strategy": label, "chat": job.chat,
                                    "verifier": self.config.verifier.model_dump(mode="json")}
        if job.plan.strategy == "pipeline":
            identity["pipeline"] = self.config.pipelines.get(job.plan.pipeline)
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
        run_id = f"serve-{_slug(label)}-{_slug(served.name)}-{digest}"
        run = self.runs.get(run_id)
        if run is None:
            # /v1/completions traffic is its own run: its label says so (chat's is the plain one)
            endpoint = "" if job.chat else ", completions"
            model_label = f"{served.name} ({label}{endpoint})"
            meta = {
                "schema_version": SCHEMA_VERSION, "run_id": run_id, "kind": "pipeline",
                "name": f"serve {label}{' /v1/completions' if not job.chat else ''}",
                "created_at": datetime.now(UTC).isoformat(), "ttclab_version": __version__,
                "identity": identity, "source": "ttclab serve",
                "pipeline": {"name": label, "file": None, "description": f"ttclab serve traffic ({label})",
                             "oracle": False, "steps": [], "seed": None, "final": job.final, "budget": None},
                "model": {"name": served.spec.name, "label": model_label, "backend": served.spec.backend,
                          "llm": served.name},
                "task": {"name": "serve traffic", "source": "serve"}, "verifier": self.config.verifier.name,
                "samples": 1, "prices": self.config.prices,
                "samples_semantics": "one row per strategy run (a request's choice): its final answer; tokens and "
                                     "latency are the totals over all its calls",
            }
            try:
                run = self.runs[run_id] = RecordedRun(self.root, run_id, meta)
            except StoreError as exc:  # the client gets why (and the server's log one line), not a traceback
                from ttclab.serve.protocol import APIError

                raise APIError(503, f"cannot record this request: {exc}", type="server_error",
                               code="record_failed") from None
        return run

    def begin(self, job: Any, choice: int) -> Recording:
        run = self.run_for(job)
        prompt = job.prompt_of(choice)
        from ttclab.serve.gateway import question_text

        qid = f"{job.rid}-{choice}"
        index = run.new_question({
            "question_id": qid, "question": question_text(prompt),
            "prompt": prompt if isinstance(prompt, str) else json.dumps(list(prompt), ensure_ascii=False),
            "gold": job.reference, "difficulty": None,
            "metadata": json.dumps({"request_id": job.rid, "choice": choice, "endpoint": job.endpoint,
                                    "model": job.served.name, "strategy": job.plan.label, "seed": job.seed,
                                    "sampling": job.sampling}, sort_keys=True),
        })
        return Recording(run, index, qid, job.reference is not None)

    def flush(self) -> None:
        for run in self.runs.values():
            run.flush()

    def close(self) -> None:
        for run in self.runs.values():
            run.close()
        self.runs.clear()
