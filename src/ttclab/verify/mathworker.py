"""The math-verify side of the math verifier: parse, canonicalise, compare.

:func:`check` runs in-process (thread isolation, math-verify's signal timeouts disabled) or inside a
worker process started as ``python -m ttclab.verify.mathworker`` (process isolation, the default):
there it runs in the worker's main thread, so math-verify's ``signal.alarm`` timeouts work as a soft
bound, and the parent kills the worker as the hard bound. The protocol is one JSON object per line
on stdin (``{"pred", "gold", "soft"}``) and one per line on stdout (the result of :func:`check`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from fractions import Fraction
from typing import Any

_CLEAN = (
    (re.compile(r"\\[dt]frac"), r"\\frac"),
    (re.compile(r"\\left\s*|\\right\s*|\\big\s*|\\Big\s*"), ""),
    (re.compile(r"\\[!,;:> ]|\\q?quad|~"), ""),
    (re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree"), ""),
    (re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\s+"), ""),
)
_WORDS = re.compile(r"[A-Za-z]{3,}(?:\s+[A-Za-z]+)*")
_NOT_WORDS = {"sqrt", "frac", "infty", "inf", "infinity", "pi", "sin", "cos", "tan", "log", "ln", "exp"}


def clean_latex(expr: str) -> str:
    """A cleaned LaTeX string: the canonical answer when math-verify cannot parse it."""
    expr = expr.strip().strip("$").strip()
    for pattern, repl in _CLEAN:
        expr = pattern.sub(repl, expr)
    return expr.rstrip(".")


_BARE_PI = re.compile(r"(?<![\\A-Za-z])pi(?![A-Za-z])")
_ROMAN_E = re.compile(r"\\(?:mathrm|text|mathit|rm)\s*\{\s*e\s*\}|\\mathrm\s+e(?![A-Za-z])")
_INFINITY = re.compile(r"\\infty|\binf(?:inity)?\b|∞|\boo\b", re.I)


def to_latex_input(raw: str) -> str:
    """Wrap a bare answer for math-verify: plain words as ``\\text{}``, everything in ``$...$``.

    A bare ``pi`` is ``\\pi`` (the LaTeX parser would read it as ``p*i``) and a roman ``\\mathrm{e}`` is
    Euler's number (math-verify cannot parse it and would fall back to a number inside the expression).
    """
    raw = raw.strip()
    if _WORDS.fullmatch(raw) and raw.lower() not in _NOT_WORDS:
        raw = f"\\text{{{raw}}}"
    raw = _ROMAN_E.sub("{e}", _BARE_PI.sub(r"\\pi ", raw))
    return raw if "$" in raw or "\\boxed" in raw or "\\(" in raw else f"${raw}$"


def _parse(raw: str, soft: int | None) -> list[Any]:
    """math-verify's parse of one answer; a sympy result only when it stands for the whole answer.

    LaTeX first. The plain-expression reader is used only when LaTeX found nothing and it read the
    whole answer: it otherwise returns a number from inside an expression it cannot read (``4`` from
    ``4\\sqrt(2)``, ``2`` from ``1, 2, \\ldots, n``), which then "equals" an unrelated gold.
    """
    import sympy
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    text = to_latex_input(raw)
    try:
        found = parse(text, extraction_config=[LatexExtractionConfig()], parsing_timeout=soft)
        if found and isinstance(found[0], (sympy.Basic, sympy.MatrixBase)):
            return list(found)
        expr = parse(text, extraction_config=[ExprExtractionConfig()], parsing_timeout=soft)
    except Exception:  # noqa: BLE001 - any parser failure means "not parseable"
        return []
    whole = re.sub(r"\s+", "", text.strip("$"))
    if expr and isinstance(expr[-1], str) and re.sub(r"\s+", "", expr[-1]) == whole:
        return list(expr)
    return list(found or [])


def _rationalise(expr: Any) -> Any:
    import sympy

    floats = expr.atoms(sympy.Float)
    return expr.xreplace({f: sympy.Rational(str(f)) for f in floats}) if floats else expr


def canonical_expr(expr: Any) -> str:
    """Deterministic text of a parsed expression: equal values in common forms give equal text."""
    return canonical_and_value(expr)[0]


def canonical_and_value(expr: Any) -> tuple[str, Fraction | None]:
    """:func:`canonical_expr` and, when the expression is a plain exact number, its value."""
    import sympy

    from ttclab.verify.numeric import canonical_number

    if isinstance(expr, sympy.Eq) and isinstance(expr.lhs, sympy.Symbol) and expr.lhs not in expr.rhs.free_symbols:
        expr = expr.rhs  # "x = 5" answers 5
    if isinstance(expr, sympy.MatrixBase):
        return str(expr.applyfunc(lambda e: _simplify(_rationalise(e))).tolist()), None
    expr = _rationalise(expr)
    if isinstance(expr, (sympy.Tuple, sympy.FiniteSet)):
        items = [canonical_expr(a) for a in expr.args]
        if isinstance(expr, sympy.FiniteSet):
            items = sorted(set(items))
            return "{" + ", ".join(items) + "}", None
        return "(" + ", ".join(items) + ")", None
    if isinstance(expr, sympy.Interval):
        left, right = canonical_expr(expr.start), canonical_expr(expr.end)
        return f"{'(' if expr.left_open else '['}{left}, {right}{')' if expr.right_open else ']'}", None
    if isinstance(expr, sympy.Expr):
        expr = _simplify(expr)
        if expr.is_Rational:
            value = Fraction(int(expr.p), int(expr.q))
            return canonical_number(value), value
    return str(expr), None


def _simplify(expr: Any) -> Any:
    import sympy

    if not isinstance(expr, sympy.Expr):
        return expr
    expr = sympy.simplify(expr.doit())
    if expr.free_symbols and expr.is_polynomial():
        expr = sympy.expand(expr)
    return expr


def undefined_value(expr: Any, raw: str) -> bool:
    """Whether a parsed answer is undefined: it holds ``zoo`` / ``nan`` (a division by zero, ``9:00``
    read as 9/0), or an infinity that the answer never wrote (``\\infty``, ``inf``, ``∞``)."""
    import sympy

    if not isinstance(expr, sympy.Basic):
        return False
    try:
        if expr.has(sympy.zoo, sympy.nan):
            return True
        return bool(expr.has(sympy.oo, -sympy.oo)) and not _INFINITY.search(raw)
    except Exception:  # noqa: BLE001 - odd objects: not undefined
        return False


def _canonical(parsed: list[Any], raw: str, soft: int | None) -> tuple[str, str, Fraction | None]:
    """(canonical text, kind, exact value): kind is ``number`` (a plain exact number, whose value is
    returned), ``expr`` (another parsed value), ``undefined`` (see :func:`undefined_value`) or
    ``text`` (math-verify could not parse it)."""
    import sympy
    from math_verify.utils import timeout

    if parsed and isinstance(parsed[0], (sympy.Basic, sympy.MatrixBase)):
        if undefined_value(parsed[0], raw):
            return clean_latex(raw), "undefined", None
        try:
            canon, value = timeout(soft)(canonical_and_value)(parsed[0])
        except Exception:  # noqa: BLE001 - simplification of odd input: compare with math-verify only
            return clean_latex(raw), "expr", None
        if canon in ("zoo", "nan"):
            return clean_latex(raw), "undefined", None
        return canon, "expr" if value is None else "number", value
    return clean_latex(raw), "text", None


def check(pred: str, gold: str, soft: int | None = None, rel_tol: float = 1e-9) -> dict[str, Any]:
    """Canonical forms of ``pred`` and ``gold``, their kinds, and whether they are equivalent.

    Plain numbers are compared exactly (up to ``rel_tol``), answers that math-verify could not parse
    as normalised LaTeX text; any other parsed values by math-verify (equal canonical strings are no
    shortcut there); an undefined value equals nothing. ``soft`` is math-verify's own (signal-based)
    timeout per step: only usable in a main thread.
    """
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    gold_parsed, pred_parsed = _parse(gold, soft), _parse(pred, soft)
    gold_canon, gold_kind, gold_value = _canonical(gold_parsed, gold, soft)
    pred_canon, pred_kind, pred_value = _canonical(pred_parsed, pred, soft)
    kinds = {pred_kind, gold_kind}
    if "undefined" in kinds:
        equal = False
    elif pred_value is not None and gold_value is not None:  # exact values, exact comparison
        from ttclab.verify.numeric import values_match

        equal = values_match(pred_value, gold_value, rel_tol)
    elif kinds == {"text"}:
        equal = pred_canon == gold_canon
    elif "text" in kinds:  # one side unparsed: compare the normalised LaTeX of both
        equal = clean_latex(pred) == clean_latex(gold)
    else:
        from math_verify import verify

        try:
            equal = bool(verify(gold_parsed, pred_parsed, timeout_seconds=soft))
        except Exception:  # noqa: BLE001
            equal = False
    return {"pred": pred_canon, "gold": gold_canon, "pred_kind": pred_kind, "gold_kind": gold_kind,
            "pred_parsed": pred_kind != "text", "gold_parsed": gold_kind != "text", "equal": equal}


def main() -> None:
    """Serve :func:`check` over stdin/stdout, one JSON object per line, until stdin closes."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout = sys.stderr  # stray prints from libraries must not corrupt the protocol
    check("\\sqrt{2}/2", "x^2")  # import and warm math-verify and sympy before the first request

    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        try:
            req = json.loads(line)
            res = check(str(req["pred"]), str(req["gold"]), req.get("soft"))
        except Exception as exc:  # noqa: BLE001 - report, keep serving
            res = {"error": f"{exc.__class__.__name__}: {exc}"[:200]}
        out.write(json.dumps(res) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
