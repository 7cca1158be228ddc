"""The pipeline tables' journal: batched appends, column reads, compaction (real files)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ttclab.store.journal import TableLog, compact_table, read_table


def _row(i: int, text: str) -> dict:
    return {"run_id": "r", "candidate_id": f"c{i}", "question_index": i % 3, "step_id": "s", "kind": "generated",
            "parent_ids": [], "call_ids": [f"k{i}"], "text": text, "answer": str(i), "verdict": "correct",
            "correct": True, "score": None, "complete": True, "feedback": None, "created_at": datetime.now(UTC)}


def test_add_many_is_one_append_and_reads_back_like_add(tmp_path: Path) -> None:
    log = TableLog(tmp_path, "candidates")
    log.add(_row(0, "first"))
    log.add_many([_row(1, "a"), _row(2, "b")])
    log.add_many([])
    [journal] = list((tmp_path / "candidates").glob("journal-*.jsonl"))
    assert len(journal.read_text().splitlines()) == 3  # in the file (safe from a kill) before any flush
    assert read_table(tmp_path, "candidates")["text"].to_pylist() == ["first", "a", "b"]
    log.close()
    assert not list((tmp_path / "candidates").glob("journal-*.jsonl"))
    assert read_table(tmp_path, "candidates")["text"].to_pylist() == ["first", "a", "b"]


def test_column_reads_keep_the_last_row_of_a_key(tmp_path: Path) -> None:
    log = TableLog(tmp_path, "candidates")
    log.add_many([_row(1, "old"), _row(2, "b")])
    log.close()  # a Parquet part
    log = TableLog(tmp_path, "candidates")
    log.add(_row(1, "new"))  # a journal row that replaces c1 (a resumed question)
    table = read_table(tmp_path, "candidates", ["text"])
    assert table.column_names == ["text"]  # (the key is read too, to de-duplicate, then dropped)
    assert sorted(table["text"].to_pylist()) == ["b", "new"]
    log.close()
    compact_table(tmp_path, "candidates")
    assert len(list((tmp_path / "candidates").glob("part-*.parquet"))) == 1
    assert sorted(read_table(tmp_path, "candidates", ["text"])["text"].to_pylist()) == ["b", "new"]


_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(_TEXT, _TEXT, max_size=3), max_size=4), _TEXT, _TEXT)
def test_call_keys_and_stored_prompts_are_the_encoders_text(messages, model, params) -> None:
    """The direct builders of the call key and of a stored chat prompt equal the JSON encoders' output
    (call ids of earlier stores stay valid)."""
    from ttclab.online.calls import _KEY_JSON, _PROMPT_JSON, _digest, prompt_json

    text = prompt_json(tuple(messages))
    assert text == _PROMPT_JSON.encode(list(messages))
    assert _digest(model, text, params) == hashlib.sha256(_KEY_JSON.encode((model, text, params)).encode()).hexdigest()
    assert _digest("reward", model, {"a": [1, text]}) == hashlib.sha256(
        _KEY_JSON.encode(("reward", model, {"a": [1, text]})).encode()).hexdigest()


def test_a_prompt_with_a_non_string_field_is_still_encoded() -> None:
    from ttclab.online.calls import prompt_json

    assert prompt_json(({"role": "user", "content": "hi", "n": 2},)) == '[{"role": "user", "content": "hi", "n": 2}]'


def test_results_written_before_finish_reason_existed_read_it_as_null(tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    import pytest

    from ttclab.errors import StoreError
    from ttclab.store.schema import RESULTS_SCHEMA

    row = {"run_id": "r", "question_index": 0, "question_id": "q0", "verdict": "correct", "correct": True,
           "created_at": datetime.now(UTC)}
    log = TableLog(tmp_path, "results")
    log.add({**row, "finish_reason": "length"})
    log.close()
    [part] = list((tmp_path / "results").glob("part-*.parquet"))
    old = pq.read_table(part).drop_columns(["finish_reason"])  # as an earlier ttclab wrote it
    pq.write_table(old.replace_schema_metadata(RESULTS_SCHEMA.metadata), part)
    table = read_table(tmp_path, "results")
    assert table.schema.equals(RESULTS_SCHEMA) and table["finish_reason"].to_pylist() == [None]
    assert read_table(tmp_path, "results", ["finish_reason", "verdict"]).to_pylist() == [
        {"finish_reason": None, "verdict": "correct"}]
    pq.write_table(old.drop_columns(["verdict"]), part)  # any other missing column is still damage
    with pytest.raises(StoreError, match="missing column"):
        read_table(tmp_path, "results")
