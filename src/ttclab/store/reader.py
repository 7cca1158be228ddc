"""Reading runs: discovery, schema validation on read, de-duplication, compaction."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ttclab.errors import StoreError
from ttclab.store.integrity import RunContext, compact_parts, read_parts, recover, run_lock
from ttclab.store.schema import QUESTIONS_SCHEMA, SAMPLES_SCHEMA, validate_table
from ttclab.store.writer import META_FILE, QUESTIONS_FILE, SAMPLES_DIR

DEFAULT_STORE = "runs"


def store_root(path: str | os.PathLike[str] | None = None) -> Path:
    """The store folder: the argument, else ``$TTCLAB_STORE``, else ``./runs``."""
    return Path(path or os.environ.get("TTCLAB_STORE") or DEFAULT_STORE)


@dataclass(frozen=True)
class Run:
    """One run in the store (a folder with run.json, questions.parquet, samples/)."""

    path: Path

    @cached_property
    def meta(self) -> dict[str, Any]:
        file = self.path / META_FILE
        fix = (f"`ttclab repair {self.path.name}` rebuilds it from the stored samples (the sampling config in it "
               "is lost; re-running the original `ttclab sample CONFIG` restores it too)")
        try:
            meta = json.loads(file.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            if (self.path / SAMPLES_DIR).is_dir() or (self.path / QUESTIONS_FILE).exists():
                raise StoreError(f"{file}: missing, so the run is damaged; {fix}") from None
            raise StoreError(f"{self.path}: no {META_FILE}; not a ttclab run folder") from None
        except json.JSONDecodeError as exc:
            raise StoreError(f"{file}: corrupt JSON ({exc.msg} at line {exc.lineno}); {fix}") from None
        except UnicodeDecodeError:
            raise StoreError(f"{file}: corrupt (not UTF-8 text); {fix}") from None
        except OSError as exc:
            raise StoreError(f"{file}: unreadable ({exc.strerror or exc})") from None
        if not isinstance(meta, dict):
            raise StoreError(f"{file}: corrupt (not a JSON object); {fix}")
        return meta

    @property
    def run_id(self) -> str:
        try:
            return str(self.meta.get("run_id", self.path.name))
        except StoreError:  # damaged metadata: the folder is named by the run id
            return self.path.name

    @property
    def model(self) -> str:
        return str(self.meta.get("model", {}).get("label") or self.meta.get("model", {}).get("name", ""))

    def part_files(self) -> list[Path]:
        folder = self.path / SAMPLES_DIR
        return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []

    def questions(self) -> pa.Table:
        file = self.path / QUESTIONS_FILE
        if not file.exists():
            return QUESTIONS_SCHEMA.empty_table()
        table = _read(file)
        if "run_id" not in table.column_names:  # written before questions carried run_id
            table = table.append_column("run_id", pa.array([self.run_id] * table.num_rows, pa.string()))
        table = validate_table(table, QUESTIONS_SCHEMA, str(file))
        index = table["question_index"].to_numpy(zero_copy_only=False)
        if index.size and not np.array_equal(np.sort(index), np.arange(index.size)):
            raise StoreError(f"{file}: damaged (question_index is not 0..{index.size - 1} once each); "
                             f"{QUESTIONS_FIX.format(run=self.path.name)}")
        return table

    def context(self, *, lenient: bool = False) -> RunContext:
        """What this run's rows are checked against (``lenient``: skip what cannot be read)."""
        try:
            meta = self.meta
        except StoreError:
            if not lenient:
                raise
            meta = {}
        try:
            questions = self.questions()
        except StoreError:
            if not lenient:
                raise
            questions = QUESTIONS_SCHEMA.empty_table()
        n_q = questions.num_rows or (int(meta["n_questions"]) if isinstance(meta.get("n_questions"), int) else None)
        ids = None
        if questions.num_rows:
            order = np.argsort(questions["question_index"].to_numpy(zero_copy_only=False))
            ids = tuple(str(x) for x in np.asarray(questions["question_id"].to_pylist(), dtype=object)[order])
        samples = meta.get("samples")
        return RunContext(self.path, run_id=str(meta["run_id"]) if meta.get("run_id") else None, n_questions=n_q,
                          n_samples=int(samples) if isinstance(samples, int) and samples > 0 else None,
                          question_ids=ids)

    def raw_samples(self, columns: list[str] | None = None) -> pa.Table:
        """All sample rows as written (duplicates from retries included), verified.

        Every part is checked (checksum against the manifest, schema, row invariants); a damaged
        one is a one-line StoreError naming it and the fix (``ttclab repair RUN``).
        """
        tables = read_parts(self.path / SAMPLES_DIR, self.context(), columns)
        if not tables:
            empty = SAMPLES_SCHEMA.empty_table()
            return empty.select(columns) if columns else empty
        return pa.concat_tables(tables)

    def samples(self, columns: list[str] | None = None) -> pa.Table:
        """One row per (question, sample): a successful row wins over a failed one, later over earlier."""
        need = ["question_index", "sample_index", "verdict", "created_at"]
        cols = None if columns is None else list(dict.fromkeys(need + list(columns)))
        table = self.raw_samples(cols)
        table = table.take(pa.array(latest_rows(table), type=pa.int64()))
        table = table.sort_by([("question_index", "ascending"), ("sample_index", "ascending")])
        return table.select(columns) if columns else table

    def done_keys(self) -> set[tuple[int, int]]:
        """(question_index, sample_index) of samples that finished without error."""
        table = self.raw_samples(["question_index", "sample_index", "verdict"])
        ok = table.filter(pc.not_equal(table["verdict"], "error"))
        return set(zip(ok["question_index"].to_pylist(), ok["sample_index"].to_pylist()))

    def compact(self) -> None:
        """Merge the part files into one (de-duplicated), under the run's lock.

        Safe to interrupt and never shows duplicates to a plain ``samples/*.parquet`` glob (see
        :func:`ttclab.store.integrity.compact_parts`).
        """
        with run_lock(self.path, "compacting"):
            recover(self.path / SAMPLES_DIR)
            parts = self.part_files()
            if len(parts) <= 1:
                return
            compact_parts(self.path / SAMPLES_DIR, self.samples(), parts[-1].stem.split("-")[1])


def latest_rows(table: pa.Table) -> np.ndarray:
    """Indices of the row to keep for each (question_index, sample_index)."""
    if table.num_rows == 0:
        return np.zeros(0, dtype=np.int64)
    q = table["question_index"].to_numpy().astype(np.int64)
    s = table["sample_index"].to_numpy().astype(np.int64)
    ok = pc.not_equal(table["verdict"], "error").to_numpy(zero_copy_only=False).astype(np.int8)
    t = table["created_at"].cast(pa.int64()).fill_null(0).to_numpy()
    order = np.lexsort((np.arange(len(q)), t, ok, s, q))  # last of each key group wins
    key = q[order] * (int(s.max()) + 1) + s[order]
    last = np.append(key[1:] != key[:-1], True)
    return np.asarray(order[last])


def _read(file: Path) -> pa.Table:
    """A run's questions table; page checksums (written since they exist) are verified."""
    try:
        table = pq.read_table(file, page_checksum_verification=True)
        _ = table.column_names, table.schema.metadata  # decoded lazily: a damaged footer fails here, not later
        return table
    except Exception as exc:  # noqa: BLE001 - any failure to decode the file is damage
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
        raise StoreError(f"{file}: unreadable Parquet ({detail}); {QUESTIONS_FIX.format(run=file.parent.name)}") from None


QUESTIONS_FIX = "`ttclab repair {run}` moves it aside and writes it again from the run's config"


SCAN_GLOBS = {"samples": "*/samples/part-*.parquet", "questions": "*/questions.parquet"}
"""The files of each table under the store root (DuckDB: ``'runs/*/samples/*.parquet'``)."""


def scan(root: str | os.PathLike[str] | None = None, table: str = "samples") -> Any:
    """A lazy ``pyarrow.dataset.Dataset`` over one table of every run in the store.

    ``table`` is ``samples`` (one row per completion) or ``questions`` (one row per question, with
    ``run_id`` to join on). Nothing is read until asked for: ``scan().to_table(filter=...)``,
    ``scan().to_table(columns=[...])``, ``duckdb.sql("select ... from ds")`` with ``ds = scan()``,
    or ``scan().to_table().to_pandas()``.
    """
    import pyarrow.dataset as pds

    if table not in SCAN_GLOBS:
        raise StoreError(f"scan: unknown table {table!r}; use one of: {', '.join(SCAN_GLOBS)}")
    base = store_root(root)
    files = sorted(str(p) for p in base.glob(SCAN_GLOBS[table])) if base.is_dir() else []
    schema = SAMPLES_SCHEMA if table == "samples" else QUESTIONS_SCHEMA  # a column a file lacks reads as null
    return pds.dataset(files, schema=schema, format="parquet")


def _is_run_folder(path: Path) -> bool:
    return path.is_dir() and ((path / META_FILE).is_file() or (path / SAMPLES_DIR).is_dir()
                              or (path / QUESTIONS_FILE).is_file())


def _created(run: Run) -> str:
    try:
        return str(run.meta.get("created_at", ""))
    except StoreError:  # damaged: listed too, so that it can be seen and repaired
        return ""


def list_runs(root: str | os.PathLike[str] | None = None) -> list[Run]:
    """Runs in the store, oldest first; damaged ones (no or a corrupt run.json) are listed too, and
    raise a one-line StoreError naming the fix when their metadata or samples are read."""
    base = store_root(root)
    if not base.is_dir():
        return []
    runs = [Run(p) for p in base.iterdir() if _is_run_folder(p)]
    return sorted(runs, key=lambda r: (_created(r), r.path.name))


def open_run(ref: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Run:
    """A run by folder path, run id, or unique run-id prefix."""
    path = Path(ref)
    if (path / META_FILE).is_file() or (len(path.parts) > 1 and _is_run_folder(path)):
        return Run(path)
    base = store_root(root)
    if _is_run_folder(base / str(ref)):
        return Run(base / str(ref))
    matches = [r for r in list_runs(base) if r.path.name.startswith(str(ref)) or r.run_id.startswith(str(ref))]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        names = ", ".join(r.path.name for r in matches[:5])
        raise StoreError(f"run {str(ref)!r} is ambiguous in {base}: {names}; give more of the run id")
    raise StoreError(f"no run {str(ref)!r} in store {base}; list runs with: ttclab runs --store {base}")
