"""Questions and tasks: the input side of sampling."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Question:
    """One question with its gold answer.

    ``gold`` is the reference answer as a string (e.g. ``"18"``, ``"\\frac{1}{2}"``, ``"C"``).
    ``metadata`` carries what a task-specific scorer needs (e.g. the reasoning-gym entry) and
    anything else worth keeping (level, subject, choices); it must be JSON-serialisable.
    """

    id: str
    question: str
    gold: str
    difficulty: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class Task(Protocol):
    """A named, deterministic list of questions plus the verifier that fits them."""

    name: str

    def questions(self) -> Sequence[Question]:
        ...

    def default_verifier(self) -> str:
        """Registry name of the verifier that fits this task (e.g. ``"numeric"``, ``"math"``)."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description for run metadata (source, parameters, seed, count)."""
        ...
