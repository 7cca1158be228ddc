"""Multiple-choice letters.

Extraction: the explicit final answer ("Answer: C", "the answer is (C).", "\\boxed{C}", ``<answer>C</answer>``,
also lower-case, "option C", "C) text") and failing that the last standalone capital letter of the
completion (``(C)`` or ``C``; "A" and "I" used as words, as in "A cat" or "I think", are skipped), or an
option's full text when the stated answer is exactly one of ``question.metadata["choices"]``.
The letters are A–J, or the first ``len(choices)`` of them when the question lists its choices.
Canonical answer: the upper-case letter. Gold: a letter (``"C"``, ``"(C)"``) or an option's text.
"""

from __future__ import annotations

import re
import string

from ttclab.errors import DataError
from ttclab.extract import clean_answer, final_answer
from ttclab.tasks.base import Question
from ttclab.verify.base import Verdict

_LEAD = re.compile(r"^(?:options?|choices?|letter)?\s*[(\[]?\s*([A-Za-z])\s*[)\].:]?(?=\s|$|[.,:;!)])", re.I)


_WORD_NEXT = re.compile(r"\s+[a-z]")
_OPTION_NEXT = re.compile(r"\s+(?:because|since|as|is|was|and|or|which|so|for)\b")


def _is_word(token: str, text: str, pos: int) -> bool:
    """Whether a bare "A" / "I" ending at ``text[pos]`` is the English word ("A cat", "I think"), not an option."""
    return token.upper() in ("A", "I") and len(token) == 1 and _WORD_NEXT.match(text, pos) is not None \
        and _OPTION_NEXT.match(text, pos) is None


def _letters(question: Question, letters: str) -> str:
    choices = (question.metadata or {}).get("choices")
    if isinstance(choices, (list, tuple)) and 2 <= len(choices) <= len(string.ascii_uppercase):
        return string.ascii_uppercase[: len(choices)]
    return letters


def _choice_text(question: Question, text: str) -> str | None:
    """The letter of the option whose text is exactly ``text`` (case- and space-insensitive)."""
    choices = (question.metadata or {}).get("choices")
    if not isinstance(choices, (list, tuple)):
        return None
    wanted = " ".join(text.split()).casefold()
    for i, choice in enumerate(choices):
        if i < 26 and " ".join(str(choice).split()).casefold().rstrip(".") == wanted.rstrip("."):
            return string.ascii_uppercase[i]
    return None


class ChoiceVerifier:
    """Extract an option letter and compare it with the gold letter (see the module docstring)."""

    name = "choice"

    def __init__(self, letters: str = "ABCDEFGHIJ") -> None:
        self.letters = "".join(dict.fromkeys(letters.upper()))

    def extract(self, completion: str, question: Question) -> tuple[str | None, str]:
        """The option letter and how it was found."""
        letters = _letters(question, self.letters)
        raw, how = final_answer(completion or "")
        if raw:
            cleaned = clean_answer(raw)
            m = _LEAD.match(cleaned)
            if m and m.group(1).upper() in letters and not _is_word(m.group(0).strip(), cleaned, m.end()):
                return m.group(1).upper(), how
            by_text = _choice_text(question, cleaned)
            if by_text:
                return by_text, f"{how} (option text)"
            found = self._standalone(raw, letters)
            if found:
                return found, how
        found = self._standalone(completion or "", letters)
        return (found, "last letter") if found else (None, "no option letter found")

    @staticmethod
    def _standalone(text: str, letters: str) -> str | None:
        """The last ``(X)`` or standalone capital letter that is not the word "A" / "I"."""
        cls = re.escape(letters)
        found = None
        for m in re.finditer(rf"\(([{cls}])\)|(?<![\w'’\\])([{cls}])(?![\w'’])", text):
            if m.group(1):
                found = m.group(1)
            elif not _is_word(m.group(2), text, m.end()):
                found = m.group(2)
        return found

    def gold_letter(self, question: Question) -> str:
        """The gold as a letter (from a letter or an option's text)."""
        gold = clean_answer(question.gold or "")
        letters = _letters(question, self.letters)
        m = _LEAD.match(gold)
        if m and m.group(1).upper() in letters and len(gold) <= 4:
            return m.group(1).upper()
        by_text = _choice_text(question, gold)
        if by_text:
            return by_text
        raise DataError(f"question {question.id}: gold {question.gold[:60]!r} is neither an option letter "
                        "nor one of metadata['choices']; fix the gold or use verifier exact")

    def verify(self, completion: str, question: Question) -> Verdict:
        gold = self.gold_letter(question)
        letter, how = self.extract(completion, question)
        if letter is None:
            return Verdict(None, "unparseable", how)
        ok = letter == gold
        return Verdict(letter, "correct" if ok else "incorrect", f"{how}: {letter} vs gold {gold}")
