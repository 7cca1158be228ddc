"""The ``code`` verifier: run a completion's program against the question's hidden tests in the sandbox.

A code question (HumanEval, :mod:`ttclab.tasks.humaneval`) carries in its metadata the
``prompt``, the ``entry_point``, the hidden ``test`` code (``def check(candidate): ...``) and the
docstring's ``sample_tests``.

**Extraction** (:func:`extract_program`): the completion's last fenced code block that defines the
entry point (else its longest fenced block; an unclosed final fence counts, as when generation
stopped at ``max_tokens``), else the raw text from its first line of code. Code that defines the
entry point is appended to the prompt (so the prompt's imports and helper functions stay, and the
new definition replaces the stub); otherwise the text continues the prompt as the function's body
(as a completion model writes it), re-indented when it was written unindented. Trailing prose that
breaks compilation is cut. Only an empty completion is ``unparseable``: a program that does not
compile or fails is ``incorrect`` with the failure as the reason.

**Verdict**: ``correct`` iff ``check(entry_point)`` runs without an exception (HumanEval's rule),
within the sandbox limits.

**Canonical answer** (what majority voting groups): the program's *behaviour* on the sample
tests — ``out:`` and the repr (or ``!ErrorType``) of each sample test's result, hashed when longer
than 160 characters — because independently sampled correct programs almost never share their
text but do share their outputs (execution-based clustering, as in AlphaCode). Programs that do
not load vote together as ``load-error:<type>``. Problems without sample tests fall back to the
normalised program text (``src:`` + a hash of the AST with docstrings removed, so formatting and
comments do not matter). Results are compared as reprs truncated like the harness's feedback
(lists beyond 40 elements, strings beyond 200 characters), so programs differing only beyond
that vote together.
"""

from __future__ import annotations

import ast
import hashlib
import re
import textwrap
from typing import Any

from ttclab.errors import DataError
from ttclab.sandbox import SandboxLimits, TestCase, TestReport, run_tests
from ttclab.sandbox.types import truncate
from ttclab.tasks.base import Question
from ttclab.verify.base import Verdict

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.S | re.I)
_CODE_START = re.compile(r"^(?:def |async def |class |from |import |@)")
_MAX_TRIM_LINES = 400
_MAX_CANONICAL = 160


def code_metadata(question: Question) -> dict[str, Any]:
    """The code fields of a question (DataError when it is not a code question)."""
    meta = question.metadata or {}
    if not (isinstance(meta.get("entry_point"), str) and isinstance(meta.get("test"), str)):
        raise DataError(f"question {question.id}: the code verifier needs a code question (metadata entry_point "
                        "and test, as HumanEval's); use another verifier for this task")
    return meta


def sample_tests(question: Question) -> list[TestCase]:
    """The question's docstring examples as tests (empty when it has none)."""
    meta = code_metadata(question)
    return [TestCase(input=t["input"], expected_source=t["expected"], name=f"example {i + 1}")
            for i, t in enumerate(meta.get("sample_tests") or [])]


def hidden_tests(question: Question) -> list[TestCase]:
    """The hidden tests: one assertion block, ``check(candidate)``."""
    meta = code_metadata(question)
    return [TestCase(assert_source=meta["test"] + "\n\ncheck(candidate)\n", name="hidden tests")]


def _compiles(source: str) -> bool:
    try:
        compile(source, "program.py", "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def _defines(text: str, entry_point: str) -> bool:
    return re.search(rf"^(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", text, re.M) is not None


def _code_block(completion: str, entry_point: str) -> str | None:
    blocks = [b for b in _FENCE.findall(completion) if b.strip()]
    if not blocks:
        return None
    defining = [b for b in blocks if _defines(textwrap.dedent(b), entry_point)]
    return defining[-1] if defining else max(blocks, key=len)


def _trimmed(prefix: str, lines: list[str]) -> str:
    """``prefix`` + the longest leading part of ``lines`` that compiles (all of them if none does)."""
    text = "\n".join(lines)
    if _compiles(prefix + text):
        return prefix + text
    for end in range(len(lines) - 1, max(0, len(lines) - _MAX_TRIM_LINES), -1):
        candidate = prefix + "\n".join(lines[:end])
        if lines[end - 1].strip() and _compiles(candidate):
            return candidate
    return prefix + text


def extract_program(completion: str, question: Question) -> tuple[str | None, str]:
    """The program to test for ``completion`` and how it was found (``None`` when there is no code)."""
    meta = code_metadata(question)
    prompt, entry = str(meta.get("prompt") or question.question), meta["entry_point"]
    text = completion or ""
    if not text.strip():
        return None, "empty completion"
    block = _code_block(text, entry)
    how = "code block" if block is not None else "raw text"
    if block is not None:
        text = block
    dedented = textwrap.dedent(text)
    if _defines(dedented, entry):
        lines = dedented.splitlines()
        start = next((i for i, line in enumerate(lines) if _CODE_START.match(line)), 0)
        return _trimmed(prompt.rstrip() + "\n\n\n", lines[start:]), f"{how}: defines {entry}"
    body = text if block is None else text.rstrip() + "\n"
    if _compiles(prompt + body):
        return prompt + body, f"{how}: body of {entry}"
    reindented = textwrap.indent(dedented.strip("\n"), "    ") + "\n"
    if _compiles(prompt + reindented):
        return prompt + reindented, f"{how}: body of {entry} (re-indented)"
    lines = reindented.splitlines()
    return _trimmed(prompt, lines), f"{how}: body of {entry}"


def normalised_source(program: str) -> str:
    """The program's AST without docstrings, unparsed (formatting and comments removed)."""
    tree = ast.parse(program)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.unparse(tree)


def canonical_answer(program: str, report: TestReport, n_samples: int, *, offset: int = 0) -> str:
    """What votes together (see the module docstring): the sample tests are the ``n_samples``
    results from ``offset`` in ``report``."""
    if report.load_error is not None:
        first = report.results[0] if report.results else None
        kind = (first.error_type if first is not None and first.error_type not in (None, "LoadError") else None) \
            or report.load_error.split(":", 1)[0].strip() or "error"
        return f"load-error:{kind}"
    if n_samples:
        parts = [r.actual if r.actual is not None else f"!{r.error_type}" for r in report.results[offset:offset + n_samples]]
        joined = "; ".join(str(p) for p in parts)
        if len(joined) <= _MAX_CANONICAL:
            return f"out:{joined}"
        return "out:sha256:" + hashlib.sha256(joined.encode()).hexdigest()[:16]
    try:
        text = normalised_source(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        text = re.sub(r"\s+", " ", program).strip()
    return "src:" + hashlib.sha256(text.encode()).hexdigest()[:16]


class CodeVerifier:
    """Run the hidden tests (and the sample tests, for the canonical answer) in the sandbox.

    Options: ``timeout_s`` per test (5), ``wall_s`` for the whole run (20), ``cpu_s`` (10),
    ``memory_mb`` (512), ``isolation`` (``auto`` / ``netns`` / ``audit-hook``).
    """

    name = "code"

    def __init__(self, timeout_s: float = 5.0, wall_s: float = 20.0, cpu_s: float = 10.0, memory_mb: int = 512,
                 isolation: str = "auto") -> None:
        self.limits = SandboxLimits(cpu_s=cpu_s, wall_s=wall_s, memory_mb=memory_mb, test_timeout_s=timeout_s)
        self.isolation = isolation

    def run(self, completion: str, question: Question) -> tuple[str | None, str, TestReport | None]:
        """The program, how it was found, and its report: the hidden tests first (so the verdict never
        depends on how the sample tests went), then the sample tests."""
        program, how = extract_program(completion, question)
        if program is None:
            return None, how, None
        samples = sample_tests(question)
        report = run_tests(program, [*hidden_tests(question), *samples], entry_point=code_metadata(question)["entry_point"],
                           limits=self.limits, isolation=self.isolation)  # type: ignore[arg-type]
        return program, how, report

    def verify(self, completion: str, question: Question) -> Verdict:
        program, how, report = self.run(completion, question)
        if program is None or report is None:
            return Verdict(None, "unparseable", how)
        n_samples = len(report.results) - 1
        answer = canonical_answer(program, report, n_samples, offset=1)
        if report.execution.reason == "sandbox_error":  # not the program's fault: say so, never grade it
            raise DataError(f"question {question.id}: the sandbox could not run the program: {report.execution.detail}")
        hidden = report.results[0]
        samples = f"sample tests {sum(r.passed for r in report.results[1:])}/{n_samples}" if n_samples else "no sample tests"
        if hidden.passed:
            return Verdict(answer, "correct", f"{how}; passed the hidden tests; {samples}")
        if report.load_error is not None:
            why = f"the program failed to run: {report.load_error}"
        elif hidden.error_type == "AssertionError":
            why = f"assertion failed: {hidden.line or 'check(candidate)'}"
        elif hidden.error_type in ("NotRun", "Timeout"):
            why = hidden.message
        else:
            why = hidden.message or hidden.error_type or "failed"
        return Verdict(answer, "incorrect", truncate(f"{how}; failed the hidden tests: {why}; {samples}", 500))


def _feedback(program: str | None, how: str, report: TestReport | None) -> tuple[str, TestReport | None]:
    if program is None or report is None:
        return f"no program found in the answer ({how})", None
    return report.feedback_text(), report


def execution_feedback(
    completion: str, question: Question, *, limits: SandboxLimits | None = None
) -> tuple[str, TestReport | None]:
    """Execution feedback on the question's sample tests (the ``execution`` critique): the text for
    a critique prompt (``passed 1/2; first failure: ...``) and the report (None when the completion
    has no code). Problems without sample tests report only whether the program loads."""
    program, how = extract_program(completion, question)
    if program is None:
        return _feedback(None, how, None)
    entry = code_metadata(question)["entry_point"]
    return _feedback(program, how, run_tests(program, sample_tests(question), entry_point=entry, limits=limits))


async def aexecution_feedback(
    completion: str, question: Question, *, limits: SandboxLimits | None = None
) -> tuple[str, TestReport | None]:
    """:func:`execution_feedback` without blocking the event loop (bounded parallelism, see
    :mod:`ttclab.sandbox.aio`)."""
    from ttclab.sandbox import arun_tests

    program, how = extract_program(completion, question)
    if program is None:
        return _feedback(None, how, None)
    entry = code_metadata(question)["entry_point"]
    return _feedback(program, how, await arun_tests(program, sample_tests(question), entry_point=entry, limits=limits))
