"""Hub tasks: no downloads in tests; the missing-package error and the row mapping."""

from __future__ import annotations

import importlib.util

import pytest

from ttclab.errors import BackendError, DataError
from ttclab.tasks import HubTask, load_task


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None, reason="the datasets package is installed")
def test_missing_datasets_package_gives_the_install_hint():
    task = load_task({"source": "hub", "dataset": "openai/gsm8k", "config": "main", "split": "test", "preset": "gsm8k"})
    with pytest.raises(BackendError) as exc:
        task.questions()
    assert str(exc.value) == "datasets is not installed; install it with: pip install 'ttclab[hub]'"


def test_rows_are_mapped_like_files():
    task = load_task({"dataset": "openai/gsm8k", "config": "main", "preset": "gsm8k", "limit": 2})
    assert isinstance(task, HubTask) and task.name == "gsm8k-main-test" and task.default_verifier() == "numeric"
    rows = [{"question": f"q{i}", "answer": f"work\n#### {i},000"} for i in range(3)]
    qs = task.questions_from_rows(rows)
    assert [(q.id, q.question, q.gold) for q in qs] == [("0", "q0", "0000"), ("1", "q1", "1000")]


def test_bad_row_names_dataset_split_and_row():
    task = HubTask("someone/set", split="train", fields={"question": "prompt", "gold": "label"})
    with pytest.raises(DataError, match=r"^someone/set\[train\] row 2: no field 'prompt'; set task.fields.question"):
        task.questions_from_rows([{"prompt": "a", "label": 1}, {"text": "b", "label": 2}])
    with pytest.raises(DataError, match=r"^someone/set\[train\]: no questions"):
        task.questions_from_rows([])
