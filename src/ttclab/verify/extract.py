"""Answer extraction from model text, shared by the verifiers.

Order of preference for a final answer (:func:`final_answer`): the last ``\\boxed{...}`` /
``\\fbox{...}`` (nested braces allowed), the last ``<answer>...</answer>`` tag, the last GSM8K
``#### X`` line, the last "answer is X" / "Answer: X" statement. Verifiers fall back to the last
number / letter / line themselves. Every function here is pure, never raises on arbitrary text and
returns ``None`` when it finds nothing.
"""

from __future__ import annotations

import re

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*(?=\{)|\\boxed\s+(?=[^\s{])")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_HASHES = re.compile(r"^[ \t]*####[ \t]*(.*)$", re.M)
# "the final answer is: X", "Answer: X", "**Final Answer**: X", "answer = X" (last one wins).
_STATED = re.compile(
    r"(?:\*\*|__)?(?:final\s+)?answer(?:\*\*|__)?\s*(?:is\s*:?|:|=|：)(?:\s*\*\*|\s*__)?[ \t]*", re.I)
_SPACES = re.compile(r"\s+")

#: A number as written in text: thousands commas, decimals, scientific notation, an optional ``/d``.
NUMBER = re.compile(
    r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?:\s*/\s*\d+(?![.\d]))?"
    r"|(?<![\w.])-?\.\d+"
)


def _matching_brace(text: str, open_index: int) -> int | None:
    """Index of the ``}`` matching the ``{`` at ``open_index`` (``\\{`` and ``\\}`` are content); None when unclosed."""
    depth, i = 0, open_index
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def strip_outer_braces(s: str) -> str:
    """``{{1}}`` -> ``1``: drop braces that enclose the whole string."""
    s = s.strip()
    while s.startswith("{") and _matching_brace(s, 0) == len(s) - 1:
        s = s[1:-1].strip()
    return s


def last_boxed(text: str) -> str | None:
    """Content of the last closed ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed 5``); None when absent."""
    text = text or ""
    for m in reversed(list(_BOXED.finditer(text))):
        start = m.end()
        if text[start:start + 1] == "{":
            end = _matching_brace(text, start)
            if end is None:
                continue  # truncated: try an earlier, complete one
            content = strip_outer_braces(text[start + 1:end])
        else:  # \boxed 5: up to whitespace or a closing $
            content = re.split(r"[\s$]", text[start:], maxsplit=1)[0]
        if content:
            return content
    return None


def answer_tag(text: str) -> str | None:
    """Content of the last non-empty ``<answer>...</answer>``."""
    found = [f.strip() for f in _ANSWER_TAG.findall(text or "") if f.strip()]
    return found[-1] if found else None


def hashes(text: str) -> str | None:
    """GSM8K style ``#### 1,234`` (the last such line)."""
    found = [f.strip() for f in _HASHES.findall(text or "") if f.strip()]
    return found[-1] if found else None


def stated_answer(text: str) -> str | None:
    """What follows the last "answer is" / "Answer:" (that line, or the next non-empty one)."""
    text = text or ""
    for m in reversed(list(_STATED.finditer(text))):
        rest = text[m.end():]
        lines = [ln.strip() for ln in rest.splitlines()[:3] if ln.strip()]
        if lines:
            line = lines[0].strip("*_ ").strip()
            if line:
                return line
    return None


def last_number(text: str) -> str | None:
    """The last number written in ``text`` (see :data:`NUMBER`)."""
    found = NUMBER.findall((text or "").replace("−", "-"))
    return found[-1] if found else None


def last_line(text: str) -> str | None:
    """The last non-empty line."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else None


def final_answer(text: str) -> tuple[str | None, str]:
    """The most explicit final answer in ``text`` and how it was found (``"none"`` when absent)."""
    for how, fn in (("boxed", last_boxed), ("answer tag", answer_tag), ("####", hashes), ("stated", stated_answer)):
        found = fn(text)
        if found:
            return found, how
    return None, "none"


_WRAPPERS = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")


def clean_answer(s: str) -> str:
    """Drop presentation around a short answer: ``$...$``, ``\\(...\\)``, ``\\text{}``, ``**``, a final period."""
    s = s.strip()
    for _ in range(3):
        before = s
        s = _WRAPPERS.sub(r"\1", s)
        s = re.sub(r"^\\[(\[]|\\[)\]]$", "", s).strip()
        s = s.strip("*_` ").strip()
        if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
            s = s.strip("$").strip()
        s = re.sub(r"[.。]$", "", s).strip()
        if s == before:
            break
    return _SPACES.sub(" ", s)
