"""One typed builder for sample rows, question rows and run.json; one seed rule."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import ttclab
from ttclab import seeds
from ttclab.backends import base as backend_base
from ttclab.store.reader import Run
from ttclab.store.rows import QuestionRow, SampleRow, run_meta, sample_row
from ttclab.store.schema import QUESTIONS_SCHEMA, SAMPLES_SCHEMA, SCHEMA_VERSION
from ttclab.store.writer import SampleWriter, atomic_write_json, write_questions

SRC = Path(ttclab.__file__).parent


def test_sample_row_has_exactly_the_schema_columns_in_order():
    assert [f.name for f in dataclasses.fields(SampleRow)] == SAMPLES_SCHEMA.names
    assert list(QuestionRow(0, "q").as_dict()) == [n for n in QUESTIONS_SCHEMA.names if n != "run_id"]


def test_rows_round_trip_through_the_writer(tmp_path):
    run_dir = tmp_path / "r"
    atomic_write_json(run_dir / "run.json", run_meta("r", model={"name": "m"}, task={"name": "t"},
                                                     samples=2, n_questions=1, status="complete"))
    write_questions(run_dir, [QuestionRow(0, "q0", question="1+1?", gold="2", metadata={"b": 1, "a": 2}).as_dict()])
    writer = SampleWriter(run_dir, flush_rows=1 << 30, flush_seconds=1e9)
    writer.add([
        sample_row(run_id="r", model="m", question_id="q0", question_index=0, sample_index=0, text="2", answer="2",
                   verdict="correct", correct=True, token_logprobs=(-0.5, -0.25), seed=seeds.sample_seed(7, 0)),
        sample_row(run_id="r", model="m", question_id="q0", question_index=0, sample_index=1, error="HTTP 500"),
    ])
    writer.close()
    run = Run(run_dir)
    table = run.samples()
    assert table.num_rows == 2
    rows = sorted(table.to_pylist(), key=lambda r: r["sample_index"])
    assert rows[0]["token_logprobs"] == [-0.5, -0.25] and rows[0]["seed"] == 7
    assert rows[1]["verdict"] == "error" and rows[1]["correct"] is False and rows[1]["error"] == "HTTP 500"
    q = pq.read_table(run_dir / "questions.parquet").to_pylist()[0]
    assert q["metadata"] == '{"a": 2, "b": 1}'
    assert run.meta["schema_version"] == SCHEMA_VERSION and run.meta["ttclab_version"] == ttclab.__version__


def test_builders_refuse_bad_rows():
    with pytest.raises(TypeError):
        sample_row(run_id="r", model="m", question_id="q", question_index=0, sample_index=0, anwser="2")
    with pytest.raises(ValueError, match="verdict 'right'; choose one of"):
        SampleRow("r", "m", "q", 0, 0, verdict="right")
    with pytest.raises(ValueError, match="never correct"):
        SampleRow("r", "m", "q", 0, 0, verdict="error", correct=True)
    with pytest.raises(ValueError, match="model needs a 'name'"):
        run_meta("r", model={}, task={"name": "t"}, samples=1, n_questions=1)
    with pytest.raises(ValueError, match="schema_version given twice"):
        run_meta("r", model={"name": "m"}, task={"name": "t"}, samples=1, n_questions=1, schema_version=9)


def test_one_seed_rule():
    assert backend_base.sample_seed is seeds.sample_seed
    assert seeds.sample_seed(None, 3) is None
    assert seeds.sample_seed(seeds.SEED_MODULUS - 1, 1) == 0
    assert seeds.derive_seed(5, "q", 4) == seeds.sample_seed(seeds.derive_seed(5, "q", 0), 4)
    # the modulus is written once in the source tree
    hits = [p for p in SRC.rglob("*.py") if re.search(r"2\s*\*\*\s*31", p.read_text())]
    assert hits == [SRC / "seeds.py"]


def test_row_dicts_are_built_by_the_builder_only():
    """No writer spells out a full sample row by hand (the builder is the one place)."""
    offenders = [p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")
                 if p.name != "rows.py" and re.search(r'"mean_logprob":\s*None', p.read_text())]
    assert offenders == []


def test_rows_table_is_from_pylist_column_by_column():
    from datetime import UTC, datetime

    import pyarrow as pa

    from ttclab.store.schema import PIPELINE_SCHEMAS, rows_table

    now = datetime(2026, 12, 3, 16, 0, 0, 123456, tzinfo=UTC)
    rows = [{"run_id": "r", "candidate_id": "c0", "question_index": 0, "parent_ids": ["a", "b"], "call_ids": [],
             "text": "é \\boxed{2}", "score": 0.5, "correct": True, "created_at": now, "unknown": 1},
            {"candidate_id": "c1", "score": 3, "parent_ids": None, "created_at": None},  # missing keys: null
            {}]
    for schema in (PIPELINE_SCHEMAS["candidates"], SAMPLES_SCHEMA, QUESTIONS_SCHEMA):
        assert rows_table(rows, schema).equals(pa.Table.from_pylist(rows, schema=schema), check_metadata=True)
    nan = rows_table([{"score": float("nan")}], PIPELINE_SCHEMAS["candidates"])["score"].to_pylist()[0]
    assert nan != nan  # NaN stays NaN (not null)
    assert rows_table([], SAMPLES_SCHEMA).equals(pa.Table.from_pylist([], schema=SAMPLES_SCHEMA))
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):  # a wrong type fails as from_pylist does
        rows_table([{"question_index": "zero"}], PIPELINE_SCHEMAS["candidates"])


def test_small_parts_are_snappy_and_large_ones_zstd(tmp_path):
    import pyarrow as pa

    from ttclab.store.writer import ZSTD_MIN_BYTES, atomic_write_table

    small = pa.table({"x": pa.array(range(10), pa.int64())})
    large = pa.table({"x": pa.array(range(ZSTD_MIN_BYTES // 8 + 1), pa.int64())})
    for name, table, codec in (("s", small, "SNAPPY"), ("l", large, "ZSTD")):
        atomic_write_table(tmp_path / f"{name}.parquet", table)
        meta = pq.ParquetFile(tmp_path / f"{name}.parquet").metadata
        assert meta.row_group(0).column(0).compression == codec
        assert pq.read_table(tmp_path / f"{name}.parquet").equals(table)
    assert not list(tmp_path.glob(".*.tmp"))
