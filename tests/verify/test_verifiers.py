"""Verifiers driven by the golden-case file, plus canonical equality, gym scoring, threads and bounded time."""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ttclab.errors import ConfigError, DataError
from ttclab.extract import last_boxed, stated_answer
from ttclab.tasks.base import Question
from ttclab.verify.numeric import canonical_number
from ttclab.verify.registry import VERIFIERS, get_verifier

GOLDEN = yaml.safe_load((Path(__file__).parent / "golden_cases.yaml").read_text(encoding="utf-8"))
# The golden cases of every registered verifier run in tests/verify/test_verifier_contract.py.


@pytest.mark.parametrize("group", GOLDEN["same_answer"], ids=lambda g: g["verifier"])
def test_equal_answers_share_one_canonical_form(group):
    v = get_verifier(group["verifier"])
    gold = "B" if group["verifier"] == "choice" else "0"
    answers = [v.verify(t, Question("q", "?", gold)).answer for t in group["texts"]]
    assert len(set(answers)) == 1 and None not in answers, dict(zip(group["texts"], answers))


def test_gold_is_canonicalised_like_answers():
    for name, gold, text in (("numeric", "#### 1,000", "1000"), ("math", "\\dfrac{1}{2}", "0.5"),
                             ("math", "\\frac{\\sqrt{8}}{2}", "so we get $\\sqrt{2}$")):
        verdict = get_verifier(name).verify(text, Question("q", "?", gold))
        assert verdict.correct, verdict


@pytest.mark.parametrize("text, expected", [
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"), ("\\boxed{{1}}", "1"), ("\\boxed{5} then \\boxed{6}", "6"),
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"), ("$\\boxed 5$", "5"), ("\\boxed{3} and \\boxed{4", "3"), ("\\fbox{7}", "7"),
    ("no box", None),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_stated_answer_takes_the_last_statement_and_the_next_line():
    assert stated_answer("Answer: 3\nWait. The final answer is 4.") == "4."
    assert stated_answer("**Answer:**\n\n42") == "42"
    # lead-ins before the word, upper case, = and the full-width colon; no statement at all
    assert stated_answer("**Final Answer**: 5") == "5"
    assert stated_answer("__answer__ = 6 and then FINAL ANSWER IS:  **7**") == "7"
    assert stated_answer("the answer：8") == "8"
    assert stated_answer("answered nothing, no answers") is None


@pytest.mark.parametrize("num, den, text", [(1, 2, "0.5"), (37, 2, "18.5"), (-9, 4, "-2.25"), (1, 3, "1/3"),
                                            (-2, 6, "-1/3"), (18, 1, "18"), (0, 1, "0"), (1, 1024, "0.0009765625")])
def test_canonical_number(num, den, text):
    from fractions import Fraction

    assert canonical_number(Fraction(num, den)) == text


def test_gym_verifier_uses_reasoning_gyms_scorer():
    from ttclab.tasks.config import load_task

    q = load_task({"source": "gym", "name": "syllogism", "size": 4, "seed": 0}).questions()[0]
    v = get_verifier("gym")
    right, wrong = q.gold, "No" if q.gold == "Yes" else "Yes"
    assert v.verify(right, q).correct
    assert v.verify(f"Thinking...\nAnswer: {right.lower()}.", q).correct  # case and period normalised
    assert v.verify(f"<answer>{right}</answer>", q).answer == right.casefold()
    assert v.verify(f"{right}, because the premises say so.", q).answer == right.casefold()
    assert v.verify(wrong, q).status == "incorrect"
    assert v.verify("", q).status == "unparseable"
    with pytest.raises(DataError, match="needs a reasoning-gym question"):
        v.verify("x", Question("q", "?", "1"))


def test_gym_verifier_numbers_and_partial_credit():
    from ttclab.tasks.config import load_task

    q = load_task({"source": "gym", "name": "basic_arithmetic", "size": 2, "seed": 1}).questions()[0]
    v = get_verifier("gym")
    good = v.verify(f"Let me compute.\n<answer>{q.gold}</answer>", q)
    assert good.correct and good.answer == q.gold
    padded = v.verify(f"<answer>{q.gold} 9</answer>", q)
    assert padded.status == "incorrect" and "score" in padded.reason


TOKENS = list("0123456789abcxyzABCD .,-/$%{}\\^_=()[]:#*\n") + ["\\boxed{", "\\frac", "Answer:", "####", "−", "<answer>"]
WORDS = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)


@functools.cache
def _fuzz_questions() -> list[tuple[str, Question]]:
    from ttclab.tasks.config import load_task

    gym_q = load_task({"source": "gym", "name": "basic_arithmetic", "size": 1, "seed": 0}).questions()[0]
    return [("numeric", Question("q", "?", "42")), ("choice", Question("q", "?", "C")),
            ("exact", Question("q", "?", "42")), ("math", Question("q", "?", "\\frac{1}{2}")), ("gym", gym_q)]


@settings(max_examples=80, deadline=None)
@given(st.one_of(st.text(max_size=200), WORDS))
def test_arbitrary_text_never_raises_and_blank_is_never_correct(text):
    for name, question in _fuzz_questions():
        verifier = get_verifier(name, isolation="thread", timeout_s=5) if name == "math" else get_verifier(name)
        out = verifier.verify(text, question)
        assert out.status in ("correct", "incorrect", "unparseable")
        assert (out.answer is None) == (out.status == "unparseable")
        if not text.strip():
            assert out.status == "unparseable"


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_math_verifier_is_safe_in_threads(isolation):
    v = get_verifier("math", isolation=isolation)
    texts = [f"\\boxed{{\\frac{{\\sqrt{{{i}}}}}{{{i + 1}}}}}" for i in range(1, 33)]
    with ThreadPoolExecutor(8) as pool:
        verdicts = list(pool.map(lambda t: v.verify(t, Question("q", "?", "\\frac{\\sqrt{4}}{5}")), texts))
    assert [x.correct for x in verdicts] == [i == 4 for i in range(1, 33)], verdicts
    assert all(x.status != "unparseable" for x in verdicts), verdicts


def test_math_verifier_time_is_bounded_on_pathological_input():
    # Process isolation (the default): a hung check is killed, so a truly pathological input is fine.
    v = get_verifier("math", timeout_s=1.0)
    texts = ["\\boxed{9^{9^{9^{9}}}}",  # refused up front
             "\\boxed{(a+b+c+d+e)^{30}}",  # passes the guard; checking it takes minutes
             "\\boxed{" + "(x+1)*" * 300 + "1}"]  # too long: refused up front
    out: list = []
    worker = threading.Thread(target=lambda: out.extend(v.verify(t, Question("q", "?", "(a+b+c+d+e)^{31}"))
                                                        for t in texts))
    worker.start()
    worker.join(120)
    assert not worker.is_alive() and len(out) == 3
    assert all(x.status == "unparseable" for x in out), out
    assert "did not finish" in out[1].reason
    # The verifier still works after a timed-out check (on a fresh worker).
    assert v.verify("\\boxed{\\frac{2}{4}}", Question("q", "?", "0.5")).correct


def test_math_verifier_thread_isolation_gives_up_after_the_timeout():
    # Thread isolation abandons the check (it finishes in the background): use a merely slow input.
    v = get_verifier("math", timeout_s=0.01, isolation="thread")
    out: list = []
    worker = threading.Thread(target=lambda: out.append(v.verify("\\boxed{(a+b+c)^{6}}", Question("q", "?", "(a+b+c)^{7}"))))
    worker.start()
    worker.join(60)
    assert not worker.is_alive() and out[0].status == "unparseable" and "did not finish" in out[0].reason


def test_registry_names_and_errors():
    assert set(VERIFIERS) == {"numeric", "math", "choice", "gym", "exact", "code"}
    for name in VERIFIERS:
        assert get_verifier(name).name == name
    with pytest.raises(ConfigError, match="unknown verifier 'regex'.*numeric, math, choice, gym, exact, code"):
        get_verifier("regex")
    with pytest.raises(ConfigError, match="verifier numeric"):
        get_verifier("numeric", nope=1)
    with pytest.raises(ConfigError, match="isolation"):
        get_verifier("math", isolation="fork")


def test_unusable_gold_is_a_data_error_not_a_verdict():
    with pytest.raises(DataError, match="question q7: gold answer 'blue' is not a number"):
        get_verifier("numeric").verify("42", Question("q7", "?", "blue"))
    with pytest.raises(DataError, match="question q8"):
        get_verifier("choice").verify("A", Question("q8", "?", "Paris"))


@settings(max_examples=300, deadline=None)
@given(st.fractions(), st.fractions(), st.sampled_from([0.0, 1e-6, 0.01, 0.5]))
def test_values_match_is_the_exact_relative_tolerance(pred, gold, rel_tol):
    """The integer cross-multiplication equals the Fraction formula it replaced, at every boundary."""
    from fractions import Fraction

    from ttclab.verify.numeric import values_match

    expected = pred == gold or abs(pred - gold) <= Fraction(str(rel_tol)) * max(abs(pred), abs(gold))
    assert values_match(pred, gold, rel_tol) == expected


@given(st.integers(min_value=-10**30, max_value=10**30))
def test_plain_integers_parse_to_themselves(n):
    from ttclab.verify.numeric import parse_number

    assert parse_number(str(n)) == n
    assert parse_number(f" {n}\n") == n
