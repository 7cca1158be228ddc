"""Pipelines through the OpenAI backend against llama.cpp's own OpenAI-compatible server (a real
model behind real HTTP): reflect-then-aggregate (chat API) and beam search (completions API)."""

from __future__ import annotations

from pathlib import Path

import pytest
from online_support import load_yaml, shrink, write_pipeline
from pipeline_checks import check_run, content, roles

from ttclab.online.runner import run_pipeline


def _model(url: str) -> dict:
    return {"backend": "openai", "name": "smollm2-135m", "options": {"base_urls": [url], "max_concurrency": 4}}


@pytest.mark.slow
def test_reflect_then_aggregate_over_http(llama_server: str, tmp_path: Path) -> None:
    data = {**shrink(load_yaml("reflect-then-aggregate")), "model": _model(llama_server)}
    path = write_pipeline(tmp_path, data)
    r = run_pipeline(path, limit=2, store=tmp_path / "s", progress=False)
    assert r.failed == 0 and r.questions == 2
    t = check_run(r.run)
    assert dict(roles(t)) == {"generate": 4, "critic": 4, "reviser": 4, "judge": 2}
    assert all(c["prompt"].startswith("[") for c in t["calls"])  # chat messages
    again = run_pipeline(path, limit=2, store=tmp_path / "s2", progress=False)
    assert content(check_run(again.run))["results"] == content(t)["results"]  # seeded: the same answers


@pytest.mark.slow
def test_beam_search_over_http_uses_the_completions_api(llama_server: str, tmp_path: Path) -> None:
    data = {**shrink(load_yaml("beam-search"), max_tokens=12), "model": _model(llama_server),
            "continuation_format": "chatml"}
    r = run_pipeline(write_pipeline(tmp_path, data), limit=1, store=tmp_path / "s", progress=False)
    assert r.failed == 0
    t = check_run(r.run)
    steps = [c for c in t["calls"] if c["role"] == "step"]
    assert steps and all(c["prompt"].startswith("<|im_start|>") for c in steps)  # a completion string
    assert roles(t)["scorer"] == len(steps)
    # each step continues its parent's text
    cands = {c["candidate_id"]: c for c in t["candidates"]}
    for c in cands.values():
        if c["kind"] == "step":
            parent = cands[c["parent_ids"][0]]
            assert c["text"].startswith(parent["text"])
    judged = {j["candidate_ids"][0] for j in t["judgments"] if j["method"] == "self_eval"}
    assert judged == {c["candidate_id"] for c in cands.values() if c["kind"] == "step"}  # every step scored
    final = cands[t["results"][0]["candidate_id"]]
    assert final["kind"] == "step" and final["step_id"] == "search"
