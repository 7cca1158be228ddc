"""Crash-safe tables of a pipeline run: an append-only JSONL journal plus atomic Parquet parts.

Every row is appended to ``<table>/journal-<id>.jsonl`` and flushed to the OS at once (one
``write``), so ``kill -9`` loses no finished call (a power cut may lose the last seconds: there is
no fsync per row). Every ``flush_rows`` rows, and when the table is closed, the journal's rows are
written as an atomic Parquet part (``part-*.parquet``, temporary file + rename) and the journal is
truncated. A crash between the two leaves a row in both; readers de-duplicate by the table's key
(the last row written wins), and a torn last journal line is ignored.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ttclab.errors import StoreError
from ttclab.store.schema import PIPELINE_KEYS, PIPELINE_SCHEMAS, rows_table, validate_table
from ttclab.store.writer import atomic_write_table

_TS = "created_at"
_ROW_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=True)  # built once (json.dumps builds one per call)


def _encode(row: dict[str, Any]) -> str:
    out = dict(row)
    ts = out.get(_TS)
    if isinstance(ts, datetime):
        out[_TS] = ts.timestamp()
    return _ROW_JSON.encode(out)


def _decode(line: str) -> dict[str, Any] | None:
    try:
        row = json.loads(line)
    except ValueError:  # a torn last line after kill -9
        return None
    if not isinstance(row, dict):
        return None
    ts = row.get(_TS)
    if isinstance(ts, (int, float)):
        row[_TS] = datetime.fromtimestamp(ts, tz=UTC)
    return row


class TableLog:
    """Append-only writer of one pipeline table (``calls``, ``candidates``, ``judgments``, ``results``)."""

    def __init__(self, run_dir: Path, table: str, *, flush_rows: int = 2000) -> None:
        if table not in PIPELINE_SCHEMAS:
            raise ValueError(f"unknown pipeline table {table!r}")
        self.table = table
        self.schema = PIPELINE_SCHEMAS[table]
        self.dir = Path(run_dir) / table
        self.dir.mkdir(parents=True, exist_ok=True)
        self.flush_rows = flush_rows
        self._path = self.dir / f"journal-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.jsonl"
        self._fd: int | None = None
        self._pending: list[dict[str, Any]] = []
        self.rows_written = 0

    def add(self, row: dict[str, Any]) -> None:
        """Append one row (visible to readers and safe from a process kill when this returns)."""
        if self._fd is None:
            self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, (_encode(row) + "\n").encode())  # one unbuffered append: in the OS when this returns
        self._pending.append(row)
        self.rows_written += 1
        if len(self._pending) >= self.flush_rows:
            self.flush()

    def add_many(self, rows: list[dict[str, Any]]) -> None:
        """Append several rows in one write (as :meth:`add`, all in the OS when this returns)."""
        if not rows:
            return
        if self._fd is None:
            self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, "".join(_encode(r) + "\n" for r in rows).encode())
        self._pending += rows
        self.rows_written += len(rows)
        if len(self._pending) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        """Move the journal's rows into an atomic Parquet part."""
        if not self._pending:
            return
        table = rows_table(self._pending, self.schema)
        atomic_write_table(self.dir / f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet", table)
        self._pending = []
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._path.unlink(missing_ok=True)

    def close(self) -> None:
        self.flush()


def read_table(run_dir: Path, table: str, columns: list[str] | None = None) -> pa.Table:
    """All rows of a pipeline table (parts and journals), schema-checked, de-duplicated by key."""
    schema = PIPELINE_SCHEMAS[table]
    key = PIPELINE_KEYS[table]
    if columns:  # read (and check) only the columns asked for, plus the key that de-duplicates
        wanted = list(dict.fromkeys([*columns, key]))
        schema = pa.schema([schema.field(c) for c in wanted], metadata=schema.metadata)
    folder = Path(run_dir) / table
    tables: list[pa.Table] = []
    if folder.is_dir():
        for part in sorted(folder.glob("part-*.parquet")):
            try:
                file = pq.ParquetFile(part)
                present = set(file.schema_arrow.names)
                raw = file.read(columns=[f.name for f in schema if f.name in present]) if columns else file.read()
            except (pa.ArrowInvalid, OSError) as exc:
                raise StoreError(f"{part}: unreadable Parquet ({exc}); delete the file and re-run") from None
            tables.append(validate_table(raw, schema, str(part)))
        rows: list[dict[str, Any]] = []
        for journal in sorted(folder.glob("journal-*.jsonl")):
            with open(journal, encoding="utf-8") as fh:
                rows += [r for r in map(_decode, fh) if r is not None]
        if rows:
            try:
                tables.append(rows_table(rows, schema))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise StoreError(f"{folder}: a journal row does not fit the {table} schema ({exc})") from None
    if not tables:
        out = schema.empty_table()
    else:
        out = pa.concat_tables(tables)
        keys = out[key].to_pylist()
        last: dict[Any, int] = {}
        for i, k in enumerate(keys):
            last[k] = i
        if len(last) != len(keys):
            out = out.take(pa.array(sorted(last.values()), type=pa.int64()))
    return out.select(columns) if columns else out


def compact_table(run_dir: Path, table: str) -> None:
    """Merge parts and journals into one part (safe to interrupt: readers de-duplicate)."""
    folder = Path(run_dir) / table
    if not folder.is_dir():
        return
    old = sorted(folder.glob("part-*.parquet")) + sorted(folder.glob("journal-*.jsonl"))
    if len(old) <= 1 and not any(p.suffix == ".jsonl" for p in old):
        return
    merged = read_table(run_dir, table)
    target = folder / f"part-{time.time_ns():020d}-compacted.parquet"
    atomic_write_table(target, merged)
    for path in old:
        if path != target:
            path.unlink(missing_ok=True)

