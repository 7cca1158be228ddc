"""Predicted vs actual cost of graphs on a deterministic server with fixed-length answers, and
graphs with per-node models running through the online engine (ttclab run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from search_support import TASK

from ttclab.online.results import pipeline_outcome
from ttclab.online.runner import run_pipeline
from ttclab.search.cost import TokenStats, actual_cost, model_costing, predict_cost
from ttclab.search.graph import compile_graph, parse_graph, to_pipeline
from ttclab.tasks.config import load_task

WIDE = [{"id": "g1", "role": "generator", "model": "a"}, {"id": "g2", "role": "generator", "model": "b"},
        {"id": "g3", "role": "generator", "model": "a"}, {"id": "r", "role": "refiner", "model": "b", "inputs": ["g1"]},
        {"id": "f", "role": "fuser", "model": "a", "inputs": ["g2", "g3"]},
        {"id": "j", "role": "judge", "model": "b", "inputs": ["r", "f", "g1"]}]
DEEP = [{"id": "g1", "role": "generator", "model": "a"}, {"id": "g4", "role": "generator", "model": "b"},
        {"id": "r", "role": "refiner", "model": "b", "inputs": ["g4"]},
        {"id": "r2", "role": "refiner", "model": "b", "inputs": ["r"]},
        {"id": "f", "role": "fuser", "model": "a", "inputs": ["g1", "r2"]}]  # (model, role) pairs the wide run has


def _run(graph, store, name):
    pipe = compile_graph(graph, name=name, task=TASK, sampling={"max_tokens": 32})
    return run_pipeline(pipe, store=store, progress=False)


def test_predicted_cost_equals_actual_on_fixed_length_answers(pool, tmp_path: Path):
    questions = list(load_task(load_task_cfg()).questions())
    wide, deep = parse_graph({"models": pool, "nodes": WIDE}), parse_graph({"models": pool, "nodes": DEEP})
    costing = model_costing(wide.models, counters={"a": "whitespace", "b": "whitespace"}, max_tokens=32)
    # no stored calls yet: completion tokens are predicted as max_tokens (an upper bound, said in the notes)
    cold = predict_cost(wide, questions, costing, TokenStats())
    assert any("no stored calls" in n for n in cold.notes)
    r = _run(wide, tmp_path, "wide")
    act = actual_cost(r.run.path, wide, costing)
    assert act["calls"] == 6 and act["completion_tokens"] == 6 * 6
    assert cold["completion_tokens"] > act["completion_tokens"]
    # with the store's token statistics the prediction is exact, also for a graph never run before
    stats = TokenStats.from_store(tmp_path)
    for graph, name in ((wide, "wide"), (deep, "deep")):
        pred = predict_cost(graph, questions, costing, stats)
        r = _run(graph, tmp_path, name)
        act = actual_cost(r.run.path, graph, costing)
        for key in ("calls", "prompt_tokens", "completion_tokens", "total_tokens"):
            assert pred[key] == act[key], (name, key, pred[key], act[key])
        assert pred["latency_s"] > 0 and act["latency_s"] > 0


def load_task_cfg():
    from pydantic import TypeAdapter

    from ttclab.tasks.config import TaskConfig

    return TypeAdapter(TaskConfig).validate_python(TASK)


def test_graph_runs_with_two_models_and_shares_cached_calls(pool, fixed, tmp_path: Path):
    wide = parse_graph({"models": pool, "nodes": WIDE})
    path = tmp_path / "wide.yaml"
    path.write_text(yaml.safe_dump(to_pipeline(wide, name="wide", task=TASK, sampling={"max_tokens": 32})))
    r = run_pipeline(path, store=tmp_path / "store", progress=False)  # what `ttclab run wide.yaml` does
    calls = r.run.path / "calls"
    import pyarrow.parquet as pq

    table = pq.read_table(calls).to_pydict()
    models = dict(zip(table["step_id"], table["model"]))
    assert models["g1"] == "openai:fixed" and models["g2"] == "openai:fixed-b" and models["j"] == "openai:fixed-b"
    assert r.stats.fresh == 6 * 8 and pipeline_outcome(r.run).accuracy == pytest.approx(r.accuracy)
    # a graph sharing the generators g1, g2 (same models, prompts, seeds) replays them from the cache
    sent = fixed.requests
    other = parse_graph({"models": pool, "nodes": [WIDE[0], WIDE[1], {"id": "k", "role": "fuser", "model": "a",
                                                                      "inputs": ["g1", "g2"]}]})
    r2 = run_pipeline(compile_graph(other, name="other", task=TASK, sampling={"max_tokens": 32}),
                      store=tmp_path / "store", progress=False)
    assert r2.stats.replayed == 2 * 8 and r2.stats.fresh == 8 and fixed.requests - sent == 8
    # the first run, its results lost: every call of both models replays, none is sent or stored again
    import shutil

    for name in ("results", "candidates", "judgments"):
        shutil.rmtree(r.run.path / name)
    sent = fixed.requests
    again = run_pipeline(path, store=tmp_path / "store", progress=False)
    assert again.stats.replayed == 6 * 8 and again.stats.fresh == 0 and fixed.requests == sent
    assert pq.read_table(calls).num_rows == len(table["call_id"])
    assert again.accuracy == pytest.approx(r.accuracy)
