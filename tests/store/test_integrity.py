"""Store integrity: checksummed parts, row invariants, damaged runs listed, repair, lock, compaction, full disk."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from ttclab.errors import StoreError
from ttclab.store import Run, list_runs
from ttclab.store.integrity import MANIFEST_FILE, read_manifest, repair_run, run_lock
from ttclab.store.writer import SampleWriter, atomic_write_json, write_questions

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

T0 = datetime(2026, 1, 1, tzinfo=UTC)
N_Q, N_S = 6, 4


def _row(run_id: str, qi: int, si: int, *, ok: bool = True, t: int = 0) -> dict:
    return {
        "run_id": run_id, "model": "m", "question_id": f"q{qi}", "question_index": qi, "sample_index": si,
        "text": f"so the answer is \\boxed{{{qi + si}}}", "finish_reason": "stop", "prompt_tokens": 5,
        "completion_tokens": 3 + si, "latency_s": 0.1, "token_logprobs": [-0.5, -0.25], "mean_logprob": -0.375,
        "error": None, "answer": str(qi + si), "verdict": "correct" if ok else "incorrect", "correct": ok,
        "verify_reason": "boxed", "reward": 0.5, "seed": 7 + si, "created_at": T0 + timedelta(seconds=t),
    }


def _make_run(store: Path, run_id: str = "r", parts: int = 2) -> Run:
    run_dir = store / run_id
    atomic_write_json(run_dir / "run.json", {"run_id": run_id, "model": {"name": "m"}, "samples": N_S,
                                             "n_questions": N_Q, "status": "complete"})
    write_questions(run_dir, [{"question_index": i, "question_id": f"q{i}", "question": "?", "prompt": "?",
                               "gold": "1", "difficulty": None, "metadata": "{}"} for i in range(N_Q)])
    keys = [(q, s) for q in range(N_Q) for s in range(N_S)]
    for chunk in np.array_split(np.arange(len(keys)), parts):
        w = SampleWriter(run_dir, flush_seconds=1e9)
        w.add([_row(run_id, *keys[i], ok=(keys[i][0] + keys[i][1]) % 3 != 0) for i in chunk])
        w.close()
    return Run(run_dir)


def _ttclab(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ttclab", *args], capture_output=True, text=True, timeout=300, **kw)


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("ttclab: error:"), proc.stderr
    return lines[0]


# -- the random-overwrite probe ---------------------------------------------------------------------
@pytest.mark.parametrize("compacted", [False, True])
def test_random_overwrites_are_detected_or_harmless(tmp_path, compacted):
    run = _make_run(tmp_path / "runs")
    if compacted:
        run.compact()
    expected = run.samples().to_pylist()
    part = run.part_files()[0]
    original = part.read_bytes()
    rng = np.random.default_rng(20260101)
    outcomes = {"detected": 0, "unchanged": 0}
    for _ in range(200):
        offset = int(rng.integers(0, len(original) - 8))
        damaged = bytearray(original)
        damaged[offset:offset + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
        part.write_bytes(bytes(damaged))
        try:
            got = Run(run.path).samples().to_pylist()
        except StoreError as exc:  # anything else (a traceback) fails the test
            message = str(exc)
            assert "\n" not in message and part.name in message and "ttclab repair r" in message, message
            outcomes["detected"] += 1
        else:
            assert got == expected  # the overwrite happened to write the same bytes
            outcomes["unchanged"] += 1
        part.write_bytes(original)
    assert outcomes["detected"] >= 195, outcomes
    assert Run(run.path).samples().to_pylist() == expected


def test_row_invariants_catch_what_a_run_without_manifest_would_accept(tmp_path):
    cases = {
        "sample_index -580545509 outside": {"sample_index": -580545509},
        "sample_index 4 outside 0..3": {"sample_index": N_S},
        "question_index 6 outside 0..5": {"question_index": N_Q},
        "the same (question_index, sample_index) twice": "dup",
        "question_id 'q9'": {"question_id": "q9"},
        "'correct' disagrees with the verdict": {"correct": False},
        "unknown verdict 'maybe'": {"verdict": "maybe"},
        "negative completion_tokens": {"completion_tokens": -3},
    }
    for i, (words, change) in enumerate(cases.items()):
        run = _make_run(tmp_path / f"s{i}", parts=1)
        (run.path / "samples" / MANIFEST_FILE).unlink()  # as written before manifests: rows are all we check
        part = run.part_files()[0]
        rows = pq.read_table(part).to_pylist()
        if change == "dup":
            rows.append(dict(rows[0]))
        else:
            rows[1].update(change)
        pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(part)), part)
        with pytest.raises(StoreError) as info:
            Run(run.path).samples()
        assert words in str(info.value) and part.name in str(info.value), (words, str(info.value))


def test_a_damaged_manifest_is_one_line_and_repair_rebuilds_it(tmp_path):
    run = _make_run(tmp_path / "runs")
    manifest = run.path / "samples" / MANIFEST_FILE
    manifest.write_bytes(manifest.read_bytes().replace(b'"rows": 12', b'"rows": 13'))
    with pytest.raises(StoreError, match="_manifest.json: damaged.*ttclab repair r"):
        Run(run.path).samples()
    report = repair_run(run.path)
    assert any("manifest.json" in str(where) for where, _ in report.moved)
    assert Run(run.path).samples().num_rows == N_Q * N_S and read_manifest(run.path / "samples") is not None


# -- damaged runs are listed, repaired, regenerated -----------------------------------------------
def _flip_a_byte(part: Path) -> None:
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))


def test_runs_lists_every_run_when_one_is_damaged_or_lost_its_run_json(tmp_path):
    store = tmp_path / "runs"
    _make_run(store, "good-run")
    bad = _make_run(store, "bad-run")
    _flip_a_byte(bad.part_files()[0])
    gone = _make_run(store, "gone-run")
    (gone.path / "run.json").unlink()
    proc = _ttclab("runs", "--store", str(store))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Traceback" not in out, out
    assert "good-run" in out and "bad-run" in out and "gone-run" in out
    assert out.count("damaged") >= 2
    assert "checksum mismatch" in out and "ttclab repair bad-run" in out
    assert "run.json: missing" in out and "ttclab repair gone-run" in out


def test_corrupt_and_missing_run_json_name_the_fix_and_repair_rebuilds_it(tmp_path):
    store = tmp_path / "runs"
    run = _make_run(store, "r")
    (run.path / "run.json").write_text('{"run_id": "r", "model": ')
    with pytest.raises(StoreError, match=r"run\.json: corrupt JSON.*ttclab repair r"):
        _ = Run(run.path).meta
    proc = _ttclab("repair", "r", "--store", str(store))
    assert proc.returncode == 0 and "rebuilt run.json" in proc.stdout, proc.stdout + proc.stderr
    meta = Run(run.path).meta
    assert meta["run_id"] == "r" and meta["samples"] == N_S and meta["model"]["name"] == "m"
    assert list((run.path / "damaged").glob("run.json.*"))  # the corrupt file is kept
    assert Run(run.path).samples().num_rows == N_Q * N_S


def test_repair_moves_damaged_parts_out_of_the_glob(tmp_path):
    store = tmp_path / "runs"
    run = _make_run(store, "r", parts=3)
    victim = run.part_files()[1]
    lost = pq.read_metadata(victim).num_rows
    _flip_a_byte(victim)
    proc = _ttclab("repair", "r", "--store", str(store), "--no-regenerate")
    assert proc.returncode == 0 and "moved aside" in proc.stdout and victim.name in proc.stdout, proc.stdout
    assert not victim.exists() and list((run.path / "damaged").glob(victim.name + ".*"))
    assert Run(run.path).samples().num_rows == N_Q * N_S - lost
    assert Run(run.path).meta["status"] == "incomplete"
    duckdb = pytest.importorskip("duckdb")
    assert duckdb.sql(f"select count(*) from '{store}/*/samples/*.parquet'").fetchall()[0][0] == N_Q * N_S - lost
    again = _ttclab("repair", "r", "--store", str(store))
    assert again.returncode == 0 and "nothing to repair" in again.stdout


def _sample_config(tmp_path: Path, url: str) -> Path:
    cfg = {"store": str(tmp_path / "runs"),
           "model": {"backend": "openai", "name": "flaky", "options": {"base_url": url, "max_retries": 1}},
           "task": {"source": "gym", "name": "syllogism", "size": N_Q, "seed": 3}, "prompt": {"style": "chat"},
           "samples": N_S, "sampling": {"temperature": 0.8, "max_tokens": 8, "seed": 5}, "flush_seconds": 0.01,
           "samples_per_request": 1, "concurrency": 1}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _texts(run: Run) -> list[tuple[int, int, str]]:
    t = run.samples(["question_index", "sample_index", "text"]).to_pydict()
    return list(zip(t["question_index"], t["sample_index"], t["text"]))


def test_repair_and_the_next_sample_regenerate_the_lost_samples(tmp_path):
    from support.flaky_server import FlakyServer

    with FlakyServer() as srv:
        cfg = _sample_config(tmp_path, srv.base_url)
        first = _ttclab("sample", str(cfg), "--no-progress")
        assert first.returncode == 0, first.stderr
        (run,) = list_runs(tmp_path / "runs")
        before = _texts(run)
        assert len(before) == N_Q * N_S and len(run.part_files()) == 1  # compacted at the end
        _flip_a_byte(run.part_files()[0])
        fixed = _ttclab("repair", run.run_id, "--store", str(tmp_path / "runs"))  # stderr a pipe: lines, no bar
        assert fixed.returncode == 0 and f"regenerated {N_Q * N_S} sample(s)" in fixed.stdout, fixed.stdout + fixed.stderr
        assert "\r" not in fixed.stderr and f"sample(s) of {N_Q} question(s) to generate" in fixed.stderr
        assert _texts(Run(run.path)) == before  # same seeds, same samples
        assert Run(run.path).meta["status"] == "complete"
        # the next `sample` does the same on its own, with a warning
        _flip_a_byte(Run(run.path).part_files()[0])
        again = _ttclab("sample", str(cfg), "--no-progress")
        assert again.returncode == 0, again.stderr
        assert "warning" in again.stderr and "moved to" in again.stderr and "checksum mismatch" in again.stderr
        assert _texts(Run(run.path)) == before


def test_a_deleted_part_is_damage_named_in_one_line_and_repair_records_the_loss(tmp_path):
    store = tmp_path / "runs"
    run = _make_run(store, "r", parts=3)
    victim = run.part_files()[1]
    lost = pq.read_metadata(victim).num_rows
    victim.unlink()  # before: the other parts read fine and its samples were silently gone
    with pytest.raises(StoreError, match=rf"{victim.name}: missing \(recorded in _manifest.json with {lost} sample "
                                         r"rows, not on disk\); `ttclab repair r`"):
        Run(run.path).samples()
    listed = _ttclab("runs", "--store", str(store))
    assert listed.returncode == 0 and "damaged" in listed.stdout and "missing" in listed.stdout, listed.stdout
    assert " m " in listed.stdout  # the damaged row still names the model from run.json
    fixed = _ttclab("repair", "r", "--store", str(store), "--no-regenerate")
    assert fixed.returncode == 0 and f"lost: {victim}: missing" in fixed.stdout, fixed.stdout
    kept = list((run.path / "damaged").glob(f"{victim.name}.missing.*.json"))
    assert kept and '"rows": ' + str(lost) in kept[0].read_text()
    assert Run(run.path).samples().num_rows == N_Q * N_S - lost  # the intact parts are all there
    assert Run(run.path).meta["status"] == "incomplete"
    assert "nothing to repair" in _ttclab("repair", "r", "--store", str(store)).stdout


def test_a_part_recorded_but_never_renamed_into_view_is_recovered_whole(tmp_path):
    run = _make_run(tmp_path / "runs", "r", parts=3)
    expected = run.samples().to_pylist()
    part = run.part_files()[2]
    os.replace(part, part.with_name(f".{part.name}.0badc0de.tmp"))  # the writer died between commit and rename
    with pytest.raises(StoreError, match="missing"):
        Run(run.path).samples()
    report = repair_run(run.path)
    assert not report.moved and not report.lost and part.exists()
    assert Run(run.path).samples().to_pylist() == expected


def test_a_damaged_manifest_loses_nothing_and_repair_says_so(tmp_path):
    store = tmp_path / "runs"
    run = _make_run(store, "r", parts=3)
    with open(run.path / "samples" / MANIFEST_FILE, "a") as fh:
        fh.write("garbage{{\n")
    fixed = _ttclab("repair", "r", "--store", str(store))
    assert fixed.returncode == 0 and "moved aside" in fixed.stdout, fixed.stdout + fixed.stderr
    assert f"nothing lost: all 3 part file(s) verified ({N_Q * N_S} rows)" in fixed.stdout
    assert "regenerate" not in fixed.stdout  # before: 'run ttclab repair ... to regenerate' for nothing lost
    assert Run(run.path).meta["status"] == "complete"


def test_flipped_bytes_in_questions_are_detected_or_harmless(tmp_path):
    run = _make_run(tmp_path / "runs")
    file = run.path / "questions.parquet"
    original = file.read_bytes()
    expected = run.questions().to_pylist()
    rng = np.random.default_rng(7)
    changed = 0
    for _ in range(150):  # before page checksums about 1 flip in 7 changed a question or gold without a word
        damaged = bytearray(original)
        damaged[int(rng.integers(0, len(original)))] ^= 0xFF
        file.write_bytes(bytes(damaged))
        try:
            got = Run(run.path).questions().to_pylist()
        except StoreError as exc:
            assert "\n" not in str(exc) and "questions.parquet" in str(exc) and "ttclab repair r" in str(exc), exc
            continue
        changed += got != expected
    assert changed <= 2, changed  # a footer byte can still slip through; page contents cannot


def test_repair_writes_damaged_questions_again_from_the_config(tmp_path):
    from support.flaky_server import FlakyServer

    with FlakyServer() as srv:
        cfg = _sample_config(tmp_path, srv.base_url)
        assert _ttclab("sample", str(cfg), "--no-progress").returncode == 0
        (run,) = list_runs(tmp_path / "runs")
        questions, texts = Run(run.path).questions().to_pylist(), _texts(run)
        (run.path / "questions.parquet").write_bytes(b"PAR1 not really")
        line = _one_line_error(_ttclab("show", run.run_id, "--store", str(tmp_path / "runs")))
        assert "questions.parquet: unreadable Parquet" in line and f"ttclab repair {run.run_id}" in line, line
        fixed = _ttclab("repair", run.run_id, "--store", str(tmp_path / "runs"))
        # before: 'all 1 part file(s) verified; nothing to repair' and the run stayed unreadable
        assert fixed.returncode == 0 and "moved aside" in fixed.stdout and "questions.parquet" in fixed.stdout, fixed.stdout
        assert Run(run.path).questions().to_pylist() == questions and _texts(Run(run.path)) == texts
        assert list((run.path / "damaged").glob("questions.parquet.*"))


def test_sampling_again_restores_a_corrupt_or_rebuilt_run_json(tmp_path):
    from support.flaky_server import FlakyServer

    with FlakyServer() as srv:
        cfg = _sample_config(tmp_path, srv.base_url)
        assert _ttclab("sample", str(cfg), "--no-progress").returncode == 0
        (run,) = list_runs(tmp_path / "runs")
        original = Run(run.path).meta
        (run.path / "run.json").write_text('{"run_id": ')  # corrupt: the message says sampling again restores it
        again = _ttclab("sample", str(cfg), "--no-progress")
        assert again.returncode == 0, again.stderr  # before: the corrupt-JSON error, again and again
        assert Run(run.path).meta["config"] == original["config"] and Run(run.path).meta["status"] == "complete"
        (run.path / "run.json").unlink()
        assert _ttclab("repair", run.run_id, "--store", str(tmp_path / "runs")).returncode == 0
        assert "config" not in Run(run.path).meta  # rebuilt from the samples
        assert _ttclab("sample", str(cfg), "--no-progress").returncode == 0
        meta = Run(run.path).meta
        assert meta["config"] == original["config"] and "rebuilt" not in meta and meta["status"] == "complete"
    assert srv.requests == N_Q * N_S  # nothing was sampled twice


def test_a_killed_sampler_reads_as_interrupted_not_running(tmp_path):
    store = tmp_path / "runs"
    run = _make_run(store, "r")
    atomic_write_json(run.path / "run.json", {**Run(run.path).meta, "status": "running"})
    (run.path / ".lock").write_text("ttclab pid 999999 (sampling m, since ...)")  # what kill -9 leaves behind
    listed = _ttclab("runs", "--store", str(store))
    assert " interrupted " in listed.stdout and "the same `ttclab sample CONFIG` resumes it" in listed.stdout, listed.stdout
    assert "status interrupted" in _ttclab("show", "r", "--store", str(store)).stdout
    with run_lock(run.path, "testing"):  # a live writer: still running
        listed = _ttclab("runs", "--store", str(store))
        assert " running " in listed.stdout and "interrupted" not in listed.stdout, listed.stdout
        # and asking never makes that writer's lock fail
        for _ in range(20):
            assert _ttclab("runs", "--store", str(store)).returncode == 0


# -- lock ------------------------------------------------------------------------------------------
def test_a_second_writer_on_the_same_run_gets_a_clear_error(tmp_path):
    from support.flaky_server import FlakyServer

    with FlakyServer() as srv:
        cfg = _sample_config(tmp_path, srv.base_url)
        first = _ttclab("sample", str(cfg), "--no-progress")
        (run,) = list_runs(tmp_path / "runs")
        (run.path / "samples" / MANIFEST_FILE).unlink()
        for part in run.part_files():
            part.unlink()
        with run_lock(run.path, "testing"):
            second = _ttclab("sample", str(cfg), "--no-progress")
            line = _one_line_error(second)
            assert f"pid {os.getpid()}" in line and "is writing this run" in line
        assert srv.requests == N_Q * N_S  # the locked-out process sent nothing
        third = _ttclab("sample", str(cfg), "--no-progress")
    assert first.returncode == 0 and third.returncode == 0, third.stderr
    assert Run(run.path).samples().num_rows == N_Q * N_S


def test_two_concurrent_sample_processes_never_duplicate(tmp_path):
    from support.flaky_server import FlakyServer

    with FlakyServer(delay_s=0.02) as srv:
        cfg = _sample_config(tmp_path, srv.base_url)
        procs = [subprocess.Popen([sys.executable, "-m", "ttclab", "sample", str(cfg), "--no-progress"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        codes = sorted(p.returncode for p in procs)
    assert codes[0] == 0, outs
    if codes[1] != 0:
        assert any("is writing this run" in err for _, err in outs), outs
    duckdb = pytest.importorskip("duckdb")
    glob = f"{tmp_path}/runs/*/samples/*.parquet"
    assert duckdb.sql(f"select count(*) from '{glob}'").fetchall()[0][0] == N_Q * N_S
    assert srv.requests == N_Q * N_S  # nobody did the work twice


# -- compaction ------------------------------------------------------------------------------------
def test_compaction_never_shows_duplicates_to_a_glob(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    store = tmp_path / "runs"
    run = _make_run(store, "r", parts=6)
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        con = duckdb.connect()
        while not stop.is_set():
            try:
                seen.append(con.sql(f"select count(*) from '{run.path}/samples/*.parquet'").fetchall()[0][0])
            except duckdb.Error:  # a file vanished between listing and reading: no rows counted twice
                pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(8):
            part = run.part_files()[0]  # a part written again later (a retry) is merged again
            w = SampleWriter(run.path, flush_seconds=1e9)
            w.add(pq.read_table(part).to_pylist()[:2])
            w.close()
            Run(run.path).compact()
    finally:
        stop.set()
        watcher.join()
    assert seen and max(seen) <= N_Q * N_S + 2, max(seen)
    assert Run(run.path).samples().num_rows == N_Q * N_S


def test_an_interrupted_compaction_is_finished_or_rolled_back(tmp_path):
    from ttclab.store.integrity import _hidden, sha256_file, update_manifest, visible_parts
    from ttclab.store.writer import write_parquet_tmp

    for finished_tmp in (True, False):
        run = _make_run(tmp_path / str(finished_tmp), "r", parts=3)
        samples = run.path / "samples"
        expected = run.samples().to_pylist()
        olds = [p.name for p in visible_parts(samples)]
        name = "part-00000000000000000009-compacted.parquet"
        tmp = write_parquet_tmp(samples / name, run.samples())
        sha, size = sha256_file(tmp)
        update_manifest(samples, add={name: {"sha256": sha, "bytes": size, "rows": len(expected)}},
                        intent={"merged": name, "tmp": tmp.name, "replaces": olds})
        os.replace(samples / olds[0], _hidden(samples, olds[0]))  # ... and then the process died
        if not finished_tmp:
            tmp.unlink()
        assert Run(run.path).samples().to_pylist() == expected
        names = [p.name for p in visible_parts(samples)]
        assert names == ([name] if finished_tmp else olds)
        assert not list(samples.glob(".*")) and read_manifest(samples)["intent"] is None


# -- full disk -------------------------------------------------------------------------------------
@pytest.fixture()
def tiny_disk(tmp_path):
    """A real 8 MiB tmpfs (root only): writes fail with ENOSPC for real."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root; cannot produce a real full disk here")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_is_one_line_and_finished_samples_are_safe(tmp_path, tiny_disk):
    from support.flaky_server import FlakyServer

    with FlakyServer() as srv:
        cfg = _sample_config(tmp_path, srv.base_url)
        data = yaml.safe_load(cfg.read_text())
        data["store"] = str(tiny_disk / "runs")
        data["task"]["size"] = 40
        data["sampling"]["max_tokens"] = 64
        cfg.write_text(yaml.safe_dump(data))
        filler = tiny_disk / "filler"
        free = shutil.disk_usage(tiny_disk).free
        filler.write_bytes(b"\0" * max(0, free - 120_000))  # room for run.json, questions and a few parts
        proc = _ttclab("sample", str(cfg), "--no-progress")
        line = _one_line_error(proc)
        assert f"store {tiny_disk / 'runs'}" in line and "no space left" in line and "safe" in line, line
        (run,) = list_runs(tiny_disk / "runs")
        kept = Run(run.path).samples().num_rows  # what was written is intact and verified
        assert kept > 0
        assert not [p for p in (run.path / "samples").iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
        filler.unlink()
        resumed = _ttclab("sample", str(cfg), "--no-progress")
        assert resumed.returncode == 0, resumed.stderr
    assert Run(run.path).samples().num_rows == 40 * N_S
    assert srv.requests - kept <= 40 * N_S + 8  # finished samples were not generated again (beyond a lost buffer)


def test_every_write_of_the_store_reports_a_full_disk(tmp_path, tiny_disk):
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * shutil.disk_usage(tiny_disk).free)
    run_dir = tiny_disk / "runs" / f"r-{uuid.uuid4().hex[:6]}"
    with pytest.raises(StoreError, match="no space left on device while writing run.json"):
        atomic_write_json(run_dir / "run.json", {"run_id": "r", "blob": "x" * 100_000})
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_sample_says_why_samples_failed_and_that_the_same_command_retries_them(tmp_path):
    from support.flaky_server import FlakyServer

    with FlakyServer(default=503, error_message="overloaded") as srv:
        cfg = _sample_config(tmp_path, srv.base_url)
        proc = _ttclab("sample", str(cfg), "--no-progress")
    # before: exit status 1 and a table with an errors column, no word on what failed
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    warning = [ln for ln in proc.stderr.splitlines() if "samples failed" in ln]
    assert len(warning) == 1 and f"{N_Q * N_S} of {N_Q * N_S} samples failed (first error: " in warning[0], proc.stderr
    assert "503" in warning[0] and "the same command retries them" in warning[0], warning
