"""``ttclab serve``: pass-through overhead and strategy fan-out, as ratios measured in one run.

The upstream is tests/serve/upstream.py (a real OpenAI-compatible Starlette/uvicorn server, its own
process); the gateway is the real ``ttclab serve`` command (its own process); the load comes from
this process (``--clients`` concurrent requests).

1. ``passthrough_ratio``: an upstream that answers at once; requests/s through ``ttclab serve`` (no
   strategy) / requests/s straight to the upstream, 32 concurrent clients of the official ``openai``
   client (``AsyncOpenAI``), ``--requests`` requests per side, each side measured ``--rounds`` times,
   interleaved, best kept. Goal >= 0.8. Also printed: ``passthrough_ratio_light_client``, the same
   with an aiohttp load generator that costs a tenth of the CPU per request -- the gateway's own
   capacity against an upstream that does no work (client, gateway and upstream share 2 cores; the
   CPU cost per request of each is printed).
2. ``fanout_latency_ratio``: an upstream with a fixed 100 ms latency; the latency of one
   ``majority@8`` request through the gateway / the latency of one request straight to the upstream
   (medians of ``--trials`` sequential requests). The upstream is declared without ``n`` support
   (``supports_n: false``), so the 8 samples are 8 parallel HTTP calls. Goal <= 1.5. Also printed:
   the same with one request for ``n = 8`` (``fanout_latency_ratio_with_n``).
3. ``record_flush_vs_rebuild``: ``--record``'s periodic flush (in this process, on real Parquet
   files) with 100 new requests since the last one, after ``--recorded`` requests: the median flush
   / rebuilding questions.parquet and samples/ from every recorded request (what each flush did
   before flushes became incremental, and what the first flush after a restart still does). Also
   printed: ``record_flush_growth``, the median flush after ``--recorded`` requests / after 1,000.

    .venv/bin/python bench/serve.py [--clients 32] [--requests 2000] [--trials 15] [--recorded 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
UPSTREAM = REPO / "tests" / "serve" / "upstream.py"
BODY = {"model": "up-model", "messages": [{"role": "user", "content": "What is 2 + 2?"}], "max_tokens": 16}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: {url} exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"bench: {url} did not start")


def start_upstream(delay_s: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(UPSTREAM), str(port), str(delay_s)], stderr=subprocess.PIPE, text=True)
    wait_up(f"http://127.0.0.1:{port}/v1/models", proc)
    return proc, f"http://127.0.0.1:{port}/v1"


def start_gateway(upstream: str, folder: Path, **model_options: Any) -> tuple[subprocess.Popen, str]:
    port = free_port()
    config = folder / f"serve-{port}.yaml"
    config.write_text(yaml.safe_dump({
        "models": [{"backend": "openai", "name": "up-model",
                    "options": {"base_url": upstream, "max_concurrency": 64, "max_retries": 0, **model_options}}],
        "aliases": ["majority@8"], "limits": {"max_concurrency": 256, "max_queue": 1024, "max_k": 8},
    }))
    proc = subprocess.Popen([sys.executable, "-m", "ttclab", "serve", str(config), "--port", str(port),
                             "--log-level", "warning"], stderr=subprocess.PIPE, text=True)
    wait_up(f"http://127.0.0.1:{port}/health", proc)
    return proc, f"http://127.0.0.1:{port}/v1"


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) of a process (this one when None), from /proc or getrusage."""
    if pid is None:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


async def throughput(base: str, clients: int, requests: int, kind: str = "openai") -> float:
    """Requests per second with ``clients`` concurrent requests (every answer checked).

    ``kind``: ``openai`` -- the official client (``AsyncOpenAI``), what the gateway's users run;
    ``aiohttp`` -- a light load generator (a tenth of the CPU per request), which shows the
    gateway's own capacity against an upstream that does nothing.
    """
    if kind == "openai":
        import openai

        client = openai.AsyncOpenAI(base_url=base, api_key="none", max_retries=0, timeout=60)

        async def post() -> None:
            r = await client.chat.completions.create(**BODY)
            assert r.choices[0].message.content

        close: Any = client.close
    else:
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients))

        async def post() -> None:
            async with session.post(base + "/chat/completions", json=BODY) as r:
                assert r.status == 200 and (await r.json())["choices"][0]["message"]["content"]

        close = session.close
    try:
        await asyncio.gather(*(post() for _ in range(clients)))  # warm the connections
        left = requests

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await post()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return requests / (time.perf_counter() - t0)
    finally:
        await close()


async def latency(base: str, body: dict[str, Any], trials: int) -> float:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        (await client.post("/chat/completions", json=body)).raise_for_status()
        times = []
        for _ in range(trials):
            t0 = time.perf_counter()
            r = await client.post("/chat/completions", json=body)
            r.raise_for_status()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--trials", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved measurements per side (best kept)")
    ap.add_argument("--recorded", type=int, default=50_000, help="requests recorded before the flush is timed")
    args = ap.parse_args()
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        try:
            up, up_url = start_upstream(0.0)
            gw, gw_url = start_gateway(up_url, folder)
            procs += [up, gw]
            for kind, label in (("openai", "passthrough_ratio"), ("aiohttp", "passthrough_ratio_light_client")):
                direct, through = [], []
                cpu: dict[str, list[float]] = {}
                for _ in range(args.rounds):  # interleaved, best kept
                    for side, url, out in (("direct", up_url, direct), ("through", gw_url, through)):
                        before = (cpu_s(), cpu_s(gw.pid), cpu_s(up.pid))
                        out.append(asyncio.run(throughput(url, args.clients, args.requests, kind)))
                        after = (cpu_s(), cpu_s(gw.pid), cpu_s(up.pid))
                        cpu[side] = [1000 * (a - b) / args.requests for a, b in zip(after, before)]
                print(f"passthrough ({kind} client): direct {max(direct):.0f} req/s, through ttclab serve "
                      f"{max(through):.0f} req/s ({args.clients} clients; runs {', '.join(f'{x:.0f}' for x in direct)} / "
                      f"{', '.join(f'{x:.0f}' for x in through)})")
                for side, (client_ms, gw_ms, up_ms) in cpu.items():
                    print(f"  CPU ms per request ({side}, last run): client {client_ms:.2f}, gateway {gw_ms:.2f}, "
                          f"upstream {up_ms:.2f}")
                print(f"{label}: {max(through) / max(direct):.3f}")
                d, t = sum(cpu["direct"]), sum(cpu["through"])
                print(f"  CPU per request, direct / through (the ratio when every core is busy): {d / t:.3f}")
            for p in (gw, up):
                stop(p)
            procs.clear()

            slow, slow_url = start_upstream(0.1)
            singles, singles_url = start_gateway(slow_url, folder, supports_n=False)
            with_n, with_n_url = start_gateway(slow_url, folder, supports_n=True)
            procs += [slow, singles, with_n]
            one = asyncio.run(latency(slow_url, BODY, args.trials))
            fan = asyncio.run(latency(singles_url, {**BODY, "model": "up-model:majority@8"}, args.trials))
            fan_n = asyncio.run(latency(with_n_url, {**BODY, "model": "up-model:majority@8"}, args.trials))
            print(f"fanout: one upstream call {one * 1000:.1f} ms; majority@8 as 8 parallel calls {fan * 1000:.1f} ms; "
                  f"as one call with n=8 {fan_n * 1000:.1f} ms (medians of {args.trials})")
            print(f"fanout_latency_ratio: {fan / one:.3f}")
            print(f"fanout_latency_ratio_with_n: {fan_n / one:.3f}")
            record_flush(folder / "record", args.recorded)
        finally:
            for p in procs:
                stop(p)


def record_flush(root: Path, recorded: int, new: int = 100, trials: int = 10) -> None:
    from datetime import UTC, datetime

    from ttclab.online.runner import write_samples
    from ttclab.serve.record import RecordedRun
    from ttclab.store.schema import SCHEMA_VERSION
    from ttclab.tasks.base import Question

    meta = {"schema_version": SCHEMA_VERSION, "run_id": "serve-bench", "kind": "pipeline", "name": "serve bench",
            "model": {"label": "m (majority@8)", "name": "m", "backend": "openai", "llm": "m"}, "samples": 1}
    run = RecordedRun(root, "serve-bench", meta)

    def add(k: int) -> None:
        for _ in range(k):
            i = len(run.questions)
            index = run.new_question({"question_id": f"r{i}-0", "question": f"What is {i} + 17? Think step by step.",
                                      "prompt": "[]", "gold": str(i + 17), "difficulty": None, "metadata": "{}"})
            run.add_result({"run_id": run.run_id, "question_index": index, "question_id": f"r{i}-0",
                            "candidate_id": f"q{index}-c3", "text": f"{i} + 17 = {i + 17}. The answer is {i + 17}.",
                            "answer": str(i + 17), "verdict": "correct", "correct": True, "n_calls": 8,
                            "prompt_tokens": 240, "completion_tokens": 400, "latency_s": 1.2, "wall_s": None,
                            "notes": None, "error": None, "created_at": datetime.now(UTC)})

    def flushes() -> float:
        times = []
        for _ in range(trials):
            add(new)
            t0 = time.perf_counter()
            run.flush()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    add(1000 - new * trials)
    run.flush()  # the first flush rebuilds
    small = flushes()
    add(recorded - len(run.questions) - new * trials)
    run.flush()
    large = flushes()
    t0 = time.perf_counter()
    write_samples(run.dir, run.run_id, meta["model"]["label"],
                  [Question(q["question_id"], q["question"], q["gold"]) for q in run.questions])
    run._question_tables, run._converted = [], 0
    run._write_questions()
    rebuild = time.perf_counter() - t0
    run.close()
    print(f"record flush ({new} new requests): {small * 1000:.1f} ms after 1,000 recorded, {large * 1000:.1f} ms after "
          f"{recorded:,}; rebuilding everything after {recorded:,}: {rebuild * 1000:.0f} ms (medians of {trials})")
    print(f"record_flush_vs_rebuild: {large / rebuild:.3f}")
    print(f"record_flush_growth: {large / small:.2f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
