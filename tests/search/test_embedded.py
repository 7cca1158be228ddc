"""Real embedded-model data: probe collection with SmolLM2 (prefix KV reused), then the full
controller search on it, and a graph search step on the embedded engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_probes_are_stored_versioned_and_resume(probed_run):
    from ttclab.experiment import sample
    from ttclab.probes import PROBE_VERSION, read_probes

    tmp, path, r = probed_run
    t = read_probes(r.run.path)
    assert t.num_rows > 0 and set(t["probe_version"].to_pylist()) == {PROBE_VERSION}
    rows = t.to_pylist()
    s = {(x["question_index"], x["sample_index"]): x for x in r.run.samples().to_pylist()}
    for p in rows:
        assert p["prefix_tokens"] == 12 * p["boundary"] < p["trace_tokens"]
        assert len(p["token_ids"]) == len(p["token_logprobs"]) <= 4
        assert all(lp <= 0 for lp in p["token_logprobs"]) and p["cue_tokens"] > 0
        # the trace length is the completion re-tokenized: within a token or two of the sampled count
        assert abs(p["trace_tokens"] - s[(p["question_index"], p["sample_index"])]["completion_tokens"]) <= 2
    n_files = len(list((r.run.path / "probes").glob("part-*.parquet")))
    sample(path, progress=False, store=tmp / "store", probe={"every": 12, "max_tokens": 4})
    assert len(list((r.run.path / "probes").glob("part-*.parquet"))) == n_files  # nothing probed twice


def test_probe_equals_a_fresh_forced_answer(probed_run):
    """A probe (KV of the prefix reused) gives the tokens greedy decoding of prefix + cue gives from scratch."""
    import asyncio

    from ttclab.backends.base import Request, SamplingParams
    from ttclab.backends.llamacpp import LlamaCppBackend
    from ttclab.probes import read_probes

    _, _, r = probed_run
    p = read_probes(r.run.path).to_pylist()[0]
    sample_row = next(x for x in r.run.samples().to_pylist()
                      if (x["question_index"], x["sample_index"]) == (p["question_index"], p["sample_index"]))
    prompt = r.run.questions().to_pydict()["prompt"][p["question_index"]]
    import json

    messages = tuple(json.loads(prompt))
    b = LlamaCppBackend("smollm2-135m", n_ctx=1024)

    async def fresh():
        llama = b._load()
        from ttclab.backends.llama_probe import prompt_tokens_of

        toks = prompt_tokens_of(llama, messages)
        trace = llama.tokenize(sample_row["text"].encode(), add_bos=False, special=False)[: p["prefix_tokens"]]
        text = llama.detokenize(toks + trace).decode("utf-8", errors="replace") + p["cue"]
        [c] = await b.generate(Request(text), SamplingParams(max_tokens=4, temperature=0.0))
        await b.aclose()
        return c.text

    text = asyncio.run(fresh())
    assert text.split("\n")[0].strip() == p["text"] or text.strip().startswith(p["text"])


def test_controller_search_on_smollm2_probes(probed_run):
    from ttclab.search.controller_search import ControllerSearchConfig, search_controllers
    from ttclab.search.replay import from_run

    tmp, _, r = probed_run
    data = from_run(r.run)
    assert data.present.sum() == 24 and (data.probe >= 0).any()
    assert np.array_equal(data.length, np.array([[x for x in row] for row in data.length]))
    cfg = ControllerSearchConfig.model_validate({
        "name": "smol", "data": {"run": str(r.run.path)}, "split": {"search": 3, "heldout": 3}, "orders": 4,
        "method": {"name": "random", "evaluations": 6, "batch": 3}, "out": str(tmp / "ctl")})
    res = search_controllers(cfg, store=tmp / "store", progress=False)
    assert len(res.trials) == 6 and res.front and res.headline
    assert (Path(res.out) / "summary.json").exists()


def test_probing_without_a_terminal_logs_lines(tmp_path: Path):
    """`ttclab sample --probe-every` and the controller search's collect step say what they do (no silent minutes)."""
    import yaml

    from ttclab.backends.models import resolve_model_path
    from ttclab.errors import BackendError
    from ttclab.experiment import sample

    try:
        resolve_model_path("smollm2-135m")
    except BackendError as exc:
        pytest.skip(str(exc))
    cfg = {"name": "probelog", "models": [{"backend": "llamacpp", "name": "smollm2-135m", "options": {"n_ctx": 512}}],
           "task": {"source": "gym", "name": "basic_arithmetic", "size": 1, "seed": 1}, "samples": 2,
           "sampling": {"temperature": 0.8, "max_tokens": 30, "seed": 0}}
    path = tmp_path / "sample.yaml"
    path.write_text(yaml.safe_dump(cfg))
    lines: list[str] = []
    [r] = sample(path, progress=False, store=tmp_path / "store", probe={"every": 12, "max_tokens": 2}, log=lines.append)
    probing = [ln for ln in lines if ln.startswith(f"{r.run.run_id}: prob")]
    assert probing[0] == f"{r.run.run_id}: probing 2 trace(s) of 1 question(s) every 12 tokens"
    assert probing[-1].startswith(f"{r.run.run_id}: probes every 12: traces 2/2, ")
