"""Crash-safe tables of a pipeline run: an append-only JSONL journal plus atomic Parquet parts.

**Writing.** Every row is appended to ``<table>/journal-<id>.jsonl`` and flushed to the OS at once:
:meth:`TableLog.add` and :meth:`TableLog.add_many` each make one ``write`` of whole lines, each ending in
``"\\n"``, so ``kill -9`` loses no finished row (a power cut may lose the last seconds: there is no
fsync per row). A journal file has one writer, which never reopens it after its process ends. Every
``flush_rows`` rows, and when the table is closed, the journal's rows are written as an atomic Parquet
part (``part-*.parquet``: temporary file + rename, with page checksums) and the journal is truncated. A
crash between the two leaves a row in both; readers de-duplicate by the table's key (the last row
written wins).

**Checksums.** A line is the row's compact JSON with a first field ``"crc32"``: eight lowercase hex
digits of the CRC32 of the row's JSON without that field (``{"crc32":"1a2b3c4d","run_id":...}`` checks
``{"run_id":...}``), so a journal stays JSON lines. A line whose checksum does not match is damage,
whatever else it holds, so a flipped bit inside a string or a number is an error, not a changed value.
A line without the field (a journal written before checksums) is read as before: only being a row of
the table (below) is checked.

**Torn lines.** The only thing a killed writer leaves unfinished is its last ``write``: the bytes after
the file's last ``"\\n"``, a prefix of a line. That unterminated tail is read as a row when its checksum
verifies (a whole row that lost only its newline; without a checksum: when it is one whole row) and
ignored otherwise (torn). A tail that is a whole row followed by one byte other than ``"\\n"`` is not a
prefix of anything written: its newline was changed, which is damage (its row is intact and repair keeps
it). A line that ends in ``"\\n"`` was written whole, so one that is not a row of the table (a checksum
that does not match, not UTF-8 JSON, not an object, an unknown field, a null key or required value, a
value of the wrong type) is damage: a one-line :class:`~ttclab.errors.StoreError` naming ``file:line``.

**Parts** are read with page checksum verification: a flipped byte in a page is an error, not a changed
value (a part written before page checksums reads as before: pyarrow checks only pages that carry one).
An unreadable part is a StoreError naming it.

**Repair** (:func:`repair_tables`, run by ``ttclab repair``) moves damaged parts and journals into
``<run>/damaged/``, keeps a damaged journal's intact lines, and leaves the run consistent: a question is
finished only when its results row exists, so the results row (and the ``samples/`` row) of a question
that lost calls, candidates or judgments is dropped, and the next ``ttclab run`` of the same command runs
it again (its surviving calls replay from the call cache; the lost ones are sent again). Each table is
replaced whole (a new folder renamed in), so a repair stopped at any point leaves the run readable and
never shows a dropped row again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ttclab.errors import StoreError
from ttclab.store.integrity import DAMAGED_DIR, RunContext, compact_parts, decode_failure, move_aside, read_parts
from ttclab.store.schema import PIPELINE_KEYS, PIPELINE_SCHEMAS, PIPELINE_TABLES, rows_table, validate_table
from ttclab.store.writer import atomic_write_table

_TS = "created_at"
_ROW_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=True)  # built once (json.dumps builds one per call)


_CRC_HEAD = b'{"crc32":"'  # a line with a checksum starts so: 8 hex digits, '",', the rest of the row's JSON
_CRC_REST = len(_CRC_HEAD) + 10  # where the rest starts
_CRC_OF_BRACE = zlib.crc32(b"{")  # the checked JSON is "{" + the line from _CRC_REST on


def _encode(row: dict[str, Any]) -> str:
    out = dict(row)
    ts = out.get(_TS)
    if isinstance(ts, datetime):
        out[_TS] = ts.timestamp()
    return _ROW_JSON.encode(out)


def journal_line(row: dict[str, Any]) -> bytes:
    """A journal line: the row's JSON with its checksum as first field, and a newline (module docstring)."""
    body = _encode(row).encode()
    return b'{"crc32":"%08x",%b\n' % (zlib.crc32(body), body[1:])


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
        os.write(self._fd, journal_line(row))  # one unbuffered append: in the OS when this returns
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
        os.write(self._fd, b"".join([journal_line(r) for r in rows]))
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


# -- reading -----------------------------------------------------------------------------------------
def _hint(run_dir: Path) -> str:
    return f"`ttclab repair {Path(run_dir).name}` moves it aside, keeps what is intact and names what to run again"


@dataclass
class _BadLine:
    line: int  # 1-based
    why: str
    raw: bytes
    kept: bool = False  # its row verified and is kept: only the newline after it was changed


@dataclass
class _Journal:
    """A journal's rows (line number, row) and its damaged lines (see the module docstring)."""

    path: Path
    rows: list[tuple[int, dict[str, Any]]]
    bad: list[_BadLine]


def _problem(row: Any, names: frozenset[str], required: tuple[str, ...]) -> str | None:
    if type(row) is dict and names.issuperset(row) and None not in map(row.get, required):
        return None  # the common case, without building sets
    if not isinstance(row, dict):
        return f"a JSON {type(row).__name__}, not a row"
    unknown = row.keys() - names
    if unknown:
        return f"unknown field {sorted(unknown)[0]!r}"
    missing = next((f for f in required if row.get(f) is None), None)
    return f"no {missing!r}" if missing is not None else None


def _checksum(line: bytes) -> bool | None:
    """Whether a line's checksum matches its row; None when it has none (written before checksums)."""
    if not line.startswith(_CRC_HEAD):
        return None
    crc = b"%08x" % zlib.crc32(memoryview(line)[_CRC_REST:], _CRC_OF_BRACE)
    return line[_CRC_REST - 10:_CRC_REST] == crc + b'",'


def _parse(line: bytes, checked: bool) -> Any:
    """A journal line as JSON, without its checksum field when ``checked`` (ValueError when it is not
    UTF-8 JSON, or its time is not one)."""
    row = json.loads(line.decode("utf-8"))
    if isinstance(row, dict):
        if checked:
            del row["crc32"]
        ts = row.get(_TS)
        if isinstance(ts, (int, float)):
            try:
                row[_TS] = datetime.fromtimestamp(ts, tz=UTC)
            except (OverflowError, OSError, ValueError):
                raise ValueError(f"{_TS} {ts!r} is not a time") from None
    return row


def _row(line: bytes, names: frozenset[str], required: tuple[str, ...]) -> tuple[dict[str, Any] | None, str]:
    """A journal line's row, or None and why it is not one."""
    checked = _checksum(line)
    if checked is False:
        return None, "checksum mismatch: a byte of it changed"
    try:
        row = _parse(line, checked is True)
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 at byte {exc.start + 1}"
    except json.JSONDecodeError as exc:
        return None, f"not JSON: {exc.msg} (column {exc.colno})"
    except ValueError as exc:
        return None, str(exc)
    why = _problem(row, names, required)
    return (row, "") if why is None else (None, why)


def _scan_journal(path: Path, schema: pa.Schema, run_dir: Path) -> _Journal:
    try:
        data = path.read_bytes()
    except FileNotFoundError:  # flushed into a part and deleted after the folder was listed
        raise StoreError(f"{path}: vanished while reading (its writer moved it into a part); read again") from None
    except OSError as exc:
        raise StoreError(f"{path}: unreadable ({exc.strerror or exc}); {_hint(run_dir)}") from None
    names = frozenset(schema.names)
    required = tuple(f.name for f in schema if not f.nullable)
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline; else the last write, maybe torn
    out = _Journal(path, [], [])
    for no, line in enumerate(lines, 1):
        row, why = _row(line, names, required)
        if row is not None:
            out.rows.append((no, row))
        else:
            out.bad.append(_BadLine(no, why, line))
    if tail:
        no = len(lines) + 1
        row, _ = _row(tail, names, required)
        if row is not None:  # a whole row that lost only its newline
            out.rows.append((no, row))
            return out
        row, _ = _row(tail[:-1], names, required)
        if row is not None:  # a whole row, then a byte no write leaves there: its newline, changed
            out.rows.append((no, row))
            out.bad.append(_BadLine(no, f"its newline changed to byte 0x{tail[-1]:02x}", tail, kept=True))
        # else torn: the unfinished last write of a killed writer
    return out


def journal_rows(path: Path, schema: pa.Schema,
                 run_dir: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, str]]]:
    """The rows of one journal file of ``schema`` as (1-based line, row) (line format and torn-tail rule in
    the module docstring) and its damaged lines as (line, why); a torn tail is neither."""
    journal = _scan_journal(path, schema, run_dir)
    return journal.rows, [(b.line, b.why) for b in journal.bad if not b.kept]


def _journal_table(journal: _Journal, schema: pa.Schema, *, skip_damage: bool) -> pa.Table | None:
    """The rows of a scanned journal as a table; a row whose values do not fit the schema is a damaged line
    (found one row at a time only when the journal does not convert whole)."""
    rows = journal.rows
    try:
        return rows_table([r for _, r in rows], schema) if rows else None
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    fit = []
    for no, row in rows:
        try:
            rows_table([row], schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            detail = " ".join(str(exc).split())[:100]
            journal.bad.append(_BadLine(no, f"a value does not fit the schema: {detail}", _encode(row).encode()))
        else:
            fit.append((no, row))
    journal.bad.sort(key=lambda b: b.line)
    journal.rows = fit
    if not skip_damage:
        return None
    return rows_table([r for _, r in fit], schema) if fit else None


def _line_error(journal: _Journal, run_dir: Path) -> StoreError:
    first = journal.bad[0]
    more = f" and {len(journal.bad) - 1} more line(s)" if len(journal.bad) > 1 else ""
    return StoreError(f"{journal.path}:{first.line}: damaged journal line ({first.why}){more}; {_hint(run_dir)}")


def _read_part(part: Path, schema: pa.Schema, subset: bool, run_dir: Path) -> pa.Table:
    hint = _hint(run_dir)
    try:
        with pq.ParquetFile(part, page_checksum_verification=True) as file:
            present = set(file.schema_arrow.names)
            raw = file.read(columns=[f.name for f in schema if f.name in present]) if subset else file.read()
        _ = raw.column_names, raw.schema.metadata  # decoded lazily: a damaged footer fails here, not later
    except FileNotFoundError:
        raise StoreError(f"{part}: vanished while reading (another process compacted the table?); read again") from None
    except Exception as exc:  # noqa: BLE001 - any failure to decode the file is damage (incl. UnicodeDecodeError)
        raise StoreError(f"{part}: unreadable Parquet ({decode_failure(exc)}); {hint}") from None
    try:
        return validate_table(raw, schema, str(part))
    except StoreError as exc:
        raise StoreError(f"{exc}; {hint}") from None


def _load(run_dir: Path, table: str, columns: list[str] | None = None, *, skip_damage: bool = False) -> pa.Table:
    schema = full = PIPELINE_SCHEMAS[table]
    key = PIPELINE_KEYS[table]
    if columns:  # read (and check) only the columns asked for, plus the key that de-duplicates
        wanted = list(dict.fromkeys([*columns, key]))
        schema = pa.schema([schema.field(c) for c in wanted], metadata=schema.metadata)
    folder = Path(run_dir) / table
    tables: list[pa.Table] = []
    if folder.is_dir():
        for part in sorted(folder.glob("part-*.parquet")):
            try:
                tables.append(_read_part(part, schema, bool(columns), run_dir))
            except StoreError:
                if not skip_damage:
                    raise
        for path in sorted(folder.glob("journal-*.jsonl")):
            journal = _scan_journal(path, full, run_dir)
            got = _journal_table(journal, schema, skip_damage=skip_damage)
            if journal.bad and not skip_damage:  # a line that did not parse, or a row that did not fit the schema
                raise _line_error(journal, run_dir)
            if got is not None:
                tables.append(got)
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


def read_table(run_dir: Path, table: str, columns: list[str] | None = None) -> pa.Table:
    """All rows of a pipeline table (parts and journals), verified, schema-checked, de-duplicated by key.

    A damaged part or journal line is a one-line StoreError naming the file (and line) and
    ``ttclab repair``; a torn last journal line is ignored (see the module docstring)."""
    return _load(run_dir, table, columns)


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


# -- damage and repair -------------------------------------------------------------------------------
_QUESTION_INDEX = re.compile(rb'"question_index":(\d+)[,}]')
_ID_QUESTION = {"candidates": re.compile(rb'"candidate_id":"q(\d+)-'), "judgments": re.compile(rb'"judgment_id":"q(\d+)-')}
_QUESTION_ID = re.compile(rb'"question_id":("(?:[^"\\]|\\.)*")')


def _line_question(raw: bytes, table: str, question_ids: tuple[str, ...] | None) -> int | None:
    """The question a damaged journal line belonged to, when two of its fields say the same (its
    ``question_index`` and the question in its id, or its ``question_id``); None when it cannot be told."""
    found = [int(m) for m in _QUESTION_INDEX.findall(raw)]
    if table in _ID_QUESTION:
        found += [int(m) for m in _ID_QUESTION[table].findall(raw)]
    elif table == "calls" and question_ids:
        for m in _QUESTION_ID.findall(raw):
            try:
                found.append(question_ids.index(json.loads(m)))
            except ValueError:
                return None
    return found[0] if len(found) == 2 and found[0] == found[1] else None


def _part_questions(part: Path) -> set[int] | None:
    """The questions whose rows a damaged part held, when its ``question_index`` column still reads (its
    pages verified); None when it does not."""
    try:
        with pq.ParquetFile(part, page_checksum_verification=True) as file:
            return set(file.read(columns=["question_index"])["question_index"].to_pylist())
    except Exception:  # noqa: BLE001 - any failure: the questions cannot be told
        return None


@dataclass
class _Damaged:
    path: Path
    why: str  # the one-line error
    questions: set[int] | None  # the questions whose rows it held (None: cannot be told)
    kept: int = 0  # intact rows of a damaged journal, kept


def _files(run_dir: Path, table: str) -> list[Path]:
    folder = Path(run_dir) / table
    return sorted(folder.glob("part-*.parquet")) + sorted(folder.glob("journal-*.jsonl"))


def _check_file(path: Path, schema: pa.Schema, run_dir: Path) -> _Journal | None:
    """Verify a part (every column: StoreError when damaged) or scan a journal (its rows fitted to the
    schema; its damaged lines in ``bad``)."""
    if path.suffix == ".parquet":
        _read_part(path, schema, False, run_dir)
        return None
    journal = _scan_journal(path, schema, run_dir)
    _journal_table(journal, schema, skip_damage=True)
    return journal


def check_tables(run_dir: Path) -> None:
    """Check every part and journal of a pipeline run's tables, every column, as :func:`read_table` does
    but without merging them: damage is the one-line StoreError read_table raises. A file that vanished
    while it was checked (a journal its writer moved into a part, a compacted part) is not damage."""
    for table in PIPELINE_TABLES:
        schema = PIPELINE_SCHEMAS[table]
        for path in _files(run_dir, table):
            try:
                journal = _check_file(path, schema, run_dir)
            except StoreError:
                if path.exists():
                    raise
                continue
            if journal is not None and journal.bad:
                raise _line_error(journal, run_dir)


def _scan_table(run_dir: Path, table: str, question_ids: tuple[str, ...] | None) -> tuple[list[_Damaged], int]:
    """The damaged files of a table and how many files verified."""
    schema = PIPELINE_SCHEMAS[table]
    damaged, ok = [], 0
    for path in _files(run_dir, table):
        try:
            journal = _check_file(path, schema, run_dir)
        except StoreError as exc:
            damaged.append(_Damaged(path, str(exc), _part_questions(path) if path.suffix == ".parquet" else None))
            continue
        if journal is None or not journal.bad:
            ok += 1
            continue
        lines = [_line_question(b.raw, table, question_ids) for b in journal.bad if not b.kept]
        questions = None if None in lines else {q for q in lines if q is not None}
        damaged.append(_Damaged(path, str(_line_error(journal, run_dir)), questions, kept=len(journal.rows)))
    return damaged, ok


def _replace_table(run_dir: Path, table: str, content: pa.Table, damaged: list[_Damaged]) -> list[tuple[Path, str]]:
    """Replace a table's folder by a new one holding ``content`` as one part, renamed in: a reader sees the
    old folder, none, or the new one (never a dropped row again). Then the damaged files go from the old
    folder into ``<run>/damaged/``. Returns (where each went, why)."""
    folder = run_dir / table
    new, old = run_dir / f".{table}.repair-new", run_dir / f".{table}.repair-old"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir()
    if content.num_rows:
        atomic_write_table(new / f"part-{time.time_ns():020d}-repaired.parquet", content)
    os.replace(folder, old)
    os.replace(new, folder)
    moved = [(move_aside(old / d.path.name, f"{table}-"), d.why) for d in damaged]
    shutil.rmtree(old)
    return moved


def _finish_interrupted(run_dir: Path) -> None:
    """Finish a repair that stopped while replacing a table's folder: rename the new folder in when the
    table has none; an old folder left beside the table goes to ``<run>/damaged/`` whole (it may hold a
    damaged file not yet moved)."""
    for table in PIPELINE_TABLES:
        new, old = run_dir / f".{table}.repair-new", run_dir / f".{table}.repair-old"
        if new.is_dir() and not (run_dir / table).exists() and old.is_dir():
            os.replace(new, run_dir / table)
        shutil.rmtree(new, ignore_errors=True)
        if old.is_dir():
            (run_dir / DAMAGED_DIR).mkdir(exist_ok=True)
            os.replace(old, run_dir / DAMAGED_DIR / f"{table}-before-repair.{datetime.now(UTC):%Y%m%dT%H%M%S}")


@dataclass
class TablesRepair:
    """What :func:`repair_tables` found and did in a pipeline run's tables."""

    moved: list[tuple[Path, str]] = field(default_factory=list)  # (where a damaged file went, why)
    kept: dict[str, int] = field(default_factory=dict)  # damaged journal (name) -> intact rows kept
    dropped: list[int] = field(default_factory=list)  # questions whose results were dropped: they run again
    unknown: bool = False  # rows of questions that cannot be told were lost: every question runs again
    samples_dropped: int = 0  # samples/ rows without a results row, dropped
    files: int = 0  # table files verified (before the repair)
    rows: dict[str, int] = field(default_factory=dict)  # rows per table after the repair


def repair_tables(run_dir: Path, ctx: RunContext, *, rerunnable: bool) -> TablesRepair:
    """Check every part and journal of a pipeline run's tables and repair the damage (caller holds the run
    lock; see the module docstring). ``rerunnable``: the run's questions can be run again (a ``ttclab run``
    pipeline run, not served traffic), so a question that lost rows loses its result too."""
    run_dir = Path(run_dir)
    _finish_interrupted(run_dir)
    report = TablesRepair()
    found: dict[str, list[_Damaged]] = {}
    for table in PIPELINE_TABLES:
        if (run_dir / table).is_dir():
            found[table], ok = _scan_table(run_dir, table, ctx.question_ids)
            report.files += ok
    # every column read: a part whose question_index pages verify may be damaged in another column
    finished = set(_load(run_dir, "results", skip_damage=True)["question_index"].to_pylist())
    if rerunnable:
        lost: set[int] = set()
        for table, damaged in found.items():
            for d in damaged if table != "results" else ():  # a lost results row: its question simply runs again
                report.unknown |= d.questions is None
                lost |= d.questions or set()
        report.dropped = sorted(finished if report.unknown else lost & finished)
        finished -= set(report.dropped)
    report.samples_dropped = _keep_samples(run_dir, ctx, finished)
    for table in ("results", *(t for t in PIPELINE_TABLES if t != "results")):  # results first: see the docstring
        damaged = found.get(table, [])
        if not damaged and not (table == "results" and report.dropped):
            continue
        content = _load(run_dir, table, skip_damage=True)
        if table == "results" and report.dropped:
            content = content.filter(pc.is_in(content["question_index"], pa.array(sorted(finished), pa.int32())))
        report.moved += _replace_table(run_dir, table, content, damaged)
        report.kept.update({d.path.name: d.kept for d in damaged if d.path.suffix == ".jsonl"})
    report.rows = {t: read_table(run_dir, t, [PIPELINE_KEYS[t]]).num_rows for t in found}
    return report


def _keep_samples(run_dir: Path, ctx: RunContext, finished: set[int]) -> int:
    """Drop the ``samples/`` rows of questions without a results row (``samples/`` mirrors the results);
    returns how many were dropped."""
    samples_dir = run_dir / "samples"
    if not samples_dir.is_dir():
        return 0
    tables = read_parts(samples_dir, ctx)
    if not tables:
        return 0
    rows = pa.concat_tables(tables)
    keep = rows.filter(pc.is_in(rows["question_index"], pa.array(sorted(finished), pa.int32())))
    if keep.num_rows < rows.num_rows:
        compact_parts(samples_dir, keep, f"{time.time_ns():020d}")
    return int(rows.num_rows - keep.num_rows)
