"""Building SampleArrays from store tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from strategy_helpers import imported_like_table

from ttclab.store.schema import QUESTIONS_SCHEMA
from ttclab.strategies import arrays_from_samples


def test_arrays_from_samples_drops_errors_and_factorises():
    table = imported_like_table(n_questions=6, n_samples=5, seed=0)
    arrays = arrays_from_samples(table)
    verdict = np.array(table["verdict"].to_pylist())
    qi = np.array(table["question_index"].to_pylist())
    n_ok = np.bincount(qi[verdict != "error"], minlength=6)
    np.testing.assert_array_equal(arrays.n_per_question, n_ok)
    assert arrays.n_samples == n_ok.max()
    assert np.all(arrays.answers[0] == -1)  # no valid answer
    for q in range(6):
        rows = [r for r in table.to_pylist() if r["question_index"] == q and r["verdict"] != "error"]
        rows.sort(key=lambda r: r["sample_index"])
        codes = arrays.answers[q, : len(rows)]
        for i, ri in enumerate(rows):
            assert (codes[i] == -1) == (ri["answer"] is None)
            assert arrays.correct[q, i] == ri["correct"]
            for j, rj in enumerate(rows):
                if ri["answer"] is not None and rj["answer"] is not None:
                    assert (codes[i] == codes[j]) == (ri["answer"] == rj["answer"])
        valid = codes[codes >= 0]
        if valid.size:
            assert set(valid.tolist()) == set(range(valid.max() + 1))  # dense codes
    assert not arrays.present[:, arrays.n_samples:].any()
    assert np.isnan(arrays.mean_logprob).all() and arrays.has_rewards


def test_questions_table_adds_empty_questions_and_difficulty():
    table = imported_like_table(n_questions=3, n_samples=2)
    questions = pa.Table.from_pylist([
        {"question_index": i, "question_id": f"q{i}", "question": "", "prompt": "", "gold": "", "difficulty": i / 10,
         "metadata": "{}"} for i in range(4)], schema=QUESTIONS_SCHEMA)
    arrays = arrays_from_samples(table, questions)
    assert arrays.n_questions == 4 and arrays.n_per_question[3] == 0
    np.testing.assert_allclose(arrays.difficulty, [0, 0.1, 0.2, 0.3])
    assert list(arrays.question_ids) == ["q0", "q1", "q2", "q3"]
