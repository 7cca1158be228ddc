"""Candidates: one solution (complete or partial) for one question, with its lineage.

A candidate knows the text, the parsed (canonical) answer and its grade, the candidates it was made
from (``parents``) and the model calls that made it (``call_ids``). Steps annotate candidates with
a ``score`` and ``feedback``; every candidate of a question is stored when the question finishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class Candidate:
    id: str
    question_index: int
    step_id: str
    kind: str  # generated, revised, fused, extended, injected, copied
    text: str
    parents: tuple[str, ...] = ()
    call_ids: tuple[str, ...] = ()
    answer: str | None = None
    verdict: str | None = None  # correct / incorrect / unparseable (None: not graded yet)
    complete: bool = True
    score: float | None = None
    feedback: str | None = None
    finish_reason: str | None = None
    completion_tokens: int = 0  # of the call(s) that wrote this candidate's own text
    token_logprobs: tuple[float, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        return self.verdict == "correct"

    def row(self, run_id: str) -> dict[str, Any]:
        return {
            "run_id": run_id, "candidate_id": self.id, "question_index": self.question_index,
            "step_id": self.step_id, "kind": self.kind, "parent_ids": list(self.parents),
            "call_ids": list(self.call_ids), "text": self.text, "answer": self.answer, "verdict": self.verdict,
            "correct": self.correct if self.verdict is not None else None, "score": self.score,
            "complete": self.complete, "feedback": self.feedback, "created_at": datetime.now(UTC),
        }


def answers_of(population: list[Candidate]) -> list[str | None]:
    return [c.answer for c in population]
