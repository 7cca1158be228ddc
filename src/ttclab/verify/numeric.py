"""Numeric answers (GSM8K style) in one canonical form, so that equal values vote together.

Extraction: the last ``\\boxed{}``, ``<answer>``, ``#### X`` or "answer is X" / "Answer: X"; within it the
number after the last ``=`` if any, else its first number; with no explicit answer (or one without a
number) the last number of the completion. Commas (``1,000``), ``\\,`` / ``{,}`` separators, currency
(``$``, ``\\$``), units and words after the number, ``%`` and ``^\\circ`` are ignored; ``\\frac{a}{b}``
/ ``\\dfrac`` / ``a/b``, negatives (also ``−``), decimals and scientific notation (``1.5e3``,
``1.5 \\times 10^{3}``) are understood. Gold answers (``#### 1,234`` solutions, ``\\boxed{}`` or
plain) are read the same way.

Canonical form (:func:`canonical_number`), exact and deterministic: an integer as ``"18"``; a value
with a terminating decimal expansion as a normalised decimal without trailing zeros (``"0.5"`` for
``1/2``, ``0.50`` and ``\\frac{1}{2}``; ``"18.25"``); any other rational as a reduced fraction
``"1/3"``. Correct when the value equals the gold exactly or within ``rel_tol`` (for decimals that
approximate a non-terminating gold, e.g. ``0.333333`` vs ``1/3``).
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

from ttclab.errors import DataError
from ttclab.extract import NUMBER, final_answer, hashes, last_boxed
from ttclab.tasks.base import Question
from ttclab.verify.base import Verdict

_MAX_EXPONENT = 1000  # 1e1000000000 would take forever to expand into an exact integer
_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*(-?[\d.,]+)\s*\}\s*\{\s*(-?[\d.,]+)\s*\}")
_SHORT_FRAC = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_TIMES_TEN = re.compile(r"(\d(?:\.\d+)?)\s*(?:\\times|×|\\cdot|\*)\s*10\s*\^\s*\{?\s*([-+]?\d+)\s*\}?")
_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_MINUS_SPACE = re.compile(r"-\s+(?=\d)")
_EXPONENT = re.compile(r"[eE]([-+]?\d+)")
_REPLACEMENTS = (("−", "-"), ("\\$", " "), ("$", " "), ("{,}", ","), ("\\!", ""), ("\\,", ""), ("\\%", "%"),
                 ("\\left", ""), ("\\right", ""), ("\u00a0", " "), ("\u202f", ""))


def normalise_numeric_text(text: str) -> str:
    """Rewrite LaTeX and typography around numbers into plain text (``\\frac{1}{2}`` -> ``1/2``)."""
    s = str(text)
    for old, new in _REPLACEMENTS:
        s = s.replace(old, new)
    s = _WRAP.sub(r" \1 ", s)
    s = _FRAC.sub(lambda m: f"{m.group(1)}/{m.group(2)}", s)
    s = _SHORT_FRAC.sub(lambda m: f"{m.group(1)}/{m.group(2)}", s)
    s = _TIMES_TEN.sub(lambda m: f"{m.group(1)}e{m.group(2)}", s)
    return _MINUS_SPACE.sub("-", s)


def _to_fraction(token: str) -> Fraction | None:
    token = token.replace(",", "").replace(" ", "")
    exponent = _EXPONENT.search(token)
    if exponent and abs(int(exponent.group(1))) > _MAX_EXPONENT:
        return None
    try:
        if "/" in token:
            num, den = token.split("/", 1)
            return Fraction(num) / Fraction(den)
        return Fraction(token)
    except (ValueError, ZeroDivisionError):  # includes ints beyond Python's digit limit
        return None


def parse_number(text: str | None) -> Fraction | None:
    """The value of a short answer (``"$1,234.50"``, ``"\\frac{3}{4}"``, ``"x = -7 apples"``, ``"12%"``)."""
    if not text:
        return None
    plain = text.strip()
    if plain.isascii() and plain.lstrip("-").isdigit() and plain.count("-") <= (plain[0] == "-"):
        return Fraction(int(plain))  # the common case, "42" or "-7": nothing to normalise
    s = normalise_numeric_text(text)
    if "=" in s:  # "3 + 4 = 7", "x = 5": the value is on the right
        right = s.rsplit("=", 1)[1]
        if NUMBER.search(right):
            s = right
    m = NUMBER.search(s)
    return _to_fraction(m.group(0)) if m else None


def last_number_value(text: str | None) -> Fraction | None:
    """The value of the last number in ``text`` (LaTeX fractions understood)."""
    found = NUMBER.findall(normalise_numeric_text(text or ""))
    return _to_fraction(found[-1]) if found else None


_HUGE_BITS = 12_000  # ~3,600 digits: Python refuses to print longer integers (and nobody reads them)


def canonical_number(value: Fraction) -> str:
    """Deterministic text of an exact value: ``"18"``, ``"0.5"``, ``"-2.25"``, ``"1/3"``.

    A value whose numerator or denominator has thousands of digits (``1/2006!``) is written as its
    magnitude and a digest of the exact value: ``"1.2e-5761 (exact #3f2a9c01d4e7)"``.
    """
    num, den = value.numerator, value.denominator
    if max(abs(num).bit_length(), den.bit_length()) > _HUGE_BITS:
        return _huge_number(num, den)
    if den == 1:
        return str(num)
    twos = fives = 0
    rest = den
    while rest % 2 == 0:
        rest //= 2
        twos += 1
    while rest % 5 == 0:
        rest //= 5
        fives += 1
    places = max(twos, fives)
    if rest != 1 or places > 60:
        return f"{num}/{den}"
    digits = str(abs(num) * 10**places // den).rjust(places + 1, "0")
    text = f"{digits[:-places]}.{digits[-places:]}".rstrip("0").rstrip(".")
    return f"-{text}" if num < 0 else text


def _huge_number(num: int, den: int) -> str:
    import hashlib

    digest = hashlib.sha256(f"{num:x}/{den:x}".encode()).hexdigest()[:12]
    if num == 0:
        return "0"
    exp = int((abs(num).bit_length() - den.bit_length()) * 0.30102999566398120)  # log10(2)
    mant = Fraction(abs(num), den) / (Fraction(10) ** exp)
    while mant >= 10:
        mant, exp = mant / 10, exp + 1
    while mant < 1:
        mant, exp = mant * 10, exp - 1
    return f"{'-' if num < 0 else ''}{float(mant):.6g}e{exp} (exact #{digest})"


@functools.lru_cache(maxsize=4096)
def _gold_value(gold: str) -> Fraction | None:
    return parse_number(hashes(gold) or last_boxed(gold) or gold)


@functools.lru_cache(maxsize=64)
def _tolerance(rel_tol: float) -> Fraction:
    return Fraction(str(rel_tol))  # the decimal written, not its binary float


@functools.lru_cache(maxsize=4096)
def _canonical(value: Fraction) -> str:
    return canonical_number(value)


def gold_number(question: Question) -> Fraction:
    """The gold value: a GSM8K solution's ``#### X``, a ``\\boxed{X}``, or the gold itself."""
    gold = question.gold or ""
    value = _gold_value(gold)  # one parse per gold string (a question's gold is read once per sample)
    if value is None:
        raise DataError(f"question {question.id}: gold answer {gold[:60]!r} is not a number; "
                        "use verifier math or exact for this task")
    return value


def values_match(pred: Fraction, gold: Fraction, rel_tol: float) -> bool:
    """Equal, or within ``rel_tol`` of each other relative to the larger magnitude, in exact arithmetic.

    No absolute tolerance and no floats: ``1e-12`` is not ``2e-12``, ``1/2004!`` is not ``1/2006!``
    (both are 0.0 as floats), and huge values never overflow.
    """
    if pred == gold:
        return True
    # |a/b - c/d| <= t/u * max(|a|/b, |c|/d), multiplied out by b*d*u > 0: integers only (Fraction's
    # operators normalise by gcd at every step, several times slower)
    a, b, c, d = pred.numerator, pred.denominator, gold.numerator, gold.denominator
    tol = _tolerance(rel_tol)
    return tol.denominator * abs(a * d - c * b) <= tol.numerator * max(abs(a) * d, abs(c) * b)


class NumericVerifier:
    """Extract a number and compare it with the numeric gold (see the module docstring)."""

    name = "numeric"

    def __init__(self, rel_tol: float = 1e-6) -> None:
        self.rel_tol = float(rel_tol)

    def extract(self, completion: str) -> tuple[Fraction | None, str]:
        """The answer's value and how it was found."""
        raw, how = final_answer(completion or "")
        value = parse_number(raw)
        if value is not None:
            return value, how
        value = last_number_value(completion)
        if value is not None:
            return value, "last number" if raw is None else f"last number ({how} answer {raw[:40]!r} has no number)"
        return None, "no number found" if raw is None else f"{how} answer {raw[:40]!r} has no number"

    def verify(self, completion: str, question: Question) -> Verdict:
        gold = gold_number(question)
        value, how = self.extract(completion)
        if value is None:
            return Verdict(None, "unparseable", how)
        answer = canonical_number(value)
        ok = values_match(value, gold, self.rel_tol)
        return Verdict(answer, "correct" if ok else "incorrect", f"{how}: {answer} vs gold {_canonical(gold)}")
