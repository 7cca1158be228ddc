"""Verifiers against real graded model outputs in ../shared/data (skipped when absent)."""

from __future__ import annotations

import collections
import json
import lzma
from concurrent.futures import ThreadPoolExecutor

from ttclab.tasks.base import Question
from ttclab.verify.registry import get_verifier


def test_numeric_agrees_with_openai_labels_on_gsm8k_model_solutions(shared_data):
    """OpenAI's GSM8K example solutions (4 models x 1319, graded by OpenAI): every verdict agrees."""
    rows = [json.loads(line) for line in (shared_data / "gsm8k/example_model_solutions.jsonl").open(encoding="utf-8")]
    golds = [json.loads(line)["answer"] for line in (shared_data / "gsm8k/test.jsonl").open(encoding="utf-8")]
    v = get_verifier("numeric")
    disagree = []
    for r, gold in zip(rows, golds):
        q = Question("q", r["question"], gold)  # the full solution: the verifier reads its "#### X"
        for key in ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"):
            verdict = v.verify(r[key]["solution"], q)
            if verdict.correct != r[key]["is_correct"]:
                disagree.append((key, verdict))
    assert len(rows) == 1319 and disagree == []


def test_math_agrees_with_the_qwen_harness_and_votes_consistently(shared_data):
    """Qwen2.5-Math CoT samples on MATH (100 x 8), graded by its harness, verified from 8 threads."""
    path = shared_data / "traj_qwen25math_rm_maj8/math_cot_100.jsonl.xz"
    rows = [json.loads(line) for line in lzma.open(path, "rt", encoding="utf-8")]
    v = get_verifier("math")
    jobs = [(r, i) for r in rows for i in range(len(r["response"]))]
    with ThreadPoolExecutor(8) as pool:
        verdicts = list(pool.map(lambda j: v.verify(j[0]["response"][j[1]], Question(str(j[0]["idx"]), "?", j[0]["gt"])),
                                 jobs))
    disagree = [(r["gt"], r["pred"][i]) for (r, i), out in zip(jobs, verdicts) if out.correct != r["score"][i]]
    # The one disagreement is the harness's: gold "10{,}000" is 10000.
    assert disagree == [("10{,}000", "10000")], disagree
    # Samples the harness extracted to the same answer string share one canonical answer (voting is intact).
    groups = collections.defaultdict(set)
    for (r, i), out in zip(jobs, verdicts):
        groups[(r["idx"], r["pred"][i])].add(out.answer)
    assert all(len(answers) == 1 and None not in answers for answers in groups.values())


def test_math500_reference_solutions_verify_against_their_gold(shared_data):
    """Every MATH-500 reference solution (last boxed) and a re-typeset gold are judged correct."""
    rows = [json.loads(line) for line in (shared_data / "math500/test.jsonl").open(encoding="utf-8")][::5]
    v = get_verifier("math")

    def run(r: dict) -> tuple:
        q = Question(r["unique_id"], r["problem"], r["answer"])
        retyped = "The final answer is $\\boxed{" + r["answer"].replace("\\frac", "\\dfrac") + "}$."
        return v.verify(r["solution"], q), v.verify(retyped, q)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, rows))
    assert all(a.correct and b.correct and a.answer == b.answer for a, b in results), \
        [(r["answer"], a, b) for r, (a, b) in zip(rows, results) if not (a.correct and b.correct and a.answer == b.answer)]
