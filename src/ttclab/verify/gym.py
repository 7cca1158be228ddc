"""reasoning-gym's own scorer, with normalisation before scoring (its exact match is strict).

The question's metadata carries ``{"source": "reasoning_gym", "dataset", "config", "entry"}`` (see
:mod:`ttclab.tasks.gym`); the scorer is the dataset's ``score_answer`` rebuilt with the question's
config (falling back to ``reasoning_gym.get_score_answer_fn(dataset)``).

Extraction: the last ``<answer>...</answer>``, else ``\\boxed{}``, else "Answer: X" / "the answer is X",
else the last non-empty line. Normalisation: ``$``/``**``/``\\text{}`` wrappers and a trailing period
removed, whitespace collapsed; a leading Yes/No/True/False of a longer answer taken alone. Scored
candidates: the normalised answer, plus the gold's spelling when the two differ only in what
normalisation removes (case unless ``case_sensitive``, a trailing period, spaces), plus the canonical number when the
answer is a plain number. The best score
counts; ``correct`` only at full score (>= 1.0), partial credit stays in the reason.
Canonical answer for voting: the normalised answer (case-folded unless ``case_sensitive``; a plain
number in the numeric verifier's canonical form).
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any, Literal

from ttclab.errors import DataError
from ttclab.extract import answer_tag, clean_answer, last_boxed, last_line, stated_answer
from ttclab.tasks.base import Question
from ttclab.verify.base import Verdict
from ttclab.verify.numeric import canonical_number, parse_number

_BOOL_WORD = re.compile(r"^\W*(yes|no|true|false)\b", re.I)
_PLAIN_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_SCORERS: dict[str, Any] = {}
_LOCK = threading.Lock()


def _scorer(dataset: str, config: Any) -> Any:
    """``score_answer`` of the dataset built with the question's config (cached per config)."""
    key = dataset + "\0" + json.dumps(config, sort_keys=True, default=str)
    with _LOCK:
        if key in _SCORERS:
            return _SCORERS[key]
    from reasoning_gym.factory import DATASETS

    fn = None
    if dataset in DATASETS and isinstance(config, dict):
        dataset_cls, config_cls = DATASETS[dataset]
        try:
            fn = dataset_cls(config=config_cls(**config)).score_answer
        except Exception:  # noqa: BLE001 - an old or partial config: the default instance scores too
            fn = None
    if fn is None:
        import reasoning_gym

        try:
            fn = reasoning_gym.get_score_answer_fn(dataset)
        except ValueError:
            raise DataError(f"reasoning-gym has no dataset {dataset!r}; the question's metadata is stale") from None
    with _LOCK:
        _SCORERS[key] = fn
    return fn


def normalise(answer: str) -> str:
    """Strip wrappers and a trailing period; a leading Yes/No/True/False of a longer answer alone."""
    answer = clean_answer(answer)
    m = _BOOL_WORD.match(answer)
    if m and len(answer.split()) > 1:
        answer = m.group(1)
    return answer


def extract(text: str) -> tuple[str | None, str]:
    """The normalised answer and how it was found."""
    for how, fn in (("answer tag", answer_tag), ("boxed", last_boxed), ("stated", stated_answer),
                    ("last line", last_line)):
        found = fn(text or "")
        if found and normalise(found):
            return normalise(found), how
    return None, "empty completion"


class GymVerifier:
    """Score with reasoning-gym's own scorer (see the module docstring)."""

    name = "gym"

    def __init__(self, case_sensitive: bool = False) -> None:
        self.case_sensitive = bool(case_sensitive)

    def verify(self, completion: str, question: Question) -> Verdict:
        meta = question.metadata or {}
        if meta.get("source") != "reasoning_gym" or not isinstance(meta.get("entry"), dict) or not meta.get("dataset"):
            raise DataError(f"question {question.id}: the gym verifier needs a reasoning-gym question "
                            "(metadata source/dataset/entry); use verifier numeric, math, choice or exact")
        answer, how = extract(completion)
        if not answer:
            return Verdict(None, "unparseable", how)
        gold = str(meta["entry"].get("answer", question.gold) or "")
        candidates = [answer]
        same = normalise(gold) == answer if self.case_sensitive else normalise(gold).casefold() == answer.casefold()
        if same and gold != answer:  # differs only in what normalisation removed (case, period, spaces)
            candidates.append(gold)
        canonical = answer if self.case_sensitive else answer.casefold()
        if _PLAIN_NUMBER.fullmatch(answer):
            value = parse_number(answer)
            if value is not None:
                canonical = canonical_number(value)
                candidates.append(canonical)
        score_fn = _scorer(str(meta["dataset"]), meta.get("config"))
        scores = []
        for candidate in dict.fromkeys(candidates):
            try:
                scores.append(float(score_fn(candidate, meta["entry"]) or 0.0))
            except Exception as exc:  # noqa: BLE001 - a scorer crash on odd text scores 0, with the reason
                how = f"{how} (scorer failed on {candidate[:30]!r}: {exc.__class__.__name__})"
                scores.append(0.0)
        score = max(scores)
        status: Literal["correct", "incorrect"] = "correct" if score >= 1.0 else "incorrect"
        return Verdict(canonical, status, f"{how}: score {score:g}" + (" (partial credit)" if 0 < score < 1 else ""))
