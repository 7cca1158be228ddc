"""`--record`: a flush converts only what was recorded since the last one, and the run stays whole."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import ttclab.serve.record as record
from ttclab.serve.record import RecordedRun
from ttclab.store.journal import read_table
from ttclab.store.reader import Run
from ttclab.store.schema import SCHEMA_VERSION

META = {"schema_version": SCHEMA_VERSION, "run_id": "serve-test", "kind": "pipeline", "name": "serve test",
        "model": {"label": "m (majority@2)", "name": "m", "backend": "openai", "llm": "m"}, "samples": 1}


def request(run: RecordedRun, i: int, *, labelled: bool = True, flushed: bool = True) -> None:
    """One recorded request: its question row and its result (as Recording.finish stores it)."""
    qid = f"r{i}-0"
    index = run.new_question({"question_id": qid, "question": f"What is {i} + 1?", "prompt": "[]",
                              "gold": str(i + 1) if labelled else None, "difficulty": None, "metadata": "{}"})
    row = {"run_id": run.run_id, "question_index": index, "question_id": qid, "candidate_id": f"q{index}-c0",
           "text": f"The answer is {i + 1}.", "answer": str(i + 1), "verdict": "correct" if labelled else "unlabelled",
           "correct": labelled, "n_calls": 2, "prompt_tokens": 10, "completion_tokens": 5 + i, "latency_s": 0.1,
           "wall_s": None, "notes": None, "error": None, "created_at": datetime.now(UTC)}
    if flushed:
        run.add_result(row)
    else:  # journaled but never reached samples/ (the server died before its next flush)
        run.logs["results"].add(row)


def test_flushes_append_and_merge_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record, "COMPACT_PARTS", 3)
    run = RecordedRun(tmp_path, "serve-test", META)
    labelled = []
    for batch in range(7):
        for k in range(4):
            i = batch * 4 + k
            request(run, i, labelled=i % 4 != 3)
            labelled += [i] if i % 4 != 3 else []
        run.flush()
        stored = Run(run.dir)
        assert stored.questions().num_rows == (batch + 1) * 4
        assert sorted(stored.samples()["question_id"].to_pylist()) == sorted(f"r{i}-0" for i in labelled)
        assert len(stored.part_files()) < 3  # merged before they pile up
    samples = {r["question_id"]: r for r in Run(run.dir).samples().to_pylist()}
    assert samples["r5-0"]["completion_tokens"] == 10 and samples["r5-0"]["verdict"] == "correct"
    run.close()
    assert Run(run.dir).meta["status"] == "complete" and Run(run.dir).meta["n_questions"] == 28


def test_restart_catches_up_what_the_last_server_did_not_flush(tmp_path: Path) -> None:
    run = RecordedRun(tmp_path, "serve-test", META)
    request(run, 0)
    run.flush()
    request(run, 1, flushed=False)  # in the results journal only
    for log in run.logs.values():  # the process dies: its journals stay, its lock goes
        log._pending.clear()
    run._lock.close()
    again = RecordedRun(tmp_path, "serve-test", META)
    request(again, 2)
    again.flush()
    stored = Run(again.dir)
    assert stored.questions()["question_id"].to_pylist() == ["r0-0", "r1-0", "r2-0"]
    assert sorted(stored.samples()["question_id"].to_pylist()) == ["r0-0", "r1-0", "r2-0"]
    assert len(read_table(again.dir, "results")) == 3
    again.close()


def _crash(run: RecordedRun) -> None:
    """The process dies: its journals stay, its lock goes."""
    for log in run.logs.values():
        log._pending.clear()
    run._lock.close()


def _flip(path: Path, line: int, old: bytes, new: bytes) -> None:
    lines = path.read_bytes().split(b"\n")
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_bytes(b"\n".join(lines))


def test_questions_journal_damage_is_recovered_or_refused_never_skipped(tmp_path: Path) -> None:
    run = RecordedRun(tmp_path, "serve-test", META)
    for i in range(3):
        request(run, i)
    run.flush()  # questions.parquet has r0..r2
    request(run, 3)  # in the journal only
    _crash(run)
    journal = run.dir / record.QUESTIONS_JOURNAL
    _flip(journal, 2, b"What is 1", b"What is 7")  # a changed byte in a flushed question: its copy is in questions.parquet
    again = RecordedRun(tmp_path, "serve-test", META)
    assert [q["question"] for q in again.questions] == [f"What is {i} + 1?" for i in range(4)]
    assert len(list((run.dir / "damaged").iterdir())) == 1  # the damaged journal kept aside, a whole one in its place
    assert record.recorded_questions(run.dir) == (again.questions, False)
    request(again, 4)
    assert again.questions[-1]["question_index"] == 4  # no index taken twice
    again.flush()
    assert Run(again.dir).questions()["question_id"].to_pylist() == [f"r{i}-0" for i in range(5)]
    _crash(again)
    # a damaged question that never reached questions.parquet cannot be recovered: one line, nothing changed
    _flip(journal, 5, b"What is 4", b"What is 9")
    (run.dir / "questions.parquet").unlink()
    before = journal.read_bytes()
    with pytest.raises(record.StoreError) as exc:
        RecordedRun(tmp_path, "serve-test", META)
    message = str(exc.value)
    assert message.startswith(f"{journal}:5: damaged (checksum mismatch") and "\n" not in message
    assert "record to another folder" in message and journal.read_bytes() == before


def test_questions_journal_torn_tail_and_old_lines(tmp_path: Path) -> None:
    import json

    run_dir = tmp_path / "serve-test"
    run_dir.mkdir()
    old = [{"question_index": i, "question_id": f"r{i}-0", "question": f"What is {i} + 1?", "prompt": "[]",
            "gold": str(i + 1), "difficulty": None, "metadata": "{}"} for i in range(2)]
    # lines of an earlier version (no checksum) and a torn last write
    (run_dir / record.QUESTIONS_JOURNAL).write_text("".join(json.dumps(q) + "\n" for q in old) + '{"question_ind')
    run = RecordedRun(tmp_path, "serve-test", META)
    assert run.questions == old
    request(run, 2)
    assert run.questions[-1]["question_index"] == 2
    _crash(run)  # the question appended after the torn write reads back whole
    assert [q["question_id"] for q in RecordedRun(tmp_path, "serve-test", META).questions] == ["r0-0", "r1-0", "r2-0"]
    assert not (run_dir / "damaged").exists()
