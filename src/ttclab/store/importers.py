"""Bring existing results into the store: strategic-ttc run files and counts-only tables.

``strategic-ttc`` (Networks-Learning/strategic-ttc) writes one JSONL line per question::

    {"qid": ..., "prompt": ..., "answers": [...], "correct": [...], "explanations": [...],
     "num_tokens": [...], "rewards": [...], "ground_truths": [...], "model_name": ...}

Each list has one entry per sample; in newer files each entry is itself a list over continuation
rounds (``answers[sample][round]``): the last round is the sample's final answer and tokens are
summed over rounds. By default the file's own ``correct`` flags are the verdicts and its
explanation is the verdict reason. With ``verifier=`` every sample is graded again against the
ground truth; a question that verifier cannot grade (e.g. a letter gold for ``numeric``) keeps the
file's flags, is marked "not re-verified" and is listed in ``run.meta["import"]["not_reverified"]``:
the import never stops half-way. The canonical answer used for voting is the explanation's
prediction (``boxed='18'; ...``) when present, else the answer extracted from the text; plain
numbers are in the numeric canonical form (``2/4`` votes with ``0.5``), other answers normalised
and case-folded like the ``exact`` verifier.

``counts`` reads a CSV or Parquet table with columns ``problem``, ``n`` (samples), ``correct``
(how many were correct) and optionally ``model`` (one run per model) and ``difficulty``: the
shape of repeated-sampling studies that publish only (samples, correct) per problem. Each problem
gets ``n`` rows with verdict ``correct`` / ``incorrect`` and no answer, text or tokens (which
correct ones is a seeded permutation; sample order carries no information). pass@k and every
estimator that needs correctness only can use the run; strategies that need answers, rewards or
tokens see them missing (``run.meta["data"]``).

Files may be compressed: ``.gz``, ``.bz2``, ``.xz`` / ``.lzma``, ``.zst`` (detected by their
magic bytes); other archives (``.7z``, ``.zip``, ...) are refused in one line.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ttclab.errors import DataError, TTCLabError
from ttclab.io import iter_jsonl
from ttclab.store.integrity import MANIFEST_FILE, run_lock
from ttclab.store.reader import Run, store_root
from ttclab.store.rows import QuestionRow, run_meta, sample_row
from ttclab.store.schema import SAMPLES_SCHEMA
from ttclab.store.writer import META_FILE, SAMPLES_DIR, SampleWriter, atomic_write_json, write_questions
from ttclab.tasks.base import Question

_EXPLANATION_PRED = re.compile(r"^\s*\w+\s*=\s*'(.*?)'\s*(?:;|$)", re.S)
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"))
_UNSUPPORTED = (".7z", ".zip", ".rar", ".lz4", ".br", ".lz", ".tar", ".tgz")


# -- files -------------------------------------------------------------------------------------------
def read_file_bytes(path: str | Path) -> bytes:
    """The content of ``path``, decompressed when it is gzip / bzip2 / xz / zstd (by magic bytes).

    DataError (one line naming the file) when it is missing, damaged, or an archive format that is
    not read here.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; give a file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    codec = next((name for magic, name in _MAGIC if raw.startswith(magic)), None)
    if codec is None:
        suffix = next((s for s in _UNSUPPORTED if path.name.lower().endswith(s)), None)
        if suffix:
            raise DataError(f"{path}: {suffix} archives are not read here; decompress it first, "
                            "or compress with gzip, bzip2, xz or zstd")
        return raw
    try:
        if codec == "gzip":
            return gzip.decompress(raw)
        if codec == "bzip2":
            return bz2.decompress(raw)
        if codec == "xz":
            return lzma.decompress(raw)
        return _zstd_decompress(raw)
    except (OSError, EOFError, ValueError, lzma.LZMAError, pa.ArrowException) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{path}: damaged {codec} data ({detail[:120]}); re-download or re-compress the file") from None


def _zstd_decompress(raw: bytes) -> bytes:
    stream = pa.input_stream(pa.BufferReader(raw), compression="zstd")
    return bytes(stream.read())


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


# -- strategic-ttc -----------------------------------------------------------------------------------
def _last(value: Any) -> Any:
    return value[-1] if isinstance(value, list) and value else (None if isinstance(value, list) else value)


def _total(value: Any) -> int:
    if isinstance(value, list):
        return int(sum(v or 0 for v in value))
    return int(value or 0)


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    data = read_file_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); not a strategic-ttc JSONL file") from None
    for lineno, obj in iter_jsonl(text.splitlines(), str(path)):
        for key in ("qid", "answers", "correct"):
            if key not in obj:
                raise DataError(f"{path}:{lineno}: no field {key!r}; not a strategic-ttc run file")
        if not isinstance(obj["answers"], list):
            raise DataError(f"{path}:{lineno}: 'answers' must be a list (one entry per sample)")
        n = len(obj["answers"])
        for key in ("correct", "explanations", "num_tokens", "rewards"):
            if key in obj and obj[key] is not None and (not isinstance(obj[key], list) or len(obj[key]) != n):
                size = len(obj[key]) if isinstance(obj[key], list) else "no list of"
                raise DataError(f"{path}:{lineno}: {key!r} has {size} entries but 'answers' has {n}")
        yield lineno, obj


def canonical_answer(raw: str | None) -> str | None:
    """The voting form of an answer: a plain number canonically (``2/4`` -> ``0.5``), otherwise the
    answer without presentation (``$``, ``\\text{}``, ``**``, a final period), case-folded."""
    from ttclab.extract import clean_answer
    from ttclab.verify.math import plain_value
    from ttclab.verify.numeric import canonical_number

    if raw is None or not str(raw).strip():
        return None
    value = plain_value(str(raw))
    if value is not None:
        return canonical_number(value)
    return clean_answer(str(raw)).casefold() or None


def _answer_of(text: str | None, explanation: str | None) -> str | None:
    """The sample's prediction: from the explanation (``boxed='18'``), else extracted from its text."""
    from ttclab.extract import final_answer, last_line, last_number

    match = _EXPLANATION_PRED.match(explanation or "")
    if match and match.group(1).strip():
        return canonical_answer(match.group(1))
    text = text or ""
    raw, _ = final_answer(text)
    return canonical_answer(raw or last_number(text) or last_line(text))


def import_strategic_ttc(
    path: str | Path,
    *,
    model: str | None = None,
    task: str | None = None,
    verifier: str | None = None,
    store: str | Path | None = None,
) -> Run:
    """Import a strategic-ttc JSONL run file (plain or compressed) as a ttclab run.

    Idempotent: the same file (and verifier) gives the same run. ``verifier=None`` keeps the file's
    verdicts; a verifier name grades every sample again (see the module docstring).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; give the path of a strategic-ttc .jsonl run file")
    digest = _file_digest(path)
    records = list(_records(path))
    if not records:
        raise DataError(f"{path}: no records; the file is empty")
    model_name = model or records[0][1].get("model_name") or _stem(path).split("--")[0]
    task_name = task or path.parent.name or "imported"
    run_id = f"import-{_slug(task_name)}-{_slug(model_name)}-{digest}" + (f"-{_slug(verifier)}" if verifier else "")
    run_dir = store_root(store) / run_id
    if (run_dir / META_FILE).exists() and Run(run_dir).meta.get("status") == "complete":
        return Run(run_dir)
    check = None
    if verifier:
        from ttclab.verify.registry import get_verifier

        check = get_verifier(verifier)
    now = datetime.now(UTC)
    questions, rows, not_reverified = [], [], []
    for qi, (lineno, rec) in enumerate(records):
        truths = rec.get("ground_truths") or []
        gold = str(truths[0]) if truths else ""
        q = Question(id=str(rec["qid"]), question=str(rec.get("prompt") or ""), gold=gold,
                     metadata={"source": "strategic-ttc", "line": lineno, "meta": rec.get("question_meta")})
        questions.append(QuestionRow(question_index=qi, question_id=q.id, question=q.question, prompt=q.question,
                                     gold=gold, metadata=q.metadata).as_dict())
        n = len(rec["answers"])
        explanations = rec.get("explanations") or [None] * n
        tokens = rec.get("num_tokens") or [None] * n
        rewards = rec.get("rewards") or [None] * n
        samples = [(_last(text), bool(_last(ok)), _last(expl), tok, _last(reward)) for text, ok, expl, tok, reward
                   in zip(rec["answers"], rec["correct"], explanations, tokens, rewards)]
        graded = None
        if check is not None:
            try:
                graded = [check.verify(str(text or ""), q) for text, *_ in samples] if gold else None
                if graded is None:
                    raise DataError(f"question {q.id}: no ground truth in the file")
            except TTCLabError as exc:
                not_reverified.append({"question_id": q.id, "line": lineno, "reason": str(exc)})
        for si, (text, ok, expl, tok, reward) in enumerate(samples):
            answer = _answer_of(text, expl)
            if graded is not None:
                v = graded[si]
                answer, status, correct, reason = v.answer, v.status, v.correct, v.reason
            else:
                correct = ok
                status = "correct" if ok else ("incorrect" if answer is not None else "unparseable")
                reason = str(expl) if expl else "correctness from the file"
                if check is not None:
                    reason = f"not re-verified ({not_reverified[-1]['reason']}); {reason}"
            rows.append(sample_row(
                run_id=run_id, model=model_name, question_id=q.id, question_index=qi, sample_index=si,
                text=None if text is None else str(text),
                completion_tokens=_total(tok) if tok is not None else None, answer=answer, verdict=status,
                correct=bool(correct), verify_reason=reason, reward=None if reward is None else float(reward),
                created_at=now,
            ))
    meta = _meta(run_id, now, model_name, task_name, path, digest, "strategic-ttc",
                 samples=max(len(r["answers"]) for _, r in records), n_questions=len(records))
    meta["source"]["verdicts"] = verifier or "file"
    if not_reverified:
        meta["import"] = {"not_reverified": not_reverified}
    _write_run(run_dir, meta, questions, rows=rows)
    return Run(run_dir)


# -- counts ------------------------------------------------------------------------------------------
def _read_table(path: Path) -> pa.Table:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    data = read_file_bytes(path)
    if data[:4] == b"PAR1":
        try:
            return pq.read_table(pa.BufferReader(data))
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: unreadable Parquet ({' '.join(str(exc).split())[:120]})") from None
    try:
        return pcsv.read_csv(pa.BufferReader(data), convert_options=pcsv.ConvertOptions(
            column_types={"problem": pa.string(), "model": pa.string()}))
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a CSV or Parquet table ({' '.join(str(exc).split())[:160]})") from None


def _whole_numbers(path: Path, table: pa.Table, name: str) -> np.ndarray:
    col = table[name]
    values = col.to_pylist()
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        try:
            f = float(v) if v is not None and not isinstance(v, bool) else float("nan")
        except (TypeError, ValueError):
            f = float("nan")
        if not np.isfinite(f) or f != int(f) or f < 0:
            raise DataError(f"{path}: line {i + 2}: column {name!r} must be a whole number >= 0, got {v!r}")
        out[i] = int(f)
    return out


def import_counts(
    path: str | Path,
    *,
    model: str | None = None,
    task: str | None = None,
    store: str | Path | None = None,
    seed: int = 0,
) -> list[Run]:
    """Import a counts table (problem, n, correct[, model, difficulty]) as one run per model.

    Idempotent (same file, same runs). ``seed`` drives which of a problem's samples are the correct
    ones (it does not change any correctness-only estimate). See the module docstring.
    """
    path = Path(path)
    digest = _file_digest(path) if path.is_file() else ""
    table = _read_table(path)
    missing = [c for c in ("problem", "n", "correct") if c not in table.column_names]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; a counts table has columns "
                        "problem, n, correct (and optionally model, difficulty)")
    if table.num_rows == 0:
        raise DataError(f"{path}: no rows; give one row per problem with its samples n and correct count")
    problems = [str(p) if p is not None else "" for p in table["problem"].to_pylist()]
    if any(not p for p in problems):
        raise DataError(f"{path}: line {problems.index('') + 2}: column 'problem' is empty")
    n = _whole_numbers(path, table, "n")
    correct = _whole_numbers(path, table, "correct")
    for bad in np.flatnonzero((correct > n) | (n == 0)):
        what = "n must be >= 1" if n[bad] == 0 else f"correct {correct[bad]} is more than n {n[bad]}"
        raise DataError(f"{path}: line {bad + 2}: {what} (problem {problems[bad]!r})")
    difficulty = np.full(len(problems), np.nan)
    if "difficulty" in table.column_names:
        try:
            difficulty = np.asarray(table["difficulty"].cast(pa.float64()).fill_null(np.nan).to_numpy(), float)
        except (pa.ArrowException, TypeError, ValueError):
            raise DataError(f"{path}: column 'difficulty' must hold numbers") from None
    models = ([str(m) if m is not None else "" for m in table["model"].to_pylist()] if "model" in table.column_names
              else [model or _stem(path)] * len(problems))
    if model and "model" in table.column_names:
        raise DataError(f"{path}: the table has a model column; drop --model or the column")
    groups: dict[str, list[int]] = {}
    for i, m in enumerate(models):
        if not m:
            raise DataError(f"{path}: line {i + 2}: column 'model' is empty")
        groups.setdefault(m, []).append(i)
    for m, idx in groups.items():
        seen: dict[str, int] = {}
        for i in idx:
            if problems[i] in seen:
                raise DataError(f"{path}: problem {problems[i]!r} appears twice for model {m!r} "
                                f"(lines {seen[problems[i]] + 2} and {i + 2}); give one row per problem")
            seen[problems[i]] = i
    task_name = task or _stem(path)
    runs = []
    now = datetime.now(UTC)
    for m, idx in groups.items():
        run_id = f"counts-{_slug(task_name)}-{_slug(m)}-{digest}"
        run_dir = store_root(store) / run_id
        if (run_dir / META_FILE).exists() and Run(run_dir).meta.get("status") == "complete":
            runs.append(Run(run_dir))
            continue
        rng = np.random.default_rng([seed, int(digest or "0", 16)])
        questions = [QuestionRow(question_index=qi, question_id=problems[i],
                                 difficulty=None if np.isnan(difficulty[i]) else float(difficulty[i]),
                                 metadata={"source": "counts", "line": i + 2}).as_dict() for qi, i in enumerate(idx)]
        table_rows = _counts_table(run_id, m, [problems[i] for i in idx], n[idx], correct[idx], rng, now)
        meta = _meta(run_id, now, m, task_name, path, digest, "counts", samples=int(n[idx].max()),
                     n_questions=len(idx))
        meta["data"] = {"answers": False, "rewards": False, "tokens": False, "logprobs": False}
        _write_run(run_dir, meta, questions, table=table_rows)
        runs.append(Run(run_dir))
    return runs


def _counts_table(run_id: str, model: str, problems: list[str], n: np.ndarray, correct: np.ndarray,
                  rng: np.random.Generator, now: datetime) -> pa.Table:
    total = int(n.sum())
    qidx = np.repeat(np.arange(len(problems), dtype=np.int32), n)
    starts = np.concatenate([[0], np.cumsum(n)[:-1]])
    sidx = (np.arange(total) - np.repeat(starts, n)).astype(np.int32)
    ok = np.zeros(total, dtype=bool)
    for start, size, c in zip(starts, n, correct):
        if c:
            ok[start + rng.permutation(int(size))[: int(c)]] = True
    verdict = np.where(ok, "correct", "incorrect")
    ids = np.asarray(problems, dtype=object)[qidx]
    columns: dict[str, Any] = {
        "run_id": pa.array(np.full(total, run_id, dtype=object), pa.string()),
        "model": pa.array(np.full(total, model, dtype=object), pa.string()),
        "question_id": pa.array(ids, pa.string()),
        "question_index": pa.array(qidx, pa.int32()),
        "sample_index": pa.array(sidx, pa.int32()),
        "verdict": pa.array(verdict.astype(object), pa.string()),
        "correct": pa.array(ok, pa.bool_()),
        "verify_reason": pa.array(np.full(total, "counts import: correctness only", dtype=object), pa.string()),
        "created_at": pa.array(np.full(total, np.datetime64(now.replace(tzinfo=None), "ms")),
                               pa.timestamp("ms", tz="UTC")),
    }
    arrays = [columns[f.name] if f.name in columns else pa.nulls(total, f.type) for f in SAMPLES_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=SAMPLES_SCHEMA)


# -- shared ------------------------------------------------------------------------------------------
def _meta(run_id: str, now: datetime, model: str, task: str, path: Path, digest: str, fmt: str, *,
          samples: int, n_questions: int) -> dict[str, Any]:
    return run_meta(run_id, created_at=now, source={"format": fmt, "path": str(path), "sha256_12": digest},
                    model={"name": model, "label": model, "backend": "imported"}, task={"name": task},
                    samples=samples, n_questions=n_questions, status="running")


def _write_run(run_dir: Path, meta: dict[str, Any], questions: list[dict[str, Any]], *,
               rows: list[dict[str, Any]] | None = None, table: pa.Table | None = None) -> None:
    with run_lock(run_dir, "importing"):
        atomic_write_json(run_dir / META_FILE, meta)
        write_questions(run_dir, questions)
        samples_dir = run_dir / SAMPLES_DIR
        for old in Run(run_dir).part_files():  # a re-import after a crash starts clean
            old.unlink()
        (samples_dir / MANIFEST_FILE).unlink(missing_ok=True)
        writer = SampleWriter(run_dir, flush_rows=1 << 62, flush_seconds=1e18)
        if rows is not None:
            writer.add(rows)
        if table is not None:
            writer.write_table(table)
        writer.close()
        atomic_write_json(run_dir / META_FILE, {**meta, "status": "complete", "n_samples": writer.rows_written})


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".bz2", ".xz", ".lzma", ".zst", ".zstd"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name.split(".")[0] or name


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(text)).strip("-").lower()[:40] or "x"
