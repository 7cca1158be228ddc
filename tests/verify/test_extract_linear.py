"""Answer extraction takes time linear in the text: adversarial completions finish at once.

Each input below made the quadratic extraction of the seed run for minutes to hours (32k nested
braces took 76 s); the bound here is generous (it only has to separate linear from quadratic).
"""

from __future__ import annotations

import threading

import pytest

from ttclab.extract import answer_tag, final_answer, last_boxed, last_number, stated_answer, strip_outer_braces
from ttclab.tasks.base import Question
from ttclab.verify.registry import get_verifier

N = 200_000
BOUND_S = 60.0  # quadratic extraction of these inputs takes well over an hour


def _finishes(fn, *args):
    out: list = []
    worker = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)
    worker.start()
    worker.join(BOUND_S)
    assert not worker.is_alive(), f"{fn.__name__} did not finish within {BOUND_S:g} s"
    return out[0]


def test_nested_braces_are_stripped_in_linear_time():
    assert _finishes(strip_outer_braces, "{" * N + "7" + "}" * N) == "7"
    assert _finishes(strip_outer_braces, "{" * N + "7" + "}" * N + "{1}") == "{" * N + "7" + "}" * N + "{1}"
    assert _finishes(last_boxed, "\\boxed{" + "{" * N + "42" + "}" * N + "}") == "42"


@pytest.mark.parametrize("text, fn, expected", [
    ("\\boxed{" * N, last_boxed, None),  # many unclosed boxes
    ("\\boxed{1} " + "\\boxed{" * N, last_boxed, "1"),
    ("\\boxed $" * N, last_boxed, None),
    ("<answer>" * N, answer_tag, None),
    ("<answer>5</answer>" + "<answer>" * N, answer_tag, "5"),
    ("answer:\n\n\n\n" * N, stated_answer, None),  # every statement followed by blank lines
    ("1," + "111," * N + "1111", last_number, "1111"),
])
def test_adversarial_texts_are_linear(text, fn, expected):
    assert _finishes(fn, text) == expected


@pytest.mark.parametrize("name", ["numeric", "math", "choice", "exact"])
@pytest.mark.parametrize("text", [
    "{" * N + "}" * N,
    "\\boxed{" + "{" * N + "1" + "}" * N + "}",
    "\\boxed{" * N,
    "$x" * N,
    "\\(" * N,
    "B " * N,
    "Answer: " * N,
])
def test_every_verifier_finishes_on_adversarial_text(name, text):
    options = {"timeout_s": 5.0} if name == "math" else {}
    verifier = get_verifier(name, **options)
    gold = "B" if name == "choice" else "1"
    verdict = _finishes(verifier.verify, text, Question("q", "?", gold))
    assert verdict.status in ("correct", "incorrect", "unparseable")


def test_final_answer_unchanged_on_ordinary_text():
    assert final_answer("so \\boxed{{1}} and <answer>2</answer>") == ("1", "boxed")
    assert final_answer("<answer> 2 </answer> and <answer>3</answer>") == ("3", "answer tag")
    assert final_answer("The answer is 7.\nok") == ("7.", "stated")
