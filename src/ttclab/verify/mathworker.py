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


def to_latex_input(raw: str) -> str:
    """Wrap a bare answer for math-verify: plain words as ``\\text{}``, everything in ``$...$``."""
    raw = raw.strip()
    if _WORDS.fullmatch(raw) and raw.lower() not in _NOT_WORDS:
        raw = f"\\text{{{raw}}}"
    return raw if "$" in raw or "\\boxed" in raw or "\\(" in raw else f"${raw}$"


def _parse(raw: str, soft: int | None) -> list[Any]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    try:
        return parse(to_latex_input(raw), extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
                     parsing_timeout=soft)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - any parser failure means "not parseable"
        return []


def _rationalise(expr: Any) -> Any:
    import sympy

    floats = expr.atoms(sympy.Float)
    return expr.xreplace({f: sympy.Rational(str(f)) for f in floats}) if floats else expr


def canonical_expr(expr: Any) -> str:
    """Deterministic text of a parsed expression: equal values in common forms give equal text."""
    import sympy

    from ttclab.verify.numeric import canonical_number

    if isinstance(expr, sympy.Eq) and isinstance(expr.lhs, sympy.Symbol) and expr.lhs not in expr.rhs.free_symbols:
        expr = expr.rhs  # "x = 5" answers 5
    if isinstance(expr, sympy.MatrixBase):
        return str(expr.applyfunc(lambda e: _simplify(_rationalise(e))).tolist())
    expr = _rationalise(expr)
    if isinstance(expr, (sympy.Tuple, sympy.FiniteSet)):
        items = [canonical_expr(a) for a in expr.args]
        if isinstance(expr, sympy.FiniteSet):
            items = sorted(set(items))
            return "{" + ", ".join(items) + "}"
        return "(" + ", ".join(items) + ")"
    if isinstance(expr, sympy.Interval):
        left, right = canonical_expr(expr.start), canonical_expr(expr.end)
        return f"{'(' if expr.left_open else '['}{left}, {right}{')' if expr.right_open else ']'}"
    if isinstance(expr, sympy.Expr):
        expr = _simplify(expr)
        if expr.is_Rational:
            return canonical_number(Fraction(int(expr.p), int(expr.q)))
    return str(expr)


def _simplify(expr: Any) -> Any:
    import sympy

    if not isinstance(expr, sympy.Expr):
        return expr
    expr = sympy.simplify(expr.doit())
    if expr.free_symbols and expr.is_polynomial():
        expr = sympy.expand(expr)
    return expr


def _canonical(parsed: list[Any], raw: str, soft: int | None) -> tuple[str, bool]:
    """(canonical text, parsed by math-verify?)"""
    import sympy
    from math_verify.utils import timeout

    if parsed and isinstance(parsed[0], (sympy.Basic, sympy.MatrixBase)):
        try:
            return timeout(soft)(canonical_expr)(parsed[0]), True
        except Exception:  # noqa: BLE001 - simplification of odd input: fall back to the text
            return clean_latex(str(parsed[-1]) if isinstance(parsed[-1], str) else raw), True
    return clean_latex(raw), False


def check(pred: str, gold: str, soft: int | None = None) -> dict[str, Any]:
    """Canonical forms of ``pred`` and ``gold`` and whether math-verify finds them equivalent.

    ``soft`` is math-verify's own (signal-based) timeout per step: only usable in a main thread.
    """
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    gold_parsed, pred_parsed = _parse(gold, soft), _parse(pred, soft)
    gold_canon, gold_ok = _canonical(gold_parsed, gold, soft)
    pred_canon, pred_ok = _canonical(pred_parsed, pred, soft)
    equal = pred_canon == gold_canon
    if not equal and gold_ok and pred_ok:
        from math_verify import verify

        try:
            equal = bool(verify(gold_parsed, pred_parsed, timeout_seconds=soft))  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001
            equal = False
    return {"pred": pred_canon, "gold": gold_canon, "pred_parsed": pred_ok, "gold_parsed": gold_ok, "equal": equal}


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
