"""Store: atomic parts, de-duplication on read, compaction, schema validation, DuckDB readability."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ttclab.errors import StoreError
from ttclab.store import SAMPLES_SCHEMA, Run, list_runs, open_run
from ttclab.store.writer import SampleWriter, atomic_write_json, write_questions

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _row(qi: int, si: int, *, verdict: str = "correct", text: str = "x", t: int = 0) -> dict:
    return {
        "run_id": "r", "model": "m", "question_id": f"q{qi}", "question_index": qi, "sample_index": si,
        "text": text, "finish_reason": "stop", "prompt_tokens": 5, "completion_tokens": 3, "latency_s": 0.1,
        "token_logprobs": [-0.5, -0.25], "mean_logprob": -0.375, "error": None if verdict != "error" else "boom",
        "answer": "1" if verdict != "error" else None, "verdict": verdict, "correct": verdict == "correct",
        "verify_reason": "", "reward": None, "seed": 7, "created_at": T0 + timedelta(seconds=t),
    }


def _make_run(tmp_path, rows_per_part: list[list[dict]]) -> Run:
    run_dir = tmp_path / "store" / "r"
    atomic_write_json(run_dir / "run.json", {"run_id": "r", "model": {"name": "m"}, "samples": 2})
    write_questions(run_dir, [{"question_index": i, "question_id": f"q{i}", "question": "?", "prompt": "?",
                               "gold": "1", "difficulty": None, "metadata": "{}"} for i in range(3)])
    for rows in rows_per_part:
        w = SampleWriter(run_dir, flush_seconds=1e9)
        w.add(rows)
        w.close()
    return Run(run_dir)


def test_parts_are_plain_parquet_and_no_temp_files_left(tmp_path):
    run = _make_run(tmp_path, [[_row(0, 0), _row(0, 1)], [_row(1, 0)]])
    assert len(run.part_files()) == 2
    assert not [p for p in (run.path / "samples").iterdir() if p.name.startswith(".")]
    assert run.samples().num_rows == 3
    duckdb = pytest.importorskip("duckdb")
    n = duckdb.sql(f"select count(*) from read_parquet('{run.path}/samples/*.parquet')").fetchall()[0][0]
    assert n == 3
    assert pq.read_table(run.path / "questions.parquet").num_rows == 3


def test_success_wins_over_error_and_later_over_earlier(tmp_path):
    run = _make_run(tmp_path, [
        [_row(0, 0, verdict="error", t=0), _row(0, 1, text="old", t=0)],
        [_row(0, 0, text="retried", t=5), _row(0, 1, text="new", t=5), _row(1, 0, verdict="error", t=9)],
    ])
    rows = {(r["question_index"], r["sample_index"]): r for r in run.samples().to_pylist()}
    assert len(rows) == 3
    assert rows[(0, 0)]["text"] == "retried"
    assert rows[(0, 1)]["text"] == "new"
    assert rows[(1, 0)]["verdict"] == "error"
    assert run.done_keys() == {(0, 0), (0, 1)}  # the failed sample is retried on the next run


def test_compaction_keeps_exactly_the_deduplicated_rows(tmp_path):
    run = _make_run(tmp_path, [[_row(0, 0), _row(0, 1)], [_row(0, 1, text="b", t=3), _row(2, 0)]])
    before = run.samples().to_pylist()
    run.compact()
    assert len(run.part_files()) == 1
    assert run.raw_samples().num_rows == 3
    assert run.samples().to_pylist() == before


def _legacy(run: Run) -> Run:
    """The run as written before part manifests existed (only schema and row checks apply)."""
    (run.path / "samples" / "_manifest.json").unlink()
    return run


def test_schema_validation_on_read_names_file_and_column(tmp_path):
    run = _make_run(tmp_path, [[_row(0, 0)]])
    bad = pa.table({"run_id": ["r"], "question_index": [0]})
    pq.write_table(bad, run.path / "samples" / "part-99999999999999999999-bad.parquet")
    with pytest.raises(StoreError, match=r"part-9+-bad\.parquet: not recorded in _manifest\.json"):
        run.samples()
    with pytest.raises(StoreError, match=r"part-9+-bad\.parquet: missing column\(s\) model"):
        _legacy(run).samples()


def test_schema_validation_rejects_wrong_types_and_newer_versions(tmp_path):
    run = _legacy(_make_run(tmp_path, [[_row(0, 0)]]))
    table = pq.read_table(run.part_files()[0])
    wrong = table.set_column(table.column_names.index("correct"), "correct", pa.array(["maybe"]))
    pq.write_table(wrong, run.part_files()[0])
    with pytest.raises(StoreError, match="column 'correct' has type string"):
        run.samples()
    newer = table.replace_schema_metadata({b"ttclab.schema_version": b"99"})
    pq.write_table(newer, run.part_files()[0])
    with pytest.raises(StoreError, match="schema v99"):
        run.samples()


def test_corrupt_part_file_is_a_clear_error(tmp_path):
    run = _make_run(tmp_path, [[_row(0, 0)]])
    run.part_files()[0].write_bytes(b"not parquet")
    with pytest.raises(StoreError, match="checksum mismatch.*ttclab repair r"):
        run.samples()
    with pytest.raises(StoreError, match="unreadable Parquet"):
        _legacy(run).samples()


def test_open_run_by_id_prefix_and_path(tmp_path):
    run = _make_run(tmp_path, [[_row(0, 0)]])
    store = tmp_path / "store"
    assert open_run("r", store).path == run.path
    assert open_run(str(run.path)).path == run.path
    assert [r.path for r in list_runs(store)] == [run.path]
    with pytest.raises(StoreError, match="no run 'zzz'"):
        open_run("zzz", store)


def test_samples_schema_has_version_metadata():
    assert SAMPLES_SCHEMA.metadata[b"ttclab.schema_version"] == b"1"
    assert json.loads(json.dumps(SAMPLES_SCHEMA.names))[0] == "run_id"


def test_a_run_samples_folder_reads_as_one_parquet_dataset(tmp_path):
    """pandas/pyarrow over runs/<id>/samples must not trip over the manifest (issue 12, store ergonomics)."""
    from ttclab.store.integrity import MANIFEST_FILE

    run = _make_run(tmp_path, [[_row(0, 0), _row(0, 1)], [_row(1, 0)]])
    assert (run.path / "samples" / MANIFEST_FILE).is_file()
    assert pq.read_table(run.path / "samples").num_rows == run.samples().num_rows
