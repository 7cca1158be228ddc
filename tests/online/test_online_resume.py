"""kill -9 in the middle of a pipeline run, then the same command again: no finished call is sent
again and the final results are identical to an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from online_support import REPO, load_yaml, write_pipeline
from pipeline_checks import check_run, content, tables
from scripted_server import ScriptedServer

from ttclab.store.journal import read_table
from ttclab.store.reader import list_runs


def _cmd(path: Path, store: Path, url: str) -> list[str]:
    model = json.dumps({"backend": "openai", "name": "scripted", "options": {"base_urls": [url], "max_concurrency": 8}})
    return [sys.executable, "-m", "ttclab", "run", str(path), "--model", model, "--limit", "6", "--concurrency", "2",
            "--store", str(store), "--no-progress"]


def _canon(prompt: str) -> str:
    """The same prompt as stored (JSON for chat messages) and as the server logged it."""
    try:
        return json.dumps(json.loads(prompt), sort_keys=True)
    except ValueError:
        return prompt


def _rows(store: Path) -> int:
    total = 0
    for journal in store.glob("*/calls/journal-*.jsonl"):
        total += sum(1 for _ in journal.open())
    return total


@pytest.mark.slow
def test_kill_9_mid_pipeline_then_resume(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, load_yaml("reflect-then-aggregate"))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    with ScriptedServer(delay_s=0.02) as srv:
        # the uninterrupted reference, in its own store
        subprocess.run(_cmd(path, tmp_path / "ref", srv.base_url), check=True, env=env, capture_output=True, timeout=300)
        reference = content(check_run(list_runs(tmp_path / "ref")[0]))

        store = tmp_path / "killed"
        proc = subprocess.Popen(_cmd(path, store, srv.base_url), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while _rows(store) < 90 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        run_dir = next(store.iterdir())
        stored = read_table(run_dir, "calls").to_pylist()
        assert 90 <= len(stored) < len(reference["calls"])
        done_before = {(_canon(c["prompt"]), c["seed"]) for c in stored if c["error"] is None}
        results_before = len(read_table(run_dir, "results"))
        sent_before = len(srv.log)

        resumed = subprocess.run(_cmd(path, store, srv.base_url), env=env, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        after = srv.log[sent_before:]

    # no finished call was sent again: every request after the kill asks for samples not stored before it
    assert after, "the resumed run had calls left to make"
    for _, prompt, seed, n in after:
        for j in range(n):
            assert (_canon(prompt), seed + j) not in done_before
    final = tables(list_runs(store)[0])
    assert len(final["results"]) == 6 and results_before < 6
    assert content(check_run(list_runs(store)[0])) == reference
    # every call is stored once (the resumed run replayed the finished ones without storing them again)
    ids = [c["call_id"] for c in final["calls"] if c["error"] is None]
    assert len(ids) == len(set(ids)) == len(reference["calls"])


_TERMINATED = "ttclab: terminated by SIGTERM (finished work is saved; run the same command again to resume)"


@pytest.mark.slow
@pytest.mark.parametrize("sig, sigint, code, line", [
    (signal.SIGINT, signal.SIG_DFL, 130, "ttclab: interrupted (finished work is saved; run the same command again to resume)"),
    (signal.SIGTERM, signal.SIG_DFL, 143, _TERMINATED),
    (signal.SIGTERM, signal.SIG_IGN, 143, _TERMINATED),  # a background job of a script ignores SIGINT
])
def test_ctrl_c_or_sigterm_mid_pipeline_then_resume_says_so(tmp_path: Path, sig: int, sigint: Any, code: int,
                                                            line: str) -> None:
    """SIGINT (Ctrl-C) or SIGTERM (timeout, Slurm): one line, run.json 'interrupted' (not the asyncio
    'CancelledError', nor 'running' forever), and the same command continues: its start line counts the
    finished questions, its tables say what was replayed."""
    path = write_pipeline(tmp_path, load_yaml("reflect-then-aggregate"))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    store = tmp_path / "store"
    with ScriptedServer(delay_s=0.02) as srv:
        cmd = _cmd(path, store, srv.base_url)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))
        deadline = time.monotonic() + 120
        while (not list(store.glob("*/results/journal-*.jsonl")) or _rows(store) < 120) \
                and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == code and "Traceback" not in err, err
        assert err.strip().splitlines() == [line]
        run_dir = next(store.iterdir())
        meta = json.loads((run_dir / "run.json").read_text())
        assert meta["status"] == "interrupted" and meta["error"] == "Ctrl-C, SIGTERM or cancelled"
        finished = len(read_table(run_dir, "results"))
        assert 0 < finished < 6
        resumed = subprocess.run([c for c in cmd if c != "--no-progress"], env=env, capture_output=True, text=True,
                                 timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    first = resumed.stderr.splitlines()[0]
    assert f"{6 - finished} question(s) to run, {finished} finished before" in first, first
    assert "over its 6 finished question(s), replayed ones included" in resumed.stdout
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
