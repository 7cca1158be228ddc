"""The verifier contract: a structured verdict for one completion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from ttclab.tasks.base import Question

Status = Literal["correct", "incorrect", "unparseable"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a verifier concluded about one completion.

    ``answer`` is the extracted answer in canonical form, so that equal answers compare equal for
    voting (``1/2``, ``0.5`` and ``\\frac{1}{2}`` give one answer); ``None`` when unparseable.
    """

    answer: str | None
    status: Status
    reason: str

    @property
    def correct(self) -> bool:
        return self.status == "correct"


class Verifier(Protocol):
    """Extract and check an answer. Must be safe to call from several threads."""

    name: str

    def verify(self, completion: str, question: Question) -> Verdict:
        ...
