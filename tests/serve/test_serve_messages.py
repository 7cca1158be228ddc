"""What a new user of `ttclab serve` reads: request errors (one line naming the field and the fix, the right
status, an OpenAI error body), the server's log lines, and the labels of recorded traffic."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_support import Upstream, free_port, openai, serving, upstream_model

MSG = [{"role": "user", "content": "What is 2 + 2?"}]
TTCLAB = [sys.executable, "-m", "ttclab"]


def _raw(srv: Any, body: Any, path: str = "chat/completions", *, content: bytes | None = None) -> tuple[int, dict]:
    """POST a body as is (no client-side validation) and return (status, the error object)."""
    r = httpx.post(f"{srv.base_url}/{path}", content=content if content is not None else json.dumps(body).encode(),
                   headers={"content-type": "application/json"}, timeout=30)
    data = r.json()
    assert set(data) == {"error"} and set(data["error"]) == {"message", "type", "param", "code"}, data
    assert "\n" not in data["error"]["message"] and "Traceback" not in r.text
    return r.status_code, data["error"]


def test_request_errors_name_the_field_and_the_fix(upstream: Upstream) -> None:
    config = {"models": [upstream_model(upstream)], "pipelines": {}}
    with serving(config) as srv:
        # field names that begin with a type's name (stream, stop, strategy) are named, not dropped
        status, err = _raw(srv, {"model": "up-model", "messages": MSG, "stream": "yes"})
        assert status == 400 and err["param"] == "stream"
        assert err["message"] == "stream: should be a valid boolean (got 'yes')"
        status, err = _raw(srv, {"model": "up-model", "messages": MSG, "stream_options": {"include_usage": "y"}})
        assert err["param"] == "stream_options.include_usage"
        status, err = _raw(srv, {"model": "up-model", "messages": MSG, "ttc": {"strategy": 4}})
        assert err["param"] == "ttc.strategy" and err["message"].startswith("ttc.strategy: should be a valid string")
        # a union field says everything it takes, once
        status, err = _raw(srv, {"model": "up-model", "messages": MSG, "stop": 5})
        assert err["message"] == "stop: should be a string or a list of up to 4 strings (got 5)"
        status, err = _raw(srv, {"model": "up-model", "messages": [{"role": "user", "content": 5}]})
        assert err["param"] == "messages.0.content" and "a list of text parts" in err["message"]
        status, err = _raw(srv, {"model": "up-model", "prompt": 5}, "completions")
        assert err["message"] == "prompt: should be a string or a list of strings (got 5)"
        # an object field that is not an object: an example, no class names
        status, err = _raw(srv, {"model": "up-model", "messages": MSG, "ttc": "majority"})
        assert err["message"] == """ttc: should be a JSON object such as {"strategy": "majority", "k": 4} (got 'majority')"""
        assert "TTCSpec" not in err["message"]
        # a misspelt ttc field is named, with the right spelling and the fields ttc takes
        status, err = _raw(srv, {"model": "up-model", "messages": MSG, "ttc": {"strategyy": "majority"}})
        assert status == 400 and err["param"] == "ttc.strategyy"
        assert "did you mean strategy?" in err["message"] and "ttc takes strategy, pipeline, k" in err["message"]
        # missing and empty fields name what to send
        status, err = _raw(srv, {"model": "up-model"})
        assert err["param"] == "messages" and '"messages": [{"role": "user"' in err["message"]
        status, err = _raw(srv, {"messages": MSG})
        assert err["param"] == "model" and "GET /v1/models" in err["message"]
        status, err = _raw(srv, {"model": "up-model"}, "completions")
        assert err["param"] == "prompt" and '"prompt": "..."' in err["message"]
        status, err = _raw(srv, {"model": "up-model", "messages": []})
        assert err["message"].startswith("messages: should not be empty; send at least one")
        status, err = _raw(srv, {"model": "", "messages": MSG})
        assert err["message"] == "model: should not be empty (got '')"
        # bodies that are not a JSON object
        status, err = _raw(srv, None, content=b'{"model": "up-model", "messages": [}')
        assert status == 400 and err["code"] == "invalid_json"
        assert err["message"] == "the request body is not valid JSON (Expecting value at line 1 column 36); send a JSON object"
        status, err = _raw(srv, None, content=b"")
        assert status == 400 and err["code"] == "invalid_json" and "is empty" in err["message"]
        status, err = _raw(srv, [1, 2], "completions")
        assert status == 400 and err["message"].startswith("the request body must be a JSON object (got an array)")
        assert '"prompt"' in err["message"]  # the example is the endpoint's
        # strategy errors name the field the strategy came from (the model alias or ttc)
        status, err = _raw(srv, {"model": "up-model:pipeline/nope", "messages": MSG})
        assert status == 400 and err["param"] == "model"
        assert err["message"] == "model: unknown pipeline 'nope'; this server has: none configured"
        status, err = _raw(srv, {"model": "up-model", "messages": MSG, "ttc": {"pipeline": "nope"}})
        assert err["param"] == "ttc.pipeline" and err["message"].startswith("ttc.pipeline: unknown pipeline")
        status, err = _raw(srv, {"model": "up-model:best_of_n@2", "messages": MSG})
        assert err["param"] == "model" and err["message"].startswith("model: best_of_n needs a reward model")
        status, err = _raw(srv, {"model": "up-model", "messages": MSG, "ttc": {"strategy": "best_of_n"}})
        assert err["param"] == "ttc.strategy"
        status, err = _raw(srv, {"model": "up-model", "messages": MSG, "ttc": {"strategy": "pipeline"}})
        assert err["param"] == "ttc.pipeline" and """send "ttc": {"pipeline": "NAME"}""" in err["message"]
        status, err = _raw(srv, {"model": "up-model", "messages": MSG, "ttc": {"k": 3}})
        assert err["param"] == "ttc.k" and "also set ttc.strategy" in err["message"]
        # the official client shows the same message
        with pytest.raises(openai.BadRequestError) as info:
            srv.client().chat.completions.create(model="up-model:majorty@4", messages=MSG)
        assert info.value.body["message"].startswith("model: unknown strategy 'majorty'; did you mean majority?")
    assert upstream.requests == 0  # nothing invalid reached the upstream


def test_log_lines_say_what_happened(upstream: Upstream, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ttclab.serve")
    with serving({"models": [upstream_model(upstream)], "aliases": ["majority@2"]}, record=None) as srv:
        r = srv.client().chat.completions.create(model="up-model:majority@2", messages=MSG, max_tokens=16)
        srv.client().chat.completions.create(model="up-model", messages=MSG, max_tokens=16)
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "ttclab.serve"]
    assert lines[0] == ("ttclab serve: up-model; default strategy none; GET /v1/models lists 2 model ids "
                        "(aliases such as up-model:majority@2); not recording (--record DIR)")
    tokens = r.usage.total_tokens
    assert any(ln.startswith(f"{r.id} up-model:majority@2: answered (2 calls, {tokens} tokens) in ") for ln in lines)
    assert len(lines) == 3  # the start line, the strategy's two; a pass-through success is quiet

    # an upstream that is down: pass-through and strategy requests, plain and streamed, log a warning with why
    caplog.clear()
    dead = {"backend": "openai", "name": "up-model",
            "options": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "max_retries": 0}}
    with serving({"models": [dead], "aliases": ["majority@2"]}) as srv:
        client = srv.client()
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="up-model", messages=MSG, max_tokens=8)
        assert info.value.status_code == 502 and "connection" in info.value.body["message"]
        with pytest.raises(openai.APIError):
            list(client.chat.completions.create(model="up-model:majority@2", messages=MSG, max_tokens=8, stream=True))
    warnings = [rec for rec in caplog.records if rec.name == "ttclab.serve" and rec.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all(": error 502 in " in w.getMessage() and "the model call failed" in w.getMessage() for w in warnings)
    assert " up-model:none: " in warnings[0].getMessage() and " up-model:majority@2: " in warnings[1].getMessage()
    assert not any(": answered (" in rec.getMessage() for rec in caplog.records)  # a failed stream is not "answered"


def test_completions_traffic_is_labelled_as_such(upstream: Upstream, tmp_path: Path) -> None:
    from ttclab.store.reader import list_runs

    with serving({"models": [upstream_model(upstream)]}, record=tmp_path / "rec") as srv:
        srv.client().chat.completions.create(model="up-model", messages=MSG, max_tokens=8)
        srv.client().completions.create(model="up-model", prompt="2 + 2 =", max_tokens=8)
    labels = sorted(run.meta["model"]["label"] for run in list_runs(tmp_path / "rec"))
    assert labels == ["up-model (none)", "up-model (none, completions)"]  # two runs a reader can tell apart


def test_cli_start_errors_are_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = subprocess.run([*TTCLAB, "serve", "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == (f"ttclab: error: --port {port}: cannot listen on 127.0.0.1:{port} (Address already in use); "
                        "another server is listening there: stop it or pick another --port\n")
    p = subprocess.run([*TTCLAB, "serve", "--store", str(tmp_path / "rec")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr == (f"ttclab: error: --store: ttclab serve records with --record {tmp_path / 'rec'} "
                        f"(then ttclab runs / evaluate --store {tmp_path / 'rec'} read it)\n")
    p = subprocess.run([*TTCLAB, "serve", str(tmp_path / "nope.yaml")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "give the path of a serve YAML config" in p.stderr


def test_a_gateway_started_before_its_upstream_works_once_the_upstream_is_up() -> None:
    """vLLM takes minutes to load: the gateway's first requests fail with 502 and the reason, later ones work
    (the backend remembers no failure in a gateway, unlike a batch run that stops at the first)."""
    port = free_port()
    dead = {"backend": "openai", "name": "up-model",
            "options": {"base_url": f"http://127.0.0.1:{port}/v1", "max_retries": 0}}
    with serving({"models": [dead]}) as srv:
        client = srv.client()
        for _ in range(2):
            with pytest.raises(openai.APIStatusError) as info:
                client.chat.completions.create(model="up-model", messages=MSG, max_tokens=8)
            assert info.value.status_code == 502
            assert "nothing is listening there" in info.value.body["message"]
            assert "the next request tries again" in info.value.body["message"]
        with Upstream(port=port):
            r = client.chat.completions.create(model="up-model", messages=MSG, max_tokens=8)
            assert r.choices[0].message.content
            r = client.chat.completions.create(model="up-model:majority@2", messages=MSG, max_tokens=8)
            assert r.choices[0].message.content
