"""`ttclab sample` end to end with the real SmolLM2 model: resume after kill -9, no duplicates, no loss."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ttclab.store import list_runs

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.slow

QUESTIONS, SAMPLES = 6, 4


def _config(tmp_path: Path, **overrides) -> Path:
    cfg = {
        "store": str(tmp_path / "runs"),
        "model": {"backend": "llamacpp", "name": "smollm2-135m", "options": {"n_ctx": 1024, "n_threads": 2}},
        "task": {"source": "gym", "name": "syllogism", "size": QUESTIONS, "seed": 3},
        "prompt": {"style": "chat"},
        "samples": SAMPLES,
        "sampling": {"temperature": 0.8, "max_tokens": 24, "seed": 5},
        "flush_seconds": 0.2,
    } | overrides
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _ttclab(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ttclab", *args], capture_output=True, text=True, timeout=600, **kw)


def _rows(run_dir: Path) -> list[tuple[int, int, str]]:
    import pyarrow.parquet as pq

    rows = []
    for f in sorted((run_dir / "samples").glob("part-*.parquet")):
        t = pq.read_table(f, columns=["question_index", "sample_index", "text"])
        rows += list(zip(t["question_index"].to_pylist(), t["sample_index"].to_pylist(), t["text"].to_pylist()))
    return rows


def test_kill_9_then_resume_loses_nothing_and_duplicates_nothing(tmp_path):
    cfg = _config(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "ttclab", "sample", str(cfg), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = tmp_path / "runs"
    deadline = time.time() + 300
    before: list = []
    while time.time() < deadline:  # wait until some (not all) samples are on disk
        runs = list_runs(store)
        if runs:
            before = _rows(runs[0].path)
            if len(before) >= SAMPLES:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert SAMPLES <= len(before) < QUESTIONS * SAMPLES, "the kill did not land in the middle of the run"
    run_dir = list_runs(store)[0].path
    before = _rows(run_dir)  # what survived the kill (atomic parts only: every file is whole)

    done = _ttclab("sample", str(cfg))  # stderr is a pipe: progress as lines, not a bar
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert "\r" not in done.stderr and lines, done.stderr
    assert lines[0].startswith(f"smollm2-135m: {QUESTIONS * SAMPLES - len(before)} sample(s) of {QUESTIONS} "
                               f"question(s) to generate, {len(before)} stored before"), lines
    progress = [ln for ln in lines if not ln.startswith("warning: ")]  # a truncation warning may follow
    assert progress[-1].startswith(f"smollm2-135m: questions {QUESTIONS}/{QUESTIONS}, samples {QUESTIONS * SAMPLES}/"
                                   f"{QUESTIONS * SAMPLES}, "), lines
    after = _rows(run_dir)
    keys = [(q, s) for q, s, _ in after]
    assert len(keys) == len(set(keys)) == QUESTIONS * SAMPLES  # none duplicated, none lost
    assert set(before) <= set(after)  # finished samples were kept as they were, not regenerated
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"

    # Same seeds: a fresh run of the same config reproduces the resumed run's samples exactly.
    (tmp_path / "fresh").mkdir()
    fresh = _config(tmp_path / "fresh")
    assert _ttclab("sample", str(fresh), "--no-progress").returncode == 0
    again = _rows(list_runs(tmp_path / "fresh" / "runs")[0].path)
    assert sorted(again) == sorted(after)

    # Re-running a finished config generates nothing new.
    rerun = _ttclab("sample", str(cfg), "--no-progress")
    assert rerun.returncode == 0 and len(_rows(run_dir)) == QUESTIONS * SAMPLES


def test_sigterm_stops_like_ctrl_c_then_resume(tmp_path):
    """SIGTERM (timeout, Slurm, docker stop): exit 143 with one line, run.json 'interrupted' with why (not
    'running' forever), what was written kept, and the same command finishes the run."""
    cfg = _config(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "ttclab", "sample", str(cfg), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    store = tmp_path / "runs"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # some (not all) samples on disk
        runs = list_runs(store)
        if runs and len(_rows(runs[0].path)) >= SAMPLES:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be stopped"
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and err.strip().splitlines() == [
        "ttclab: terminated by SIGTERM (finished work is saved; run the same command again to resume)"], err
    run_dir = list_runs(store)[0].path
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "interrupted" and meta["error"] == "Ctrl-C, SIGTERM or cancelled", meta
    before = _rows(run_dir)
    assert SAMPLES <= len(before) < QUESTIONS * SAMPLES
    done = _ttclab("sample", str(cfg), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert set(before) <= set(_rows(run_dir)) and len(_rows(run_dir)) == QUESTIONS * SAMPLES


def test_changed_config_is_a_new_run_and_runs_show_work(tmp_path):
    cfg = _config(tmp_path, samples=2, task={"source": "gym", "name": "syllogism", "size": 2, "seed": 3})
    assert _ttclab("sample", str(cfg), "--no-progress").returncode == 0
    cfg2 = _config(tmp_path, samples=2, task={"source": "gym", "name": "syllogism", "size": 2, "seed": 3},
                   sampling={"temperature": 0.3, "max_tokens": 24, "seed": 5})
    assert _ttclab("sample", str(cfg2), "--no-progress").returncode == 0
    runs = list_runs(tmp_path / "runs")
    assert len(runs) == 2 and runs[0].run_id != runs[1].run_id
    listing = _ttclab("runs", "--store", str(tmp_path / "runs"))
    assert listing.returncode == 0 and all(r.run_id in listing.stdout for r in runs)
    shown = _ttclab("show", runs[0].run_id, "--store", str(tmp_path / "runs"))
    assert shown.returncode == 0 and "maj" in shown.stdout
