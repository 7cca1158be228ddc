"""Crash-safe writing: every file appears whole or not at all (temporary file + rename).

A full disk (``ENOSPC``, quota) is a one-line :class:`~ttclab.errors.StoreError` naming the store;
what was already written stays valid.

Samples are buffered and written as small Parquet part files (at least every ``flush_seconds``),
so ``kill -9`` loses at most the last few seconds of work, which a re-run regenerates with the
same seeds. When a run finishes, its parts are compacted into one file.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ttclab.store.integrity import DISK_FULL, MANIFEST_FILE, adopt_legacy, commit_part, disk_full_error
from ttclab.store.schema import QUESTIONS_SCHEMA, SAMPLES_SCHEMA, rows_table

SAMPLES_DIR = "samples"
META_FILE = "run.json"
QUESTIONS_FILE = "questions.parquet"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part.

    A full disk is a one-line :class:`StoreError` naming the store (finished samples are safe).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in DISK_FULL:
            raise disk_full_error(path, exc) from None
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


#: Tables smaller than this (Arrow bytes) are written with snappy: zstd sets up a compressor per column
#: (about 0.7 ms a file here), which is most of the cost of writing a small part.
ZSTD_MIN_BYTES = 1 << 20


def write_parquet_tmp(path: Path, table: pa.Table) -> Path:
    """Write ``table`` (zstd; snappy when small; with page checksums) to a hidden temporary file beside ``path``,
    fsynced; returns its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        pq.write_table(table, tmp, compression="zstd" if table.nbytes >= ZSTD_MIN_BYTES else "snappy",
                       write_page_checksum=True)  # a flipped byte in a page is an error on read, not a changed value
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in DISK_FULL:
            raise disk_full_error(path, exc) from None
        raise
    return tmp


def atomic_write_table(path: Path, table: pa.Table) -> None:
    """Write a Parquet file atomically (see :func:`write_parquet_tmp`)."""
    tmp = write_parquet_tmp(path, table)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_questions(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    rows = [{"run_id": Path(run_dir).name, **r} for r in rows]  # the run folder is named by its id
    atomic_write_table(run_dir / QUESTIONS_FILE, rows_table(rows, QUESTIONS_SCHEMA))


class SampleWriter:
    """Buffers sample rows and writes them as atomic, checksummed Parquet parts.

    Each part is recorded in ``samples/_manifest.json`` before it becomes visible (see
    :mod:`ttclab.store.integrity`); the caller should hold the run's lock (:func:`run_lock`).
    """

    def __init__(self, run_dir: Path, *, flush_rows: int = 512, flush_seconds: float = 2.0) -> None:
        self.dir = Path(run_dir) / SAMPLES_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / MANIFEST_FILE).exists() and any(self.dir.glob("part-*.parquet")):
            from ttclab.store.reader import Run

            adopt_legacy(self.dir, Run(Path(run_dir)).context())  # a run from before manifests
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._rows: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self.rows_written = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        self._rows.extend(rows)
        if len(self._rows) >= self.flush_rows or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._rows:
            return
        self.write_table(rows_table(self._rows, SAMPLES_SCHEMA))
        self._rows = []

    def write_table(self, table: pa.Table) -> None:
        """Write ``table`` (SAMPLES_SCHEMA) as one part file now."""
        if table.num_rows == 0:
            return
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = write_parquet_tmp(self.dir / name, table)
        try:
            commit_part(self.dir, name, tmp, table.num_rows)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in DISK_FULL:
                raise disk_full_error(self.dir / name, exc) from None
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.rows_written += table.num_rows

    def close(self) -> None:
        self.flush()
