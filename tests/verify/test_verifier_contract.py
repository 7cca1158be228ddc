"""The verifier contract, checked on EVERY registered verifier (scikit-learn's estimator checks, for graders).

Each name in ``VERIFIERS`` must have golden cases in ``golden_cases.yaml`` (its own section, plus
``<name>_traps`` if present): a registered verifier without any fails here. Every case checks the
verdict, the canonical answer where given, a non-empty reason, and the shape of a verdict (an answer
exactly when the completion was parseable; never the ``error`` status, which marks failed calls).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ttclab.tasks.base import Question
from ttclab.verify.registry import VERIFIERS, get_verifier

GOLDEN: dict[str, list[dict[str, Any]]] = yaml.safe_load((Path(__file__).parent / "golden_cases.yaml").read_text("utf-8"))


def cases_of(name: str) -> list[dict[str, Any]]:
    return [*(GOLDEN.get(name) or []), *(GOLDEN.get(f"{name}_traps") or [])]


CASES = [(name, i, case) for name in VERIFIERS.names() for i, case in enumerate(cases_of(name))]


@pytest.mark.parametrize("name", VERIFIERS.names())
def test_every_registered_verifier_has_golden_cases(name: str) -> None:
    cases = cases_of(name)
    assert cases, f"verifier {name!r} is registered but has no golden cases in golden_cases.yaml"
    statuses = {c["status"] for c in cases}
    assert {"correct", "incorrect"} <= statuses, f"verifier {name!r} needs correct and incorrect golden cases"


@functools.cache
def _task_question(spec: str) -> Question:
    from ttclab.tasks.config import load_task

    return load_task(yaml.safe_load(spec)).questions()[0]


def _question(case: dict[str, Any]) -> Question:
    if "task" in case:
        q = _task_question(yaml.safe_dump(case["task"], sort_keys=True))
        assert q.gold == case["gold"], f"the task's first gold is {q.gold!r}; update the case"
        return q
    meta = dict(case.get("metadata") or {})
    if "choices" in case:
        meta["choices"] = case["choices"]
    return Question("q", "?", case["gold"], metadata=meta)


@pytest.mark.parametrize("name, index, case", CASES, ids=[f"{n}-{i}" for n, i, _ in CASES])
def test_golden_case(name: str, index: int, case: dict[str, Any]) -> None:
    if name == "code" and not sys.platform.startswith("linux"):
        pytest.skip("the sandbox's isolation is Linux's")
    verdict = get_verifier(name).verify(case["text"], _question(case))
    assert verdict.status == case["status"], verdict
    if "answer" in case:
        assert verdict.answer == case["answer"], verdict
    assert verdict.reason
    assert verdict.status != "error"
    assert (verdict.answer is None) == (verdict.status == "unparseable"), verdict
