"""Search methods: REINFORCE finds a known optimum; the agent proposer validates scripted replies;
the graph search runs end to end (resumable) on a real local server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from agent_server import AgentServer
from fixed_server import server_model
from search_support import TASK

from ttclab.search.agent import AgentProposer
from ttclab.search.methods import Dim, GridSearch, RandomSearch, Reinforce, Space, run_search

SPACE = Space([Dim(f"d{i}", tuple(range(4))) for i in range(6)])
TARGET = {f"d{i}": (3 * i) % 4 for i in range(6)}


def synthetic(c):
    return sum(c[k] == v for k, v in TARGET.items()) / len(TARGET), {}


def first_hit(trials):
    return next((t.index + 1 for t in trials if t.score == 1.0), None)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reinforce_finds_the_known_optimum_within_300_evaluations(seed):
    # 4^6 = 4096 candidates, one optimum: random search needs ~2048 evaluations on average
    trials = run_search(Reinforce(SPACE, seed=seed, batch=8, lr=1.0), synthetic, evaluations=300,
                        stop=lambda t: t.score == 1.0)
    assert first_hit(trials) is not None and first_hit(trials) <= 300


def test_same_seed_same_search_and_repeats_do_not_count():
    a = run_search(RandomSearch(SPACE, seed=5, batch=4), synthetic, evaluations=20)
    b = run_search(RandomSearch(SPACE, seed=5, batch=4), synthetic, evaluations=20)
    assert [t.candidate for t in a] == [t.candidate for t in b] and len(a) == 20
    assert len({SPACE.key(t.candidate) for t in a}) == 20


def test_grid_covers_width_by_depth():
    space = Space([Dim("width", (1, 2, 3)), Dim("depth", (1, 2)), Dim("m", ("x", "y"))])
    trials = run_search(GridSearch(space, batch=4), lambda c: (0.0, {}), evaluations=100)
    assert sorted((t.candidate["width"], t.candidate["depth"]) for t in trials) == [
        (w, d) for w in (1, 2, 3) for d in (1, 2)]


def test_agent_proposals_are_validated_and_bad_ones_counted():
    replies = [
        '{"candidates": [{"d0": 0, "d1": 3, "d2": 2, "d3": 1, "d4": 0, "d5": 3}]}',  # the optimum
        'I think width 3 is best',  # no JSON
        '{"candidates": [{"d9": 1}], "distribution": {"d0": {"0": 2, "1": -1}}}',  # unknown dim, negative prob
        '```json\n{"distribution": {"d0": {"0": 1.0}}}\n```',  # fenced, valid
        '{"candidates": [{"d0": 7}], "oops": 1',  # malformed JSON
    ]
    with AgentServer(replies) as srv:
        agent = AgentProposer(SPACE, server_model(srv.base_url), seed=0, batch=2, what="synthetic")
        agent.summary = lambda: "nothing yet"
        trials = run_search(agent, synthetic, evaluations=9)
        agent.close()
    reasons = [why for _, why in agent.rejected]
    assert trials[0].candidate == TARGET and trials[0].score == 1.0
    assert any("no JSON object" in r for r in reasons)
    assert any("unknown dimension(s) d9" in r for r in reasons)
    assert any("must be a number >= 0" in r for r in reasons)
    assert any("not valid JSON" in r for r in reasons)
    assert len(agent.rejected) == 4 and agent.accepted == 1
    assert np.isclose(agent.dist.probs("d0")[0], 1.0, atol=0.01)  # the fenced distribution was taken
    assert "d0: [0, 1, 2, 3]" in srv.prompts[0] and "nothing yet" in srv.prompts[0]


def _config(tmp: Path, url: str, agent_url: str | None = None, method: str = "reinforce", evaluations: int = 5) -> Path:
    import yaml

    cfg = {"name": "t", "task": TASK, "split": {"search": 4, "heldout": 4},
           "models": {"a": server_model(url), "b": {**server_model(url), "name": "fixed-b"}},
           "sampling": {"max_tokens": 32}, "space": {"max_width": 2, "max_depth": 2},
           "budget": {"max": 600, "levels": [150, 600]}, "token_counter": {"a": "whitespace", "b": "whitespace"},
           "method": {"name": method, "evaluations": evaluations, "batch": 2, "seed": 1}, "out": str(tmp / "out")}
    if agent_url:
        cfg["agent"] = {"model": server_model(agent_url)}
    path = tmp / "search.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("method", ["reinforce", "random", "grid"])
def test_graph_search_end_to_end_and_resumes(fixed, tmp_path: Path, method):
    from ttclab.online.runner import run_pipeline
    from ttclab.search.graph_search import search_graphs

    path = _config(tmp_path, fixed.base_url, method=method)
    lines: list[str] = []
    r = search_graphs(path, store=tmp_path / "store", progress=False, log=lines.append)
    evaluated = [t for t in r.trials if t.get("accuracy") is not None]
    # progress without a terminal: a line as it starts, one per graph run (or rejected), one for the held-out runs
    assert lines[0].startswith(f"search t: {method}, up to ") and "0 already stored" in lines[0]
    ran = [ln for ln in lines if ln.startswith("  [")]
    assert len(ran) == len(evaluated) and ran[-1].startswith(f"  [{len(evaluated)}/")
    assert sum("not run" in ln for ln in lines) == sum(1 for t in r.trials if t.get("rejected"))
    assert lines[-1].startswith("held-out: ")
    if method == "grid":  # every width x depth (2 x 2), the others at the initial mode
        assert {(t["candidate"]["width"], t["candidate"]["depth"]) for t in evaluated} == {(1, 1), (1, 2), (2, 1), (2, 2)}
    else:
        assert len(evaluated) == 5 + 2  # 2 single-model baselines (the model prior) + 5
    assert all(t["predicted"]["total_tokens"] <= 600 for t in evaluated)
    assert r.front and all("heldout" in f for f in r.front[-6:])
    for f in r.front:
        lo, hi = f["heldout"]["ci"]
        assert lo <= f["heldout"]["accuracy"] <= hi and f["heldout"]["questions"] == 4
    summary = json.loads((r.out / "summary.json").read_text())
    assert summary["method"] == method and len(summary["trials"]) == len(r.trials)
    page = (r.out / "report.html").read_text()  # the report's text is escaped: no markup in it shows as tags
    assert f"Method {method}, heuristics" in page and "&lt;" not in page
    # the best graph per budget is a pipeline file ttclab run accepts
    best = r.best["total_tokens-600"]
    assert best["predicted"]["total_tokens"] <= 600
    run = run_pipeline(best["pipeline_file"], store=tmp_path / "store", limit=4, progress=False)
    assert run.stats.fresh == 0  # its search-split calls are all in the cache
    # a re-run continues: nothing is evaluated again, no new call is sent
    sent = fixed.requests
    lines.clear()
    again = search_graphs(path, store=tmp_path / "store", progress=False, log=lines.append)
    assert f"{len(r.trials)} already stored" in lines[0] and not any(ln.startswith("  [") for ln in lines)
    assert fixed.requests == sent and [t["graph_key"] for t in again.trials] == [t["graph_key"] for t in r.trials]


def test_graph_search_with_the_agent(fixed, tmp_path: Path):
    from ttclab.search.graph_search import search_graphs

    good = json.dumps({"candidates": [{"width": 2, "depth": 2, "role_1": "fuser", "output_role": "judge"}],
                       "distribution": {"width": {"2": 0.7, "1": 0.3}}})
    with AgentServer([good, "not json at all", '{"candidates": [{"width": 9}]}', good]) as agent:
        path = _config(tmp_path, fixed.base_url, agent_url=agent.base_url, method="agent", evaluations=6)
        r = search_graphs(path, store=tmp_path / "store", progress=False)
        assert r.agent_rejected >= 2
        assert any(t["candidate"]["width"] == 2 and t["candidate"]["depth"] == 2 for t in r.trials)
        assert "Evaluated graphs:" in agent.prompts[-1] and "accuracy" in agent.prompts[-1]
        asked = len(agent.prompts)
        search_graphs(path, store=tmp_path / "store", progress=False)
        assert len(agent.prompts) == asked  # replies replayed from agent.jsonl


def test_graph_search_budget_below_every_graph_and_levels_nothing_fits(fixed, tmp_path: Path):
    import yaml

    from ttclab.errors import ConfigError
    from ttclab.search.graph_search import search_graphs

    path = _config(tmp_path, fixed.base_url, evaluations=2)
    cfg = yaml.safe_load(path.read_text())
    low = tmp_path / "low.yaml"
    low.write_text(yaml.safe_dump({**cfg, "budget": {"max": 2, "levels": [2]}}))
    # before: every candidate rejected one line at a time (92 of them on the embedded models), then an empty front
    with pytest.raises(ConfigError, match=r"budget.max 2 total_tokens per question is below the cheapest graph "
                                          r"\(generator\([ab]\): \d+ total_tokens/q predicted\)"):
        search_graphs(low, store=tmp_path / "store", progress=False)
    assert fixed.requests == 0
    lvl = tmp_path / "lvl.yaml"
    lvl.write_text(yaml.safe_dump({**cfg, "budget": {"max": 600, "levels": [3, 600]}}))
    r = search_graphs(lvl, store=tmp_path / "store", progress=False)
    assert "total_tokens-3" not in r.best and "total_tokens-600" in r.best
    assert any(n.startswith("budget level 3 total_tokens: no evaluated graph fits") for n in r.notes), r.notes
    assert any(n.startswith("search on 4 questions, held-out on 4: at this size") for n in r.notes), r.notes
    # graphs predicted before their calls were timed have no latency: the latency chart says it leaves them out
    ran = [t for t in r.trials if t.get("accuracy") is not None]
    untimed = sum(1 for t in ran if not (t["predicted"]["latency_s"] == t["predicted"]["latency_s"]))
    page = (r.out / "report.html").read_text()
    if untimed and untimed < len(ran):
        assert f"{untimed} of {len(ran)} evaluated graphs have no latency prediction" in page
    assert 0 < untimed < len(ran), (untimed, len(ran))  # some predicted before any call was timed, some after


def test_a_config_for_the_other_search_names_the_right_verb(fixed, tmp_path: Path, capsys):
    from ttclab.cli import main

    path = _config(tmp_path, fixed.base_url)
    assert main(["search", "controller", str(path)]) == 2
    assert f"a graph search config (it has models, task, no data:); run it with `ttclab search graph {path}`" in \
        capsys.readouterr().err  # before: "task: unknown setting; did you mean 'betas'?"
    c = tmp_path / "c.yaml"
    c.write_text("name: c\ndata: {synthetic: {n_questions: 4}}\n")
    assert main(["search", "graph", str(c)]) == 2
    assert f"run it with `ttclab search controller {c}`" in capsys.readouterr().err
