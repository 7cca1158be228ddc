"""`ttclab run` end to end, and pipeline runs in `ttclab runs`, `evaluate`, `optimize` and `report`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from online_support import PIPELINES, REPO, load_yaml, scripted_model, shrink, write_pipeline
from scripted_server import ScriptedServer

from ttclab.analysis import evaluate_runs, optimize
from ttclab.online.results import pipeline_ledgers, pipeline_outcome
from ttclab.store.journal import read_table
from ttclab.store.reader import list_runs


def _ttclab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "ttclab", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=env)


@pytest.mark.slow
def test_run_runs_evaluate_report(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with ScriptedServer() as srv:
        model = json.dumps(scripted_model(srv.base_url))
        for name in ("reflect-then-aggregate", "aggregate-oracle-score"):
            quiet = ["--no-progress"] if name == "reflect-then-aggregate" else []
            proc = _ttclab("run", str(PIPELINES / f"{name}.yaml"), "--model", model, "--limit", "3", "--store",
                           str(store), *quiet, cwd=tmp_path)
            assert proc.returncode == 0, proc.stderr
            assert name in proc.stdout and "role" in proc.stdout and "generate" in proc.stdout
            if quiet:
                assert proc.stderr == ""
            else:  # stderr is a pipe: progress as lines, not a bar's carriage-return updates
                assert "\r" not in proc.stderr and "it/s" not in proc.stderr
                lines = proc.stderr.strip().splitlines()
                assert lines[0].startswith(f"{name} (scripted): 3 question(s) to run"), lines
                assert lines[-1].startswith(f"{name} (scripted): 3/3 questions ("), lines
                assert "calls " in lines[-1] and "tokens " in lines[-1]
            if name == "aggregate-oracle-score":  # an oracle run is labelled as one where its accuracy shows
                assert "aggregate-oracle-score (oracle)" in proc.stdout
                assert "oracle: the pipeline uses the gold answer" in proc.stdout
            else:
                assert "(oracle)" not in proc.stdout and "oracle:" not in proc.stdout
            assert "latency s (sum)" in proc.stdout
            if name == "reflect-then-aggregate":
                assert all(role in proc.stdout for role in ("critic", "reviser", "judge"))
    runs = _ttclab("runs", "--store", str(store), cwd=tmp_path)
    assert runs.returncode == 0
    assert "reflect-then-aggregate (scripted)" in runs.stdout and "aggregate-oracle-score (scripted)" in runs.stdout
    # a pipeline's sample is its final answer; --question also lists the calls that led to it, in order
    [rta] = [r for r in list_runs(store) if r.meta["pipeline"]["name"] == "reflect-then-aggregate"]
    shown = _ttclab("show", rta.run_id, "--store", str(store), "--question", "0", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    calls = shown.stdout.split("\ncalls\n", 1)[1].splitlines()
    assert calls[0].split()[:2] == ["step", "role"]
    roles = [line.split()[1] for line in calls[2:] if line and not line.startswith("note:")]
    n_calls = sum(1 for c in read_table(rta.path, "calls", ["question_index"])["question_index"].to_pylist() if c == 0)
    assert len(roles) == n_calls and roles[0] == "generate" and roles[-1] == "judge"
    assert {"critic", "reviser"} <= set(roles)
    full = _ttclab("show", rta.run_id, "--store", str(store), "--question", "0", "--full", cwd=tmp_path)
    assert full.returncode == 0 and full.stdout.count("\n--- call ") == n_calls and "--- call 0: step solve" in full.stdout
    as_json = _ttclab("show", rta.run_id, "--store", str(store), "--question", "0", "--format", "json", cwd=tmp_path)
    assert [r["sample"] for r in json.loads(as_json.stdout)] == [0]  # csv / json: the samples, as for any run
    ev = _ttclab("evaluate", "--store", str(store), "--prices", "local", cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    assert "aggregate-oracle-score (oracle)" in ev.stdout
    rep = _ttclab("report", "--store", str(store), "--out", str(tmp_path / "rep"), cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "reflect-then-aggregate" in html
    # the frontier caption names a pipeline point by its label (not 'reflect-then-aggregate (scripted)
    # reflect-then-aggregate@1', k = 1 of a pipeline meaning nothing)
    assert "set by the circled points (reflect-then-aggregate (scripted))" in html


def test_report_names_a_pipeline_point_by_its_label() -> None:
    from ttclab.report.plots import is_pipeline_point, point_label

    assert point_label("aggregate-vote (smollm2-135m)", "aggregate-vote", 1) == "aggregate-vote (smollm2-135m)"
    assert point_label("reflect-oracle (m)", "reflect-oracle (oracle)", 1) == "reflect-oracle (m) (oracle)"
    assert point_label("smollm2-135m", "majority", 4) == "majority@4 (smollm2-135m)"
    assert point_label("smollm2-135m", "majority", 4, many=False) == "majority@4"
    assert point_label("smollm2-135m", "majority") == "majority (smollm2-135m)"
    assert not is_pipeline_point("smollm2-135m", "majority") and not is_pipeline_point("vote (m)", "aggregate-vote")


def test_pipeline_ledger_and_optimizer_exclude_oracles(scripted: ScriptedServer, tmp_path: Path) -> None:
    from ttclab.online.runner import run_pipeline

    store = tmp_path / "store"
    for name in ("aggregate-vote", "aggregate-pick", "aggregate-oracle-score"):
        data = {**load_yaml(name), "model": scripted_model(scripted.base_url)}
        run_pipeline(write_pipeline(tmp_path, data, f"{name}.yaml"), limit=4, store=store, progress=False)
    ev = evaluate_runs(store=store, n_bootstrap=0)
    rows = {r["strategy"]: r for r in ev.rows()}
    assert set(rows) == {"aggregate-vote", "aggregate-pick", "aggregate-oracle-score (oracle)"}
    for run in list_runs(store):
        out = pipeline_outcome(run)
        [led] = pipeline_ledgers(run)
        calls = [c for c in read_table(run.path, "calls").to_pylist() if c["error"] is None]
        assert led.k.tolist() == [1]
        np.testing.assert_allclose(led.accuracy[:, 0], out.correct)
        assert led.costs["total_tokens"].sum() == sum(c["prompt_tokens"] + c["completion_tokens"] for c in calls)
        assert led.costs["samples_used"].sum() == len(calls)
        assert np.isfinite(led.costs["latency_sequential_s"]).all()
        lo, hi = out.accuracy_ci()
        assert 0 <= lo <= out.accuracy <= hi <= 1
    opt = optimize(ev, unit="tokens")
    assert all("oracle" not in r["strategy"] for r in opt.best)
    # a pipeline choice, its ties and its runner-up are named by the run's label alone
    named = [t for r in opt.choices for t in (r["choice"], *str(r["ties"] or "").split(", "), r["runner_up"]) if t]
    assert named and all(t in ("aggregate-vote (scripted)", "aggregate-pick (scripted)") for t in named), named


def test_continuation_format_on_a_server_model(scripted: ScriptedServer, tmp_path: Path) -> None:
    """beam search continues partial answers: a server model needs its chat template, in the file or the CLI."""
    model = json.dumps(scripted_model(scripted.base_url))
    pipeline = write_pipeline(tmp_path, shrink(load_yaml("beam-search")), "beam.yaml")
    common = ["run", str(pipeline), "--model", model, "--limit", "1", "--store", str(tmp_path / "s"), "--no-progress"]
    bad = _ttclab(*common, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr
    assert "continuation_format: chatml" in bad.stderr and "--continuation-format chatml" in bad.stderr
    ok = _ttclab(*common, "--continuation-format", "chatml", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    [run] = list_runs(tmp_path / "s")
    prompts = read_table(run.path, "calls", ["prompt"])["prompt"].to_pylist()
    assert any(p.startswith("<|im_start|>") for p in prompts)  # steps continued in the chatml format


def test_truncated_final_answers_are_counted(scripted: ScriptedServer, tmp_path: Path) -> None:
    """A final answer cut off by max_tokens is 'length' in results and samples, and `runs` counts it."""
    from ttclab.online.results import pipeline_summary
    from ttclab.online.runner import run_pipeline
    from ttclab.store.summary import run_summary

    store = tmp_path / "store"
    for name, max_tokens in (("short", 3), ("long", 200)):
        data = {**load_yaml("aggregate-vote"), "model": scripted_model(scripted.base_url), "name": name,
                "sampling": {**load_yaml("aggregate-vote").get("sampling", {}), "max_tokens": max_tokens}}
        run_pipeline(write_pipeline(tmp_path, data, f"{name}.yaml"), limit=3, store=store, progress=False)
    by_name = {run.meta["pipeline"]["name"]: run for run in list_runs(store)}
    short, long_ = by_name["short"], by_name["long"]
    reasons = read_table(short.path, "results", ["finish_reason"])["finish_reason"].to_pylist()
    assert reasons == ["length"] * 3
    assert read_table(long_.path, "results", ["finish_reason"])["finish_reason"].to_pylist() == ["stop"] * 3
    assert pipeline_summary(short)["truncated_pct"] == 100.0 and pipeline_summary(long_)["truncated_pct"] == 0.0
    assert run_summary(short)["truncated"] == 3  # the samples/ rows say so too (evaluate --truncated)
    proc = _ttclab("runs", "--store", str(store), "--format", "json", cwd=tmp_path)
    rows = {r["run"].split("-")[0]: r for r in json.loads(proc.stdout)}
    assert rows["short"]["truncated %"] == 100.0 and rows["long"]["truncated %"] == 0.0


def test_a_pipeline_that_stops_on_an_error_says_so_in_run_json(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on: the first call is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = tmp_path / "store"
    model = json.dumps(scripted_model(f"http://127.0.0.1:{port}/v1"))
    proc = _ttclab("run", str(PIPELINES / "reflect-none.yaml"), "--model", model, "--limit", "1", "--store", str(store),
                   "--no-progress", cwd=tmp_path)
    assert proc.returncode != 0 and "connection refused" in proc.stderr and "Traceback" not in proc.stderr
    (run,) = list_runs(store)
    meta = json.loads((run.path / "run.json").read_text())
    assert meta["status"] == "failed" and "connection refused" in meta["error"] and meta["finished_at"]
    listed = _ttclab("runs", "--store", str(store), cwd=tmp_path)
    assert "empty (failed)" in listed.stdout and "running" not in listed.stdout
    assert f"{run.run_id} has no samples: run its pipeline again (ttclab run)" in listed.stdout + listed.stderr


@pytest.mark.slow
def test_progress_lines_while_a_long_question_runs(tmp_path: Path) -> None:
    """Without a bar, a question of many calls on a slow model still logs a line every few seconds as its
    calls finish (before: nothing until the question ended, minutes on the embedded model)."""
    from ttclab.online.runner import run_pipeline
    from ttclab.sampling import LOG_EVERY_S

    lines: list[str] = []
    # 1 question, 5 rounds of calls in a row (solve, then critique + revise twice), ~1.6 s each: ~8 s > LOG_EVERY_S
    with ScriptedServer(delay_s=1.6) as srv:
        data = {**load_yaml("reflect-self"), "model": scripted_model(srv.base_url)}
        r = run_pipeline(write_pipeline(tmp_path, data), limit=1, store=tmp_path / "s", progress=False, log=lines.append)
    assert r.wall_s > LOG_EVERY_S + 1
    assert lines[0].startswith("reflect-self (scripted): 1 question(s) to run") and lines[-1].startswith(
        "reflect-self (scripted): 1/1 questions (")
    during = [line for line in lines[1:-1] if line.startswith("reflect-self (scripted): 0/1 questions (0/0 correct), calls ")]
    assert during and len(lines) - 2 == len(during), lines  # between the first and the last: only call lines
    calls = [int(line.split("calls ")[1].split()[0]) for line in during]
    assert calls == sorted(calls) and 0 < calls[0] < r.stats.calls
