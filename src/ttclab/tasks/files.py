"""Tasks from local files (JSONL, CSV/TSV, Parquet, JSON list) with presets for common layouts.

Presets (``PRESETS``) map a known layout to questions:

- ``gsm8k``: ``question``, ``answer`` (worked solution ending ``#### 1,000``) → gold ``1000``.
- ``math500``: ``problem``, ``answer``, ``level`` (difficulty), ``subject``, ``unique_id`` (id).
- ``math``: ``problem``, ``solution`` → gold = content of the last ``\\boxed{}``; ``level`` "Level 3" → 3.
- ``aime``: ``problem`` or ``question``, ``answer`` (leading zeros dropped), ``id``.
- ``amc``: ``problem`` or ``question``, ``answer`` (a float such as ``27.0`` → ``"27"``), ``id``.
- ``gpqa``: CSV columns ``Question``, ``Correct Answer``, ``Incorrect Answer 1..3``, ``Record ID``; the
  four options are shuffled with a fixed per-question order (a stable hash of the Record ID) and
  listed as A)–D) in the question; gold is the letter; the options are in ``metadata["choices"]``.
- ``generic``: ``question`` and ``answer`` by default; any field names through ``fields``.

``fields`` ({id, question, gold, difficulty, metadata}) overrides a preset's field names. Questions
without an id field get their 0-based record index as id. Every bad input is one ``DataError`` line
naming the file and line (``data/x.jsonl:17: invalid JSON (...); fix or remove the line``).
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from ttclab.errors import ConfigError, DataError
from ttclab.extract import last_boxed
from ttclab.io import iter_jsonl
from ttclab.tasks.base import Question
from ttclab.tasks.gym import to_jsonable

Record = dict[str, Any]
LETTERS = "ABCDEFGHIJ"
FILE_TYPES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
              ".parquet": "parquet", ".pq": "parquet"}


# --------------------------------------------------------------------------------------------
# Field mapping and presets
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FieldMap:
    """Which record fields hold what. ``question`` / ``gold`` list alternatives (first present wins)."""

    question: tuple[str, ...] = ("question",)
    gold: tuple[str, ...] = ("answer",)
    id: str | None = None
    difficulty: str | None = None
    metadata: tuple[str, ...] = ()
    # Fields the user named explicitly: absent → error (a preset's optional fields are skipped).
    required: frozenset[str] = frozenset()

    def override(self, fields: Mapping[str, Any] | None) -> FieldMap:
        """A copy with the user's ``task.fields`` applied (these become required)."""
        if not fields:
            return self
        changes: dict[str, Any] = {}
        required = set(self.required)
        for key, value in fields.items():
            if value is None:
                continue
            if key in ("question", "gold"):
                changes[key] = (value,) if isinstance(value, str) else tuple(value)
            elif key in ("id", "difficulty"):
                changes[key] = str(value)
            elif key == "metadata":
                changes[key] = (value,) if isinstance(value, str) else tuple(value)
            else:
                raise ConfigError(f"task.fields.{key}: unknown field role; use id, question, gold, difficulty, metadata")
            required.add(key)
        return replace(self, **changes, required=frozenset(required))


@dataclass(frozen=True, slots=True)
class Preset:
    """A known file layout: default field names, how to read gold and difficulty, which verifier."""

    name: str
    description: str
    fields: FieldMap
    verifier: str
    gold: Callable[[Any, str, str], str] = field(default=lambda v, where, name: plain_gold(v, where, name))
    # Builds the whole question instead of the standard mapping (GPQA).
    build: Callable[[Record, int, str, FieldMap], Question] | None = None


class _Problem(Exception):
    """A problem with one record; turned into a DataError naming the file and line."""


def plain_gold(value: Any, where: str, name: str) -> str:
    """A gold value as a string: integral floats lose ``.0`` (27.0 → "27"); empty is an error."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{where}: field {name!r} is empty; fill it in or remove the line")
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DataError(f"{where}: field {name!r} is {value}; fix the line")
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value).strip()


def _integer_gold(value: Any, where: str, name: str) -> str:
    text = plain_gold(value, where, name)
    return str(int(text)) if re.fullmatch(r"[+-]?\d+", text) else text


def _gsm8k_gold(value: Any, where: str, name: str) -> str:
    text = plain_gold(value, where, name)
    if "####" not in text:
        raise DataError(f"{where}: field {name!r} has no '#### <answer>' line; use preset generic for plain answers")
    gold = text.rsplit("####", 1)[1].strip().replace(",", "")
    if not gold:
        raise DataError(f"{where}: field {name!r} has nothing after '####'; fix the line")
    return gold


def _boxed_gold(value: Any, where: str, name: str) -> str:
    text = plain_gold(value, where, name)
    gold = last_boxed(text)
    if gold is None:
        raise DataError(f"{where}: field {name!r} has no \\boxed{{...}} answer; set task.fields.gold to an answer field")
    return gold




def level_number(value: Any) -> float | None:
    """A difficulty as a number: 3, 3.5, "3", "Level 3" → 3.0; "Level ?" → None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    m = re.search(r"[-+]?\d+(?:\.\d+)?", str(value))
    return float(m.group(0)) if m else None


def _gpqa_build(rec: Record, index: int, where: str, fm: FieldMap) -> Question:
    question = _text(_field(rec, fm.question, where, "question"), where).strip()
    correct = _text(_field(rec, fm.gold, where, "gold"), where).strip()
    incorrect = []
    for k in (1, 2, 3):
        col = f"Incorrect Answer {k}"
        if col not in rec:
            raise DataError(f"{where}: no field {col!r}; the gpqa preset needs the columns Question, Correct Answer, "
                            "Incorrect Answer 1, Incorrect Answer 2, Incorrect Answer 3")
        incorrect.append(_text(rec[col], where).strip())
    if not question or not correct or not all(incorrect):
        raise DataError(f"{where}: the question or one of its four answers is empty; fill it in or remove the line")
    record_id = _field(rec, (fm.id,), where, "id") if fm.id and (fm.id in rec or "id" in fm.required) else None
    key = str(record_id) if record_id is not None else question
    options = [correct, *incorrect]
    order = sorted(range(4), key=lambda k: hashlib.sha256(f"{key}\x00{k}".encode()).digest())
    choices = [options[k] for k in order]
    letter = LETTERS[order.index(0)]
    listing = "\n".join(f"{LETTERS[k]}) {c}" for k, c in enumerate(choices))
    meta: dict[str, Any] = {"choices": choices, "record_id": key}
    for name, col in (("domain", "High-level domain"), ("subdomain", "Subdomain"),
                      ("writer_difficulty", "Writer's Difficulty Estimate"), *((m, m) for m in fm.metadata)):
        if rec.get(col) not in (None, ""):
            meta[name] = to_jsonable(rec[col])
    return Question(id=key if record_id is not None else str(index), question=f"{question}\n\n{listing}",
                    gold=letter, difficulty=None, metadata=meta)


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("gsm8k", "GSM8K: question, answer with '#### gold'", FieldMap(("question",), ("answer",)),
           "numeric", gold=_gsm8k_gold),
    Preset("math500", "MATH-500: problem, answer, level, subject, unique_id",
           FieldMap(("problem",), ("answer",), id="unique_id", difficulty="level", metadata=("subject", "level")),
           "math"),
    Preset("math", "MATH: problem, solution (gold = last \\boxed{}), level 'Level 3', type, idx",
           FieldMap(("problem",), ("solution",), id="idx", difficulty="level", metadata=("type", "level")),
           "math", gold=_boxed_gold),
    Preset("aime", "AIME 2024/2025: problem or question, answer, id",
           FieldMap(("problem", "question"), ("answer",), id="id", metadata=("year", "contest", "url")),
           "numeric", gold=_integer_gold),
    Preset("amc", "AMC 2023: problem or question, answer (27.0 → 27), id",
           FieldMap(("problem", "question"), ("answer",), id="id", metadata=("url",)),
           "numeric", gold=_integer_gold),
    Preset("gpqa", "GPQA CSV: Question, Correct Answer, Incorrect Answer 1..3, Record ID",
           FieldMap(("Question",), ("Correct Answer",), id="Record ID"), "choice", build=_gpqa_build),
    Preset("generic", "any layout: fields {id, question, gold, difficulty, metadata}", FieldMap(), "math"),
)}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ConfigError with close matches otherwise."""
    if name in PRESETS:
        return PRESETS[name]
    close = difflib.get_close_matches(name, list(PRESETS), n=2, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise ConfigError(f"task.preset: unknown preset {name!r}; {hint}use one of {', '.join(PRESETS)}")


# --------------------------------------------------------------------------------------------
# Records → questions
# --------------------------------------------------------------------------------------------

def _field(rec: Record, names: Sequence[str], where: str, role: str) -> Any:
    for name in names:
        if name in rec:
            return rec[name]
    shown = " or ".join(repr(n) for n in names)
    raise DataError(f"{where}: no field {shown}; set task.fields.{role} or use a preset")


def _text(value: Any, where: str) -> str:
    if value is None:
        raise DataError(f"{where}: a required field is empty; fill it in or remove the line")
    return value if isinstance(value, str) else str(value)


def _first_name(rec: Record, names: Sequence[str]) -> str:
    return next((n for n in names if n in rec), names[0])


def record_to_question(rec: Record, index: int, where: str, preset: Preset, fm: FieldMap) -> Question:
    """One record as a question (raises DataError naming ``where``)."""
    if preset.build is not None:
        return preset.build(rec, index, where, fm)
    question = _text(_field(rec, fm.question, where, "question"), where)
    if not question.strip():
        raise DataError(f"{where}: field {_first_name(rec, fm.question)!r} is empty; fill it in or remove the line")
    gold = preset.gold(_field(rec, fm.gold, where, "gold"), where, _first_name(rec, fm.gold))
    qid = str(index)
    if fm.id is not None and (fm.id in rec or "id" in fm.required):
        raw = _field(rec, (fm.id,), where, "id")
        if raw is None or str(raw) == "":
            raise DataError(f"{where}: field {fm.id!r} (the id) is empty; fill it in or set task.fields.id")
        qid = str(raw)
    difficulty = None
    if fm.difficulty is not None and (fm.difficulty in rec or "difficulty" in fm.required):
        raw = _field(rec, (fm.difficulty,), where, "difficulty")
        difficulty = level_number(raw)
        if difficulty is None and raw is not None and "difficulty" in fm.required:
            raise DataError(f"{where}: field {fm.difficulty!r} is not a number ({raw!r}); "
                            "set task.fields.difficulty to a numeric field")
    meta: dict[str, Any] = {}
    for name in fm.metadata:
        if name in rec:
            meta[name] = to_jsonable(rec[name])
        elif "metadata" in fm.required:
            raise DataError(f"{where}: no field {name!r}; remove it from task.fields.metadata or fix the line")
    if preset.name == "gsm8k":
        meta["solution"] = str(rec[_first_name(rec, fm.gold)]).rsplit("####", 1)[0].strip()
    elif preset.name in ("math500", "math") and isinstance(rec.get("solution"), str):
        meta["solution"] = rec["solution"]
    return Question(id=qid, question=question, gold=gold, difficulty=difficulty, metadata=meta)


def records_to_questions(records: Iterable[tuple[str, Record]], preset: Preset, fm: FieldMap, *,
                         source: str, limit: int | None = None, index_start: int = 0) -> list[Question]:
    """Map ``(where, record)`` pairs to questions; ids must be unique; at least one question."""
    out: list[Question] = []
    seen: dict[str, str] = {}
    for index, (where, rec) in enumerate(records, start=index_start):
        if limit is not None and len(out) >= limit:
            break
        q = record_to_question(rec, index, where, preset, fm)
        if q.id in seen:
            raise DataError(f"{where}: duplicate id {q.id!r} (also at {seen[q.id]}); ids must be unique: "
                            "set task.fields.id to a unique field")
        seen[q.id] = where
        out.append(q)
    if not out:
        raise DataError(f"{source}: no questions (the dataset is empty); check the path or split")
    return out


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------

def file_type(path: Path) -> str:
    """``jsonl`` / ``json`` / ``csv`` / ``tsv`` / ``parquet`` from the file's suffix."""
    kind = FILE_TYPES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unknown file type {path.suffix or '(none)'!r}; "
                        "use .jsonl, .json, .csv, .tsv or .parquet")
    return kind


def read_records(path: str | Path) -> Iterator[tuple[str, Record]]:
    """Yield ``(where, record)`` for each record of a file; ``where`` is ``path:line`` (or ``path row n``)."""
    path = Path(path)
    kind = file_type(path)
    if not path.exists():
        where = f" (relative to the current folder {Path.cwd()})" if not path.is_absolute() else ""
        raise DataError(f"{path}: no such file{where}; check task.path")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; set task.path to a .jsonl, .csv or .parquet file")
    if kind == "jsonl":
        yield from _read_jsonl(path)
    elif kind == "json":
        yield from _read_json(path)
    elif kind in ("csv", "tsv"):
        yield from _read_csv(path, "\t" if kind == "tsv" else ",")
    else:
        yield from _read_parquet(path)


def _decode_error(path: Path, exc: UnicodeDecodeError, line: int | None = None) -> DataError:
    where = f"{path}:{line}" if line else str(path)
    return DataError(f"{where}: not UTF-8 text ({exc.reason}); convert the file to UTF-8")


def _read_jsonl(path: Path) -> Iterator[tuple[str, Record]]:
    with path.open("rb") as fh:
        for lineno, rec in iter_jsonl(fh, str(path)):
            yield f"{path}:{lineno}", rec


def _read_json(path: Path) -> Iterator[tuple[str, Record]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise _decode_error(path, exc) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}); fix the file") from None
    if isinstance(data, dict):  # {"data": [...]} or similar: the only list value
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else data
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of objects; use JSONL (one object per line) or a list")
    for i, rec in enumerate(data, start=1):
        where = f"{path} item {i}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(rec).__name__}; fix the item")
        yield where, rec


def _read_csv(path: Path, delimiter: str) -> Iterator[tuple[str, Record]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            try:
                header = next(reader)
            except StopIteration:
                return
            start = reader.line_num + 1
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise DataError(f"{path}:{start}: invalid CSV ({exc}); fix the line") from None
                where = f"{path}:{start}"
                start = reader.line_num + 1
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise DataError(f"{where}: {len(row)} values but {len(header)} columns in the header; "
                                    "fix the line (quote values that contain the delimiter)")
                yield where, dict(zip(header, row))
    except UnicodeDecodeError as exc:
        raise _decode_error(path, exc) from None


def _read_parquet(path: Path) -> Iterator[tuple[str, Record]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]}); check task.path") from None
    row = 0
    for batch in table.to_batches(max_chunksize=4096):
        for rec in batch.to_pylist():
            row += 1
            yield f"{path} row {row}", rec


# --------------------------------------------------------------------------------------------
# The task
# --------------------------------------------------------------------------------------------

_SPLIT_NAMES = {"test", "train", "validation", "valid", "dev", "data", "dataset", "questions"}


def default_name(path: Path) -> str:
    """A readable task name: ``gsm8k/test.jsonl`` → ``gsm8k-test``; ``aime.csv`` → ``aime``."""
    stem = path.name.split(".")[0]
    if stem.lower() in _SPLIT_NAMES and path.parent.name not in ("", "."):
        return f"{path.parent.name}-{stem}"
    return stem


class FileTask:
    """Questions from a local file through a preset and/or a field mapping.

    ``limit`` keeps the first ``limit`` records (reading stops there). Deterministic: the file's
    order, ids from the id field or the record index.
    """

    def __init__(self, path: str | Path, *, preset: str = "generic", fields: Mapping[str, Any] | None = None,
                 limit: int | None = None, name: str | None = None) -> None:
        self.path = Path(path)
        self.preset = get_preset(preset)
        self.fields = dict(fields or {})
        self.fieldmap = self.preset.fields.override(self.fields)
        if limit is not None and limit < 1:
            raise ConfigError(f"task.limit: must be at least 1 (got {limit})")
        self.limit = limit
        self.name = name or default_name(self.path)

    @cached_property
    def _questions(self) -> tuple[Question, ...]:
        return tuple(records_to_questions(read_records(self.path), self.preset, self.fieldmap, source=str(self.path),
                                          limit=self.limit))

    def questions(self) -> Sequence[Question]:
        """The questions, read once."""
        return self._questions

    def default_verifier(self) -> str:
        return self.preset.verifier

    def describe(self) -> dict[str, Any]:
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest() if self.path.is_file() else None
        return {"source": "file", "path": str(self.path), "format": file_type(self.path), "preset": self.preset.name,
                "fields": self.fields, "limit": self.limit, "count": len(self.questions()), "sha256": digest}

    def __repr__(self) -> str:
        return f"FileTask({str(self.path)!r}, preset={self.preset.name!r}, limit={self.limit})"
