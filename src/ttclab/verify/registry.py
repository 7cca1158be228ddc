"""Verifiers by name: ``get_verifier(name, **options)``.

- ``numeric`` (``rel_tol=1e-6``): GSM8K-style numbers (:mod:`ttclab.verify.numeric`)
- ``math`` (``timeout_s=10``, ``isolation="process"`` / ``"thread"``, ``workers=2``, ``max_chars=500``):
  math-verify equivalence (:mod:`ttclab.verify.math`)
- ``choice`` (``letters="ABCDEFGHIJ"``): option letters (:mod:`ttclab.verify.choice`)
- ``gym`` (``case_sensitive=False``): reasoning-gym's scorer (:mod:`ttclab.verify.gym`)
- ``exact`` (``case_sensitive=False``): normalised exact string match
- ``code`` (``timeout_s=5``, ``wall_s=20``, ``cpu_s=10``, ``memory_mb=512``, ``isolation="auto"``): hidden tests
  run in the sandbox (:mod:`ttclab.verify.code`)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ttclab.errors import ConfigError
from ttclab.extract import clean_answer, final_answer, last_line
from ttclab.registry import Registry
from ttclab.tasks.base import Question
from ttclab.verify.base import Verdict, Verifier


class ExactVerifier:
    """Normalised exact match of the final answer (boxed / tag / #### / stated, else the last line).

    Canonical answer: the answer without ``$``/``**``/``\\text{}`` wrappers and a trailing period,
    whitespace collapsed, case-folded unless ``case_sensitive``. The gold is read the same way.
    """

    name = "exact"

    def __init__(self, case_sensitive: bool = False) -> None:
        self.case_sensitive = bool(case_sensitive)

    def normalise(self, text: str) -> str | None:
        """The canonical answer in ``text`` (None when there is none)."""
        raw, _ = final_answer(text or "")
        s = clean_answer(raw if raw is not None else (last_line(text or "") or ""))
        return (s if self.case_sensitive else s.casefold()) or None

    def verify(self, completion: str, question: Question) -> Verdict:
        raw, how = final_answer(completion or "")
        answer = self.normalise(completion)
        if answer is None:
            return Verdict(None, "unparseable", "empty completion")
        gold = self.normalise(question.gold or "") or ""
        ok = answer == gold
        return Verdict(
            answer,
            "correct" if ok else "incorrect",
            f"{how if raw is not None else 'last line'}: {'equal to' if ok else 'differs from'} gold {gold[:40]!r}",
        )


#: name -> verifier class (``cls(**options)``), the built-in ones imported on first use.
VERIFIERS: Registry[Callable[..., Verifier]] = Registry("verifier", where="verifier.name")
for _name, _target in (
    ("numeric", "ttclab.verify.numeric:NumericVerifier"),
    ("math", "ttclab.verify.math:MathVerifier"),
    ("choice", "ttclab.verify.choice:ChoiceVerifier"),
    ("gym", "ttclab.verify.gym:GymVerifier"),
    ("exact", ExactVerifier),
    ("code", "ttclab.verify.code:CodeVerifier"),
):
    VERIFIERS.register(_name, _target)


def get_verifier(name: str, **options: Any) -> Verifier:
    """A verifier by name (see the module docstring for names and options)."""
    factory = VERIFIERS.get(name)
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError(f"verifier.options: invalid option for verifier {name}: {exc}") from None
