"""Mechanics of running pipelines: reproducibility, budgets, stop rules, the call cache (replay and
prefix sharing), first-finish, reward models, failures, offline re-selection."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from online_support import SMOLLM, load_yaml, scripted_model, shrink, write_pipeline
from pipeline_checks import check_run, content, roles, tables
from scripted_server import ScriptedServer

from ttclab.errors import BackendError
from ttclab.online.offline import select_curves
from ttclab.online.runner import run_pipeline

TASK = {"source": "gym", "name": "basic_arithmetic", "size": 4, "seed": 0,
        "params": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1, "operators": ["+"]}}


def pipeline(steps: list[dict[str, Any]], *, model: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": extra.pop("name", "t"), "model": model or SMOLLM, "task": TASK,
            "sampling": {"temperature": 0.7, "max_tokens": 10}, "seed": 0, "steps": steps,
            "continuation_format": "chatml", **extra}


def run(tmp_path: Path, data: dict[str, Any], store: str = "store", **kw: Any):
    path = write_pipeline(tmp_path, data, f"{data['name']}.yaml")
    return run_pipeline(path, store=tmp_path / store, progress=False, **kw)


# -- reproducibility on the real model --------------------------------------------------------------

@pytest.mark.slow
def test_same_seed_same_results_on_smollm2(smollm, tmp_path: Path) -> None:
    data = shrink(load_yaml("aggregate-each-turn"))  # generate, judge, copy, critique, revise
    a = run(tmp_path, data, "a", limit=1, backend=smollm)
    b = run(tmp_path, data, "b", limit=1, backend=smollm)
    ta, tb = check_run(a.run), check_run(b.run)
    assert b.stats.replayed == 0  # a separate store: every call was generated again
    assert content(ta) == content(tb)
    c = run(tmp_path, {**data, "seed": 1}, "c", limit=1, backend=smollm)
    assert content(check_run(c.run))["calls"] != content(ta)["calls"]


# -- stop rules -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_adaptive_consistency_stops_when_the_beta_rule_fires(smollm, tmp_path: Path) -> None:
    # Greedy decoding: every sample gives the same answer. After 2 votes P = 0.875 < 0.95; after 4, 0.969.
    data = pipeline([{"op": "repeat", "id": "rounds", "times": 8,
                      "until": {"consensus": {"rule": "beta", "threshold": 0.95}},
                      "steps": [{"op": "generate", "id": "draw", "n": 2, "accumulate": True}]},
                     {"op": "select", "by": "vote"}], sampling={"temperature": 0.0, "max_tokens": 12}, name="ac")
    r = run(tmp_path, data, limit=1, backend=smollm)
    t = check_run(r.run)
    answers = {c["answer"] for c in t["candidates"]}
    if len(answers) == 1 and None not in answers:
        assert roles(t)["generate"] == 4
        assert "rounds: consensus after round 2" in t["results"][0]["notes"]
    else:  # the model's answer is unparseable: no vote, so the loop runs to its cap
        assert roles(t)["generate"] == 16


def test_window_consensus_and_confidence_stops(scripted: ScriptedServer, tmp_path: Path) -> None:
    model = scripted_model(scripted.base_url)
    window = pipeline([{"op": "repeat", "id": "rounds", "times": 6, "until": {"consensus": {"rule": "window", "size": 2}},
                        "steps": [{"op": "generate", "id": "draw", "n": 1, "accumulate": True}]}],
                      model=model, sampling={"temperature": 0.0, "max_tokens": 20}, name="win")
    r = run(tmp_path, window, limit=4)
    for res in tables(r.run)["results"]:
        qi = res["question_index"]
        answers = [c["answer"] for c in tables(r.run)["candidates"] if c["question_index"] == qi]
        stop = next((i + 1 for i in range(1, len(answers)) if answers[i] is not None and answers[i] == answers[i - 1]), None)
        assert len(answers) == (stop or 6)
        assert ("consensus after round" in (res["notes"] or "")) == (stop is not None)
    conf = pipeline([{"op": "repeat", "id": "rounds", "times": 5, "until": {"confidence": {"threshold": 0.0}},
                      "steps": [{"op": "generate", "n": 1, "accumulate": True}, {"op": "score", "by": "llm_rubric"}]}],
                    model=model, name="conf")
    t = check_run(run(tmp_path, conf, limit=2).run)
    assert roles(t)["generate"] == 2 and roles(t)["scorer"] == 2  # every score >= 0: one round each


# -- budgets ----------------------------------------------------------------------------------------

def test_budgets_are_never_exceeded(scripted: ScriptedServer, tmp_path: Path) -> None:
    model = scripted_model(scripted.base_url)
    steps = load_yaml("reflect-then-aggregate")["steps"]
    for budget in ({"tokens": 60}, {"calls": 12}, {"total_tokens": 900}):
        data = pipeline(steps, model=model, budget=budget, name="b" + "".join(budget),
                        sampling={"temperature": 0.7, "max_tokens": 12})
        r = run(tmp_path, data, limit=4)
        t = check_run(r.run)
        for res in t["results"]:
            calls = [c for c in t["calls"] if c["question_index"] == res["question_index"]]
            if "tokens" in budget:
                assert sum(c["completion_tokens"] for c in calls) <= 60
            if "calls" in budget:
                assert len(calls) <= 12
            if "total_tokens" in budget:
                assert sum(c["completion_tokens"] + c["prompt_tokens"] for c in calls) <= 900
            assert "budget reached" in res["notes"]


def test_repeat_until_budget_stops_the_loop(scripted: ScriptedServer, tmp_path: Path) -> None:
    data = pipeline([{"op": "generate", "n": 2},
                     {"op": "repeat", "id": "loop", "times": 50, "until": {"budget": {"calls": 5}},
                      "steps": [{"op": "critique", "kind": "self"}, {"op": "revise"}]},
                     {"op": "select", "by": "vote"}], model=scripted_model(scripted.base_url), name="rb")
    t = check_run(run(tmp_path, data, limit=2).run)
    for res in t["results"]:
        calls = [c for c in t["calls"] if c["question_index"] == res["question_index"]]
        loop = [c for c in calls if c["step_id"].startswith("loop")]
        assert len(loop) == 4  # one round (2 critiques + 2 revisions); a second would need 4 more
        assert "loop: budget" in res["notes"]


# -- the call cache -----------------------------------------------------------------------------

def test_replay_prefix_sharing_and_resume_skip(scripted: ScriptedServer, tmp_path: Path) -> None:
    model = scripted_model(scripted.base_url)
    first = run(tmp_path, {**shrink(load_yaml("reflect-self"), max_tokens=20), "model": model,
                           "continuation_format": "chatml"}, limit=3)
    sent = scripted.requests
    again = run(tmp_path, {**shrink(load_yaml("reflect-self"), max_tokens=20), "model": model,
                           "continuation_format": "chatml"}, limit=3)
    assert again.skipped == 3 and again.ran == 0 and scripted.requests == sent  # finished: nothing re-run
    # the same first step in another pipeline: its calls come from the cache, stored with their source
    other = run(tmp_path, {**shrink(load_yaml("reflect-none"), max_tokens=20), "model": model,
                           "continuation_format": "chatml"}, limit=3)
    t = check_run(other.run)
    gen = [c for c in t["calls"] if c["role"] == "generate"]
    assert len(gen) == 6 and all(c["cached_from"] == first.run.run_id for c in gen)
    assert scripted.requests - sent == roles(t)["reviser"]  # only the revisions were sent
    # results removed, calls kept: a full replay with no request and identical content
    before = content(tables(other.run))
    for name in ("results", "candidates", "judgments"):
        shutil.rmtree(other.run.path / name)
    sent = scripted.requests
    replay = run(tmp_path, {**shrink(load_yaml("reflect-none"), max_tokens=20), "model": model,
                            "continuation_format": "chatml"}, limit=3)
    assert scripted.requests == sent and replay.stats.fresh == 0 and replay.stats.replayed == replay.stats.calls
    assert content(check_run(replay.run)) == before


# -- first-finish, reward models, failures -----------------------------------------------------------

def test_first_finish_by_arrival_cancels_the_rest(tmp_path: Path) -> None:
    with ScriptedServer(delay_fn=lambda body: 0.05 + 0.4 * ((body.get("seed") or 0) % 4 != 0)) as srv:
        data = pipeline([{"op": "generate", "id": "race", "n": 4, "first": 1, "by": "arrival"}],
                        model=scripted_model(srv.base_url), name="ff")
        r = run(tmp_path, data, limit=3)
    t = check_run(r.run)
    first_question = min(c["question_index"] for c in t["calls"])
    for res in t["results"]:
        calls = [c for c in t["calls"] if c["question_index"] == res["question_index"]]
        ok = [c for c in calls if c["error"] is None]
        cancelled = [c for c in calls if c["finish_reason"] == "cancelled"]
        fastest = [c for c in calls if c["seed"] % 4 == 0]
        assert len(calls) == 4 and len(ok) >= 1
        # one request answers 0.4 s before the others: it wins (on the first question the backend sends one
        # request alone until something succeeds, so a bad key or URL costs one call: no race there)
        if len(fastest) == 1 and res["question_index"] != first_question:
            final = {c["candidate_id"]: c for c in t["candidates"]}[res["candidate_id"]]
            assert final["call_ids"] == [fastest[0]["call_id"]] and len(cancelled) == 3
        assert all("cancelled: first-finish" in c["error"] for c in cancelled)


def test_first_finish_by_tokens_keeps_the_shortest(scripted: ScriptedServer, tmp_path: Path) -> None:
    data = pipeline([{"op": "generate", "id": "race", "n": 4, "first": 2, "by": "tokens"}],
                    model=scripted_model(scripted.base_url), sampling={"temperature": 0.7, "max_tokens": 30},
                    final="first", name="fft")
    t = check_run(run(tmp_path, data, limit=2).run)
    for res in t["results"]:
        gen = sorted((c["completion_tokens"], c["call_id"]) for c in t["calls"] if c["question_index"] == res["question_index"])
        final = {c["candidate_id"]: c for c in t["candidates"]}[res["candidate_id"]]
        assert final["call_ids"][0] in {cid for _, cid in gen[:2]} or gen[0][0] == gen[2][0]


def test_reward_model_scorer(scripted: ScriptedServer, tmp_path: Path) -> None:
    reward = {"url": scripted.base_url.replace("/v1", "") + "/pooling", "model": "prm", "field": "data.0.data",
              "reduce": "min"}
    data = pipeline([{"op": "generate", "n": 3}, {"op": "score", "id": "rm", "by": "reward_model", "reward": reward},
                     {"op": "select", "by": "score"}], model=scripted_model(scripted.base_url), name="rm")
    t = check_run(run(tmp_path, data, limit=2).run)
    rm = [c for c in t["calls"] if c["role"] == "reward"]
    assert len(rm) == 6 and all(c["value"] is not None and 0 <= c["value"] <= 1 for c in rm)
    scores = [j for j in t["judgments"] if j["method"] == "reward_model"]
    assert sorted(j["value"] for j in scores) == sorted(c["value"] for c in rm)
    for res in t["results"]:  # the kept candidate has the highest reward of its question
        mine = [j for j in scores if j["question_index"] == res["question_index"]]
        best = max(j["value"] for j in mine)
        assert any(j["chosen"] == res["candidate_id"] and j["value"] == best for j in mine)


def test_failed_calls_are_errors_and_permanent_ones_stop(tmp_path: Path) -> None:
    from support.flaky_server import FlakyServer

    with FlakyServer(default=500) as srv:
        data = pipeline([{"op": "generate", "n": 2}], model=scripted_model(srv.base_url, max_retries=0), name="fail")
        r = run(tmp_path, data, limit=2)
    assert r.failed == 2
    t = tables(r.run)
    assert all(res["verdict"] == "error" and res["answer"] is None and not res["correct"] for res in t["results"])
    assert all(c["error"] and "HTTP 500" in c["error"] for c in t["calls"])
    assert all(s["verdict"] == "error" for s in r.run.samples(["verdict"]).to_pylist())
    with FlakyServer(default=401) as srv:
        data = pipeline([{"op": "generate", "n": 2}], model=scripted_model(srv.base_url), name="denied")
        with pytest.raises(BackendError, match="HTTP 401"):
            run(tmp_path, data, limit=2)


# -- offline re-selection ---------------------------------------------------------------------------

def test_offline_select_curves_from_stored_judgments(scripted: ScriptedServer, tmp_path: Path) -> None:
    model = scripted_model(scripted.base_url)
    data = pipeline([{"op": "generate", "id": "gen", "n": 4}, {"op": "score", "id": "grade", "by": "llm_rubric"},
                     {"op": "select", "id": "tour", "by": "pairwise", "k": 3},
                     {"op": "select", "id": "pick", "by": "llm_pick", "subsets": [2]}],
                    model=model, sampling={"temperature": 0.7, "max_tokens": 20}, name="off")
    r = run(tmp_path, data, limit=4)
    t = check_run(r.run)
    sent = scripted.requests
    rows = select_curves(r.run)
    assert scripted.requests == sent  # no new calls
    by = {(row["method"], row["n"]): row for row in rows}
    for n in range(1, 5):
        assert by[("llm_rubric", n)]["exact"] and by[("llm_rubric", n)]["questions"] == 4
        assert by[("pairwise", n)]["exact"]
    assert {("llm_pick", 2), ("llm_pick", 3)} <= set(by) and ("llm_pick", 4) not in by
    correct = {c["candidate_id"]: c["verdict"] == "correct" for c in t["candidates"]}
    gen_acc = sum(correct[c["candidate_id"]] for c in t["candidates"] if c["step_id"] == "gen") / 16
    assert by[("llm_rubric", 1)]["accuracy"] == pytest.approx(gen_acc)  # n = 1: a random candidate
    picks = [j for j in t["judgments"] if j["kind"] == "pick"]
    assert by[("llm_pick", 3)]["accuracy"] == pytest.approx(sum(correct[j["chosen"]] for j in picks) / 4)
    pairs = [j for j in t["judgments"] if j["kind"] == "pairwise"]
    assert len(pairs) == 4 * 6  # round robin of 4 in each question


def test_execution_critique_feeds_sandbox_results_into_the_revision(scripted: ScriptedServer, tmp_path: Path) -> None:
    data = {**shrink(load_yaml("reflect-execution"), max_tokens=60), "model": scripted_model(scripted.base_url)}
    r = run(tmp_path, data, limit=2)
    t = check_run(r.run)
    assert dict(roles(t)) == {"generate": 4, "reviser": 4} and r.run.meta["verifier"] == "code"
    generated = [c for c in t["candidates"] if c["kind"] == "generated"]
    for c in generated:  # the scripted program returns a constant: it fails the first sample test
        assert c["feedback"].startswith("Running the program on the sample tests: passed ")
        assert "first failure:" in c["feedback"] and "expected" in c["feedback"]
    revisions = [c for c in t["calls"] if c["role"] == "reviser"]
    feedback = {c["feedback"] for c in generated}
    assert all(any(f in call["prompt"] for f in feedback) for call in revisions)
    assert all(res["verdict"] == "incorrect" for res in t["results"])  # graded by the hidden tests


# -- continuation primitives ----------------------------------------------------------------------

@pytest.mark.slow
def test_extend_inject_and_confidence_on_smollm2(smollm_lp, tmp_path: Path) -> None:
    data = pipeline([{"op": "generate", "id": "gen", "n": 2, "sampling": {"logprobs": True, "max_tokens": 8}},
                     {"op": "inject", "id": "wait", "text": "\nWait,"},
                     {"op": "extend", "id": "more", "sampling": {"logprobs": True, "max_tokens": 8}},
                     {"op": "score", "id": "conf", "by": "confidence", "window": 4},
                     {"op": "select", "id": "vote", "by": "vote", "weighted": True}], name="cont")
    r = run(tmp_path, data, limit=1, backend=smollm_lp)
    t = check_run(r.run)
    assert dict(roles(t)) == {"generate": 2, "extend": 2}
    cands = {c["candidate_id"]: c for c in t["candidates"]}
    calls = {c["call_id"]: c for c in t["calls"]}
    from ttclab.online.stopping import trace_confidence

    for c in cands.values():
        if c["kind"] == "injected":
            assert c["call_ids"] == [] and c["text"] == cands[c["parent_ids"][0]]["text"] + "\nWait,"
        if c["kind"] == "extended":
            parent = cands[c["parent_ids"][0]]
            [call] = [calls[i] for i in c["call_ids"]]
            assert call["prompt"].startswith("<|im_start|>") and call["prompt"].endswith(parent["text"])
            assert c["text"] == parent["text"] + call["text"]
            generated = calls[cands[parent["parent_ids"][0]]["call_ids"][0]]
            lp = list(generated["token_logprobs"]) + list(call["token_logprobs"])
            assert c["score"] == pytest.approx(trace_confidence(lp, 4), rel=1e-6)


def _lineage_logprobs(cid: str, cands: dict, calls: dict) -> list[float]:
    chain = []
    while cid:
        c = cands[cid]
        chain.append(c)
        cid = c["parent_ids"][0] if c["parent_ids"] else None
    lp: list[float] = []
    for c in reversed(chain):
        for call_id in c["call_ids"]:
            lp += list(calls[call_id]["token_logprobs"] or [])
    return lp


def test_deepconf_stops_low_confidence_traces(scripted: ScriptedServer, tmp_path: Path) -> None:
    from ttclab.online.stopping import first_window_below

    data = pipeline([{"op": "deepconf", "id": "dc", "warmup": 4, "traces": 6, "keep": 0.5, "window": 3, "chunk": 4},
                     {"op": "select", "by": "vote", "weighted": True}],
                    model=scripted_model(scripted.base_url), sampling={"temperature": 0.7, "max_tokens": 40}, name="dc")
    r = run(tmp_path, data, limit=3)
    t = check_run(r.run)
    cands = {c["candidate_id"]: c for c in t["candidates"]}
    calls = {c["call_id"]: c for c in t["calls"]}
    children = {p for c in cands.values() for p in c["parent_ids"]}
    stopped_total = 0
    for res in t["results"]:
        mine = [j for j in t["judgments"] if j["question_index"] == res["question_index"]]
        [threshold] = [j["value"] for j in mine if j["kind"] == "threshold"]
        scored = {j["candidate_ids"][0] for j in mine if j["kind"] == "score"}
        leaves = [c for c in cands.values() if c["question_index"] == res["question_index"] and c["kind"] == "extended"
                  and c["candidate_id"] not in children]
        assert len(leaves) == 6
        for leaf in leaves:
            lp = _lineage_logprobs(leaf["candidate_id"], cands, calls)
            below = first_window_below(lp, 3, threshold)
            if leaf["candidate_id"] in scored:  # finished: every window stayed at or above the threshold
                assert below is None
            else:  # stopped early: a window fell below it, in its last chunk (earlier chunks were checked)
                assert below is not None and below > len(lp) - 4
                stopped_total += 1
    assert stopped_total > 0


def test_budget_forcing_caps_thinking_and_appends_wait(scripted: ScriptedServer, tmp_path: Path) -> None:
    data = pipeline([{"op": "budget_force", "id": "bf", "n": 2, "budget": 30, "num_ignore": 2, "answer_tokens": 4}],
                    model=scripted_model(scripted.base_url), final="first", name="bf")
    t = check_run(run(tmp_path, data, limit=3).run)
    cands = {c["candidate_id"]: c for c in t["candidates"]}
    calls = {c["call_id"]: c for c in t["calls"]}
    finals = [c for c in cands.values() if c["complete"] and c["step_id"] == "bf"]
    assert len(finals) == 6
    for f in finals:
        chain, cid = [], f["candidate_id"]
        while cid:
            chain.append(cands[cid])
            cid = cands[cid]["parent_ids"][0] if cands[cid]["parent_ids"] else None
        think = [calls[i] for c in chain for i in c["call_ids"] if calls[i]["role"] == "think"]
        assert 1 <= len(think) <= 3 and sum(c["completion_tokens"] for c in think) <= 30
        assert f["text"].count("\nWait,") == len(think) - 1 <= 2
        assert "\nAnswer:" in f["text"]


def test_dollar_budget_is_never_exceeded(scripted: ScriptedServer, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("version: test\nsource: a test\nmodels:\n  scripted: {input: 100.0, output: 400.0}\n")
    budget = 0.5  # USD per question: the 8 solutions fit, the reflection rounds do not all fit
    data = pipeline(load_yaml("reflect-then-aggregate")["steps"], model=scripted_model(scripted.base_url),
                    budget={"usd": budget}, prices=str(prices), name="usd", sampling={"temperature": 0.7, "max_tokens": 12})
    t = check_run(run(tmp_path, data, limit=3).run)
    for res in t["results"]:
        calls = [c for c in t["calls"] if c["question_index"] == res["question_index"] and c["error"] is None]
        spent = sum(c["prompt_tokens"] * 100.0 + c["completion_tokens"] * 400.0 for c in calls) / 1e6
        assert 0 < spent <= budget
        assert "budget reached" in res["notes"]
