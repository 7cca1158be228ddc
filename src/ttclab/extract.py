"""Answer extraction from model text, shared by the verifiers, task files, importers and pipelines.

A neutral module (it imports nothing from ttclab), so ``tasks`` and ``verify`` both use it without
importing each other. ``ttclab.verify.extract`` re-exports it.

Order of preference for a final answer (:func:`final_answer`): the last ``\\boxed{...}`` /
``\\fbox{...}`` (nested braces allowed), the last ``<answer>...</answer>`` tag, the last GSM8K
``#### X`` line, the last "answer is X" / "Answer: X" statement. Verifiers fall back to the last
number / letter / line themselves. Every function here is pure, never raises on arbitrary text,
returns ``None`` when it finds nothing, and takes time linear in the text (adversarial completions
such as 200k nested braces or unclosed ``\\boxed{`` / ``<answer>`` / ``\\(`` finish at once).
"""

from __future__ import annotations

import re

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*(?=\{)|\\boxed\s+(?=[^\s{])")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_HASHES = re.compile(r"^[ \t]*####[ \t]*(.*)$", re.M)
# "the final answer is: X", "Answer: X", "**Final Answer**: X", "answer = X" (last one wins).
# Only the end of a match is used, so the optional lead-in (``**``, ``final``) is not matched: a pattern
# that starts with the literal word is found by a fast scan instead of a match attempt at every position.
_STATED = re.compile(r"answer(?:\*\*|__)?\s*(?:is\s*:?|:|=|：)(?:\s*\*\*|\s*__)?[ \t]*", re.I)
_SPACES = re.compile(r"\s+")

#: A number as written in text: thousands commas, decimals, scientific notation, an optional ``/d``.
#: A clock time (``9:30``) is not a number: neither its hour nor its minutes are matched.
NUMBER = re.compile(
    r"(?<![\w.])(?<!\d:)(?>-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?:\s*/\s*\d+(?![.\d]))?)(?!:\d)"
    r"|(?<![\w.])-?\.\d+"
)


_BRACE_TOKENS = re.compile(r"\\.|[{}]", re.S)
_BARE_BOX = re.compile(r"[^\s$]*")
_TAG = re.compile(r"<(/?)answer>", re.I)
_OPENER = re.compile(r"\$|\\[(\[]")


def brace_pairs(text: str) -> dict[int, int]:
    """Index of each ``{`` -> index of its matching ``}`` (``\\{`` and ``\\}`` are content), in one pass."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_TOKENS.finditer(text):
        ch = m.group()
        if ch == "{":
            stack.append(m.start())
        elif ch == "}" and stack:
            pairs[stack.pop()] = m.start()
    return pairs


def strip_outer_braces(s: str) -> str:
    """``{{1}}`` -> ``1``: drop braces that enclose the whole string (linear time)."""
    s = s.strip()
    if not s.startswith("{"):
        return s
    pairs = brace_pairs(s)
    lo, hi = 0, len(s) - 1
    while lo < hi and s[lo] == "{" and pairs.get(lo) == hi:
        lo, hi = lo + 1, hi - 1
        while lo <= hi and s[lo].isspace():
            lo += 1
        while hi >= lo and s[hi].isspace():
            hi -= 1
    return s[lo:hi + 1]


def last_boxed(text: str) -> str | None:
    """Content of the last closed ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed 5``); None when absent."""
    text = text or ""
    boxes = list(_BOXED.finditer(text))
    if not boxes:
        return None
    pairs = brace_pairs(text) if "{" in text else {}
    for m in reversed(boxes):
        start = m.end()
        if text[start:start + 1] == "{":
            end = pairs.get(start)
            if end is None:
                continue  # truncated: try an earlier, complete one
            content = strip_outer_braces(text[start + 1:end])
        else:  # \boxed 5: up to whitespace or a closing $
            bare = _BARE_BOX.match(text, start)
            content = bare.group() if bare else ""
        if content:
            return content
    return None


def answer_tag(text: str) -> str | None:
    """Content of the last non-empty ``<answer>...</answer>`` (an opening tag pairs with the next closing one)."""
    found, opened = None, None
    for m in _TAG.finditer(text or ""):
        if not m.group(1):
            if opened is None:
                opened = m.end()
        elif opened is not None:
            content = text[opened:m.start()].strip()
            found = content or found
            opened = None
    return found


def hashes(text: str) -> str | None:
    """GSM8K style ``#### 1,234`` (the last such line)."""
    found = [f.strip() for f in _HASHES.findall(text or "") if f.strip()]
    return found[-1] if found else None


def stated_answer(text: str) -> str | None:
    """What follows the last "answer is" / "Answer:" (that line, or the next non-empty one)."""
    text = text or ""
    for m in reversed(list(_STATED.finditer(text))):
        end = m.end()
        for _ in range(3):  # a window of three lines after the statement, never the whole rest
            nl = text.find("\n", end)
            if nl < 0:
                end = len(text)
                break
            end = nl + 1
        lines = [ln.strip() for ln in text[m.end():end].splitlines()[:3] if ln.strip()]
        if lines:
            line = lines[0].strip("*_ ").strip()
            if line:
                return line
    return None


def inline_math(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, content)`` of each ``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]`` in order.

    The same matches as the regex ``\\$\\$?([^$]+?)\\$\\$?|\\\\\\((.+?)\\\\\\)|\\\\\\[(.+?)\\\\\\]`` (re.S)
    would give, found in linear time (the regex is quadratic on many unclosed ``\\(``).
    """
    import bisect

    dollars = [i for i, ch in enumerate(text) if ch == "$"]
    closers = {"(": _positions(text, "\\)"), "[": _positions(text, "\\]")}
    out: list[tuple[int, int, str]] = []
    i, n = 0, len(text)
    while i < n:
        opener = _OPENER.search(text, i)
        if opener is None:
            break
        p = opener.start()
        if text[p] == "$":
            matched = None
            for olen in ((2, 1) if text.startswith("$$", p) else (1,)):
                cs = p + olen
                j = bisect.bisect_left(dollars, cs)
                if j < len(dollars) and dollars[j] > cs:
                    q = dollars[j]
                    end = q + 2 if text.startswith("$$", q) else q + 1
                    matched = (p, end, text[cs:q])
                    break
        else:
            cs = p + 2
            ends = closers[text[p + 1]]
            j = bisect.bisect_left(ends, cs + 1)
            matched = (p, ends[j] + 2, text[cs:ends[j]]) if j < len(ends) else None
        if matched:
            out.append(matched)
            i = matched[1]
        else:
            i = p + 1
    return out


def _positions(text: str, needle: str) -> list[int]:
    found, at = [], text.find(needle)
    while at >= 0:
        found.append(at)
        at = text.find(needle, at + 1)
    return found


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


__all__ = [
    "NUMBER",
    "answer_tag",
    "brace_pairs",
    "clean_answer",
    "final_answer",
    "hashes",
    "inline_math",
    "last_boxed",
    "last_line",
    "last_number",
    "stated_answer",
    "strip_outer_braces",
]
