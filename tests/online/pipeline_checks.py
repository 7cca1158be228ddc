"""Invariants every stored pipeline run must satisfy (used by several test modules)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ttclab.online.results import pipeline_outcome
from ttclab.store.journal import read_table
from ttclab.store.reader import Run


def tables(run: Run) -> dict[str, list[dict[str, Any]]]:
    return {name: read_table(run.path, name).to_pylist() for name in ("calls", "candidates", "judgments", "results")}


def check_run(run: Run, *, allow_errors: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Lineage, call references and token sums are consistent; returns the tables."""
    t = tables(run)
    n_q = run.questions().num_rows
    results = {r["question_index"]: r for r in t["results"]}
    assert set(results) == set(range(n_q)), "every question has a result"
    if not allow_errors:
        assert all(r["verdict"] != "error" for r in results.values()), [r["error"] for r in results.values()]
    cands = {c["candidate_id"]: c for c in t["candidates"]}
    calls = {c["call_id"]: c for c in t["calls"]}
    for c in cands.values():
        for p in c["parent_ids"]:
            assert p in cands, f"candidate {c['candidate_id']} has unknown parent {p}"
            assert cands[p]["question_index"] == c["question_index"]
        for cid in c["call_ids"]:
            assert cid in calls, f"candidate {c['candidate_id']} names unknown call {cid}"
    for call in calls.values():
        for p in call["parent_ids"] or []:
            assert p in cands, f"call {call['call_id']} ({call['role']}) has unknown parent {p}"
    for r in results.values():
        if r["verdict"] == "error":
            continue
        if r["candidate_id"] is None:  # abstained (no candidate within the budget)
            assert r["verdict"] == "unparseable" and "no candidate" in r["notes"]
            continue
        assert r["candidate_id"] in cands
        final = cands[r["candidate_id"]]
        assert final["answer"] == r["answer"] and final["verdict"] == r["verdict"]
        own = [c for c in calls.values() if c["question_index"] == r["question_index"] and c["error"] is None]
        assert r["n_calls"] == len(own)
        assert r["prompt_tokens"] == sum(c["prompt_tokens"] for c in own)
        assert r["completion_tokens"] == sum(c["completion_tokens"] for c in own)
    out = pipeline_outcome(run)
    roles = out.by_role()
    ok_calls = [c for c in calls.values() if c["error"] is None]
    assert sum(v["calls"] for v in roles.values()) == len(ok_calls)
    assert sum(v["completion_tokens"] for v in roles.values()) == sum(c["completion_tokens"] for c in ok_calls)
    # the samples table mirrors the results (one row per question)
    samples = run.samples(["question_index", "answer", "completion_tokens"]).to_pylist()
    assert [s["question_index"] for s in samples] == sorted(results)
    for s in samples:
        assert s["answer"] == results[s["question_index"]]["answer"]
        assert s["completion_tokens"] == results[s["question_index"]]["completion_tokens"]
    return t


def roles(t: dict[str, list[dict[str, Any]]]) -> Counter:
    return Counter(c["role"] for c in t["calls"] if c["error"] is None)


def content(t: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """What must be identical between two runs of the same pipeline with the same seed."""
    return {
        "calls": sorted((c["call_id"], c["role"], c["step_id"], c["text"], c["seed"]) for c in t["calls"]
                        if c["error"] is None),
        "candidates": sorted((c["candidate_id"], c["kind"], tuple(c["parent_ids"]), c["text"], c["answer"],
                              c["score"]) for c in t["candidates"]),
        "judgments": sorted((j["judgment_id"], j["kind"], tuple(j["candidate_ids"]), j["chosen"], j["value"])
                            for j in t["judgments"]),
        "results": sorted((r["question_index"], r["candidate_id"], r["answer"], r["verdict"]) for r in t["results"]),
    }
