"""Code controllers: Python source run in real sandbox processes (one per evaluation), driven by the
real ReplayEnv over stored and synthetic traces; hostile or broken controllers are stopped and
recorded as failures with their reason; the agent proposes code against a real scripted server."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from ttclab.search.code_controller import (
    CodeController,
    CodeLimits,
    ControllerFailure,
    code_controller,
    evaluate_code_controller,
    parse_action,
    validate_source,
)
from ttclab.search.controller_search import evaluate_controller, with_beta
from ttclab.search.controllers import sc
from ttclab.search.replay import ReplayData, synthetic

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox's isolation is Linux's")

HERE = Path(__file__).resolve().parent
SC_SOURCE = (HERE / "sc_controller.py").read_text()
FAST = CodeLimits(decision_s=0.5, load_s=5.0)


def assert_gone(f: ControllerFailure) -> None:
    """The sandbox process group is gone and its temporary directory removed."""
    assert f.result is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(f.result.pid, 0)
    assert f.result.workdir and not Path(f.result.workdir).exists()


def assert_same_as_sc(data: ReplayData, k: int, orders: int = 6) -> None:
    code = evaluate_code_controller(data, CodeController(SC_SOURCE), k, orders=orders, seed=3)
    ref = evaluate_controller(data, with_beta(sc, k), orders=orders, seed=3)
    assert np.array_equal(code.accuracy, ref.accuracy), k
    for name in ("tokens", "decode_tokens", "probe_tokens", "sequential_tokens"):
        assert np.array_equal(getattr(code, name), getattr(ref, name)), (k, name)
    assert code.decisions >= data.n_questions * orders * (min(k, 2) + 1)  # real decisions were exchanged


@pytest.mark.parametrize("k", [1, 3, 8, 16])
def test_code_sc_equals_sc_exactly_on_synthetic_traces(k):
    d = synthetic(10, 16, every=100, seed=4, mean_tokens=600)
    assert_same_as_sc(d, k)


def test_code_sc_equals_sc_exactly_on_stored_smollm2_traces(probed_run):
    from ttclab.search.replay import from_run

    _, _, r = probed_run
    data = from_run(r.run)
    assert data.present.sum() == 24
    for k in (1, 2, 3, 4):
        assert_same_as_sc(data, k, orders=8)


def _fail(source: str, *, isolation=None, limits: CodeLimits = FAST, data: ReplayData | None = None) -> ControllerFailure:
    d = data or synthetic(3, 8, every=100, seed=1, mean_tokens=500)
    with pytest.raises(ControllerFailure) as info:
        evaluate_code_controller(d, CodeController(source), 2, orders=2, seed=0, limits=limits, isolation=isolation)
    assert_gone(info.value)
    return info.value


def test_an_infinite_loop_hits_the_decision_limit():
    f = _fail("def decide(obs):\n    if obs['decision'] < 3:\n        return 'BRANCH'\n    while True:\n        pass\n",
              limits=CodeLimits(decision_s=0.3))
    assert f.reason == "timeout" and f.detail == "no reply within 0.3 s"
    assert (f.question, f.episode, f.decision) == (0, 1, 3)
    assert f.record()["reason"] == "timeout"


@pytest.mark.parametrize("isolation", ["auto", "audit-hook"])
def test_a_socket_is_stopped(isolation):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        try:
            accepted.append(server.accept())
        except OSError:
            pass
    t = threading.Thread(target=accept)
    t.start()
    source = (f"import socket\ndef decide(obs):\n    socket.create_connection(('127.0.0.1', {port}), timeout=1)"
              "\n    return 'BRANCH'\n")
    f = _fail(source, isolation=isolation)
    t.join()
    server.close()
    assert f.reason == "forbidden" and not accepted, (f.detail, accepted)
    assert "network" in f.detail.lower() or "unreachable" in f.detail.lower()


@pytest.mark.parametrize("isolation", ["auto", "audit-hook"])
def test_writing_outside_the_temporary_directory_is_stopped(tmp_path: Path, isolation):
    target = tmp_path / "escaped.txt"
    f = _fail(f"def decide(obs):\n    open({str(target)!r}, 'w').write('x')\n    return 'BRANCH'\n", isolation=isolation)
    assert f.reason == "forbidden", f.detail
    assert not target.exists()


@pytest.mark.parametrize(("source", "reason", "detail"), [
    ("import os\ndef decide(obs):\n    os.write(1, b'hello there\\n')\n    return 'BRANCH'\n", "garbage",
     "not JSON: 'hello there'"),
    ("def decide(obs):\n    return object()\n", "error", "not JSON serializable"),
    ("def decide(obs):\n    return 1 / 0\n", "error", "ZeroDivisionError"),
    ("def decide(obs):\n    return ['CONTINUE', 7]\n", "impossible", "trace 7 is not started"),
    ("def decide(obs):\n    return 'JUMP'\n", "impossible", "unknown action 'JUMP'"),
    ("def decide(obs):\n    return ['ANSWER', 0]\n", "impossible", "ANSWER 0: not an answer seen in this episode"),
    ("def decide(obs):\n    return 'BRANCH' if obs['left'] else ['PRUNE', 0]\n", "impossible", "prune(0)"),
    ("def decide(obs):\n    return ['PROBE', 0] if obs['started'] else 'BRANCH'\n", "decisions", "no ANSWER within 50"),
    ("x = 1\n", "load", "defines no decide"),
    ("def decide(obs):\n    return 'x' * 400000\n", "output_limit", "stderr exceeded"),
])
def test_broken_controllers_are_refused_with_a_reason(source, reason, detail):
    limits = CodeLimits(decision_s=2.0, max_decisions=50)
    if reason == "output_limit":  # a flood on stderr (the controller's print) stops the session
        source = "def decide(obs):\n    print('x' * 400000)\n    return 'BRANCH'\n"
    f = _fail(source, limits=limits)
    assert f.reason == reason and detail in f.detail, (f.reason, f.detail)


def test_a_budget_allows_only_prune_and_answer_once_spent():
    source = "def decide(obs):\n    return 'BRANCH'\n"
    d = synthetic(2, 8, every=100, seed=1, mean_tokens=500)
    with pytest.raises(ControllerFailure, match="budget of 150 is spent"):
        evaluate_code_controller(d, CodeController(source, budget=150), 1, orders=1, limits=FAST)
    frugal = ("def decide(obs):\n    if obs['budget_left'] > 0 and obs['left']:\n        return 'BRANCH'\n"
              "    finals = [t['probes'][-1] for t in obs['traces'] if t['probes']]\n    return ['ANSWER', -1]\n")
    ev = evaluate_code_controller(d, CodeController(frugal, budget=150), 1, orders=2, limits=FAST)
    assert np.all(ev.tokens <= 150 + 100) and np.all(ev.accuracy == 0)


def test_source_and_action_validation():
    assert validate_source("def decide(o):\n    return 'BRANCH'\n")
    for bad, why in [(3, "non-empty string"), ("def decide(:\n", "does not parse"), ("y = 2", "defines no top-level"),
                     ("def decide():\n    pass\n", "one argument"), ("def decide(o): pass\n" + "#" * 20000, "at most")]:
        with pytest.raises(ValueError, match=why):
            validate_source(bad)
    assert parse_action("BRANCH") == ("BRANCH", None)
    assert parse_action("CONTINUE 2") == ("CONTINUE", 2) == parse_action(["continue", 2])
    assert parse_action(["ANSWER", [3, 1]]) == ("ANSWER", [3, 1])
    for bad in (["PROBE", "x"], ["BRANCH", 1], ["ANSWER", []], 5, [], ["PRUNE", True]):
        with pytest.raises(ValueError):
            parse_action(bad)
    with pytest.raises(ValueError, match="betas"):
        code_controller({"code": SC_SOURCE, "betas": "many"})
    with pytest.raises(ValueError, match="one of the two"):
        code_controller({"code": SC_SOURCE, "file": "x.py"})


def _syn_config(tmp_path: Path, **extra):
    from ttclab.search.controller_search import ControllerSearchConfig

    return ControllerSearchConfig.model_validate({
        "name": "code", "data": {"synthetic": {"n_questions": 8, "n_traces": 8, "seed": 2, "every": 200,
                                               "mean_tokens": 800}},
        "orders": 2, "references": ["sc"], "betas": {"sc": [1, 4, 8]}, "out": str(tmp_path / "out"),
        "code_limits": {"decision_s": 0.5}, **extra})


def test_config_code_controllers_sit_on_the_same_curves(tmp_path: Path):
    from ttclab.search.controller_search import search_controllers

    (tmp_path / "mine.py").write_text(SC_SOURCE)
    cfg = _syn_config(tmp_path, method={"name": "random", "evaluations": 2, "batch": 2},
                      code=[{"name": "code-sc", "file": str(tmp_path / "mine.py"), "betas": [1, 4, 8]},
                            {"name": "looper", "code": "def decide(o):\n    while True:\n        pass\n", "betas": [2]}])
    r = search_controllers(cfg, progress=False)
    summary = json.loads((r.out / "summary.json").read_text())
    for split in ("search", "heldout"):
        ref = {p["beta"]: p for p in summary["curves"][split] if p["controller"] == "sc"}
        mine = {p["beta"]: p for p in summary["curves"][split] if p["controller"] == "code-sc"}
        assert set(mine) == {1.0, 4.0, 8.0}
        for b, p in mine.items():
            for key in ("accuracy", "tokens", "ci", "sequential_tokens"):
                assert p[key] == ref[b][key], (split, b, key)
    assert any(p["controller"] == "code-sc" for p in r.curves) and all(p["controller"] != "looper" for p in r.curves)
    fails = [f for f in r.code_failures if f["controller"] == "looper"]
    assert {f["split"] for f in fails} == {"search", "heldout"} and all(f["reason"] == "timeout" for f in fails)
    html = (r.out / "report.html").read_text()
    assert "code-sc" in html and "2 code controller evaluation(s) failed and have no point" in html
    with pytest.raises(Exception, match=r"code\[0\]: .*defines no top-level"):
        search_controllers(_syn_config(tmp_path, code=[{"code": "x = 1"}]), progress=False)


def test_the_agent_proposes_code_and_malformed_proposals_are_rejected(tmp_path: Path):
    from agent_server import AgentServer
    from fixed_server import server_model

    from ttclab.search.controller_search import search_controllers

    loop = "def decide(o):\n    while True:\n        pass\n"
    first = json.dumps({"candidates": [{"width": 4}], "controllers": [
        {"name": "agent-sc", "betas": [1, 4], "code": SC_SOURCE},
        {"name": "broken", "betas": [1], "code": "def decide(obs:\n"},
        {"name": "nodecide", "code": "def choose(obs):\n    return 'BRANCH'\n"},
        {"name": "huge", "code": "def decide(o):\n    return 'BRANCH'\n" + "#" * 17000},
        {"name": "number", "code": 42},
        {"name": "file", "file": "/etc/passwd"},
        "not an object"]})
    second = json.dumps({"controllers": [{"name": "looper", "betas": [2], "code": loop}]})
    with AgentServer([first, "no json here", second, '{"controllers": {"code": "x"}}']) as srv:
        cfg = _syn_config(tmp_path, method={"name": "agent", "evaluations": 8, "batch": 2},
                          agent={"model": server_model(srv.base_url), "code": True})
        r = search_controllers(cfg, progress=False)
        asked = len(srv.prompts)
        prompts = [json.loads(x)[-1]["content"] for x in srv.prompts]
        assert "decide(observation) -> action" in prompts[0] and '{"controllers": [' in prompts[0]
        assert "code controller agent-sc: beta 1: acc" in prompts[1]  # its results fed back
        summary = json.loads((r.out / "summary.json").read_text())
        reasons = [why for what, why in summary["rejected"]]
        assert any("does not parse" in x for x in reasons)
        assert any("defines no top-level function decide" in x for x in reasons)
        assert any("at most 16000" in x for x in reasons)
        assert any("non-empty string" in x for x in reasons)
        assert any("a file is not read from a proposal" in x for x in reasons)
        assert any("must be an object" in x for x in reasons)
        assert any("no JSON object" in x for x in reasons)
        assert any("'controllers' must be a list" in x for x in reasons)
        names = [t["name"] for t in r.code_trials]
        assert names[:2] == ["agent-sc", "looper"]
        ref = {p["beta"]: p for p in summary["curves"]["search"] if p["controller"] == "sc"}
        for p in r.code_trials[0]["search"]:  # the proposed SC is SC, exactly
            assert (p["accuracy"], p["tokens"]) == (ref[p["beta"]]["accuracy"], ref[p["beta"]]["tokens"])
        assert [f["reason"] for f in r.code_trials[1]["failures"]] == ["timeout"]
        assert any(f["controller"] == "looper" and f["split"] == "search" for f in r.code_failures)
        held = [p for p in summary["heldout_points"] if p.get("proposed")]
        assert {p["controller"] for p in held} == {"agent-sc"}  # the failed one is not carried to held-out
        # a re-run replays the replies and the evaluated code: nothing asked, nothing re-run
        again = search_controllers(cfg, progress=False)
        assert len(srv.prompts) == asked
        assert [t["key"] for t in again.code_trials] == [t["key"] for t in r.code_trials]
