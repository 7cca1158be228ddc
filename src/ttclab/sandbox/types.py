"""What the sandbox takes and returns: limits, one execution's result, tests and their report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ttclab.errors import ConfigError

Reason = Literal["ok", "error", "timeout", "memory", "output_limit", "processes", "file_size", "forbidden",
                 "killed", "sandbox_error"]
Isolation = Literal["netns", "audit-hook"]
#: Characters kept of each of a failure's fields (error type, input, expected, actual).
FAILURE_FIELD_CHARS = 300


def truncate(text: str | None, limit: int = FAILURE_FIELD_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with a visible marker when cut."""
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: max(limit - 15, 0)] + f"... [{len(text) - limit + 15} more]"


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Resource limits of one sandboxed execution.

    ``cpu_s`` CPU seconds per process (RLIMIT_CPU); ``wall_s`` wall-clock seconds for the whole run
    (the process group is killed then); ``memory_mb`` address space per process (RLIMIT_AS);
    ``max_processes`` processes and threads (RLIMIT_NPROC, counted for the sandbox's own uid when run
    as root); ``max_file_mb`` largest file written (RLIMIT_FSIZE); ``max_disk_mb`` all files written
    (the size of the working directory's tmpfs, where mount namespaces are available);
    ``max_output_kb`` of stdout and of stderr each (the run is stopped past it);
    ``test_timeout_s`` per test in :func:`~ttclab.sandbox.run_tests`.
    """

    cpu_s: float = 10.0
    wall_s: float = 20.0
    memory_mb: int = 512
    max_processes: int = 32
    max_file_mb: int = 16
    max_output_kb: int = 64
    max_disk_mb: int = 64
    test_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        checks = {"cpu_s": (self.cpu_s, 1), "wall_s": (self.wall_s, 0.1), "memory_mb": (self.memory_mb, 64),
                  "max_processes": (self.max_processes, 1), "max_file_mb": (self.max_file_mb, 1),
                  "max_output_kb": (self.max_output_kb, 1), "max_disk_mb": (self.max_disk_mb, 1),
                  "test_timeout_s": (self.test_timeout_s, 0.01)}
        for name, (value, low) in checks.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < low:
                raise ConfigError(f"sandbox.{name}: must be a number >= {low} (got {value!r})")


@dataclass(frozen=True, slots=True)
class ExecResult:
    """The outcome of one sandboxed execution.

    ``reason``: ``ok``; ``error`` (the program raised or exited non-zero); ``timeout`` (wall or CPU
    limit; ``timed_out`` is set); ``memory``; ``output_limit`` (stdout or stderr flooded: stopped);
    ``processes`` (could not fork: process limit); ``file_size`` (a file reached ``max_file_mb`` or
    the disk quota); ``forbidden`` (the sandbox refused a write outside the working directory or a
    network access); ``killed`` (a signal, e.g. a segmentation fault); ``sandbox_error`` (the
    sandbox could not be set up — not the program's fault). ``isolation`` says how the network was
    cut off (``netns`` or ``audit-hook``), ``filesystem`` how writes outside the working directory
    were prevented (``readonly-mounts`` or ``audit-hook``).
    """

    ok: bool
    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    timed_out: bool
    reason: Reason
    isolation: Isolation
    wall_s: float
    detail: str = ""
    filesystem: str = "audit-hook"
    cpu_s: float | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    uid: int | None = None
    pid: int | None = None
    workdir: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TestCase:
    """One test: ``input`` (a call expression such as ``"add(2, 3)"``, or a sequence of arguments
    for the entry point) with ``expected`` (a value), or ``expected_source`` (Python source of the
    expected value, e.g. a docstring example's ``"[1, 2]"``); or ``assert_source``, code run with
    ``candidate`` bound to the entry point that passes when nothing raises (HumanEval's
    ``check(candidate)``). Argument lists and ``expected`` travel to the sandbox as their ``repr``,
    so they must be Python literals (numbers, strings, lists, tuples, dicts, sets, None, bools)."""

    __test__ = False  # not a pytest test class

    input: str | Sequence[Any] | None = None
    expected: Any = None
    expected_source: str | None = None
    assert_source: str | None = None
    name: str = ""
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.assert_source is None and self.input is None:
            raise ConfigError("test: give input (a call or arguments) with expected, or assert_source")

    def display_input(self, entry_point: str | None) -> str:
        """The input as a reader sees it: the call expression."""
        if self.assert_source is not None and self.input is None:
            return self.name or "assertions"
        if isinstance(self.input, str):
            return self.input
        args = ", ".join(repr(a) for a in self.input or ())
        return f"{entry_point or 'candidate'}({args})"

    def display_expected(self) -> str:
        if self.expected_source is not None:
            return self.expected_source
        return "" if self.assert_source is not None and self.input is None else repr(self.expected)


@dataclass(frozen=True, slots=True)
class TestResult:
    """One test's outcome. ``error_type``: ``WrongAnswer``, ``Timeout``, an exception's class name
    (``AssertionError``, ``ZeroDivisionError``...), or ``NotRun`` (the run stopped before it)."""

    __test__ = False

    index: int
    passed: bool
    input: str
    expected: str
    actual: str | None = None
    error_type: str | None = None
    message: str = ""
    line: str | None = None
    seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """The first failing test, each field truncated to :data:`FAILURE_FIELD_CHARS`."""

    error_type: str
    input: str
    expected: str
    actual: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class TestReport:
    """All tests of one program: ``passed`` of ``total``, each result, how the run went."""

    __test__ = False

    passed: int
    total: int
    results: tuple[TestResult, ...]
    execution: ExecResult
    load_error: str | None = None
    entry_point: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def all_passed(self) -> bool:
        return self.total > 0 and self.passed == self.total

    @property
    def first_failure(self) -> Failure | None:
        for r in self.results:
            if not r.passed:
                actual = r.actual if r.actual is not None else (r.message or r.error_type or "")
                expected = r.expected if r.expected else (r.line or "")
                return Failure(error_type=truncate(r.error_type or "Failed"), input=truncate(r.input),
                               expected=truncate(expected), actual=truncate(actual), message=truncate(r.message))
        return None

    def feedback_text(self) -> str:
        """One paragraph for a critique prompt: ``passed 2/3; first failure: ...``."""
        head = f"passed {self.passed}/{self.total}"
        if self.load_error is not None:
            return f"{head}; the program failed to run: {truncate(self.load_error)}"
        failure = self.first_failure
        if failure is None:
            return head if self.total else "no tests to run; the program loads"
        kind = failure.error_type
        if kind == "WrongAnswer":
            what = f"{failure.input} returned {failure.actual}, expected {failure.expected}"
        elif kind == "Timeout":
            what = f"{failure.input} timed out ({failure.message})" if failure.message else f"{failure.input} timed out"
        elif kind == "NotRun":
            what = f"{failure.input} was not run: {failure.message}"
        elif kind == "AssertionError":
            line = failure.expected or failure.input
            message = f" ({failure.message})" if failure.message not in ("", "AssertionError") else ""
            what = f"assertion failed: {line}{message}"
        else:
            what = f"{failure.input} raised {failure.message or kind}"
            if failure.expected:
                what += f" (expected {failure.expected})"
        return f"{head}; first failure: {what}"
