"""`ttclab serve` over a local OpenAI-compatible upstream, driven by the official openai client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx
import pytest
from serve_support import Upstream, openai, serving, upstream_model

MSG = [{"role": "user", "content": "What is 2 + 2?"}]


def replies(up: Upstream, entries: list[dict]) -> list[str]:
    """Every text the upstream sent for these logged requests (recomputed from prompt and seed)."""
    out = []
    for e in entries:
        for j in range(e["n"]):
            seed = None if e["seed"] is None else e["seed"] + j
            out.append(up.reply(e["prompt"], seed, 64)[0])
    return out


def answer(text: str) -> str:
    return text.rsplit("Answer:", 1)[1].strip()


def test_passthrough_chat_and_completions(upstream: Upstream) -> None:
    with serving({"models": [upstream_model(upstream)]}) as srv:
        client = srv.client()
        r = client.chat.completions.create(model="up-model", messages=MSG, max_tokens=64, seed=7)
        [e] = upstream.log
        assert e["path"] == "/v1/chat/completions" and e["n"] == 1
        assert r.choices[0].message.content == replies(upstream, [e])[0]
        assert r.object == "chat.completion" and r.choices[0].finish_reason == "stop" and r.id.startswith("chatcmpl-")
        assert r.usage.prompt_tokens == len(e["prompt"].split()) and r.usage.completion_tokens == 8
        assert r.model_extra["ttc_usage"]["strategy"] == "none"
        again = client.chat.completions.create(model="up-model", messages=MSG, max_tokens=64, seed=7)
        assert again.choices[0].message.content == r.choices[0].message.content  # the client's seed is honoured
        upstream.reset()
        c = client.completions.create(model="up-model", prompt="2 + 2 =", max_tokens=64, seed=3)
        [e] = upstream.log
        assert e["path"] == "/v1/completions" and c.object == "text_completion"
        assert c.choices[0].text == replies(upstream, [e])[0]
        upstream.reset()
        c = client.completions.create(model="up-model", prompt=["1 + 1 =", "2 + 2 ="], max_tokens=64, n=2, seed=3)
        assert [ch.index for ch in c.choices] == [0, 1, 2, 3]  # prompt-major, n choices each
        assert sorted(e["prompt"] for e in upstream.log) == ["1 + 1 =", "2 + 2 ="]
        second = next(e for e in upstream.log if e["prompt"] == "2 + 2 =")
        assert [ch.text for ch in c.choices[2:]] == replies(upstream, [second])


def test_streaming_passthrough_is_token_by_token(upstream: Upstream) -> None:
    upstream.token_delay_s = 0.02
    with serving({"models": [upstream_model(upstream)]}) as srv:
        client = srv.client()
        plain = client.chat.completions.create(model="up-model", messages=MSG, max_tokens=64, seed=11)
        stream = client.chat.completions.create(model="up-model", messages=MSG, max_tokens=64, seed=11, stream=True,
                                                stream_options={"include_usage": True})
        events = list(stream)
        deltas = [ev.choices[0].delta.content for ev in events if ev.choices and ev.choices[0].delta.content]
        assert len(deltas) == 8  # one event per upstream token, not one blob at the end
        assert "".join(deltas) == plain.choices[0].message.content
        assert all(ev.object == "chat.completion.chunk" for ev in events)
        assert [ev.choices[0].finish_reason for ev in events if ev.choices and ev.choices[0].finish_reason] == ["stop"]
        last = events[-1]
        assert last.choices == [] and last.usage.completion_tokens == 8 and last.usage.prompt_tokens > 0
        assert upstream.log[-1]["stream"] is True
        no_usage = list(client.chat.completions.create(model="up-model", messages=MSG, max_tokens=64, stream=True))
        assert all(ev.usage is None for ev in no_usage)
        text = "".join(ev.choices[0].text for ev in client.completions.create(
            model="up-model", prompt="2 + 2 =", max_tokens=64, seed=5, stream=True))
        assert text == client.completions.create(model="up-model", prompt="2 + 2 =", max_tokens=64, seed=5).choices[0].text


def test_strategy_by_alias_and_extra_body(upstream: Upstream) -> None:
    with serving({"models": [upstream_model(upstream)], "verifier": "numeric"}) as srv:
        client = srv.client()
        r = client.chat.completions.create(model="up-model:majority@8", messages=MSG, max_tokens=64)
        texts = replies(upstream, upstream.log)
        assert len(texts) == 8 and upstream.requests == 1 and upstream.log[0]["n"] == 8  # one request with n = 8
        counts = Counter(answer(t) for t in texts)
        top = max(counts.values())
        chosen = answer(r.choices[0].message.content)
        assert counts[chosen] == top
        ttc = r.model_extra["ttc_usage"]
        assert ttc["strategy"] == "majority@8" and ttc["candidates"] == 8
        assert ttc["choices"][0]["answers"] == dict(counts) and ttc["choices"][0]["answer"] == chosen
        assert r.usage.completion_tokens == 8 * 8
        # extra_body ttc wins over the alias
        upstream.reset()
        r = client.chat.completions.create(model="up-model:majority@8", messages=MSG, max_tokens=64,
                                           extra_body={"ttc": {"strategy": "majority", "k": 3}})
        assert sum(e["n"] for e in upstream.log) == 3 and r.model_extra["ttc_usage"]["strategy"] == "majority@3"
        # the config default applies without alias or ttc
        upstream.reset()
        client.chat.completions.create(model="up-model", messages=MSG, max_tokens=64)
        assert sum(e["n"] for e in upstream.log) == 1


def test_n_for_strategies_and_upstreams_without_n() -> None:
    with Upstream(supports_n=False) as up, serving({"models": [upstream_model(up)], "verifier": "numeric"}) as srv:
        client = srv.client()
        r = client.chat.completions.create(model="up-model", messages=MSG, max_tokens=64, n=3, seed=1)
        assert [c.index for c in r.choices] == [0, 1, 2]
        singles = [e for e in up.log if e["n"] == 1]
        assert len(singles) == 3  # the upstream refused n: three parallel single requests
        assert sorted(c.message.content for c in r.choices) == sorted(replies(up, singles))
        assert r.usage.completion_tokens == 3 * 8
        up.reset()
        r = client.chat.completions.create(model="up-model:majority@4", messages=MSG, max_tokens=64, n=2)
        assert len(r.choices) == 2 and len(r.model_extra["ttc_usage"]["choices"]) == 2
        assert sum(e["n"] for e in up.log if e["n"] == 1) == 8  # 2 independent runs x 4 samples
        assert r.usage.completion_tokens == 8 * 8
        stream = client.chat.completions.create(model="up-model:majority@4", messages=MSG, max_tokens=64, n=2,
                                                stream=True)
        text: dict[int, str] = {}
        for ev in stream:
            for ch in ev.choices:
                text[ch.index] = text.get(ch.index, "") + (ch.delta.content or "")
        assert sorted(text) == [0, 1] and all("Answer:" in t for t in text.values())


def test_live_strategies_and_pipeline(upstream: Upstream) -> None:
    from serve_support import REPO

    config = {"models": [upstream_model(upstream)], "verifier": "numeric",
              "reward": {"url": f"http://127.0.0.1:{upstream.port}/pooling", "model": "rm"},
              "aliases": ["majority@4", "best_of_n@4"],
              "pipelines": {"reflect-then-aggregate": str(REPO / "configs/pipelines/reflect-then-aggregate.yaml")}}
    with serving(config) as srv:
        client = srv.client()
        ids = {m.id for m in client.models.list().data}
        assert {"up-model", "up-model:majority@4", "up-model:best_of_n@4",
                "up-model:pipeline/reflect-then-aggregate"} <= ids
        r = client.chat.completions.create(model="up-model:best_of_n@4", messages=MSG, max_tokens=64)
        ttc = r.model_extra["ttc_usage"]
        assert ttc["by_role"]["generate"]["calls"] == 4 and ttc["by_role"]["reward"]["calls"] == 4
        scored = [e for e in upstream.log if e["path"] == "/pooling"]
        best = max(scored, key=lambda e: (int.from_bytes(__import__("hashlib").sha256(json.dumps(
            ["reward", json.dumps(json.loads(e["prompt"])["messages"])], sort_keys=True).encode()).digest()[:8],
            "little") % 1000))
        assert json.loads(best["prompt"])["messages"][-1]["content"] == r.choices[0].message.content
        assert r.usage.prompt_tokens == sum(v["prompt_tokens"] for v in ttc["by_role"].values())
        # adaptive consistency stops once the Beta rule is met: every answer equal -> 2 rounds of 2
        upstream.answers = 1
        upstream.reset()
        r = client.chat.completions.create(model="up-model", messages=MSG, max_tokens=64,
                                           extra_body={"ttc": {"strategy": "adaptive_consistency", "k": 16}})
        assert r.model_extra["ttc_usage"]["calls"] == 4 and sum(e["n"] for e in upstream.log) == 4
        upstream.answers = 3
        r = client.chat.completions.create(model="up-model:first_finish@4", messages=MSG, max_tokens=64)
        assert r.model_extra["ttc_usage"]["strategy"] == "first_finish@4"
        r = client.chat.completions.create(model="up-model:pipeline/reflect-then-aggregate", messages=MSG,
                                           max_tokens=32)
        roles = r.model_extra["ttc_usage"]["by_role"]
        assert {"generate", "critic", "reviser", "judge"} <= set(roles)
        assert r.usage.completion_tokens == sum(v["completion_tokens"] for v in roles.values())


def _error(fn) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as info:
        fn()
    return info.value


def test_malformed_requests(upstream: Upstream) -> None:
    config = {"models": [upstream_model(upstream)], "limits": {"max_n": 4, "max_tokens": 100, "max_k": 8,
                                                               "max_body_bytes": 4096}}
    with serving(config) as srv:
        client = srv.client()
        create = client.chat.completions.create
        err = _error(lambda: create(model="up-model", messages=MSG, temperature="hot"))
        assert err.status_code == 400 and err.body["param"] == "temperature" and "number" in err.body["message"]
        err = _error(lambda: create(model="up-model", messages="hello"))
        assert err.status_code == 400 and err.body["param"] == "messages"
        err = _error(lambda: create(model="up-model:majorty@4", messages=MSG))
        assert err.status_code == 400 and "did you mean majority" in err.body["message"]
        assert err.body["code"] == "unknown_strategy"
        err = _error(lambda: create(model="up-model", messages=MSG, extra_body={"ttc": {"pipeline": "nope"}}))
        assert err.status_code == 400 and err.body["param"] == "ttc.pipeline"
        err = _error(lambda: create(model="up-model", messages=MSG, n=5))
        assert err.status_code == 400 and err.body["param"] == "n" and "cap of 4" in err.body["message"]
        err = _error(lambda: create(model="up-model", messages=MSG, max_tokens=101))
        assert err.status_code == 400 and err.body["param"] == "max_tokens"
        err = _error(lambda: create(model="up-model:majority@16", messages=MSG))
        assert err.status_code == 400 and "cap of 8" in err.body["message"]
        err = _error(lambda: create(model="other", messages=MSG))
        assert err.status_code == 404 and err.body["code"] == "model_not_found"
        assert "did you mean" not in err.body["message"] and "up-model:" in err.body["message"]  # a real example
        err = _error(lambda: create(model="up-modle:majority@4", messages=MSG))
        assert err.status_code == 404 and "did you mean 'up-model'?" in err.body["message"]
        err = _error(lambda: create(model="up-model", messages=[{"role": "user", "content": "x" * 5000}]))
        assert err.status_code == 413
        err = _error(lambda: create(model="up-model", messages=MSG, logprobs=True))
        assert err.status_code == 400 and err.body["param"] == "logprobs"  # refused, not silently ignored
        # unknown fields are tolerated
        r = create(model="up-model", messages=MSG, max_tokens=16, user="u1", extra_body={"logit_bias": {}, "foo": 1})
        assert r.choices[0].message.content
        # bad JSON, with the raw HTTP client
        raw = httpx.post(f"{srv.base_url}/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
        body = raw.json()
        assert raw.status_code == 400 and set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["code"] == "invalid_json" and "Traceback" not in raw.text
        assert upstream.requests == 1  # nothing invalid reached the upstream


def test_api_keys(upstream: Upstream, tmp_path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("# gateway keys\nsk-file-1\n")
    os.environ["TTCLAB_TEST_SERVE_KEYS"] = "sk-env-1,sk-env-2"
    try:
        config = {"models": [upstream_model(upstream)],
                  "auth": {"keys_env": "TTCLAB_TEST_SERVE_KEYS", "keys_file": str(keys)}}
        with serving(config) as srv:
            err = _error(lambda: srv.client().models.list())
            assert err.status_code == 401 and isinstance(err, openai.AuthenticationError)
            err = _error(lambda: srv.client("sk-wrong").chat.completions.create(model="up-model", messages=MSG))
            assert err.status_code == 401 and err.body["code"] == "invalid_api_key"
            assert upstream.requests == 0
            for key in ("sk-env-2", "sk-file-1"):
                assert srv.client(key).chat.completions.create(model="up-model", messages=MSG, max_tokens=8).choices
            assert httpx.get(f"http://127.0.0.1:{srv.port}/health").status_code == 200  # health needs no key
    finally:
        del os.environ["TTCLAB_TEST_SERVE_KEYS"]


def test_429_when_the_queue_is_full() -> None:
    with Upstream(delay_s=1.0) as up, serving({"models": [upstream_model(up)],
                                               "limits": {"max_concurrency": 1, "max_queue": 1,
                                                          "retry_after_s": 3}}) as srv:
        results: list = []

        def call() -> None:
            try:
                results.append(srv.client().chat.completions.create(model="up-model", messages=MSG, max_tokens=8))
            except openai.APIStatusError as exc:
                results.append(exc)

        threads = [threading.Thread(target=call) for _ in range(2)]  # one working, one queued
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while up.in_flight < 1 or srv.app.admission.waiting < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        err = _error(lambda: srv.client().chat.completions.create(model="up-model", messages=MSG, max_tokens=8))
        assert isinstance(err, openai.RateLimitError) and err.response.headers["retry-after"] == "3"
        for t in threads:
            t.join()
        assert all(not isinstance(r, Exception) for r in results)  # the queued one was answered
        assert up.requests == 2


def test_client_disconnect_cancels_upstream_calls() -> None:
    with Upstream(delay_s=5.0) as up, serving({"models": [upstream_model(up)]}) as srv:
        client = srv.client()
        stream = client.chat.completions.create(model="up-model:majority@4", messages=MSG, max_tokens=8, stream=True,
                                                extra_body={"ttc": {"k": 4}})
        first = next(iter(stream))  # the role event arrives at once; the strategy is working
        assert first.choices[0].delta.role == "assistant"
        deadline = time.monotonic() + 5
        while up.in_flight < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        stream.close()  # the client goes away mid-stream
        deadline = time.monotonic() + 5
        while up.disconnects < 1 or up.in_flight:
            assert time.monotonic() < deadline, (up.disconnects, up.in_flight)
            time.sleep(0.02)
        assert up.completed == 0 and all(e.get("disconnected") for e in up.log)
        # not streamed: a client that times out cancels the calls too
        up.reset()
        with pytest.raises(openai.APITimeoutError):
            srv.client(timeout=0.5).chat.completions.create(model="up-model", messages=MSG, max_tokens=8, n=2)
        deadline = time.monotonic() + 5
        while up.disconnects < 1 or up.in_flight:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert up.completed == 0
        assert srv.app.counts["active"] == 0  # the slots were given back


def test_recorded_traffic_evaluates_offline(upstream: Upstream, tmp_path) -> None:
    from ttclab.analysis import evaluate_runs
    from ttclab.store.journal import read_table
    from ttclab.store.reader import list_runs

    store = tmp_path / "traffic"
    sent = []
    with serving({"models": [upstream_model(upstream)], "verifier": "numeric"}, record=store) as srv:
        client = srv.client()
        for i in range(6):
            ref = str(i % 3)
            r = client.chat.completions.create(model="up-model:majority@4", messages=[
                {"role": "user", "content": f"question {i}"}], max_tokens=64, extra_body={"ttc": {"reference": ref}})
            sent.append((r, ref))
        unlabelled = client.chat.completions.create(model="up-model:majority@4", messages=MSG, max_tokens=64, n=2)
        plain = client.chat.completions.create(model="up-model", messages=MSG, max_tokens=64)
    runs = {r.meta["pipeline"]["name"]: r for r in list_runs(store)}
    assert set(runs) == {"majority@4", "none"}
    run = runs["majority@4"]
    calls = read_table(run.path, "calls").to_pylist()
    for r, _ in [*sent, (unlabelled, None)]:  # usage equals the recorded calls of the request
        mine = [c for c in calls if c["question_id"].startswith(r.id + "-")]
        assert len(mine) == r.model_extra["ttc_usage"]["calls"]
        assert sum(c["prompt_tokens"] for c in mine) == r.usage.prompt_tokens
        assert sum(c["completion_tokens"] for c in mine) == r.usage.completion_tokens
    plain_calls = read_table(runs["none"].path, "calls").to_pylist()
    assert sum(c["completion_tokens"] for c in plain_calls) == plain.usage.completion_tokens
    ev = evaluate_runs([str(run.path)], store=store)
    [row] = [x for x in ev.rows() if x["strategy"] == "majority@4"]
    expected = [answer(r.choices[0].message.content) == ref for r, ref in sent]
    assert row["accuracy"] == pytest.approx(sum(expected) / len(expected))
    assert row["completion_tokens"] > 0
    assert "2 of 8 served answers carry no reference" in row["notes"]  # the n=2 request: costs, no accuracy
    # `ttclab runs` counts every request, the unlabelled one's tokens too, and says so
    listed = subprocess.run([sys.executable, "-m", "ttclab", "--store", str(store), "runs", "--format", "json"],
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    [line] = [x for x in json.loads(listed.stdout) if x["run"] == run.run_id]
    assert line["samples"] == 8 and line["acc"] == pytest.approx(sum(expected) / len(expected))
    assert line["completion tokens"] == sum(r.usage.completion_tokens for r, _ in [*sent, (unlabelled, None)])
    assert "2 of 8 served answers carry no reference" in listed.stderr
    # `ttclab show` lists the unlabelled answers too (they are not graded samples), and shows one of them
    shown_q = subprocess.run([sys.executable, "-m", "ttclab", "--store", str(store), "show", run.run_id, "--format",
                              "json"], capture_output=True, text=True, timeout=120)
    assert shown_q.returncode == 0, shown_q.stderr
    assert "samples 8  errors 0" in shown_q.stderr and "2 of 8 served answers carry no reference" in shown_q.stderr
    per_q = {x["id"]: x for x in json.loads(shown_q.stdout)}
    ids = [f"{unlabelled.id}-{c.index}" for c in unlabelled.choices]
    for qid, choice in zip(ids, unlabelled.choices):
        assert per_q[qid]["n"] == 1 and per_q[qid]["acc"] is None
        assert per_q[qid]["answers (count)"] == f"{answer(choice.message.content)}×1"
    one = subprocess.run([sys.executable, "-m", "ttclab", "--store", str(store), "show", run.run_id, "--question",
                          ids[1]], capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr
    assert "gold: -" in one.stdout and "unlabelled" in one.stdout and "calls" in one.stdout
    from ttclab.report.build import runs_table  # the report's runs table counts them as `ttclab runs` does

    [shown] = [r for r in runs_table(ev).records() if r["run"] == run.run_id]
    assert shown["completion tokens"] == line["completion tokens"] and shown["mean accuracy"] == line["acc"]


def test_strategy_stream_keeps_alive_then_answers() -> None:
    with Upstream(delay_s=0.4) as up, serving({"models": [upstream_model(up)], "verifier": "numeric",
                                               "limits": {"keepalive_s": 0.05}}) as srv:
        body = {"model": "up-model:majority@3", "messages": MSG, "max_tokens": 64, "stream": True,
                "stream_options": {"include_usage": True}}
        with httpx.stream("POST", f"{srv.base_url}/chat/completions", json=body, timeout=30) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = [ln for ln in r.iter_lines() if ln]
        first_data = next(i for i, ln in enumerate(lines) if ln.startswith("data:"))
        keepalives = [i for i, ln in enumerate(lines) if ln.startswith(": keep-alive")]
        assert first_data < keepalives[0] and len(keepalives) >= 3  # the role at once, then comments while working
        assert lines[-1] == "data: [DONE]"
        events = [json.loads(ln[5:]) for ln in lines if ln.startswith("data:") and ln != "data: [DONE]"]
        text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
        assert events[-1]["choices"] == [] and events[-1]["ttc_usage"]["calls"] == 3
        assert events[-1]["usage"]["completion_tokens"] == 3 * 8
        # the official client reads the same stream (comments skipped)
        got = "".join(ev.choices[0].delta.content or "" for ev in srv.client().chat.completions.create(
            model="up-model:majority@3", messages=MSG, max_tokens=64, stream=True, seed=4) if ev.choices)
        assert "Answer:" in got and "Answer:" in text


def test_cancelled_request_is_recorded_as_cancelled(tmp_path) -> None:
    from ttclab.store.journal import read_table
    from ttclab.store.reader import list_runs

    with Upstream(delay_s=3.0) as up, serving({"models": [upstream_model(up)]}, record=tmp_path / "rec") as srv:
        with pytest.raises(openai.APITimeoutError):
            srv.client(timeout=0.5).chat.completions.create(model="up-model", messages=MSG, max_tokens=8)
        deadline = time.monotonic() + 5
        while up.disconnects < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    [run] = list_runs(tmp_path / "rec")
    [call] = read_table(run.path, "calls").to_pylist()
    assert call["finish_reason"] == "cancelled" and call["error"].startswith("cancelled")
    [result] = read_table(run.path, "results").to_pylist()
    assert result["verdict"] == "error" and "cancelled" in result["error"]


def test_timeout_is_504_and_cancels() -> None:
    with Upstream(delay_s=3.0) as up, serving({"models": [upstream_model(up)], "limits": {"timeout_s": 0.3}}) as srv:
        err = _error(lambda: srv.client().chat.completions.create(model="up-model", messages=MSG, max_tokens=8))
        assert err.status_code == 504 and err.body["code"] == "timeout"
        deadline = time.monotonic() + 5
        while up.disconnects < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert up.completed == 0


def test_streaming_passthrough_over_an_upstream_that_ignores_stream() -> None:
    """An upstream that answers `stream: true` with one JSON completion (no SSE events): the streamed
    answer is that completion, not an empty 200 with zero tokens."""
    from pathlib import Path

    online = str(Path(__file__).resolve().parents[1] / "online")
    if online not in sys.path:
        sys.path.insert(0, online)
    from scripted_server import ScriptedServer

    with ScriptedServer() as up, serving({"models": [{"backend": "openai", "name": "scripted",
                                                        "options": {"base_urls": [up.base_url], "max_retries": 0}}]}) as srv:
        client = srv.client()
        plain = client.chat.completions.create(model="scripted", messages=MSG, max_tokens=32, seed=3)
        events = list(client.chat.completions.create(model="scripted", messages=MSG, max_tokens=32, seed=3, stream=True,
                                                     stream_options={"include_usage": True}))
        text = "".join(ev.choices[0].delta.content or "" for ev in events if ev.choices)
        assert text == plain.choices[0].message.content and "Answer:" in text
        assert events[-1].usage.completion_tokens == plain.usage.completion_tokens > 0
        streamed = "".join(ev.choices[0].text for ev in client.completions.create(
            model="scripted", prompt="2 + 2 =", max_tokens=32, seed=5, stream=True) if ev.choices)
        assert streamed == client.completions.create(model="scripted", prompt="2 + 2 =", max_tokens=32, seed=5).choices[0].text


def test_streaming_passthrough_over_an_upstream_that_is_down() -> None:
    """Streamed or not, a pass-through to an upstream with nothing listening says where and what to do."""
    from upstream import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    dead = {"backend": "openai", "name": "up-model", "options": {"base_url": url, "max_retries": 3}}
    with serving({"models": [dead]}) as srv:
        client = srv.client()
        with pytest.raises(openai.APIStatusError) as plain:
            client.chat.completions.create(model="up-model", messages=MSG, max_tokens=8)
        t0 = time.monotonic()
        with pytest.raises(openai.APIError) as streamed:
            list(client.chat.completions.create(model="up-model", messages=MSG, max_tokens=8, stream=True))
        assert time.monotonic() - t0 < 1.0  # refused: no retries with backoff
    for exc in (plain.value, streamed.value):
        assert url in exc.message and "nothing is listening there: start the server or fix base_url" in exc.message


def test_a_recording_that_cannot_open_is_a_503_naming_why(upstream: Upstream, tmp_path, caplog) -> None:
    store = tmp_path / "traffic"
    with serving({"models": [upstream_model(upstream)]}, record=store) as srv:
        srv.client().chat.completions.create(model="up-model:majority@2", messages=MSG, max_tokens=16)
    [run_dir] = [p for p in store.iterdir() if p.name.startswith("serve-majority-2")]
    journal = run_dir / "serve_questions.jsonl"
    journal.write_bytes(journal.read_bytes().replace(b"question", b"qUestion", 1))  # damaged, no copy to recover from
    (run_dir / "questions.parquet").unlink()
    with serving({"models": [upstream_model(upstream)]}, record=store) as srv:
        with pytest.raises(openai.APIStatusError) as exc:
            srv.client().chat.completions.create(model="up-model:majority@2", messages=MSG, max_tokens=16)
        with pytest.raises(openai.APIStatusError) as again:  # a retry is told the same (the run is not left locked)
            srv.client().chat.completions.create(model="up-model:majority@2", messages=MSG, max_tokens=16)
        ok = srv.client().chat.completions.create(model="up-model", messages=MSG, max_tokens=16)  # other runs record
    assert exc.value.status_code == again.value.status_code == 503
    message = exc.value.body["message"]
    assert message.startswith(f"cannot record this request: {journal}:1: damaged") and "move" in message
    assert again.value.body["message"] == message
    assert ok.choices[0].message.content
    assert "Traceback" not in caplog.text
