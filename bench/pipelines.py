"""Online pipelines: concurrency, per-call overhead and replay from the call cache.

Against the scripted OpenAI-compatible server (tests/online/scripted_server.py, served from a
separate process so it does not share this interpreter's GIL), with the pipeline
``configs/pipelines/reflect-then-aggregate.yaml`` (generate 8 -> (critique -> revise) x 2 -> pick).

1. ``concurrency_speedup``: the server answers every request after 100 ms; 32 questions at
   concurrency 8 vs 1 (the backend allows 64 HTTP requests in flight; see HTTP_IN_FLIGHT). Goal >= 5.
2. ``overhead_ratio``: the server answers at once; wall time per HTTP request of the pipeline
   (backend capped at 8 requests in flight; all questions at once, so the 8 slots never wait on a
   step's dependencies) vs bare ``httpx`` async
   requests of the same prompts at the same concurrency (each side twice, interleaved, best kept).
   Goal <= 1.2.
3. ``replay_speedup``: the 100 ms server, 32 questions at concurrency 8: the run's wall time vs
   re-running it with its results removed, every call replayed from the call cache (best of 5).
   Goal >= 50. Also printed against the concurrency-1 run.

Imports are warmed up first; every run uses a fresh store. Each ratio is measured in this run.

    .venv/bin/python bench/pipelines.py [--questions 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from ttclab.online.runner import run_pipeline
from ttclab.store.journal import read_table

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "configs" / "pipelines" / "reflect-then-aggregate.yaml"
#: HTTP requests in flight for the 100 ms runs: 8 questions x 8 candidates, so a critique or revise round of
#: 8 questions is one wave of requests (with 32, every such round took two 100 ms waves: speedup 4.7, not 7).
#: The backend speaks aiohttp on the wire, which keeps up with 64 keep-alive connections here.
HTTP_IN_FLIGHT = 64
TASK = {"source": "gym", "name": "basic_arithmetic", "size": 64, "seed": 0,
        "params": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2, "operators": ["+", "-"]}}


class Server:
    """The scripted server in a child process."""

    def __init__(self, delay: float) -> None:
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "online" / "scripted_server.py"),
                                      "--delay", str(delay)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def model(url: str, max_concurrency: int) -> dict[str, Any]:
    return {"backend": "openai", "name": "scripted", "options": {"base_urls": [url], "max_concurrency": max_concurrency}}


def timed_run(url: str, store: Path, questions: int, concurrency: int, max_concurrency: int) -> tuple[float, Any]:
    t0 = time.perf_counter()
    r = run_pipeline(PIPELINE, model=model(url, max_concurrency), task=TASK, limit=questions, store=store,
                     concurrency=concurrency, progress=False)
    return time.perf_counter() - t0, r


async def bare_http(url: str, bodies: list[tuple[str, dict[str, Any]]], concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        async def one(path: str, body: dict[str, Any]) -> None:
            async with gate:
                resp = await client.post(url + path, json=body)
                resp.json()

        t0 = time.perf_counter()
        await asyncio.gather(*(one(p, b) for p, b in bodies))
        return time.perf_counter() - t0


def request_bodies(run_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """The HTTP requests a run made (one per call group), rebuilt from its calls table."""
    seen: set[tuple[str, int]] = set()
    out = []
    for c in read_table(run_dir, "calls").to_pylist():
        params = json.loads(c["params"])
        prompt = c["prompt"]
        chat = prompt.startswith("[")
        body: dict[str, Any] = {"model": "scripted", "max_tokens": params["max_tokens"],
                                "temperature": params["temperature"], "top_p": params["top_p"], "seed": c["seed"]}
        key = (prompt, c["step_id"] == "solve")
        if c["role"] == "generate":  # one request with n for the 8 samples of a question
            if key in seen:
                continue
            seen.add(key)
            body["n"] = 8
        if chat:
            body["messages"] = json.loads(prompt)
        else:
            body["prompt"] = prompt
        out.append(("/chat/completions" if chat else "/completions", body))
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=32)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipelines-"))
    try:
        warm = Server(0.0)
        timed_run(warm.url, tmp / "warm", 1, 1, 8)  # imports, task generation
        # 2. overhead at the same concurrency (8 requests in flight); each side twice, interleaved, best kept
        pipe_times, bare_times = [], []
        for i in range(2):
            t_pipe, r = timed_run(warm.url, tmp / f"overhead{i}", args.questions, args.questions, 8)
            pipe_times.append(t_pipe)
            bodies = request_bodies(r.run.path)
            bare_times.append(asyncio.run(bare_http(warm.url, bodies, 8)))
        t_pipe, t_bare = min(pipe_times), min(bare_times)
        per_pipe, per_bare = t_pipe / len(bodies), t_bare / len(bodies)
        warm.close()

        slow = Server(0.1)
        t1, _ = timed_run(slow.url, tmp / "c1", args.questions, 1, HTTP_IN_FLIGHT)
        t8, r8 = timed_run(slow.url, tmp / "c8", args.questions, 8, HTTP_IN_FLIGHT)
        replays = []
        for _ in range(5):  # best of 5: the replay is short and the machine is shared
            for name in ("results", "candidates", "judgments"):
                shutil.rmtree(r8.run.path / name)
            t_replay, replay = timed_run(slow.url, tmp / "c8", args.questions, 8, HTTP_IN_FLIGHT)
            assert replay.stats.fresh == 0 and replay.stats.replayed == r8.stats.calls, "the replay sent requests"
            replays.append(t_replay)
        t_replay = min(replays)
        slow.close()
        print(f"questions: {args.questions}, calls per run: {r8.stats.calls}, HTTP requests: {len(bodies)}")
        print(f"concurrency 1: {t1:.2f} s, concurrency 8: {t8:.2f} s (server answers after 100 ms)")
        print(f"concurrency_speedup: {t1 / t8:.2f}")
        print(f"per request: pipeline {per_pipe * 1e3:.3f} ms, bare async HTTP {per_bare * 1e3:.3f} ms (8 in flight)")
        print(f"overhead_ratio: {per_pipe / per_bare:.3f}")
        print(f"run {t8:.3f} s (concurrency 8), {t1:.3f} s (concurrency 1); replay from the call cache "
              f"{t_replay:.3f} s (best of {', '.join(f'{x:.3f}' for x in replays)})")
        print(f"replay_speedup: {t8 / t_replay:.1f}")
        print(f"replay_speedup_vs_concurrency_1: {t1 / t_replay:.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
