"""Runner overhead: tokens/s of `ttclab sample` vs calling the engine directly, same prompts/settings.

1. Embedded: ``ttclab.experiment.sample`` (llamacpp backend) vs a plain loop over
   ``llama_cpp.Llama.create_chat_completion`` with the same prompts, sampling settings and seeds.
2. OpenAI-compatible: ``sample`` with the ``openai`` backend vs direct ``httpx`` requests at the same
   concurrency, both against llama-cpp-python's server on 127.0.0.1.

Each side is measured twice, interleaved, and the best of the two is kept (the machine is noisy).
The embedded sides each run in a fresh process (as `ttclab sample` does): llama.cpp keeps an OpenMP
thread team per calling thread, so two engines driven from different threads of one process slow
each other down, which would measure the bench, not the runner.
Throughput = completion tokens / wall time of the generation phase (model loading excluded on both
sides). Target: ratio >= 0.9 for both.

    .venv/bin/python bench/sampling.py [--questions 12] [--samples 4] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ttclab.backends.models import resolve_model_path
from ttclab.config import SampleConfig
from ttclab.experiment import sample
from ttclab.sampling import derive_seed
from ttclab.tasks.config import build_prompt_template, load_task


def make_config(args: argparse.Namespace, model: dict) -> SampleConfig:
    return SampleConfig.model_validate({
        "models": [model],
        "task": {"source": "gym", "name": "syllogism", "size": args.questions, "seed": 0},
        "prompt": {"style": "chat"},
        "samples": args.samples,
        "sampling": {"temperature": 0.7, "top_p": 1.0, "max_tokens": args.max_tokens, "seed": 0},
        "flush_seconds": 2.0,
    })


def prompts(cfg: SampleConfig) -> list[tuple[str, list[dict]]]:
    task = load_task(cfg.task)
    template = build_prompt_template(cfg.prompt, cfg.task, chat=True)
    return [(q.id, list(template.render(q))) for q in task.questions()]


def ttclab_tokens_per_s(cfg: SampleConfig) -> float:
    with tempfile.TemporaryDirectory() as store:
        result = sample(cfg, progress=False, store=store)[0]
    return result.stats.tokens_per_s


def direct_llama_tokens_per_s(cfg: SampleConfig, threads: int) -> float:
    from llama_cpp import Llama

    llm = Llama(str(resolve_model_path("smollm2-135m")), n_ctx=2048, n_threads=threads, verbose=False)
    p = cfg.sampling
    tokens, start = 0, time.perf_counter()
    for qid, messages in prompts(cfg):
        for s in range(cfg.samples):
            r = llm.create_chat_completion(
                messages=messages, max_tokens=p.max_tokens, temperature=p.temperature, top_p=p.top_p, top_k=0,
                min_p=0.0, seed=derive_seed(p.seed, qid, s), stop=[],
            )
            tokens += r["usage"]["completion_tokens"]
    rate = tokens / (time.perf_counter() - start)
    llm.close()  # free the model and its threads before the other side is measured
    del llm
    gc.collect()
    return rate


async def _direct_http(cfg: SampleConfig, base_url: str, concurrency: int) -> float:
    p = cfg.sampling
    jobs = [(qid, m, s) for qid, m in prompts(cfg) for s in range(cfg.samples)]
    sem = asyncio.Semaphore(concurrency)
    tokens = 0
    async with httpx.AsyncClient(timeout=120) as client:
        async def one(qid: str, messages: list, s: int) -> None:
            nonlocal tokens
            async with sem:
                r = await client.post(f"{base_url}/chat/completions", json={
                    "model": "smollm2-135m", "messages": messages, "max_tokens": p.max_tokens,
                    "temperature": p.temperature, "top_p": p.top_p, "seed": derive_seed(p.seed, qid, s),
                })
                r.raise_for_status()
                tokens += r.json()["usage"]["completion_tokens"]

        start = time.perf_counter()
        await asyncio.gather(*(one(*j) for j in jobs))
        return tokens / (time.perf_counter() - start)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(resolve_model_path("smollm2-135m")),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", str(threads),
         "--model_alias", "smollm2-135m"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("llama_cpp.server did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=12)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--skip-openai", action="store_true")
    ap.add_argument("--side", choices=["direct", "ttclab"], help=argparse.SUPPRESS)  # one embedded measurement
    args = ap.parse_args()

    cfg = make_config(args, {"backend": "llamacpp", "name": "smollm2-135m",
                             "options": {"n_threads": args.threads, "n_ctx": 2048}})
    if args.side:
        rate = direct_llama_tokens_per_s(cfg, args.threads) if args.side == "direct" else ttclab_tokens_per_s(cfg)
        print(rate)
        return

    def measure(side: str) -> float:
        out = subprocess.run([sys.executable, __file__, "--side", side, "--questions", str(args.questions),
                              "--samples", str(args.samples), "--max-tokens", str(args.max_tokens),
                              "--threads", str(args.threads)], capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])

    direct, ours = [], []
    for _ in range(2):
        direct.append(measure("direct"))
        ours.append(measure("ttclab"))
    print(f"embedded llama.cpp   direct {max(direct):7.1f} tok/s   ttclab sample {max(ours):7.1f} tok/s   "
          f"ratio {max(ours) / max(direct):.3f}  (target >= 0.9; runs: direct {direct}, ttclab {ours})")

    if args.skip_openai:
        return
    proc, base = start_server(args.threads)
    try:
        ocfg = make_config(args, {"backend": "openai", "name": "smollm2-135m",
                                  "options": {"base_urls": [base], "max_concurrency": args.concurrency}})
        ocfg = ocfg.model_copy(update={"concurrency": args.concurrency, "samples_per_request": 1})
        direct, ours = [], []
        for _ in range(2):
            direct.append(asyncio.run(_direct_http(ocfg, base, args.concurrency)))
            ours.append(ttclab_tokens_per_s(ocfg))
        print(f"openai backend       direct {max(direct):7.1f} tok/s   ttclab sample {max(ours):7.1f} tok/s   "
              f"ratio {max(ours) / max(direct):.3f}  (target >= 0.9; concurrency {args.concurrency})")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
