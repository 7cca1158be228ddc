"""Damage in a pipeline run's tables (calls, candidates, judgments, results) is named, never read as data,
and ``ttclab repair`` then the ``ttclab run`` it names finish the run as if nothing happened: a real run
against the scripted server, real Parquet parts and journals (written by TableLog), the real CLI."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from online_support import load_yaml, scripted_model, write_pipeline
from pipeline_checks import check_run, content
from scripted_server import ScriptedServer

from ttclab.cli import main
from ttclab.errors import StoreError
from ttclab.online.runner import run_pipeline
from ttclab.store.journal import TableLog, read_table
from ttclab.store.reader import Run, list_runs
from ttclab.store.schema import PIPELINE_KEYS

N_Q = 4


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def reference(server: ScriptedServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One undamaged run (its store is copied by each test) and its content."""
    tmp = tmp_path_factory.mktemp("reference")
    path = write_pipeline(tmp, {**load_yaml("reflect-then-aggregate"), "model": scripted_model(server.base_url)})
    run = run_pipeline(path, limit=N_Q, store=tmp / "runs", progress=False).run
    return {"store": tmp / "runs", "run_id": run.run_id, "content": content(check_run(run))}


@pytest.fixture
def run_dir(reference: dict[str, Any], tmp_path: Path) -> Path:
    shutil.copytree(reference["store"], tmp_path / "runs")
    return tmp_path / "runs" / reference["run_id"]


def _as_journal(run_dir: Path, table: str) -> Path:
    """The table's rows written back as the journal a killed ``ttclab run`` leaves (by TableLog, one
    write per call row, one per question for the other tables), its parts removed."""
    rows = read_table(run_dir, table).to_pylist()
    for part in (run_dir / table).glob("part-*.parquet"):
        part.unlink()
    log = TableLog(run_dir, table, flush_rows=10**9)
    for qi in range(N_Q):
        mine = [r for r in rows if r["question_index"] == qi]
        if table == "calls":
            for row in mine:
                log.add(row)
        else:
            log.add_many(mine)
    assert log._fd is not None
    os.close(log._fd)  # the process dies: the journal stays
    [journal] = (run_dir / table).glob("journal-*.jsonl")
    return journal


def _damage_line(journal: Path, question: int, nth: int = 0) -> int:
    """Cut the ``nth`` line of ``question`` in half (its newline kept); returns its line number."""
    lines = journal.read_bytes().split(b"\n")
    hits = [i for i, line in enumerate(lines) if f'"question_index":{question},'.encode() in line]
    i = hits[nth]
    lines[i] = lines[i][: len(lines[i]) // 2]
    journal.write_bytes(b"\n".join(lines))
    return i + 1


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _flip_page(part: Path, column: str) -> None:
    """Flip a byte in the middle of ``column``'s pages (in its data, which the page checksum covers)."""
    meta = pq.ParquetFile(part).metadata.row_group(0)
    chunk = next(meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema == column)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    _flip(part, start + chunk.total_compressed_size // 2)


def _one_part(run_dir: Path, table: str) -> Path:
    [part] = (run_dir / table).glob("part-*.parquet")
    return part


def _canon(prompt: str) -> str:
    try:
        return json.dumps(json.loads(prompt), sort_keys=True)
    except ValueError:
        return prompt


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("ttclab")]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("where", ["middle", "last line with its newline"])
def test_a_damaged_journal_line_is_an_error_naming_file_and_line(run_dir: Path, where: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Before: any undecodable line was skipped: a finished question silently lost a candidate."""
    journal = _as_journal(run_dir, "candidates")
    line = _damage_line(journal, 1) if where == "middle" else _damage_line(journal, N_Q - 1, -1)
    if where != "middle":
        assert line == len(journal.read_bytes().split(b"\n")) - 1  # the file's last line, ending in "\n"
    with pytest.raises(StoreError) as err:
        read_table(run_dir, "candidates")
    message = str(err.value)
    assert f"{journal}:{line}: damaged journal line (checksum mismatch: " in message and "\n" not in message
    assert f"`ttclab repair {run_dir.name}`" in message
    # the next `ttclab run` stops with that line too, instead of running on without the row
    command = ["run", Run(run_dir).meta["pipeline"]["file"], "--limit", str(N_Q), "--store", str(run_dir.parent)]
    assert f"{journal.name}:{line}: damaged journal line" in _one_line_error(capsys, main(command))


def test_damaged_candidates_stop_the_next_run_before_it_runs_a_question(run_dir: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Candidates and judgments are checked as the run starts; before, the run did its questions and found
    the damage only when it merged the tables at the end."""
    results = _as_journal(run_dir, "results")
    results.write_bytes(b"".join(results.read_bytes().splitlines(keepends=True)[:-1]))  # the last question to do
    journal = _as_journal(run_dir, "candidates")
    line = _damage_line(journal, 1)
    command = ["run", Run(run_dir).meta["pipeline"]["file"], "--limit", str(N_Q), "--store", str(run_dir.parent)]
    assert f"{journal.name}:{line}: damaged journal line" in _one_line_error(capsys, main(command))
    assert sorted(read_table(run_dir, "results")["question_index"].to_pylist()) == list(range(N_Q - 1))


def test_a_torn_last_line_is_ignored_and_a_whole_one_is_read(run_dir: Path) -> None:
    """A killed writer can only leave its last write unfinished: the bytes after the last newline, whose
    checksum does not verify (torn: ignored); a last line that verifies lost only its newline (kept)."""
    journal = _as_journal(run_dir, "results")
    expected = read_table(run_dir, "results").to_pylist()
    assert len(expected) == N_Q
    whole = journal.read_bytes()
    last = whole.rstrip(b"\n").split(b"\n")[-1]
    assert last.startswith(b'{"crc32":"')
    journal.write_bytes(whole + last[: len(last) // 2])  # a row torn by kill -9
    assert read_table(run_dir, "results").to_pylist() == expected
    journal.write_bytes(whole + last[:-1])  # torn just before its last byte: its checksum does not verify
    assert read_table(run_dir, "results").to_pylist() == expected
    journal.write_bytes(whole[:-1])  # the last row whole, only its newline lost
    assert read_table(run_dir, "results").to_pylist() == expected
    journal.write_bytes(whole[: -len(last) - 1] + last[: len(last) // 2])  # the last row torn: the others read
    assert read_table(run_dir, "results").to_pylist() == expected[:-1]


def _flip_bit_in(journal: Path, line: int, field: str) -> tuple[bytes, bytes]:
    """Flip the low bit of the first digit or letter of ``field``'s value on ``line`` (1-based), so that the
    line stays valid JSON; returns the line before and after."""
    lines = journal.read_bytes().split(b"\n")
    raw = lines[line - 1]
    start = raw.index(f'"{field}":'.encode()) + len(field) + 3
    at = next(i for i in range(start, len(raw)) if chr(raw[i]).isalnum())
    flipped = raw[:at] + bytes([raw[at] ^ 0x02]) + raw[at + 1:]
    lines[line - 1] = flipped
    journal.write_bytes(b"\n".join(lines))
    return raw, flipped


@pytest.mark.parametrize(("table", "field"), [("candidates", "text"), ("calls", "completion_tokens")])
def test_a_flipped_bit_in_a_string_or_a_number_is_an_error_naming_file_and_line(
        run_dir: Path, table: str, field: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Before checksums such a line was valid JSON, read as a changed value without a word."""
    journal = _as_journal(run_dir, table)
    n_lines = len(journal.read_bytes().splitlines())
    before, after = _flip_bit_in(journal, 3, field)
    old, new = json.loads(before), json.loads(after)  # still JSON: only the checksum tells
    assert old[field] != new[field] and {k: v for k, v in old.items() if k != field} == \
        {k: v for k, v in new.items() if k != field}
    with pytest.raises(StoreError) as err:
        read_table(run_dir, table)
    message = str(err.value)
    assert message.startswith(f"{journal}:3: damaged journal line (checksum mismatch: a byte of it changed); ")
    assert message.endswith(f"`ttclab repair {run_dir.name}` moves it aside, keeps what is intact and names what to "
                            "run again") and "\n" not in message
    assert main(["repair", run_dir.name, "--store", str(run_dir.parent)]) == 0
    assert f"kept the {n_lines - 1} intact row(s) of {journal.name}" in capsys.readouterr().out
    assert new[PIPELINE_KEYS[table]] not in read_table(run_dir, table)[PIPELINE_KEYS[table]].to_pylist()


def test_random_bit_flips_in_a_journal_are_all_detected(run_dir: Path) -> None:
    """Before checksums, about 4 flips in 10 read as a changed value or a dropped last row."""
    journal = _as_journal(run_dir, "calls")
    original = journal.read_bytes()
    rng = np.random.default_rng(5)
    for bit in rng.integers(0, len(original) * 8, 300):
        data = bytearray(original)
        data[bit // 8] ^= 1 << (bit % 8)
        journal.write_bytes(bytes(data))
        line = original[: bit // 8].count(b"\n") + 1
        with pytest.raises(StoreError, match=rf"^{re.escape(str(journal))}:{line}: damaged journal line \("):
            read_table(run_dir, "calls")
    journal.write_bytes(original)
    assert len(read_table(run_dir, "calls")) == len(original.splitlines())


def test_a_changed_last_newline_is_damage_and_repair_keeps_the_row(run_dir: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Before, the whole last row then a stray byte read as a torn line: a finished row dropped silently."""
    journal = _as_journal(run_dir, "candidates")
    expected = read_table(run_dir, "candidates").to_pylist()
    n_lines = len(expected)
    _flip(journal, journal.stat().st_size - 1)  # b"\n" -> 0xf5
    with pytest.raises(StoreError, match=rf"{re.escape(str(journal))}:{n_lines}: damaged journal line \(its newline "
                                         r"changed to byte 0xf5\)"):
        read_table(run_dir, "candidates")
    assert main(["repair", run_dir.name, "--store", str(run_dir.parent)]) == 0
    out = capsys.readouterr().out
    assert f"kept the {n_lines} intact row(s) of {journal.name}" in out and "dropped the results" not in out, out
    assert read_table(run_dir, "candidates").to_pylist() == expected


def _as_old_journal(run_dir: Path, table: str) -> Path:
    """The table's rows as a journal written before checksums (rows encoded as that version did: compact
    JSON, ``created_at`` as seconds), its parts removed."""
    rows = read_table(run_dir, table).to_pylist()
    for part in (run_dir / table).glob("part-*.parquet"):
        part.unlink()
    journal = run_dir / table / "journal-00000000000000000001-0old0old.jsonl"
    encode = json.JSONEncoder(separators=(",", ":"), allow_nan=True).encode
    journal.write_text("".join(encode({**r, "created_at": r["created_at"].timestamp()}) + "\n" for r in rows))
    return journal


def test_journals_written_before_checksums_read_and_resume(run_dir: Path, reference: dict[str, Any],
                                                           server: ScriptedServer) -> None:
    journals = {t: _as_old_journal(run_dir, t) for t in ("calls", "candidates", "judgments", "results")}
    assert not journals["calls"].read_bytes().startswith(b'{"crc32"')
    assert content(check_run(Run(run_dir))) == reference["content"]
    results = journals["results"]
    whole = results.read_bytes()
    results.write_bytes(whole + whole[:40])  # an old torn last line is ignored, as before
    assert len(read_table(run_dir, "results")) == N_Q
    results.write_bytes(b"".join(whole.splitlines(keepends=True)[:-1]))  # the last question to do
    command = ["run", Run(run_dir).meta["pipeline"]["file"], "--limit", str(N_Q), "--store", str(run_dir.parent),
               "--no-progress"]
    sent_before = len(server.log)
    assert main(command) == 0
    assert len(server.log) == sent_before  # its calls replay from the old journal
    (run,) = list_runs(run_dir.parent)
    assert content(check_run(run)) == reference["content"] and run.meta["status"] == "complete"


def test_a_flipped_byte_in_a_part_is_an_error_not_a_changed_value(run_dir: Path) -> None:
    part = _one_part(run_dir, "calls")
    original = part.read_bytes()
    expected = read_table(run_dir, "calls").to_pylist()
    rng = np.random.default_rng(11)
    detected = 0
    for _ in range(150):  # before: about 1 flip in 8 changed a call's text, tokens or seed without a word
        _flip(part, int(rng.integers(0, len(original))))
        try:
            got = read_table(run_dir, "calls").to_pylist()
        except StoreError as exc:
            assert "\n" not in str(exc) and part.name in str(exc) and f"ttclab repair {run_dir.name}" in str(exc), exc
            detected += 1
        else:
            assert got == expected
        part.write_bytes(original)
    assert detected >= 100
    # a part written before page checksums reads as before (pyarrow checks only the pages that carry one)
    pq.write_table(pq.read_table(part), part, write_page_checksum=False)
    assert read_table(run_dir, "calls").to_pylist() == expected


def test_runs_lists_a_pipeline_run_with_damaged_calls_or_candidates_as_damaged(
        run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before, ``ttclab runs`` read only samples/ and the results columns it shows: a flipped byte in a
    calls part or a bad candidates line went unseen until the run was read."""
    def listed() -> tuple[str, list[str]]:
        assert main(["runs", "--store", str(run_dir.parent), "--format", "json"]) == 0
        out, err = capsys.readouterr()
        (row,) = json.loads(out)
        assert row["run"] == run_dir.name and "Traceback" not in err
        return row["status"], [line for line in err.splitlines() if line.startswith("note: ")]

    assert listed() == ("complete", [])
    journal = _as_journal(run_dir, "candidates")
    line = _damage_line(journal, 2)
    status, notes = listed()
    assert status == "damaged" and len(notes) == 1, notes
    assert notes[0].startswith(f"note: {journal}:{line}: damaged journal line (checksum mismatch: ")
    assert notes[0].endswith(f"`ttclab repair {run_dir.name}` moves it aside, keeps what is intact and names what "
                             "to run again")
    part = _one_part(run_dir, "calls")
    _flip_page(part, "text")  # a column `ttclab runs` does not show
    status, notes = listed()
    assert status == "damaged" and len(notes) == 1 and notes[0].startswith(f"note: {part}: unreadable Parquet ("), notes
    assert f"`ttclab repair {run_dir.name}`" in notes[0]
    assert main(["repair", run_dir.name, "--store", str(run_dir.parent)]) == 0
    capsys.readouterr()
    assert listed()[0] == "empty (incomplete)"  # not damaged: the lost part held a call of every question


def test_repair_on_an_undamaged_pipeline_run_changes_nothing(run_dir: Path, reference: dict[str, Any],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*") if p.is_file())
    assert main(["repair", run_dir.name, "--store", str(run_dir.parent)]) == 0
    out = capsys.readouterr().out
    c = reference["content"]
    counts = (f"samples {N_Q}, calls {len(c['calls'])}, candidates {len(c['candidates'])}, judgments "
              f"{len(c['judgments'])}, results {N_Q} rows")
    assert out.strip() == f"{run_dir}: all 5 file(s) verified ({counts}); nothing to repair"
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*") if p.is_file()) == files


def _damage(run_dir: Path, how: str) -> tuple[str, list[int]]:
    """Damage the run; returns (the damaged file's name, the questions whose results repair must drop)."""
    if how == "candidates page byte":  # in the text: its question_index still reads
        part = _one_part(run_dir, "candidates")
        _flip_page(part, "text")
        return part.name, list(range(N_Q))  # one compacted part: it held every question
    if how == "candidates footer":  # the footer's length: nothing of the part reads, its questions unknown
        part = _one_part(run_dir, "candidates")
        _flip(part, part.stat().st_size - 6)
        return part.name, list(range(N_Q))
    if how == "candidates journal line":
        journal = _as_journal(run_dir, "candidates")
        _damage_line(journal, 2, 1)
        return journal.name, [2]
    if how == "calls journal line":
        journal = _as_journal(run_dir, "calls")
        _damage_line(journal, 1, 3)
        return journal.name, [1]
    if how == "results page byte":  # results lost: their questions run again, nothing else is dropped
        part = _one_part(run_dir, "results")
        _flip_page(part, "text")
        return part.name, []
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["candidates page byte", "candidates footer", "candidates journal line",
                                 "calls journal line", "results page byte"])
def test_repair_then_the_named_run_finish_the_run_as_if_undamaged(run_dir: Path, reference: dict[str, Any],
                                                                  server: ScriptedServer, how: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    name, dropped = _damage(run_dir, how)
    table = next(t for t in ("calls", "candidates", "results") if t in how)
    with pytest.raises(StoreError, match=re.escape(name)):
        read_table(run_dir, table)
    store = run_dir.parent
    assert main(["repair", run_dir.name, "--store", str(store)]) == 0
    out = capsys.readouterr().out
    # the damaged file is out of the tables, kept for inspection, and the report says why
    moved = [line for line in out.splitlines() if line.startswith("moved aside: ") and name in line]
    why = "damaged journal line" if "journal" in how else "unreadable Parquet"
    assert len(moved) == 1 and why in moved[0] and f" -> {run_dir / 'damaged'}/" in moved[0], out
    assert not list(run_dir.glob(f"*/{name}")) and list((run_dir / "damaged").glob(f"*-{name}.*"))
    if dropped:
        assert re.search(rf"^dropped the results of (all )?{len(dropped)} (finished )?question\(s\)", out, re.M), out
    if how == "candidates footer":
        assert "the questions of the lost rows cannot be told" in out
    if how == "candidates page byte":  # the part's question_index column still verifies: they are known
        assert "that lost calls, candidates or judgments (0, 1, 2, 3); they run again" in out
    if "journal" in how:
        assert re.search(rf"^kept the \d+ intact row\(s\) of {re.escape(name)}$", out, re.M), out
        assert f"that lost calls, candidates or judgments ({dropped[0]}); they run again" in out
    # the run reads again, consistent: a question is finished only with its results row, mirrored in samples/
    results = read_table(run_dir, "results", ["question_index"])["question_index"].to_pylist()
    assert not set(results) & set(dropped) and len(results) < N_Q
    assert sorted(Run(run_dir).samples(["question_index"])["question_index"].to_pylist()) == sorted(results)
    assert Run(run_dir).meta["status"] == "incomplete"
    for table in ("calls", "candidates", "judgments"):
        read_table(run_dir, table)
    survived = {(_canon(c["prompt"]), c["seed"]) for c in read_table(run_dir, "calls").to_pylist()}
    lost_calls = len(reference["content"]["calls"]) - len(survived)
    assert lost_calls == (1 if how == "calls journal line" else 0)

    # the command the report names runs the lost questions again, in this run
    command = re.search(r"run `(ttclab run [^`]+)` to run the questions without a result", out)
    assert command, out
    sent_before = len(server.log)
    assert main(shlex.split(command.group(1))[1:] + ["--no-progress"]) == 0
    capsys.readouterr()
    after = server.log[sent_before:]
    assert sum(n for *_, n in after) == lost_calls  # only the lost call is sent again
    for _, prompt, seed, n in after:
        assert all((_canon(prompt), seed + j) not in survived for j in range(n))
    (run,) = list_runs(store)
    assert content(check_run(run)) == reference["content"]
    assert run.meta["status"] == "complete"
    again = main(["repair", run_dir.name, "--store", str(store)])
    assert again == 0 and "nothing to repair" in capsys.readouterr().out


def test_the_note_of_a_run_without_a_recorded_command_names_its_file(run_dir: Path) -> None:
    """Runs made before run.json recorded the command (``pipeline.command``), and served traffic."""
    from ttclab.repair import pipeline_note

    meta = Run(run_dir).meta
    assert meta["pipeline"]["command"] == f"ttclab run {meta['pipeline']['file']} --limit {N_Q}"
    del meta["pipeline"]["command"]
    assert pipeline_note(run_dir, meta).startswith(
        f"run `ttclab run {meta['pipeline']['file']} --limit {N_Q} --store {run_dir.parent}` (with the --model, "
        "--task and --seed it was first run with) to run the questions without a result")
    served = {**meta, "pipeline": {**meta["pipeline"], "file": None}}
    assert pipeline_note(run_dir, served).startswith("served traffic: what was lost cannot be asked again")


def test_another_runs_damaged_calls_do_not_stop_a_different_pipeline(run_dir: Path, server: ScriptedServer,
                                                                     tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Every pipeline run of the model feeds the call cache, so a damaged calls part of one run used to stop
    ``ttclab run`` of any other pipeline in the store; now that run's calls are left out with one warning,
    and the damaged run itself still stops at the damage."""
    _flip_page(_one_part(run_dir, "calls"), "text")
    other = write_pipeline(tmp_path, {**load_yaml("aggregate-vote"), "model": scripted_model(server.base_url)})
    store = str(run_dir.parent)
    code = main(["run", str(other), "--limit", "2", "--store", store, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    warnings = [ln for ln in err.splitlines() if ln.startswith("ttclab: warning:")]
    assert len(warnings) == 1 and "ttclab repair " + run_dir.name in warnings[0] \
        and "does not replay that run's calls" in warnings[0], err
    assert "Traceback" not in err
    (tmp_path / "again").mkdir()
    damaged = write_pipeline(tmp_path / "again", {**load_yaml("reflect-then-aggregate"),
                                                  "model": scripted_model(server.base_url)})
    line = _one_line_error(capsys, main(["run", str(damaged), "--limit", str(N_Q), "--store", store,
                                         "--no-progress"]))
    assert run_dir.name in line and "ttclab repair" in line, line
