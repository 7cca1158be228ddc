"""A real OpenAI-compatible HTTP server on 127.0.0.1 with deterministic, pipeline-aware replies.

For tests and benchmarks that need exact reproducibility or a fixed answer time (the llama.cpp
server is used where a real model matters). Replies depend only on (prompt, seed), so a call asked
twice gets the same answer:

* judge prompts ("Reply with the number") → ``Best: k``; pairwise ("A or B") → ``A`` or ``B``;
  rubric ("Score: <0-10>") → ``Score: k``; yes/no prompts → ``Yes`` / ``No`` (one token, with a
  log-prob); reward requests (``/pooling``) → ``{"data": [{"data": [s1, s2]}]}``;
* anything else → a few words and ``Answer: N`` with N = (hash mod 5), written in ``step_tokens``-word
  steps separated by blank lines (so step search has steps), cut at ``max_tokens`` words and at
  the request's stop strings.

Each word is one token; every choice carries per-token log-probs derived from the hash. The server
answers after ``delay_s`` (or ``delay_fn(body)``; requests run concurrently), counts requests and
records ``(path, prompt, seed, n)`` of each. Stdlib only: ``ThreadingHTTPServer`` in a daemon thread.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _h(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).digest()[:8], "little")


def reply_text(prompt: str, seed: Any, max_tokens: int, stop: list[str]) -> tuple[str, str]:
    """(text, finish_reason) for a prompt (the rules in the module doc)."""
    h = _h(prompt, seed)
    tail = prompt[-400:]
    if prompt.rstrip().endswith("Answer:"):
        text = str(h % 5)
    elif "Reply with the number" in tail:
        n = 8
        for token in tail.split():
            if token.rstrip(").").isdigit():
                n = max(1, int(token.rstrip(").")))
        text = f"Best: {h % n + 1}"
    elif "A or B" in tail:
        text = "AB"[h % 2]
    elif "Score: <0-10>" in tail:
        text = f"Score: {h % 11}"
    elif "Reply Yes or No" in tail:
        text = "Yes" if h % 3 else "No"
    else:
        words = [f"w{(h >> k) % 7}" for k in range(3)] + [f"step{h % 3}", "\n\n", f"more{h % 5}", "then",
                                                          "\n\n", "Answer:", str(h % 5)]
        text = " ".join(words).replace(" \n\n ", "\n\n")
    words = text.split(" ")
    finish = "stop"
    if len(words) > max_tokens:
        words, finish = words[:max_tokens], "length"
    text = " ".join(words)
    cut = min((text.find(s) for s in stop if s and s in text), default=-1)
    if cut >= 0:
        text, finish = text[:cut], "stop"
    return text, finish


class ScriptedServer:
    """Context manager: ``with ScriptedServer(delay_s=0.1) as srv: srv.base_url ...``."""

    def __init__(self, *, delay_s: float = 0.0, ignore_n: bool = False,
                 delay_fn: Any = None) -> None:
        self.delay_s = delay_s
        self.delay_fn = delay_fn  # body -> seconds, instead of delay_s
        self.ignore_n = ignore_n
        self.requests = 0
        self.log: list[tuple[str, str, Any, int]] = []  # (path, prompt json, seed, n)
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "ScriptedServer":
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "ScriptedServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def respond(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body.get("messages") if "messages" in body else body.get("prompt", body.get("input"))
        prompt_json = prompt if isinstance(prompt, str) else json.dumps(prompt)
        with self._lock:
            self.requests += 1
            self.log.append((path, prompt_json, body.get("seed"), int(body.get("n") or 1)))
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            delay = self.delay_fn(body) if self.delay_fn is not None else self.delay_s
            if delay:
                time.sleep(delay)
            if path.endswith("/pooling"):
                h = _h(prompt_json)
                return {"data": [{"data": [round((h % 100) / 100, 2), round(((h >> 8) % 100) / 100, 2)]}],
                        "usage": {"prompt_tokens": len(prompt_json.split())}}
            return self._completion(path, body, prompt_json)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _completion(self, path: str, body: dict[str, Any], prompt_json: str) -> dict[str, Any]:
        chat = path.endswith("/chat/completions")
        n = 1 if self.ignore_n else int(body.get("n") or 1)
        seed = body.get("seed")
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        choices, total = [], 0
        for i in range(n):
            s = None if seed is None else seed + i
            text, finish = reply_text(prompt_json, s, int(body.get("max_tokens") or 16), stop)
            tokens = text.split(" ") if text else []
            total += len(tokens)
            lps = [-((_h(prompt_json, s, k) % 1000) / 1000.0) for k in range(len(tokens))]
            choice: dict[str, Any] = {"index": i, "finish_reason": finish}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
                choice["logprobs"] = {"content": [{"token": t, "logprob": lp} for t, lp in zip(tokens, lps)]} \
                    if body.get("logprobs") else None
            else:
                choice["text"] = text
                choice["logprobs"] = {"tokens": tokens, "token_logprobs": lps} if body.get("logprobs") else None
            choices.append(choice)
        return {"id": "scripted", "object": "chat.completion" if chat else "text_completion",
                "model": body.get("model"), "choices": choices,
                "usage": {"prompt_tokens": len(prompt_json.split()), "completion_tokens": total,
                          "total_tokens": len(prompt_json.split()) + total}}


class _Server(ThreadingHTTPServer):
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class _Handler(BaseHTTPRequestHandler):
    server_owner: ScriptedServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._send(400, {"error": {"message": "body is not JSON"}})
            return
        if not self.path.rstrip("/").endswith(("/chat/completions", "/completions", "/pooling")):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        self._send(200, self.server_owner.respond(self.path, body))

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass
