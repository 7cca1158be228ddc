"""The `ttclab serve` command as a real subprocess: starts, answers, errors in one line, stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from serve_support import Upstream, free_port, openai, upstream_model

TTCLAB = [sys.executable, "-m", "ttclab"]


def test_serve_command(tmp_path: Path) -> None:
    with Upstream() as up:
        config = tmp_path / "serve.yaml"
        config.write_text(yaml.safe_dump({"models": [upstream_model(up)], "auth": {"keys_env": "TTCLAB_KEYS"},
                                          "aliases": ["majority@2"]}))
        port = free_port()
        env = {**os.environ, "TTCLAB_KEYS": "sk-1"}
        proc = subprocess.Popen([*TTCLAB, "serve", str(config), "--port", str(port), "--record", str(tmp_path / "rec"),
                                 "--access-log"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health").json()["status"] == "ok":
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-1", max_retries=0)
            assert "up-model:majority@2" in {m.id for m in client.models.list().data}
            r = client.chat.completions.create(model="up-model:majority@2", messages=[{"role": "user", "content": "x"}],
                                               max_tokens=16)
            assert r.model_extra["ttc_usage"]["calls"] == 2
        finally:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        # a strategy request logs a line as it starts and as it ends; --access-log adds uvicorn's per request
        assert f"{r.id} up-model:majority@2: 1 choice(s) started" in err
        assert f"{r.id} up-model:majority@2: answered (2 calls, {r.usage.total_tokens} tokens) in " in err
        # ... and where to point the client
        assert f"ttclab serve: up-model at http://127.0.0.1:{port}/v1 (the OpenAI client's base_url; api_key: one of " \
               "the accepted keys); default strategy none; GET /v1/models lists 2 model ids " \
               f"(aliases such as up-model:majority@2); recording every request to {tmp_path / 'rec'}; " \
               "1 API key(s) accepted" in err  # the startup line says what is served and where it is recorded
        assert '"GET /v1/models HTTP/1.1" 200' in out  # uvicorn writes its access lines to stdout
        [run] = list((tmp_path / "rec").iterdir())
        assert (run / "questions.parquet").exists() and (run / "samples").is_dir()
        p = subprocess.run([*TTCLAB, "evaluate", "--store", str(tmp_path / "rec")], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stderr
        assert "majority@2" in p.stdout  # the recorded traffic is a strategy point with its ledger


def test_startup_line_says_where_clients_point() -> None:
    import socket

    from ttclab.serve import client_urls

    assert client_urls("127.0.0.1", 8000) == ("http://127.0.0.1:8000/v1", None)
    assert client_urls("::1", 8000) == ("http://[::1]:8000/v1", None)
    assert client_urls("0.0.0.0", 8080) == ("http://127.0.0.1:8080/v1", f"http://{socket.gethostname()}:8080/v1")


def test_shipped_configs_load() -> None:
    from serve_support import REPO

    from ttclab.serve.config import load_serve_config
    from ttclab.serve.gateway import Gateway

    os.environ.setdefault("TTCLAB_SERVE_KEYS", "sk-test")
    for name in ("serve_embedded.yaml", "serve_openai.yaml"):
        gw = Gateway(load_serve_config(REPO / "configs" / name))  # pipelines compile, aliases parse
        ids = [m for m, _ in gw.model_ids()]
        assert any(":pipeline/reflect-then-aggregate" in m for m in ids)


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("models: [{backend: llamacpp, name: smollm2-135m}]\nlimits: {max_n: zero}\n")
    p = subprocess.run([*TTCLAB, "serve", str(config)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0 and "limits.max_n" in p.stderr
    config.write_text("models: [{backend: llamacpp, name: smollm2-135m}]\ndefault: majorty@4\n")
    p = subprocess.run([*TTCLAB, "serve", str(config)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "did you mean majority" in p.stderr
    # an embedded model that does not exist stops the server before it listens (was: every request a 502)
    for name in ("smollm3-135m", str(tmp_path / "missing.gguf")):
        config.write_text(yaml.safe_dump({"models": [{"backend": "llamacpp", "name": name}]}))
        p = subprocess.run([*TTCLAB, "serve", str(config), "--port", str(free_port())], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.strip().count("\n") == 0, p.stderr
        assert p.stderr.startswith(f"ttclab: error: {config}: models.0.name: ") and name in p.stderr  # file first
    # bad sampling defaults stop the server at startup (was: it started and every request was a 400 blaming
    # the client's sampling)
    for sampling, needle in (({"max_tokens": -3}, "sampling: max_tokens: Input should be greater than or equal to 1"),
                             ({"temprature": 0.5}, "sampling: temprature: unknown sampling setting; did you mean "
                                                   "'temperature'?")):
        config.write_text(yaml.safe_dump({"models": [{"backend": "llamacpp", "name": "smollm2-135m"}],
                                          "sampling": sampling}))
        p = subprocess.run([*TTCLAB, "serve", str(config), "--port", str(free_port())], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and needle in p.stderr, p.stderr
    # and a config that does not start (found as the gateway is built) leaves no empty --record folder behind
    config.write_text("models: [{backend: llamacpp, name: smollm2-135m}]\ndefault: majorty@4\n")
    p = subprocess.run([*TTCLAB, "serve", str(config), "--port", str(free_port()), "--record", str(tmp_path / "rec")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and not (tmp_path / "rec").exists(), p.stderr
