"""run_tests: one sandboxed run per program, a result per test, the first failure and feedback text."""

from __future__ import annotations

import asyncio
import sys

import pytest

from ttclab.errors import ConfigError
from ttclab.sandbox import SandboxLimits, TestCase, arun_tests, run_tests
from ttclab.sandbox.types import FAILURE_FIELD_CHARS

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox's isolation is Linux's")

PROGRAM = '''
def add(a, b):
    return a + b

def div(a, b):
    return a / b

def slow(n):
    while True:
        pass

def big(n):
    return list(range(n))
'''


def test_expression_argument_and_assertion_tests():
    tests = [TestCase(input="add(2, 3)", expected=5),
             TestCase(input=[1.5, 2.5], expected=4.0),
             TestCase(input="add('a', 'b')", expected_source="'ab'"),
             TestCase(assert_source="assert candidate(1, 1) == 2\nassert add(0, 0) == 0", name="asserts")]
    report = run_tests(PROGRAM, tests, entry_point="add")
    assert (report.passed, report.total) == (4, 4)
    assert report.all_passed and report.first_failure is None
    assert report.feedback_text() == "passed 4/4"
    assert [r.actual for r in report.results[:3]] == ["5", "4.0", "'ab'"]
    assert report.execution.ok and report.extra["complete"]


def test_floats_compare_with_a_tolerance_and_types_must_match():
    tests = [TestCase(input="add(0.1, 0.2)", expected=0.3), TestCase(input="add([1], [2])", expected=(1, 2)),
             TestCase(input="add(True, 0)", expected=1)]
    report = run_tests(PROGRAM, tests, entry_point="add")
    assert [r.passed for r in report.results] == [True, False, True]


def test_wrong_answer_is_the_first_failure_with_input_expected_and_actual():
    tests = [TestCase(input="add(1, 1)", expected=2), TestCase(input="add(2, 2)", expected=5),
             TestCase(input="div(1, 0)", expected=0)]
    report = run_tests(PROGRAM, tests, entry_point="add")
    assert report.passed == 1 and report.total == 3
    f = report.first_failure
    assert (f.error_type, f.input, f.expected, f.actual) == ("WrongAnswer", "add(2, 2)", "5", "4")
    assert report.feedback_text() == "passed 1/3; first failure: add(2, 2) returned 4, expected 5"
    assert report.results[2].error_type == "ZeroDivisionError"
    assert "division by zero" in report.results[2].message


def test_an_exception_in_a_test_is_reported_with_its_type():
    report = run_tests(PROGRAM, [TestCase(input="div(1, 0)", expected=0)], entry_point="div")
    assert (
        report.feedback_text()
        == "passed 0/1; first failure: div(1, 0) raised ZeroDivisionError: division by zero (expected 0)"
    )


def test_a_failing_assertion_names_the_whole_statement():
    source = "def check(candidate):\n    assert candidate(1, 2) == [\n        4,\n    ]\ncheck(candidate)\n"
    report = run_tests(PROGRAM, [TestCase(assert_source=source)], entry_point="add")
    assert report.results[0].error_type == "AssertionError"
    assert report.results[0].line == "assert candidate(1, 2) == [ 4, ]"
    assert report.feedback_text() == "passed 0/1; first failure: assertion failed: assert candidate(1, 2) == [ 4, ]"


def test_a_hanging_test_times_out_and_the_next_test_still_runs():
    tests = [TestCase(input="slow(1)", expected=1, timeout_s=0.3), TestCase(input="add(1, 2)", expected=3)]
    report = run_tests(PROGRAM, tests, entry_point="add")
    assert [r.error_type for r in report.results] == ["Timeout", None]
    assert report.passed == 1
    assert report.feedback_text().startswith("passed 1/2; first failure: slow(1) timed out")


def test_when_the_whole_run_stops_the_remaining_tests_are_not_run():
    limits = SandboxLimits(wall_s=1.5, test_timeout_s=10)
    tests = [
        TestCase(input="add(1, 2)", expected=3),
        TestCase(input="slow(1)", expected=1),
        TestCase(input="add(2, 2)", expected=4),
    ]
    report = run_tests(PROGRAM, tests, entry_point="add", limits=limits)
    assert report.results[0].passed
    assert [r.error_type for r in report.results[1:]] == ["Timeout", "Timeout"]
    assert report.execution.reason == "timeout"
    assert not report.extra["complete"]


def test_a_program_that_does_not_load_fails_every_test():
    report = run_tests(
        "def add(a, b)\n    return a + b\n", [TestCase(input="add(1, 2)", expected=3)], entry_point="add"
    )
    assert report.passed == 0 and report.load_error is not None and "SyntaxError" in report.load_error
    assert report.results[0].error_type == "LoadError"
    assert report.feedback_text().startswith("passed 0/1; the program failed to run: SyntaxError")


def test_a_missing_entry_point_is_a_named_failure():
    report = run_tests("x = 1\n", [TestCase(input=[1, 2], expected=3)], entry_point="add")
    assert report.results[0].error_type == "NameError"
    assert "does not define add()" in report.results[0].message


def test_printing_and_exiting_programs_do_not_break_the_harness():
    program = "import sys\nprint('noise')\ndef f():\n    sys.exit(0)\n"
    report = run_tests(program, [TestCase(input="f()", expected=None)], entry_point="f")
    assert report.results[0].error_type == "SystemExit"
    assert report.execution.stdout == "noise\n"


def test_long_values_are_truncated_in_the_failure_and_the_feedback():
    report = run_tests(PROGRAM, [TestCase(input="big(10**5)", expected=[])], entry_point="big")
    f = report.first_failure
    assert len(f.actual) <= FAILURE_FIELD_CHARS and "..." in f.actual
    assert len(report.feedback_text()) < 1200


def test_no_tests_reports_whether_the_program_loads():
    assert run_tests(PROGRAM, [], entry_point="add").feedback_text() == "no tests to run; the program loads"


def test_bad_tests_are_config_errors():
    with pytest.raises(ConfigError, match="input"):
        TestCase()
    with pytest.raises(ConfigError, match="entry_point"):
        run_tests(PROGRAM, [TestCase(input=[1, 2], expected=3)], entry_point=None)


def test_async_tests_run_concurrently_with_bounded_parallelism():
    async def main():
        return await asyncio.gather(
            *(
                arun_tests(PROGRAM, [TestCase(input=f"add({i}, {i})", expected=2 * i)], entry_point="add")
                for i in range(6)
            )
        )

    reports = asyncio.run(main())
    assert [r.passed for r in reports] == [1] * 6
    assert len({r.execution.workdir for r in reports}) == 6
