"""Mathematical equivalence with math-verify: safe in threads, bounded in time.

math-verify's own timeouts use ``signal.alarm``, which only works in the main thread. So:

* ``isolation="process"`` (default): parsing and comparison run in a small pool of worker processes
  (``python -m ttclab.verify.mathworker``, started lazily, shared by all math verifiers). In a
  worker they run in its main thread, so math-verify's alarms are a soft bound; the caller waits at
  most ``timeout_s`` and then kills the worker (the hard bound, which also stops C-level loops such
  as a huge integer power) and a fresh one is started on the next call.
* ``isolation="thread"``: in-process with math-verify's timeouts disabled; the check runs in a daemon
  thread that is abandoned after ``timeout_s`` (it may keep a CPU busy until it finishes).

In both modes answers that are obviously pathological (too long, huge numeric powers, towers of
numeric exponents, huge factorials) are refused up front, and plain numbers never reach math-verify.
A timed-out check is ``unparseable`` with the reason, never ``incorrect``.

Canonical form (for voting): a plain number (``0.5``, ``\\frac{1}{2}``, ``\\dfrac12``, ``50\\%`` is
50, ``30^\\circ`` is 30) as in :func:`ttclab.verify.numeric.canonical_number`; otherwise the parsed
expression, with floats made rational, ``x = 5`` reduced to ``5``, simplified (polynomials expanded)
and printed by sympy, with sets sorted and tuples / intervals printed element-wise; when math-verify
cannot parse it, the LaTeX with ``\\dfrac``, ``\\left``/``\\right``, spacing, degrees and ``\\text{}``
wrappers removed.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from ttclab.errors import ConfigError
from ttclab.extract import final_answer, hashes, inline_math, last_boxed, last_number
from ttclab.tasks.base import Question
from ttclab.verify.base import Verdict
from ttclab.verify.numeric import canonical_number, values_match

Isolation = Literal["process", "thread"]
_REL_TOL = 1e-9  # exact values compare exactly up to this relative difference
_STARTUP_TIMEOUT_S = 120.0  # importing math-verify in a new worker; not counted in timeout_s

_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_PLAIN = re.compile(rf"-?(?:{_NUM})(?:/\d+)?")
_LATEX_FRAC = re.compile(r"(-?)\\[dt]?frac\s*(?:\{\s*(\d+)\s*\}|(\d))\s*(?:\{\s*(\d+)\s*\}|(\d))")
_TEXT = re.compile(r"\\(?:text|mbox|mathrm|textbf)\s*\{([^{}]*)\}")
_DECOR = re.compile(r"\\?%|\^\s*\{?\s*\\circ\s*\}?|°|\\,|\\!|\\;|\s+|^\\\$|^\$")
_POWER = re.compile(r"(\d+(?:\.\d+)?)\s*\}?\s*(?:\^|\*\*)\s*\{?\s*\(?\s*(\d+)")
_TOWER = re.compile(r"(?:\^|\*\*)\s*\{?\s*\(?\s*(\d+)\s*\}?\s*(?:\^|\*\*)\s*\{?\s*\(?\s*(\d+)")
_FACTORIAL = re.compile(r"(\d+)\s*!")
_MAX_FACTORIAL = 20_000  # 20000! has 77k digits: exact in milliseconds; 1/2006! is a real answer
_STATED_CUT = re.compile(r"(?<=\S)[.;](?:\s|$)|,\s+(?=[A-Za-z]{2,}\b)|\s+(?:because|since|which|where|so|as|for)\b")


def plain_value(raw: str) -> Fraction | None:
    """The value of an answer that is just a number (``-1,000``, ``0.5``, ``\\frac{3}{4}``, ``25\\%``)."""
    s = raw.strip().strip("$").strip().replace("{,}", ",")
    unwrapped = _TEXT.sub(r" \1 ", s)
    if unwrapped != s:  # "\text{5 cm}", "5 \text{ dollars}": units are words inside \text{}
        s = re.sub(r"(?<=[\d}%])\s+[A-Za-z]+(?:\s+[A-Za-z]+)?\s*$", "", unwrapped.strip())
    s = _LATEX_FRAC.sub(lambda m: f"{m.group(1)}{m.group(2) or m.group(3)}/{m.group(4) or m.group(5)}", s)
    s = _DECOR.sub("", s.replace("−", "-")).rstrip(".")
    if not _PLAIN.fullmatch(s):
        return None
    try:
        num, _, den = s.replace(",", "").partition("/")
        return Fraction(num) / Fraction(den or 1)
    except (ValueError, ZeroDivisionError):
        return None


def too_complex(expr: str, max_chars: int = 500) -> str | None:
    """Why ``expr`` is refused without parsing (None when it is fine)."""
    if len(expr) > max_chars:
        return f"answer longer than {max_chars} characters"
    for m in _TOWER.finditer(expr):
        if int(m.group(2)) * math.log10(max(int(m.group(1)), 2)) > 4:
            return "tower of exponents too large to evaluate"
    for m in _POWER.finditer(expr):
        if len(m.group(2)) > 6 or int(m.group(2)) * math.log10(max(float(m.group(1)), 2)) > 2000:
            return "numeric power too large to evaluate"
    for m in _FACTORIAL.finditer(expr):
        if len(m.group(1)) > 5 or int(m.group(1)) > _MAX_FACTORIAL:
            return "factorial too large to evaluate"
    return None


def trim_stated(raw: str) -> str:
    """The answer part of a stated line: its first ``$...$`` / ``\\(...\\)``, or the text up to the prose."""
    maths = inline_math(raw)
    if maths:
        return maths[0][2].strip()
    return _STATED_CUT.split(raw, maxsplit=1)[0].strip()


_TIME = re.compile(r"(\d{1,2}):([0-5]\d)(?::([0-5]\d))?(?:\s*([ap])\.?\s*m\.?)?")
_TIME_NOISE = re.compile(r"\\(?:text|mathrm|textrm|mbox)\s*\{([^{}]*)\}|\\[,;!: ]|~|\$")


def parse_time(raw: str) -> tuple[int, int, int, str | None] | None:
    """``(hour, minute, second, "am" | "pm" | None)`` when the answer is a clock time (``9:00``,
    ``09:30:15``, ``9:00 \\text{ p.m.}``); None otherwise (``3:4`` is a ratio: minutes have two digits)."""
    s = _TIME_NOISE.sub(lambda m: m.group(1) or " ", raw).strip().lower()
    m = _TIME.fullmatch(s)
    if not m:
        return None
    hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    meridiem = m.group(4) and m.group(4) + "m"
    if (meridiem and not 1 <= hour <= 12) or hour > 24:
        return None
    return hour, minute, second, meridiem


def canonical_time(t: tuple[int, int, int, str | None]) -> str:
    """``9:05``, ``9:05:30``, ``9:05 pm``: hours without a leading zero, seconds only when set."""
    hour, minute, second, meridiem = t
    text = f"{hour}:{minute:02d}" + (f":{second:02d}" if second else "")
    return f"{text} {meridiem}" if meridiem else text


def same_time(a: tuple[int, int, int, str | None], b: tuple[int, int, int, str | None]) -> bool:
    """Equal clock times. With am/pm on one side only, the other side's 1-12 hour is read on a 12-hour
    clock (``9:00`` matches ``9:00 pm``); a 0 or 13-23 hour is a 24-hour time (``21:00`` = ``9:00 pm``)."""
    def day_seconds(t: tuple[int, int, int, str | None]) -> int:
        hour = t[0] % 12 + (12 if t[3] == "pm" else 0) if t[3] else t[0] % 24
        return hour * 3600 + t[1] * 60 + t[2]

    if (a[3] is None) != (b[3] is None):
        plain, marked = (a, b) if a[3] is None else (b, a)
        if 1 <= plain[0] <= 12:
            return (plain[0] % 12, plain[1], plain[2]) == (marked[0] % 12, marked[1], marked[2])
    return day_seconds(a) == day_seconds(b)


def gold_text(gold: str) -> str:
    """The gold answer: the last ``\\boxed{}`` of a solution, a GSM8K ``#### X``, or the gold itself."""
    return (last_boxed(gold) or hashes(gold) or gold or "").strip()


class _Worker:
    """One ``mathworker`` process and a reader thread that queues its replies."""

    def __init__(self) -> None:
        import ttclab

        env = dict(os.environ)
        root = str(Path(ttclab.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ttclab.verify.mathworker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env, text=True, encoding="utf-8", bufsize=1)
        self.replies: queue.Queue[str | None] = queue.Queue()
        self.ready = False  # the worker says "ready" once math-verify is imported (not counted in timeouts)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.replies.put(line)
        self.replies.put(None)

    def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """The reply, or None when the worker died or did not answer within ``timeout``."""
        assert self.proc.stdin is not None
        try:
            if not self.ready:
                if self.replies.get(timeout=_STARTUP_TIMEOUT_S) != "ready\n":
                    return None
                self.ready = True
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.replies.get(timeout=timeout)
        except (OSError, ValueError, queue.Empty):
            return None
        return json.loads(line) if line else None

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except Exception:  # noqa: BLE001 - already gone
            pass


class _Pool:
    """Worker processes shared by every math verifier; a calling thread checks one out per call."""

    def __init__(self) -> None:
        self.size = 0
        self._count = 0
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._lock = threading.Lock()
        atexit.register(self.close)

    def grow(self, size: int) -> None:
        with self._lock:
            self.size = max(self.size, size)

    def _checkout(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            spawn = self._count < self.size
            if spawn:
                self._count += 1
        if spawn:
            try:
                return _Worker()
            except BaseException:
                with self._lock:
                    self._count -= 1
                raise
        return self._idle.get()

    def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        worker = self._checkout()
        reply = worker.call(request, timeout)
        if reply is None:  # hung or died: kill it; the next call starts a fresh one
            worker.kill()
            with self._lock:
                self._count -= 1
        else:
            self._idle.put(worker)
        return reply

    def close(self) -> None:
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                return
            worker.kill()


_POOL = _Pool()


def _bounded_thread(fn: Callable[[], Any], timeout_s: float) -> Any:
    """``fn()`` in a daemon thread; None when it did not finish within ``timeout_s``."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(fn())
        except Exception as exc:  # noqa: BLE001
            box.append({"error": f"{exc.__class__.__name__}: {exc}"[:200]})

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout_s)
    return box[0] if box else None


_CACHE: dict[tuple[str, str, str, float], dict[str, Any] | None] = {}
_CACHE_SIZE = 16384
_CACHE_LOCK = threading.Lock()


def _check(pred: str, gold: str, isolation: Isolation, timeout_s: float, budget_s: float | None = None
           ) -> dict[str, Any] | None:
    """math-verify's verdict on (pred, gold), bounded in time; None when it timed out. Cached.

    ``budget_s`` (default ``timeout_s``) is what is left of the verifier's time bound; a timeout
    within a reduced budget is not cached. The reply is :func:`ttclab.verify.mathworker.check`'s
    dict, or ``{"error": ...}`` when it raised.
    """
    key = (pred, gold, isolation, timeout_s)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    budget = timeout_s if budget_s is None else min(budget_s, timeout_s)
    reply = _check_uncached(pred, gold, isolation, budget)
    if reply is not None or budget >= timeout_s:
        with _CACHE_LOCK:
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = reply
    return reply


def _check_uncached(pred: str, gold: str, isolation: Isolation, timeout_s: float) -> dict[str, Any] | None:
    if isolation == "thread":
        from ttclab.verify.mathworker import check

        return _bounded_thread(lambda: check(pred, gold, None), timeout_s)
    soft = max(1, int(timeout_s / 4))
    try:
        reply = _POOL.call({"pred": pred, "gold": gold, "soft": soft}, timeout_s)
    except OSError:  # cannot start a worker process here: check in-process instead
        return _check_uncached(pred, gold, "thread", timeout_s)
    return reply


class MathVerifier:
    """Extract the final answer (boxed first) and check equivalence with math-verify."""

    name = "math"

    def __init__(self, timeout_s: float = 10.0, isolation: Isolation = "process", workers: int = 2,
                 max_chars: int = 500) -> None:
        if isolation not in ("process", "thread"):
            raise ConfigError(f"verifier.options.isolation: {isolation!r} is not process or thread")
        if not timeout_s > 0 or workers < 1:
            raise ConfigError("verifier.options: timeout_s must be > 0 and workers >= 1")
        self.timeout_s, self.isolation, self.workers, self.max_chars = float(timeout_s), isolation, int(workers), max_chars
        if isolation == "process":
            _POOL.grow(self.workers)

    def extract(self, completion: str) -> tuple[str | None, str]:
        """The raw final answer and how it was found."""
        raw, how = final_answer(completion or "")
        if raw is not None and how == "stated":
            raw = trim_stated(raw)
        if not raw:  # no explicit answer: the last inline math or number, whichever comes later
            text = completion or ""
            maths = inline_math(text)
            number = last_number(text)
            if maths and (number is None or maths[-1][1] >= text.rfind(number)):
                raw, how = maths[-1][2].strip(), "last math"
            else:
                raw, how = number, "last number"
        return raw, how

    def verify(self, completion: str, question: Question) -> Verdict:
        started = time.perf_counter()
        raw, how = self.extract(completion)
        if not raw:
            return Verdict(None, "unparseable", "no final answer found")
        problem = too_complex(raw, self.max_chars)
        if problem:
            return Verdict(None, "unparseable", f"{how}: {problem}")
        gold = gold_text(question.gold)
        pred_time, gold_time = parse_time(raw), parse_time(gold)
        if pred_time or gold_time:  # clock times are compared as times, never as ratios
            return self._verify_time(raw, how, pred_time, gold, gold_time)
        pred_value, gold_value = plain_value(raw), plain_value(gold)
        if pred_value is not None and gold_value is not None:
            answer = canonical_number(pred_value)
            ok = values_match(pred_value, gold_value, _REL_TOL)
            return Verdict(answer, "correct" if ok else "incorrect",
                           f"{how}: {answer} vs gold {canonical_number(gold_value)}")
        left = self.timeout_s - (time.perf_counter() - started)  # extraction counts against the bound
        if left <= 0:
            return Verdict(None, "unparseable", f"{how}: extraction alone took longer than {self.timeout_s:g}s")
        res = _check(raw, gold, self.isolation, self.timeout_s, left)
        if res is None:
            return Verdict(None, "unparseable", f"{how}: math-verify did not finish within {self.timeout_s:g}s")
        if "error" in res:
            return Verdict(None, "unparseable", f"{how}: math-verify failed ({res['error']})")
        kinds = (res["pred_kind"], res["gold_kind"])
        answer = canonical_number(pred_value) if pred_value is not None else str(res["pred"])
        if not answer:
            return Verdict(None, "unparseable", f"{how}: the answer {raw[:40]!r} is empty once cleaned")
        ok = bool(res["equal"])
        if kinds == ("number", "number"):  # compared exactly by the worker, never with math-verify's rounding
            detail = "exact values"
        elif "undefined" in kinds:
            detail = ("the answer" if kinds[0] == "undefined" else "the gold") + " is undefined (division by zero)"
        elif "text" in kinds:
            detail = ("not parsed by math-verify" if kinds[0] == "text" else "gold not parsed by math-verify") \
                + ", compared as text"
        else:
            detail = "math-verify " + ("equivalent" if ok else "not equivalent")
        return Verdict(answer, "correct" if ok else "incorrect", f"{how}: {answer} vs gold {res['gold']}: {detail}")

    @staticmethod
    def _verify_time(raw: str, how: str, pred_time: Any, gold: str, gold_time: Any) -> Verdict:
        from ttclab.verify.mathworker import clean_latex

        if pred_time is None:
            value = plain_value(raw)
            answer = canonical_number(value) if value is not None else clean_latex(raw)
            if not answer:
                return Verdict(None, "unparseable", f"{how}: the answer {raw[:40]!r} is empty once cleaned")
            return Verdict(answer, "incorrect", f"{how}: {answer} vs gold {canonical_time(gold_time)}: not a clock time")
        answer = canonical_time(pred_time)
        if gold_time is None:
            return Verdict(answer, "incorrect", f"{how}: {answer} vs gold {clean_latex(gold)}: the gold is not a time")
        ok = same_time(pred_time, gold_time)
        return Verdict(answer, "correct" if ok else "incorrect",
                       f"{how}: {answer} vs gold {canonical_time(gold_time)}: compared as clock times")
