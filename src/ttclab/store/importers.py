"""Bring existing runs into the store.

``strategic-ttc`` (Networks-Learning/strategic-ttc) writes one JSONL line per question::

    {"qid": ..., "prompt": ..., "answers": [...], "correct": [...], "explanations": [...],
     "num_tokens": [...], "rewards": [...], "ground_truths": [...], "model_name": ...}

Each list has one entry per sample; in newer files each entry is itself a list over continuation
rounds (``answers[sample][round]``): the last round is the sample's final answer and tokens are
summed over rounds. Correctness is taken from the file as is. The canonical answer used for
voting comes from the explanation (``boxed='18'; ...``) when present, else it is extracted from
the answer text by the chosen verifier.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ttclab import __version__
from ttclab.errors import DataError
from ttclab.store.reader import Run, store_root
from ttclab.store.schema import SCHEMA_VERSION
from ttclab.store.writer import META_FILE, SampleWriter, atomic_write_json, write_questions
from ttclab.tasks.base import Question

_EXPLANATION_PRED = re.compile(r"^\s*\w+\s*=\s*'(.*?)'\s*(?:;|$)", re.S)


def _last(value: Any) -> Any:
    return value[-1] if isinstance(value, list) and value else (None if isinstance(value, list) else value)


def _total(value: Any) -> int:
    if isinstance(value, list):
        return int(sum(v or 0 for v in value))
    return int(value or 0)


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    with handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg}); fix or remove the line") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object per line")
            for key in ("qid", "answers", "correct"):
                if key not in obj:
                    raise DataError(f"{path}:{lineno}: no field {key!r}; not a strategic-ttc run file")
            n = len(obj["answers"])
            for key in ("correct", "explanations", "num_tokens", "rewards"):
                if key in obj and obj[key] is not None and len(obj[key]) != n:
                    raise DataError(f"{path}:{lineno}: {key!r} has {len(obj[key])} entries but 'answers' has {n}")
            yield lineno, obj


def import_strategic_ttc(
    path: str | Path,
    *,
    model: str | None = None,
    task: str | None = None,
    verifier: str = "numeric",
    store: str | Path | None = None,
) -> Run:
    """Import a strategic-ttc JSONL run file as a ttclab run (idempotent: same file, same run)."""
    from ttclab.verify.registry import get_verifier

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; give the path of a strategic-ttc .jsonl run file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    records = list(_records(path))
    if not records:
        raise DataError(f"{path}: no records; the file is empty")
    model_name = model or records[0][1].get("model_name") or path.stem.split("--")[0]
    task_name = task or path.parent.name or "imported"
    run_id = f"import-{_slug(task_name)}-{_slug(model_name)}-{digest}"
    run_dir = store_root(store) / run_id
    if (run_dir / META_FILE).exists() and Run(run_dir).meta.get("status") == "complete":
        return Run(run_dir)
    check = get_verifier(verifier)
    now = datetime.now(timezone.utc)
    questions, rows = [], []
    for qi, (lineno, rec) in enumerate(records):
        truths = rec.get("ground_truths") or []
        gold = str(truths[0]) if truths else ""
        q = Question(id=str(rec["qid"]), question=str(rec.get("prompt") or ""), gold=gold,
                     metadata={"source": "strategic-ttc", "line": lineno, "meta": rec.get("question_meta")})
        questions.append({"question_index": qi, "question_id": q.id, "question": q.question, "prompt": q.question,
                          "gold": gold, "difficulty": None, "metadata": json.dumps(q.metadata, default=str)})
        explanations = rec.get("explanations") or [None] * len(rec["answers"])
        tokens = rec.get("num_tokens") or [None] * len(rec["answers"])
        rewards = rec.get("rewards") or [None] * len(rec["answers"])
        for si, (text, ok, expl, tok, reward) in enumerate(zip(rec["answers"], rec["correct"], explanations, tokens, rewards)):
            text, ok, expl, reward = _last(text), _last(ok), _last(expl), _last(reward)
            match = _EXPLANATION_PRED.match(expl or "")
            raw = match.group(1) if match else None
            completion = f"\\boxed{{{raw}}}" if raw else str(text or "")
            # Only the canonical answer is used (correctness comes from the file); without a ground
            # truth, check the answer against itself.
            verdict = check.verify(completion, q if gold else Question(q.id, q.question, raw or str(text or "")))
            status = "correct" if ok else ("unparseable" if verdict.answer is None else "incorrect")
            rows.append({
                "run_id": run_id, "model": model_name, "question_id": q.id, "question_index": qi, "sample_index": si,
                "text": None if text is None else str(text), "finish_reason": None, "prompt_tokens": None,
                "completion_tokens": _total(tok), "latency_s": None, "token_logprobs": None, "mean_logprob": None,
                "error": None, "answer": verdict.answer, "verdict": status, "correct": bool(ok),
                "verify_reason": expl or verdict.reason, "reward": None if reward is None else float(reward),
                "seed": None, "created_at": now,
            })
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "schema_version": SCHEMA_VERSION, "run_id": run_id, "created_at": now.isoformat(), "ttclab_version": __version__,
        "source": {"format": "strategic-ttc", "path": str(path), "sha256_12": digest},
        "model": {"name": model_name, "label": model_name, "backend": "imported"},
        "task": {"name": task_name}, "samples": max(len(r["answers"]) for _, r in records),
        "n_questions": len(records), "status": "running",
    }
    atomic_write_json(run_dir / META_FILE, meta)
    write_questions(run_dir, questions)
    for old in Run(run_dir).part_files():  # a re-import after a crash starts clean
        old.unlink()
    writer = SampleWriter(run_dir, flush_rows=100_000, flush_seconds=1e9)
    writer.add(rows)
    writer.close()
    atomic_write_json(run_dir / META_FILE, {**meta, "status": "complete", "n_samples": len(rows)})
    return Run(run_dir)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(text)).strip("-").lower()[:40] or "x"
