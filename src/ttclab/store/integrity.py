"""Integrity of a run's files: checksummed parts, row invariants, a lock per run, repair.

* **Manifest.** ``samples/_manifest.json`` records the SHA-256, size and row count of every part
  file. A part is written to a hidden temporary file, recorded in the manifest (written atomically,
  with a checksum of its own), and only then renamed into view, so every visible part is in the
  manifest. On read a part must be listed and match its checksum; a run written before manifests
  existed has none (its parts are checked by the row invariants only, and the next writer records
  them).
* **Row invariants** (every part, always): indices in range (``0 <= question_index < questions``,
  ``0 <= sample_index < samples``), the question id matching the questions table, one row per
  (question, sample) within a part, known verdicts, ``correct`` exactly when the verdict is
  ``correct``, non-negative token counts.
* A damaged file is a :class:`~ttclab.errors.StoreError` of one line naming it and the fix:
  ``ttclab repair RUN`` (or the next ``ttclab sample``) moves damaged parts into ``<run>/damaged/``
  (outside the ``samples/*.parquet`` glob) and their samples are generated again.
* **Lock.** A writer holds an exclusive lock on ``<run>/.lock`` (``flock``; released by the kernel
  when the process dies, so ``kill -9`` never leaves a stale lock). A second writer gets a
  StoreError naming the process that holds it.
* **Compaction** never shows duplicates to a plain glob: the merged file is recorded first, the old
  parts are hidden (renamed to ``.replaced-*``), then the merged file is renamed into view; an
  interrupted compaction is finished or rolled back by the next writer.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import pyarrow.parquet as pq

from ttclab.errors import StoreError
from ttclab.store.schema import PIPELINE_TABLES, SAMPLES_SCHEMA, VERDICTS, validate_table

if TYPE_CHECKING:
    from ttclab.store.journal import TablesRepair

MANIFEST_FILE = "_manifest.json"  # a leading "_": Parquet readers of the folder skip it
DAMAGED_DIR = "damaged"
LOCK_FILE = ".lock"
MANIFEST_VERSION = 1
_HIDDEN_REPLACED = ".replaced-"  # + name + ".old": no name a "*.parquet" glob matches (DuckDB's matches dot-files)


def _hidden(samples_dir: Path, name: str) -> Path:
    return samples_dir / f"{_HIDDEN_REPLACED}{name}.old"
_MANIFEST_LOCK = threading.RLock()
DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def repair_hint(run_dir: Path) -> str:
    return f"`ttclab repair {Path(run_dir).name}` moves it aside and regenerates its samples"


# -- disk ------------------------------------------------------------------------------------------
def disk_full_error(path: Path, exc: OSError) -> StoreError:
    """The one-line error for a full disk (or quota) while writing ``path`` inside a store."""
    run_dir = _run_dir_of(path)
    store = run_dir.parent if run_dir is not None else path.parent
    return StoreError(f"store {store}: no space left on device while writing {path.name} ([Errno {exc.errno}]); "
                      "the samples already written are safe: free some space and run the same command again "
                      "to resume")


def _run_dir_of(path: Path) -> Path | None:
    for parent in (path.parent, path.parent.parent):
        if (parent / "run.json").exists() or (parent / "samples").is_dir():
            return parent
    return None


def sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


# -- manifest --------------------------------------------------------------------------------------
def _manifest_digest(parts: dict[str, Any], intent: Any) -> str:
    body = json.dumps({"parts": parts, "intent": intent}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def read_manifest(samples_dir: Path) -> dict[str, Any] | None:
    """The manifest of ``samples_dir``: ``{"parts": {name: {sha256, bytes, rows}}, "intent": ...}``;
    None when the run has none (written before manifests). StoreError when it is damaged."""
    file = samples_dir / MANIFEST_FILE
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
        parts, intent = data["parts"], data.get("intent")
        ok = isinstance(parts, dict) and data.get("sha256") == _manifest_digest(parts, intent)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise StoreError(f"{file}: damaged (its own checksum does not match); `ttclab repair "
                         f"{samples_dir.parent.name}` checks every part and rebuilds it")
    manifest: dict[str, Any] = data
    return manifest


def write_manifest(samples_dir: Path, parts: dict[str, Any], intent: Any = None) -> None:
    from ttclab.store.writer import atomic_write_bytes

    data = {"version": MANIFEST_VERSION, "parts": parts, "intent": intent, "sha256": _manifest_digest(parts, intent)}
    atomic_write_bytes(samples_dir / MANIFEST_FILE, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def update_manifest(samples_dir: Path, *, add: dict[str, Any] | None = None, drop: list[str] | tuple[str, ...] = (),
                    intent: Any = "keep") -> None:
    """Add / drop part entries (and set or clear the compaction intent) in one atomic rewrite."""
    with _MANIFEST_LOCK:
        current = read_manifest(samples_dir) or {"parts": {}, "intent": None}
        parts = dict(current["parts"])
        for name in drop:
            parts.pop(name, None)
        parts.update(add or {})
        write_manifest(samples_dir, parts, current.get("intent") if intent == "keep" else intent)


def commit_part(samples_dir: Path, name: str, tmp: Path, rows: int) -> None:
    """Record the finished temporary file ``tmp`` in the manifest, then rename it to ``name``."""
    from ttclab.store.writer import _fsync_dir

    sha, size = sha256_file(tmp)
    update_manifest(samples_dir, add={name: {"sha256": sha, "bytes": size, "rows": int(rows)}})
    os.replace(tmp, samples_dir / name)
    _fsync_dir(samples_dir)


# -- checking parts --------------------------------------------------------------------------------
def decode_failure(exc: BaseException) -> str:
    """Why a file did not decode, for a one-line error (pyarrow's messages can span lines)."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:160]


@dataclass(frozen=True)
class RunContext:
    """What a part's rows are checked against."""

    run_dir: Path
    run_id: str | None = None
    n_questions: int | None = None
    n_samples: int | None = None
    question_ids: tuple[str, ...] | None = None


class _Vanished(Exception):
    """A listed part disappeared while reading (a concurrent compaction): list again."""


def load_part(path: Path, manifest: dict[str, Any] | None, ctx: RunContext, columns: list[str] | None = None
              ) -> pa.Table:
    """A part file, verified (checksum when the run has a manifest, schema, row invariants)."""
    hint = repair_hint(ctx.run_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _Vanished() from None
    except OSError as exc:
        raise StoreError(f"{path}: unreadable ({exc.strerror or exc}); {hint}") from None
    if manifest is not None:
        entry = manifest["parts"].get(path.name)
        if entry is None:
            if not path.exists():
                raise _Vanished()
            raise StoreError(f"{path}: not recorded in {MANIFEST_FILE} (not written by ttclab's writer); {hint}")
        if len(data) != entry.get("bytes") or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            raise StoreError(f"{path}: damaged (checksum mismatch: {len(data)} bytes, recorded "
                             f"{entry.get('bytes')} with sha256 {str(entry.get('sha256'))[:12]}…); {hint}")
    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as exc:  # noqa: BLE001 - any failure to decode the file is damage (incl. UnicodeDecodeError)
        raise StoreError(f"{path}: unreadable Parquet ({decode_failure(exc)}); {hint}") from None
    try:
        table = validate_table(table, SAMPLES_SCHEMA, str(path))
    except StoreError as exc:
        raise StoreError(f"{exc}; {hint}") from None
    check_rows(table, str(path), ctx)
    return table.select(columns) if columns else table


def check_rows(table: pa.Table, source: str, ctx: RunContext) -> None:
    """StoreError (one line) when a row breaks an invariant (see the module docstring)."""
    if table.num_rows == 0:
        return
    hint = repair_hint(ctx.run_dir)

    def bad(what: str) -> StoreError:
        return StoreError(f"{source}: damaged ({what}); {hint}")

    q = table["question_index"].to_numpy(zero_copy_only=False).astype(np.int64)
    s = table["sample_index"].to_numpy(zero_copy_only=False).astype(np.int64)
    if q.min() < 0 or (ctx.n_questions is not None and q.max() >= ctx.n_questions):
        value = int(q.min()) if q.min() < 0 else int(q.max())
        raise bad(f"question_index {value} outside 0..{(ctx.n_questions or 1) - 1}")
    if s.min() < 0 or (ctx.n_samples is not None and s.max() >= ctx.n_samples):
        value = int(s.min()) if s.min() < 0 else int(s.max())
        raise bad(f"sample_index {value} outside 0..{(ctx.n_samples or 1) - 1}")
    key = q * (int(s.max()) + 1) + s
    if np.unique(key).size != key.size:
        raise bad("the same (question_index, sample_index) twice")
    verdict = np.asarray(table["verdict"].to_pylist(), dtype=object)
    unknown = set(verdict.tolist()) - set(VERDICTS)
    if unknown:
        raise bad(f"unknown verdict {sorted(map(str, unknown))[0]!r}")
    correct = table["correct"].to_numpy(zero_copy_only=False).astype(bool)
    if np.any(correct != (verdict == "correct")):
        raise bad("'correct' disagrees with the verdict")
    for name in ("completion_tokens", "prompt_tokens"):
        col = table[name]
        if col.null_count < col.length():
            values = col.drop_null().to_numpy(zero_copy_only=False)
            if values.size and values.min() < 0:
                raise bad(f"negative {name} {int(values.min())}")
    if ctx.question_ids is not None:
        ids = np.asarray(ctx.question_ids, dtype=object)[q]
        got = np.asarray(table["question_id"].to_pylist(), dtype=object)
        wrong = np.flatnonzero(ids != got)
        if wrong.size:
            i = int(wrong[0])
            raise bad(f"question_id {got[i]!r} at question_index {int(q[i])}, where the questions table has {ids[i]!r}")
    if ctx.run_id is not None:
        runs = set(table["run_id"].to_pylist())
        if runs != {ctx.run_id}:
            raise bad(f"run_id {sorted(runs - {ctx.run_id})[0]!r} is not this run's {ctx.run_id!r}")


def visible_parts(samples_dir: Path) -> list[Path]:
    return sorted(samples_dir.glob("part-*.parquet")) if samples_dir.is_dir() else []


def missing_parts(samples_dir: Path, manifest: dict[str, Any] | None, parts: list[Path]) -> list[str]:
    """Parts recorded in the manifest that are not in ``samples/`` (deleted, or lost in a crash)."""
    if manifest is None:
        return []
    seen = {p.name for p in parts}
    return sorted(name for name in manifest["parts"] if name not in seen)


def missing_error(samples_dir: Path, manifest: dict[str, Any], name: str) -> StoreError:
    rows = manifest["parts"].get(name, {}).get("rows")
    return StoreError(f"{samples_dir / name}: missing (recorded in {MANIFEST_FILE} with {rows} sample rows, not on disk); "
                      f"`ttclab repair {samples_dir.parent.name}` records the loss and regenerates its samples")


def read_parts(samples_dir: Path, ctx: RunContext, columns: list[str] | None = None) -> list[pa.Table]:
    """Every visible part, verified; consistent under a concurrent writer or compaction. A part the
    manifest records but ``samples/`` lacks (deleted) is damage too: its samples would silently be lost."""
    missing_seen = 0
    for _ in range(200):
        parts = visible_parts(samples_dir)
        manifest = read_manifest(samples_dir)  # after listing: every part listed above is recorded
        if manifest is not None and manifest.get("intent"):  # a compaction is switching files
            if not _recover_if_unlocked(samples_dir):
                time.sleep(0.05)  # it is running: wait for it
            continue
        missing = missing_parts(samples_dir, manifest, parts)
        if missing and manifest is not None:  # a writer records a part just before renaming it into view
            missing_seen += 1
            if missing_seen >= 20:
                raise missing_error(samples_dir, manifest, missing[0])
            time.sleep(0.01)
            continue
        try:
            return [load_part(p, manifest, ctx, columns) for p in parts]
        except _Vanished:
            time.sleep(0.01)
    raise StoreError(f"{samples_dir}: parts keep changing while reading (another process is compacting?); try again")


def _recover_if_unlocked(samples_dir: Path) -> bool:
    """Finish a compaction that its process left half-done (it died); False while one is running."""
    try:
        with run_lock(samples_dir.parent, "recovering a compaction"):
            recover(samples_dir)
        return True
    except StoreError:
        return False


# -- lock ------------------------------------------------------------------------------------------
_HELD: dict[str, list[Any]] = {}  # lock path -> [file handle, depth, owning thread]
_HELD_LOCK = threading.Lock()


@contextlib.contextmanager
def run_lock(run_dir: Path, what: str = "writing") -> Iterator[None]:
    """Exclusive lock of a run for writing (reentrant within a process; see the module docstring)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = str((run_dir / LOCK_FILE).resolve())
    me = threading.get_ident()
    with _HELD_LOCK:
        held = path in _HELD
        if held and _HELD[path][2] != me:
            raise StoreError(f"{run_dir}: another thread of this process is writing this run; wait for it to finish")
        if held:
            _HELD[path][1] += 1
    if held:
        try:
            yield
        finally:
            with _HELD_LOCK:
                _HELD[path][1] -= 1
        return
    try:
        import fcntl
    except ModuleNotFoundError:  # not POSIX: no cross-process lock
        yield
        return
    handle = open(path, "a+", encoding="utf-8")
    try:
        for attempt in range(5):  # `ttclab runs` asks (writer_alive) with a shared lock held for microseconds
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if attempt == 4:
                    raise
                time.sleep(0.02)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StoreError(f"{run_dir}: {holder} is writing this run; wait for it to finish (or stop it) and run the "
                         "command again") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"ttclab pid {os.getpid()} ({what}, since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC)")
    handle.flush()
    with _HELD_LOCK:
        _HELD[path] = [handle, 1, me]
    try:
        yield
    finally:
        with _HELD_LOCK:
            _HELD[path][1] -= 1
            done = _HELD[path][1] == 0
            if done:
                del _HELD[path]
        if done:
            with contextlib.suppress(OSError):
                handle.seek(0)
                handle.truncate()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()


def writer_alive(run_dir: Path) -> bool:
    """True while a process holds the run's lock (a sampler, a pipeline, a repair). A run.json that says
    ``running`` with no such process was stopped without a word (``kill -9``, a crash, a power cut)."""
    try:
        import fcntl
    except ModuleNotFoundError:  # not POSIX: nothing to ask
        return True
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


# -- compaction ------------------------------------------------------------------------------------
def compact_parts(samples_dir: Path, merged: pa.Table, stamp: str) -> None:
    """Replace every visible part by one file holding ``merged`` (caller holds the run lock)."""
    from ttclab.store.writer import _fsync_dir, write_parquet_tmp

    recover(samples_dir)
    olds = [p.name for p in visible_parts(samples_dir)]
    name = f"part-{stamp}-compacted.parquet"
    if name in olds:
        name = f"part-{stamp}-compacted-{uuid.uuid4().hex[:6]}.parquet"
    tmp = write_parquet_tmp(samples_dir / name, merged)
    sha, size = sha256_file(tmp)
    intent = {"merged": name, "tmp": tmp.name, "replaces": olds}
    update_manifest(samples_dir, add={name: {"sha256": sha, "bytes": size, "rows": merged.num_rows}}, intent=intent)
    _finish(samples_dir, intent)
    _fsync_dir(samples_dir)


def _finish(samples_dir: Path, intent: dict[str, Any]) -> None:
    for old in intent["replaces"]:  # hide the old parts first: a glob never sees old and merged together
        src = samples_dir / old
        if src.exists():
            os.replace(src, _hidden(samples_dir, old))
    tmp = samples_dir / intent["tmp"]
    if tmp.exists():
        os.replace(tmp, samples_dir / intent["merged"])
    update_manifest(samples_dir, drop=[o for o in intent["replaces"] if o != intent["merged"]], intent=None)
    for old in intent["replaces"]:
        _hidden(samples_dir, old).unlink(missing_ok=True)


def recover(samples_dir: Path) -> None:
    """Finish (or roll back) a compaction that was interrupted (caller holds the run lock)."""
    try:
        manifest = read_manifest(samples_dir)
    except StoreError:
        return
    intent = (manifest or {}).get("intent")
    if not intent:
        for stale in samples_dir.glob(f"{_HIDDEN_REPLACED}*"):
            stale.unlink(missing_ok=True)
        return
    merged, tmp = samples_dir / intent["merged"], samples_dir / intent["tmp"]
    entry = manifest["parts"].get(intent["merged"], {}) if manifest else {}
    if merged.exists() or (tmp.exists() and sha256_file(tmp)[0] == entry.get("sha256")):
        _finish(samples_dir, intent)
        return
    for old in intent["replaces"]:  # the merged file never got written whole: undo
        hidden = _hidden(samples_dir, old)
        if hidden.exists():
            os.replace(hidden, samples_dir / old)
    tmp.unlink(missing_ok=True)
    update_manifest(samples_dir, drop=[intent["merged"]], intent=None)


# -- damage and repair -----------------------------------------------------------------------------
def adopt_legacy(samples_dir: Path, ctx: RunContext) -> list[tuple[Path, str]]:
    """A run without a manifest: record its sound parts, move damaged ones aside (caller holds the lock)."""
    if (samples_dir / MANIFEST_FILE).exists() or not samples_dir.is_dir():
        return []
    entries, damaged = {}, []
    for part in visible_parts(samples_dir):
        try:
            table = load_part(part, None, ctx)
        except (StoreError, _Vanished) as exc:
            damaged.append((part, str(exc)))
            continue
        sha, size = sha256_file(part)
        entries[part.name] = {"sha256": sha, "bytes": size, "rows": table.num_rows}
    write_manifest(samples_dir, entries)
    return [(move_aside(p), why) for p, why in damaged]


def move_aside(part: Path, prefix: str = "") -> Path:
    """Move a file out of its table folder (``samples/``, ``calls/``...) into ``<run>/damaged/`` (kept for
    inspection), named ``prefix`` + its name + the time."""
    target_dir = part.parent.parent / DAMAGED_DIR
    target_dir.mkdir(exist_ok=True)
    target = target_dir / f"{prefix}{part.name}.{datetime.now(UTC):%Y%m%dT%H%M%S}"
    shutil.move(str(part), target)
    return target


def quarantine_damaged(samples_dir: Path, ctx: RunContext) -> list[tuple[Path, str]]:
    """Move every damaged part aside and drop it from the manifest (caller holds the run lock).

    Returns (where each went, why). A damaged manifest is rebuilt from the parts that pass the row
    invariants.
    """
    recover(samples_dir)
    moved = adopt_legacy(samples_dir, ctx)
    try:
        manifest = read_manifest(samples_dir)
    except StoreError as exc:  # keep the damaged manifest for inspection; check the parts by their rows
        aside = samples_dir.parent / DAMAGED_DIR
        aside.mkdir(exist_ok=True)
        target = aside / f"{MANIFEST_FILE}.{datetime.now(UTC):%Y%m%dT%H%M%S}"
        os.replace(samples_dir / MANIFEST_FILE, target)
        return [*moved, (target, str(exc)), *adopt_legacy(samples_dir, ctx)]
    drop = []
    for part in visible_parts(samples_dir):
        try:
            load_part(part, manifest, ctx)
        except _Vanished:
            continue
        except StoreError as exc:
            drop.append(part.name)
            moved.append((move_aside(part), str(exc)))
    if manifest is not None:
        for name in missing_parts(samples_dir, manifest, visible_parts(samples_dir)):
            if name in drop:
                continue
            if _rename_committed_tmp(samples_dir, name, manifest["parts"][name]):
                continue  # its writer died between recording it and renaming it into view: nothing lost
            drop.append(name)
            moved.append((_record_missing(samples_dir, name, manifest["parts"][name]),
                          str(missing_error(samples_dir, manifest, name))))
    if drop:
        update_manifest(samples_dir, drop=drop)
    return moved


def _rename_committed_tmp(samples_dir: Path, name: str, entry: dict[str, Any]) -> bool:
    """A recorded part still under its temporary name (see :func:`commit_part`) whose checksum matches:
    rename it into view. True when it was."""
    for tmp in samples_dir.glob(f".{name}.*.tmp"):
        if sha256_file(tmp)[0] == entry.get("sha256"):
            os.replace(tmp, samples_dir / name)
            return True
    return False


def _record_missing(samples_dir: Path, name: str, entry: dict[str, Any]) -> Path:
    """Keep the manifest entry of a missing part in ``<run>/damaged/`` (what was lost, for inspection)."""
    target_dir = samples_dir.parent / DAMAGED_DIR
    target_dir.mkdir(exist_ok=True)
    target = target_dir / f"{name}.missing.{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    target.write_text(json.dumps({"part": name, "recorded": entry, "note": "recorded in the manifest, not found "
                                  "in samples/; its samples are generated again"}, indent=1) + "\n")
    return target


@dataclass
class RepairReport:
    """What :func:`repair_run` did."""

    run_dir: Path
    moved: list[tuple[Path, str]] = field(default_factory=list)  # (where the damaged file went, why)
    meta_rebuilt: str | None = None  # why run.json was rebuilt
    questions_moved: tuple[Path, str] | None = None  # (where questions.parquet went, why); written again from the config
    ok_parts: int = 0
    rows: int = 0
    tables: TablesRepair | None = None  # a pipeline run's tables (calls, candidates, ...): their damaged files are in moved

    @property
    def changed(self) -> bool:
        return bool(self.moved or self.meta_rebuilt or self.questions_moved
                    or (self.tables and (self.tables.dropped or self.tables.samples_dropped)))

    @property
    def lost(self) -> bool:
        """Samples or the questions table were lost (a rebuilt manifest alone loses nothing)."""
        return bool(self.questions_moved) or any(not Path(w).name.startswith(MANIFEST_FILE) for w, _ in self.moved)


def repair_run(run_dir: Path) -> RepairReport:
    """Make a run readable again, under its lock: rebuild a missing or corrupt run.json from the
    stored samples, move damaged parts (and a damaged manifest) into ``<run>/damaged/``, and mark the
    run incomplete when samples were lost, so that sampling again regenerates them. A pipeline run's
    tables are checked and repaired too (:func:`ttclab.store.journal.repair_tables`)."""
    from ttclab.store.journal import repair_tables
    from ttclab.store.reader import Run
    from ttclab.store.writer import atomic_write_json

    run_dir = Path(run_dir)
    samples_dir = run_dir / "samples"
    with run_lock(run_dir, "repairing"):
        report = RepairReport(run_dir)
        try:
            meta = Run(run_dir).meta
        except StoreError as exc:
            report.meta_rebuilt = str(exc)
            meta = None
        questions = run_dir / "questions.parquet"
        try:
            Run(run_dir).questions()
        except StoreError as exc:  # the samples are checked without it; sampling writes it again from the config
            aside = run_dir / DAMAGED_DIR
            aside.mkdir(exist_ok=True)
            target = aside / f"questions.parquet.{datetime.now(UTC):%Y%m%dT%H%M%S}"
            os.replace(questions, target)
            report.questions_moved = (target, str(exc))
        ctx = Run(run_dir).context(lenient=True)
        report.moved = quarantine_damaged(samples_dir, ctx)
        if any((run_dir / t).is_dir() for t in PIPELINE_TABLES):
            pipeline = (meta or {}).get("pipeline") or {}
            rerunnable = (meta or {}).get("kind") == "pipeline" and bool(pipeline.get("file"))  # not served traffic
            report.tables = repair_tables(run_dir, ctx, rerunnable=rerunnable)
            report.moved += report.tables.moved
        tables = read_parts(samples_dir, ctx)
        report.ok_parts, report.rows = len(tables), sum(t.num_rows for t in tables)
        if meta is None:
            meta = _rebuilt_meta(run_dir, tables)
            old = run_dir / "run.json"
            if old.exists():
                aside = run_dir / DAMAGED_DIR
                aside.mkdir(exist_ok=True)
                os.replace(old, aside / f"run.json.{datetime.now(UTC):%Y%m%dT%H%M%S}")
            atomic_write_json(old, meta)
        elif report.lost and meta.get("status") == "complete":
            atomic_write_json(run_dir / "run.json", {**meta, "status": "incomplete"})
    return report


def _rebuilt_meta(run_dir: Path, tables: list[pa.Table]) -> dict[str, Any]:
    from collections import Counter

    from ttclab.store.schema import SCHEMA_VERSION

    models: Counter[str] = Counter()
    samples = 0
    for t in tables:
        models.update(t["model"].to_pylist())
        if t.num_rows:
            samples = max(samples, int(pa.compute.max(t["sample_index"]).as_py()) + 1)
    questions = run_dir / "questions.parquet"
    n_q = pq.read_metadata(questions).num_rows if questions.exists() else None
    model = models.most_common(1)[0][0] if models else ""
    return {"schema_version": SCHEMA_VERSION, "run_id": run_dir.name, "status": "incomplete",
            "created_at": datetime.now(UTC).isoformat(), "model": {"name": model, "label": model},
            "samples": samples or None, "n_questions": n_q,
            "rebuilt": "run.json was rebuilt by `ttclab repair` from the stored samples; the sampling config is lost"}


__all__ = [
    "DAMAGED_DIR", "MANIFEST_FILE", "RepairReport", "RunContext", "adopt_legacy", "check_rows", "commit_part",
    "compact_parts", "decode_failure", "disk_full_error", "load_part", "missing_parts", "move_aside",
    "quarantine_damaged", "read_manifest", "read_parts", "recover", "repair_run", "run_lock", "update_manifest",
    "visible_parts", "writer_alive",
]
