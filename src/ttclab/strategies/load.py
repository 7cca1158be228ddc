"""Build :class:`SampleArrays` from a store samples table (``SAMPLES_SCHEMA``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ttclab.errors import DataError
from ttclab.strategies.arrays import SampleArrays

_NEEDED = ("question_id", "question_index", "sample_index", "answer", "verdict", "correct")


def _floats(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return np.asarray(pc.cast(table[name], pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64))


def arrays_from_samples(samples: pa.Table, questions: pa.Table | None = None) -> SampleArrays:
    """Dense (questions × samples) arrays from one run's samples table.

    Rows with ``verdict == 'error'`` are dropped (failed calls are not samples); each question's
    samples are packed to the left in ``sample_index`` order and padded with ``present=False``.
    The canonical ``answer`` is factorised per question into dense codes (-1 for a null answer);
    ``meta["answers_recorded"]`` is False when graded samples carry no answer (a counts-only import).
    With ``questions`` (QUESTIONS_SCHEMA) every listed question gets a row (even with no samples)
    and ``difficulty`` comes from it; otherwise questions are those present in ``samples``.
    """
    missing = [c for c in _NEEDED if c not in samples.column_names]
    if missing:
        raise DataError(f"samples table lacks column(s) {', '.join(missing)}; expected the store samples schema")
    ok = pc.fill_null(pc.not_equal(samples["verdict"], "error"), True)
    table = samples.filter(ok)
    qidx = table["question_index"].to_numpy(zero_copy_only=False).astype(np.int64)
    sidx = table["sample_index"].to_numpy(zero_copy_only=False).astype(np.int64)

    if questions is not None and questions.num_rows:
        q_index = questions["question_index"].to_numpy(zero_copy_only=False).astype(np.int64)
        q_ids = np.array(questions["question_id"].to_pylist(), dtype=object)
        difficulty = (_floats(questions, "difficulty") if "difficulty" in questions.column_names
                      else np.full(len(q_index), np.nan))
        order = np.argsort(q_index, kind="stable")
        q_index, q_ids, difficulty = q_index[order], q_ids[order], difficulty[order]
        unknown = np.setdiff1d(np.unique(qidx), q_index)
        if unknown.size:
            raise DataError(f"samples refer to question_index {int(unknown[0])} which is not in the questions table")
    else:
        q_index, first = np.unique(qidx, return_index=True)
        q_ids = np.array(table["question_id"].to_pylist(), dtype=object)[first] if first.size else np.array([], dtype=object)
        difficulty = np.full(len(q_index), np.nan)
    n_q = len(q_index)
    row = np.searchsorted(q_index, qidx)
    # pack each question's samples to the left in sample_index order
    order = np.lexsort((sidx, row))
    row_s = row[order]
    counts = np.bincount(row_s, minlength=n_q)
    n_max = int(counts.max(initial=0))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    col_s = np.arange(len(order)) - starts[row_s]
    shape = (n_q, n_max)

    def dense(values: np.ndarray, fill: Any, dtype: Any) -> np.ndarray:
        out = np.full(shape, fill, dtype=dtype)
        out[row_s, col_s] = values[order]
        return out

    answers_raw = table["answer"]
    valid = pc.is_valid(answers_raw).to_numpy(zero_copy_only=False)
    codes = np.full(len(qidx), -1, dtype=np.int64)
    if valid.any():
        strings = np.array(answers_raw.filter(pa.array(valid)).to_pylist(), dtype=object)
        _, gcode = np.unique(strings.astype(str), return_inverse=True)
        g = int(gcode.max()) + 1
        pair = row[valid] * g + gcode
        uniq, inv = np.unique(pair, return_inverse=True)
        urow = uniq // g
        first = np.searchsorted(urow, urow, side="left")
        codes[valid] = (np.arange(len(uniq)) - first)[inv]
    present = dense(np.ones(len(qidx), dtype=bool), False, bool)
    correct = dense(table["correct"].to_numpy(zero_copy_only=False).astype(bool), False, bool)
    graded = pc.is_in(table["verdict"], pa.array(["correct", "incorrect"])).to_numpy(zero_copy_only=False)
    answers_recorded = not bool((graded & ~valid).any())  # a graded sample without an answer: counts only
    model = table["model"][0].as_py() if "model" in table.column_names and table.num_rows else ""
    run_id = table["run_id"][0].as_py() if "run_id" in table.column_names and table.num_rows else ""
    return SampleArrays(
        answers=dense(codes.astype(np.int32), -1, np.int32),
        correct=correct & present,
        present=present,
        completion_tokens=dense(_floats(table, "completion_tokens"), np.nan, np.float64),
        prompt_tokens=dense(_floats(table, "prompt_tokens"), np.nan, np.float64),
        rewards=dense(_floats(table, "reward"), np.nan, np.float64),
        mean_logprob=dense(_floats(table, "mean_logprob"), np.nan, np.float64),
        latency_s=dense(_floats(table, "latency_s"), np.nan, np.float64),
        question_ids=np.asarray(q_ids, dtype=str) if n_q else np.array([], dtype=str),
        difficulty=np.asarray(difficulty, dtype=np.float64),
        model=str(model or ""),
        run_id=str(run_id or ""),
        meta={"answers_recorded": answers_recorded},
    )
