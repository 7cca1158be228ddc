"""The test harness run inside the sandbox's worker (stdlib only; loaded by ``_child.py``).

It executes the program once, then each test in turn with its own time limit (``SIGALRM`` — this
is the worker's main thread, in a process of its own), and writes one JSON line per test to the
result pipe as soon as the test ends, so a later crash or kill keeps the finished results::

    {"load": {"ok": true}}  or  {"load": {"ok": false, "error_type": ..., "message": ...}}
    {"test": i, "passed": bool, "error_type": str|null, "message": str, "actual": repr|null, "seconds": float}
    {"done": true}

A test is an expression (``input``: a call such as ``f(1, 2)`` or an argument tuple for the entry
point) compared with an expected value (``expected``, Python source), or an assertion block
(``assert_source``, run with ``candidate`` bound to the entry point; it passes when nothing raises).
Values compare equal when ``==`` holds, or when both are numbers within 1e-6 relative (1e-9
absolute), or element-wise so for lists, tuples and dicts of the same shape.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
import signal
import sys
import time
import traceback

MAX_TEXT = 500

_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlist, _repr.maxtuple = 200, 200, 40, 40
_repr.maxdict, _repr.maxset, _repr.maxlevel, _repr.maxlong = 20, 20, 6, 200


class TestTimeout(BaseException):
    """Raised in the test when its time is up (a BaseException, so ``except Exception`` misses it)."""


def _alarm(_signum, _frame):
    raise TestTimeout()


def safe_repr(value) -> str:
    try:
        text = _repr.repr(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__
        text = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    return text[:MAX_TEXT]


def close_enough(a, b) -> bool:
    """Equality with a float tolerance, recursively for sequences and dicts."""
    try:
        if a == b:
            return True
    except Exception:  # noqa: BLE001 - a broken __eq__
        return False
    number = (int, float)
    if isinstance(a, number) and isinstance(b, number) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and type(a) is type(b) and len(a) == len(b):
        return all(close_enough(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return all(close_enough(a[k], b[k]) for k in a)
    return False


def _statement(src: str, lineno: int) -> str | None:
    """The whole (innermost, simple) statement of ``src`` on line ``lineno``, on one line."""
    import ast

    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    best = None
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and not hasattr(node, "body") and \
                node.lineno <= lineno <= (node.end_lineno or node.lineno):
            best = node
    segment = ast.get_source_segment(src, best) if best is not None else None
    return " ".join(segment.split()) if segment else None


def _failing_line(exc: BaseException, sources: dict[str, str]) -> str | None:
    """The source statement of the innermost frame of ``exc`` that lies in one of ``sources``."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        src = sources.get(frame.filename)
        if src is not None and frame.lineno:
            lines = src.splitlines()
            if 0 < frame.lineno <= len(lines):
                line = _statement(src, frame.lineno) or lines[frame.lineno - 1].strip()
    return line


def _message(exc: BaseException) -> str:
    return (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:MAX_TEXT]


def run_harness(program: str, tests: list[dict], result_fd: int) -> int:
    """Run ``program`` then ``tests``; results go to ``result_fd``. Exit code 0 (1 if it did not load)."""
    import builtins

    out = os.fdopen(result_fd, "w", buffering=1, encoding="utf-8")
    def send(obj: object) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    signal.signal(signal.SIGALRM, _alarm)
    ns: dict = {"__name__": "__candidate__", "__builtins__": builtins}
    sources = {"program.py": program}
    try:
        signal.setitimer(signal.ITIMER_REAL, max(float(tests[0]["timeout_s"]) if tests else 5.0, 1.0))
        exec(compile(program, "program.py", "exec"), ns)
        signal.setitimer(signal.ITIMER_REAL, 0)
    except (Exception, TestTimeout, SystemExit) as exc:  # noqa: BLE001 - the program's failure is a result
        signal.setitimer(signal.ITIMER_REAL, 0)
        kind = "Timeout" if isinstance(exc, TestTimeout) else type(exc).__name__
        message = "loading the program timed out" if isinstance(exc, TestTimeout) else _message(exc)
        if isinstance(exc, SyntaxError) and exc.lineno:
            message = f"SyntaxError: {exc.msg} (line {exc.lineno})"
        send({"load": {"ok": False, "error_type": kind, "message": message, "line": _failing_line(exc, sources)}})
        send({"done": True})
        out.close()
        return 1
    send({"load": {"ok": True}})
    for i, test in enumerate(tests):
        entry = test.get("entry_point")
        candidate = ns.get(entry) if entry else None
        start = time.perf_counter()
        record: dict = {"test": i, "passed": False, "error_type": None, "message": "", "actual": None}
        try:
            if entry and not callable(candidate):
                raise NameError(f"the program does not define {entry}()")
            signal.setitimer(signal.ITIMER_REAL, float(test["timeout_s"]))
            if test.get("assert_source"):
                name = f"test_{i}.py"
                sources[name] = test["assert_source"]
                scope = dict(ns)
                scope["candidate"] = candidate
                exec(compile(test["assert_source"], name, "exec"), scope)
                record["passed"] = True
            else:
                scope = dict(ns)
                scope["candidate"] = candidate
                actual = eval(compile(test["input_source"], "input", "eval"), scope)
                if isinstance(actual, tuple) and test.get("input_is_args"):
                    if not callable(candidate):
                        raise NameError("the test calls the entry point but the case names none")
                    actual = candidate(*actual)
                signal.setitimer(signal.ITIMER_REAL, 0)
                expected = eval(compile(test["expected_source"], "expected", "eval"), scope)
                record["actual"] = safe_repr(actual)
                record["passed"] = close_enough(actual, expected)
                if not record["passed"]:
                    record["error_type"] = "WrongAnswer"
                    record["message"] = f"expected {safe_repr(expected)}, got {record['actual']}"
        except TestTimeout:
            record["error_type"] = "Timeout"
            record["message"] = f"no result within {float(test['timeout_s']):g} s"
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a failing test is a result
            record["error_type"] = type(exc).__name__
            record["message"] = _message(exc)
            line = _failing_line(exc, sources)
            if line:
                record["line"] = line[:MAX_TEXT]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        record["seconds"] = round(time.perf_counter() - start, 6)
        send(record)
    send({"done": True})
    out.close()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    return 0
