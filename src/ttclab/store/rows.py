"""Typed builders for what a run stores: sample rows, question rows and run metadata (``run.json``).

Every writer of a run (the sampling runner, the importers, online pipelines) builds its rows here, so a
column is named and defaulted in one place and a misspelt field is a ``TypeError`` at the call site, not
a silently missing column. Field order follows ``SAMPLES_SCHEMA`` / ``QUESTIONS_SCHEMA``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ttclab.store.schema import SCHEMA_VERSION, VERDICTS


def utc_now() -> datetime:
    """The timestamp every row and run.json uses (timezone-aware UTC)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SampleRow:
    """One completion (a row of ``SAMPLES_SCHEMA``)."""

    run_id: str
    model: str
    question_id: str
    question_index: int
    sample_index: int
    text: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    token_logprobs: Sequence[float] | None = None
    mean_logprob: float | None = None
    error: str | None = None
    answer: str | None = None
    verdict: str = "error"
    correct: bool = False
    verify_reason: str | None = None
    reward: float | None = None
    seed: int | None = None
    created_at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r}; choose one of: {', '.join(VERDICTS)}")
        if self.verdict == "error" and self.correct:
            raise ValueError("a failed call (verdict 'error') is never correct")

    def as_dict(self) -> dict[str, Any]:
        """The row as the writer takes it (``SampleWriter.add``)."""
        row = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if row["token_logprobs"] is not None:
            row["token_logprobs"] = list(row["token_logprobs"])
        return row


def sample_row(**fields: Any) -> dict[str, Any]:
    """``SampleRow(**fields).as_dict()``: a checked, complete sample row."""
    return SampleRow(**fields).as_dict()


@dataclass(frozen=True, slots=True)
class QuestionRow:
    """One question of a run (a row of ``QUESTIONS_SCHEMA``; ``run_id`` is added by the writer)."""

    question_index: int
    question_id: str
    question: str | None = None
    prompt: str | None = None
    gold: str | None = None
    difficulty: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The row as ``write_questions`` takes it (metadata as a sorted JSON object)."""
        return {
            "question_index": self.question_index, "question_id": self.question_id, "question": self.question,
            "prompt": self.prompt, "gold": self.gold, "difficulty": self.difficulty,
            "metadata": json.dumps(dict(self.metadata), default=str, sort_keys=True),
        }


def run_meta(
    run_id: str,
    *,
    model: Mapping[str, Any],
    task: Mapping[str, Any],
    samples: int,
    n_questions: int,
    created_at: datetime | None = None,
    status: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The content of a run's ``run.json``: the fields every reader relies on, then ``extra``.

    ``model`` needs ``name`` (and usually ``label``, ``backend``); ``task`` needs ``name``.
    """
    from ttclab import __version__

    for what, mapping in (("model", model), ("task", task)):
        if "name" not in mapping:
            raise ValueError(f"run_meta: {what} needs a 'name'")
    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "run_id": run_id,
        "created_at": (created_at or utc_now()).isoformat(), "ttclab_version": __version__,
        "model": dict(model), "task": dict(task), "samples": int(samples), "n_questions": int(n_questions),
    }
    clash = sorted(set(extra) & set(meta))
    if clash:
        raise ValueError(f"run_meta: {', '.join(clash)} given twice")
    meta.update(extra)
    if status is not None:
        meta["status"] = status
    return meta


__all__ = ["QuestionRow", "SampleRow", "run_meta", "sample_row", "utc_now"]
