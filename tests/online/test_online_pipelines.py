"""Every shipped pipeline on the real SmolLM2 model, with the same structure and short budgets:
calls made per role, lineage linked, tokens summed per role, results stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from online_support import PIPELINES, load_yaml, shrink, write_pipeline
from pipeline_checks import check_run, roles

from ttclab.online.runner import run_pipeline

SHIPPED = sorted(p.stem for p in PIPELINES.glob("*.yaml"))

# Calls per role on one question of the shrunk pipelines (n 2, one round, 10 tokens).
EXPECTED = {
    "reflect-then-aggregate": {"generate": 2, "critic": 2, "reviser": 2, "judge": 1},
    "aggregate-each-turn": {"generate": 2, "judge": 1, "critic": 2, "reviser": 2},
    "reflect-none": {"generate": 2, "reviser": 2},
    "reflect-self": {"generate": 2, "critic": 2, "reviser": 2},
    "reflect-oracle": {"generate": 2, "reviser": 2},
    "reflect-execution": {"generate": 2, "reviser": 2},  # the feedback comes from the sandbox, not a call
    "aggregate-pick": {"generate": 2, "judge": 1},
    "aggregate-fuse": {"generate": 2, "fuser": 1},
    "aggregate-llm-score": {"generate": 2, "scorer": 2},
    "aggregate-oracle-score": {"generate": 2},
    "aggregate-vote": {"generate": 2},
    "aggregate-pairwise": {"generate": 2, "judge": 1},
    "first-finish": {"generate": 2},
}


LOGPROBS = {"beam-search", "dvts", "deepconf-online"}  # self-evaluation / trace confidence read log-probs


def test_every_pipeline_is_tested() -> None:
    assert len(SHIPPED) >= 18
    assert set(EXPECTED) | {"beam-search", "dvts", "budget-forcing", "deepconf-online", "adaptive-live"} == set(SHIPPED)


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_pipeline_on_smollm2(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    smollm = request.getfixturevalue("smollm_lp" if name in LOGPROBS else "smollm")
    data = shrink(load_yaml(name), max_tokens=48 if name == "reflect-execution" else 10)
    assert data["model"]["name"] == "smollm2-135m" and data["task"]
    path = write_pipeline(tmp_path, data, f"{name}.yaml")
    r = run_pipeline(path, limit=1, store=tmp_path / "store", progress=False, backend=smollm)
    assert r.questions == 1 and r.ran == 1 and r.failed == 0
    t = check_run(r.run)
    got = roles(t)
    meta = r.run.meta
    assert meta["kind"] == "pipeline" and meta["pipeline"]["name"] == name
    assert meta["pipeline"]["oracle"] == (name in ("reflect-oracle", "aggregate-oracle-score"))
    if name in EXPECTED:
        assert dict(got) == EXPECTED[name]
    elif name == "beam-search":  # depth 2, 2 beams x 1 child: 2 first steps, then <= 2 more; each scored
        assert 2 <= got["step"] <= 4 and got["scorer"] == got["step"]
    elif name == "dvts":  # n 2 / width 1: two subtrees, one first step each, then <= 1 child each
        assert 2 <= got["step"] <= 4 and got["scorer"] == got["step"]
    elif name == "budget-forcing":  # think, at most one "Wait" and one more think, answer
        assert 1 <= got["think"] <= 2 and got["answer"] == 1
        assert sum(c["completion_tokens"] for c in t["calls"] if c["role"] == "think") <= 10
    elif name == "deepconf-online":
        assert got["warmup"] == 2 and 2 <= got["trace"] <= 4
    elif name == "adaptive-live":
        assert got["generate"] in (2, 4)
    # every call's role is known and every candidate of the final population was graded
    final = {c["candidate_id"]: c for c in t["candidates"]}[t["results"][0]["candidate_id"]]
    assert final["verdict"] in ("correct", "incorrect", "unparseable")
    if name == "reflect-execution":  # graded by the hidden tests; feedback from the sample tests
        assert meta["verifier"] == "code"
        fed = [c for c in t["candidates"] if c["feedback"]]
        assert fed and all(c["feedback"].startswith("Running the program on the sample tests:") for c in fed)
