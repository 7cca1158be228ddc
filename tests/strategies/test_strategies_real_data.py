"""Real data: Qwen2.5-Math 100 MATH problems × 8 samples with reward scores (README: maj@8 0.93, rm@8 0.94)."""

from __future__ import annotations

import json
import lzma

import numpy as np
import pyarrow as pa
import pytest

from ttclab.store.schema import SAMPLES_SCHEMA, validate_table
from ttclab.strategies import arrays_from_samples, evaluate
from ttclab.strategies.voting import majority


@pytest.fixture(scope="module")
def qwen_arrays(shared_data):
    path = shared_data / "traj_qwen25math_rm_maj8" / "math_cot_100.jsonl.xz"
    if not path.exists():
        pytest.skip(f"{path} is not present")
    rows = []
    with lzma.open(path, "rt", encoding="utf-8") as fh:
        for qi, line in enumerate(fh):
            rec = json.loads(line)
            for si, (pred, ok, score) in enumerate(zip(rec["pred"], rec["score"], rec["pred_score"])):
                rows.append({"run_id": "qwen", "model": "qwen2.5-math", "question_id": str(rec["idx"]),
                             "question_index": qi, "sample_index": si, "answer": pred or None,
                             "verdict": "correct" if ok else ("incorrect" if pred else "unparseable"),
                             "correct": bool(ok), "reward": float(score[0])})
    table = pa.Table.from_pylist(rows)
    for f in SAMPLES_SCHEMA:
        if f.name not in table.column_names:
            table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
    return arrays_from_samples(validate_table(table, SAMPLES_SCHEMA, str(path)))


def test_readme_numbers(qwen_arrays):
    assert qwen_arrays.n_questions == 100 and qwen_arrays.n_samples == 8
    res = {r.strategy: r for r in evaluate(qwen_arrays, ["best_of_n", "pass_at_k", "majority"], [1, 8])}
    assert res["best_of_n"].mean_accuracy()[1] == pytest.approx(0.94, abs=1e-12)  # rm@8
    assert res["pass_at_k"].mean_accuracy()[1] == pytest.approx(0.96, abs=1e-12)
    assert res["pass_at_k"].mean_accuracy()[0] == pytest.approx(0.91, abs=1e-12)  # mean sample accuracy
    # README's maj@8 = 0.93 uses Counter.most_common: ties go to the answer seen first
    first = majority(qwen_arrays, np.array([8]), np.random.default_rng(0), ties="first")
    assert first.mean_accuracy()[0] == pytest.approx(0.93, abs=1e-12)
    # with ties split fairly (our default, exact) four 4-4 / 2-2 ties count 1/2 each
    assert res["majority"].mean_accuracy()[1] == pytest.approx(0.925, abs=1e-12)
