"""Sampling throughput: ttclab's embedded engine and runner vs calling llama.cpp directly, same prompts.

Lines printed (ratios of tokens/s measured in this run; each side in a fresh process, run twice,
interleaved, best of the two kept -- the machine is shared and noisy):

- ``batched_vs_sequential: X`` -- `ttclab sample` with the embedded backend and 8 samples per question
  (decoded as one batch) over direct llama-cpp-python ``create_chat_completion`` one sample at a time,
  12 syllogism questions, SmolLM2, max_tokens 64, temperature 0.7, same prompts, seeds and threads.
  ``batched_vs_sequential_gemma3_270m: X`` is the same with Gemma 3 270M.
- ``embedded llama.cpp ... ratio`` -- runner overhead on the single-stream path: `ttclab sample` with
  ``samples_per_request: 1`` vs the same direct loop (target >= 0.9).
- ``embedded batched ... ratio`` -- runner overhead on the batched path: `ttclab sample` vs calling the
  backend's ``generate_sync`` per question with the same requests (target >= 0.9).
- ``profile`` -- where the batched engine's time goes; ``decode ceiling`` -- what one decode step costs
  per token with 8 sequences vs 1 on this CPU (the bound on what batching can give).
- ``openai backend ... ratio`` -- `ttclab sample` over HTTP vs direct ``httpx`` requests, both against
  llama-cpp-python's server on 127.0.0.1 (target >= 0.9).

Throughput = completion tokens / wall time of the generation phase (model loading excluded on both
sides). The completions are compared too: the batched engine must give the direct loop's texts.

    .venv/bin/python bench/sampling.py [--questions 12] [--samples 8] [--max-tokens 64] [--models smollm2-135m,gemma3-270m]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx

from ttclab.backends.models import resolve_model_path
from ttclab.config import SampleConfig
from ttclab.experiment import sample
from ttclab.sampling import derive_seed
from ttclab.tasks.config import build_prompt_template, load_task

SIDES = ("direct", "ttclab", "ttclab-seq", "engine")


def make_config(args: argparse.Namespace, model: dict, **extra: object) -> SampleConfig:
    return SampleConfig.model_validate({
        "models": [model],
        "task": {"source": "gym", "name": "syllogism", "size": args.questions, "seed": 0},
        "prompt": {"style": "chat"},
        "samples": args.samples,
        "sampling": {"temperature": 0.7, "top_p": 1.0, "max_tokens": args.max_tokens, "seed": 0},
        "flush_seconds": 2.0,
        **extra,
    })


def prompts(cfg: SampleConfig) -> list[tuple[str, list[dict]]]:
    task = load_task(cfg.task)
    template = build_prompt_template(cfg.prompt, cfg.task, chat=True)
    return [(q.id, list(template.render(q))) for q in task.questions()]


def digest(texts: list[str]) -> list[str]:
    """A short hash of every completion (in question, sample order), to compare the sides."""
    return [hashlib.sha256(t.encode()).hexdigest()[:10] for t in texts]


def side_ttclab(cfg: SampleConfig) -> dict:
    import pyarrow.compute as pc

    with tempfile.TemporaryDirectory() as store:
        result = sample(cfg, progress=False, store=store)[0]
        table = result.run.samples()
        order = pc.sort_indices(table, sort_keys=[("question_index", "ascending"), ("sample_index", "ascending")])
        texts = table.take(order)["text"].to_pylist()
    return {"rate": result.stats.tokens_per_s, "tokens": result.stats.completion_tokens, "digest": digest(texts)}


def side_direct(cfg: SampleConfig, model: str, threads: int) -> dict:
    from llama_cpp import Llama

    llm = Llama(str(resolve_model_path(model)), n_ctx=2048, n_threads=threads, verbose=False)
    p = cfg.sampling
    texts, tokens, start = [], 0, time.perf_counter()
    for qid, messages in prompts(cfg):
        for s in range(cfg.samples):
            r = llm.create_chat_completion(
                messages=messages, max_tokens=p.max_tokens, temperature=p.temperature, top_p=p.top_p, top_k=0,
                min_p=0.0, seed=derive_seed(p.seed, qid, s), stop=[],
            )
            tokens += r["usage"]["completion_tokens"]
            texts.append(r["choices"][0]["message"]["content"] or "")
    rate = tokens / (time.perf_counter() - start)
    llm.close()  # free the model and its threads
    del llm
    gc.collect()
    return {"rate": rate, "tokens": tokens, "digest": digest(texts)}


def side_engine(cfg: SampleConfig, model: str, threads: int) -> dict:
    """The engine called directly (no runner): every question's request queued at once; with a profile."""
    from ttclab.backends.base import Request
    from ttclab.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(model, n_ctx=2048, n_threads=threads)
    backend._load()
    decoder = backend._decoder
    p = cfg.sampling.with_(n=cfg.samples)
    work = prompts(cfg)
    decoder.stats.reset()
    start = time.perf_counter()
    boxes: list[list] = []
    jobs = []
    for qid, messages in work:
        box: list = []
        job = backend._prepare(Request(tuple(messages), seed=derive_seed(cfg.sampling.seed, qid, 0)), p)(
            box.append, lambda: False)
        decoder.submit(job)
        boxes.append(box)
        jobs.append(job)
    decoder.serve()
    outs = [backend._completions(job, box[0]) for job, box in zip(jobs, boxes)]
    wall = time.perf_counter() - start
    tokens = sum(c.completion_tokens for out in outs for c in out)
    texts = [c.text for out in outs for c in out]
    profile = decoder.stats.as_dict() | {"wall_s": wall}
    # Decode ceiling: one step of 1 vs 8 sequences (the same request shapes, no sampling overhead).
    ceiling = _decode_ceiling(decoder, work[0][1], backend)
    return {"rate": tokens / wall, "tokens": tokens, "digest": digest(texts), "profile": profile, "ceiling": ceiling}


def _decode_ceiling(decoder, messages: list[dict], backend) -> dict:
    from ttclab.backends.base import Request
    from ttclab.backends.llama_batch import SamplerSettings
    from ttclab.backends.llamacpp import render_prompt

    prompt, _ = render_prompt(backend._llama, Request(tuple(messages)), ())
    per_token = {}
    for n in (1, 8):
        decoder.stats.reset()
        decoder.generate(prompt, list(range(n)), SamplerSettings(temperature=0.0), max_tokens=48, stops=[], logprobs=False)
        st = decoder.stats
        per_token[n] = st.decode_s / max(1, st.decoded_tokens)
    return {"per_token_1": per_token[1], "per_token_8": per_token[8], "ceiling": per_token[1] / per_token[8]}


def measure(args: argparse.Namespace, side: str, model: str) -> dict:
    cmd = [sys.executable, __file__, "--side", side, "--models", model, "--questions", str(args.questions),
           "--samples", str(args.samples), "--max-tokens", str(args.max_tokens), "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench side {side} ({model}) failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  ({model} {side}: {result['rate']:.1f} tok/s, load average {os.getloadavg()[0]:.2f})", file=sys.stderr,
          flush=True)
    return result


def embedded(args: argparse.Namespace, model: str) -> None:
    runs: dict[str, list[dict]] = {s: [] for s in SIDES if model == "smollm2-135m" or s != "ttclab-seq"}
    for _ in range(2):
        for side in runs:
            runs[side].append(measure(args, side, model))
    best = {side: max(r, key=lambda x: x["rate"]) for side, r in runs.items()}
    rates = {side: [round(x["rate"], 1) for x in r] for side, r in runs.items()}
    ours = [x["digest"] for side, r in runs.items() if side != "direct" for x in r]
    same = all(d == ours[0] for d in ours)
    direct_same = sum(a == b for a, b in zip(runs["direct"][0]["digest"], ours[0]))
    if any(x["digest"] != runs["direct"][0]["digest"] for x in runs["direct"]):
        direct_same = -1  # the direct loop is not even reproducible
    d, t, e = best["direct"]["rate"], best["ttclab"]["rate"], best["engine"]["rate"]
    tag = "" if model == "smollm2-135m" else "_" + model.replace("-", "_")
    print(f"batched_vs_sequential{tag}: {t / d:.2f}")
    print(f"  {model}: ttclab sample, {args.samples} samples/request {t:7.1f} tok/s vs direct create_chat_completion "
          f"{d:7.1f} tok/s (goal >= 2.5; runs {rates})")
    print(f"  completions: every ttclab side and run identical: {'yes' if same else 'NO'}; equal to direct "
          f"create_chat_completion: {direct_same}/{len(ours[0])} (the rest differ where llama-cpp-python reused the "
          "previous question's KV prefix and evaluated the prompt in two pieces, which rounds differently)")
    if "ttclab-seq" in best:
        s = best["ttclab-seq"]["rate"]
        print(f"embedded llama.cpp   direct {d:7.1f} tok/s   ttclab sample (1 sample/request) {s:7.1f} tok/s   "
              f"ratio {s / d:.3f}  (target >= 0.9)")
    print(f"embedded batched     engine {e:7.1f} tok/s   ttclab sample {t:7.1f} tok/s   ratio {t / e:.3f}  "
          f"(runner overhead, target >= 0.9)")
    prof = best["engine"]["profile"]
    wall = prof["wall_s"]
    parts = {"prompt eval": prof["prompt_s"], "decode": prof["decode_s"], "sampling (C)": prof["sample_s"],
             "Python loop (detokenise, stops, batch)": prof["python_s"], "setup (contexts, samplers)": prof["setup_s"]}
    other = wall - sum(parts.values())
    text = ", ".join(f"{k} {100 * v / wall:.1f}%" for k, v in parts.items())
    print(f"  profile ({model}, engine): {text}, rest (prompt rendering, results) {100 * other / wall:.1f}%; "
          f"{prof['decode_steps']} decode steps of {prof['decoded_tokens'] / max(1, prof['decode_steps']):.1f} tokens")
    c = best["engine"]["ceiling"]
    print(f"  decode ceiling ({model}): a step costs {1000 * c['per_token_1']:.2f} ms/token with 1 sequence, "
          f"{1000 * c['per_token_8']:.2f} ms/token with 8: batching 8 can give at most {c['ceiling']:.2f}x")


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


def openai_side(args: argparse.Namespace) -> None:
    proc, base = start_server(args.threads)
    try:
        ocfg = make_config(args, {"backend": "openai", "name": "smollm2-135m",
                                  "options": {"base_urls": [base], "max_concurrency": args.concurrency}},
                           concurrency=args.concurrency, samples_per_request=1)
        direct, ours = [], []
        for _ in range(2):
            direct.append(asyncio.run(_direct_http(ocfg, base, args.concurrency)))
            ours.append(side_ttclab(ocfg)["rate"])
        print(f"openai backend       direct {max(direct):7.1f} tok/s   ttclab sample {max(ours):7.1f} tok/s   "
              f"ratio {max(ours) / max(direct):.3f}  (target >= 0.9; concurrency {args.concurrency})")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=12)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--models", default="smollm2-135m,gemma3-270m")
    ap.add_argument("--skip-openai", action="store_true")
    ap.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # one embedded measurement, JSON out
    args = ap.parse_args()

    models = [m for m in args.models.split(",") if m]
    if args.side:
        model = models[0]
        opts = {"n_threads": args.threads, "n_ctx": 2048}
        cfg = make_config(args, {"backend": "llamacpp", "name": model, "options": opts})
        if args.side == "direct":
            out = side_direct(cfg, model, args.threads)
        elif args.side == "engine":
            out = side_engine(cfg, model, args.threads)
        else:
            if args.side == "ttclab-seq":
                cfg = cfg.model_copy(update={"samples_per_request": 1})
            out = side_ttclab(cfg)
        print(json.dumps(out))
        return

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.questions} questions x "
          f"{args.samples} samples, max_tokens {args.max_tokens}, {args.threads} threads", flush=True)
    for model in models:
        embedded(args, model)
        sys.stdout.flush()
    if not args.skip_openai:
        openai_side(args)


if __name__ == "__main__":
    main()
