"""A real OpenAI-compatible HTTP server on 127.0.0.1 that misbehaves on purpose.

It answers ``/v1/chat/completions`` and ``/v1/completions`` with made-up but well-formed choices,
after following a script for the first requests: an HTTP status (500, 429 with ``Retry-After``,
400, ...), ``"reset"`` (close the connection with a TCP RST), ``"hang"`` (answer only after
``hang_s``, past the client's timeout), ``"null"`` (a 200 whose choices have ``content: null`` /
``text: null``, as a reasoning model cut off by ``max_tokens`` or a tool call gives) or ``"ok"``. It counts requests,
records when each arrived
(``time.monotonic``) and the JSON bodies, and tracks the number of requests in flight.

Stdlib only: ``ThreadingHTTPServer`` in a daemon thread.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Action = int | str  # an HTTP status, or "ok" / "reset" / "hang" / "null"


class FlakyServer:
    """Context manager: ``with FlakyServer(script=[500, 500]) as srv: srv.base_url ...``.

    Parameters
    ----------
    script: actions for the first requests, in arrival order; later requests get ``default``.
    default: the action after the script (``"ok"``, or e.g. ``503`` for a server that always fails).
    retry_after: ``Retry-After`` header value sent with error statuses (e.g. ``"1"``).
    ignore_n: answer with one choice whatever ``n`` asks (as llama-cpp-python's server does).
    reject_n: answer 400 "n > 1 is not supported" when ``n`` > 1.
    delay_s: time each successful answer takes (lets requests overlap).
    hold_until: hold successful answers until this many requests were in flight at once (or
        ``hold_timeout_s`` passes): makes a concurrency bound observable without timing.
    hang_s: how long a ``"hang"`` waits before answering.
    port: the port to listen on (0: any free one).
    """

    def __init__(
        self,
        script: Sequence[Action] = (),
        *,
        default: Action = "ok",
        retry_after: str | None = None,
        ignore_n: bool = False,
        reject_n: bool = False,
        delay_s: float = 0.0,
        hold_until: int | None = None,
        hold_timeout_s: float = 10.0,
        hang_s: float = 5.0,
        error_message: str = "simulated failure",
        port: int = 0,
    ) -> None:
        self.port = port
        self.script = list(script)
        self.default = default
        self.retry_after = retry_after
        self.ignore_n = ignore_n
        self.reject_n = reject_n
        self.delay_s = delay_s
        self.hold_until = hold_until
        self.hold_timeout_s = hold_timeout_s
        self.hang_s = hang_s
        self.error_message = error_message
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrivals: list[float] = []
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.auth: list[str | None] = []  # the Authorization header of each request
        self._cond = threading.Condition()
        self._held_peak = False
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FlakyServer:
        server = self

        class Handler(_Handler):
            owner = server

        httpd = _QuietServer(("127.0.0.1", self.port), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FlakyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- behaviour ---------------------------------------------------------------------------
    def _next_action(self, body: dict[str, Any], path: str, auth: str | None) -> Action:
        with self._cond:
            index = self.requests
            self.requests += 1
            self.arrivals.append(time.monotonic())
            self.bodies.append(body)
            self.paths.append(path)
            self.auth.append(auth)
        return self.script[index] if index < len(self.script) else self.default

    def _enter(self) -> None:
        with self._cond:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.hold_until is not None and self.in_flight >= self.hold_until:
                self._held_peak = True
                self._cond.notify_all()

    def _hold(self) -> None:
        if self.hold_until is None:
            return
        deadline = time.monotonic() + self.hold_timeout_s
        with self._cond:
            while not self._held_peak and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)

    def _leave(self) -> None:
        with self._cond:
            self.in_flight -= 1


def answer(body: dict[str, Any], path: str, n_choices: int) -> dict[str, Any]:
    """A well-formed response with ``n_choices`` deterministic choices (words = tokens)."""
    chat = path.endswith("/chat/completions")
    max_tokens = int(body.get("max_tokens") or 16)
    seed = body.get("seed")
    choices = []
    total = 0
    for i in range(n_choices):
        words = [f"w{i}"] * min(max_tokens, 3 + i) + ([f"s{seed}"] if seed is not None else [])
        words = words[:max_tokens]
        text = " ".join(words)
        total += len(words)
        finish = "length" if len(words) >= max_tokens else "stop"
        lps = [-0.5 - 0.1 * k for k in range(len(words))]
        choice: dict[str, Any] = {"index": i, "finish_reason": finish}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
            content = [{"token": w, "logprob": lp} for w, lp in zip(words, lps)]
            choice["logprobs"] = {"content": content} if body.get("logprobs") else None
        else:
            choice["text"] = text
            choice["logprobs"] = {"tokens": words, "token_logprobs": lps} if body.get("logprobs") else None
        choices.append(choice)
    prompt = body.get("messages") or body.get("prompt") or ""
    prompt_tokens = len(json.dumps(prompt).split())
    return {
        "id": "flaky-1", "object": "chat.completion" if chat else "text_completion", "model": body.get("model"),
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": total, "total_tokens": prompt_tokens + total},
    }


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:  # resets and hangs are on purpose
        pass


class _Handler(BaseHTTPRequestHandler):
    owner: FlakyServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "flaky", "object": "model"}]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        owner = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send(400, {"error": {"message": "body is not JSON"}})
            return
        action = owner._next_action(body, self.path, self.headers.get("Authorization"))
        owner._enter()
        try:
            self._act(action, body)
        finally:
            owner._leave()

    def _act(self, action: Action, body: dict[str, Any]) -> None:
        owner = self.owner
        if action == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if action == "hang":
            owner._stop.wait(owner.hang_s)
            action = "ok"
        if isinstance(action, int):
            headers = {"Retry-After": owner.retry_after} if owner.retry_after is not None else {}
            message = owner.error_message
            self._send(action, {"error": {"message": message, "type": "server_error", "code": action}}, headers)
            return
        n = int(body.get("n") or 1)
        if owner.reject_n and n > 1:
            self._send(400, {"error": {"message": "n > 1 is not supported by this server", "type": "invalid_request"}})
            return
        if not self.path.rstrip("/").endswith(("/chat/completions", "/completions")):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        owner._hold()
        if owner.delay_s:
            owner._stop.wait(owner.delay_s)
        payload = answer(body, self.path, 1 if owner.ignore_n else n)
        if action == "null":
            for choice in payload["choices"]:
                if "message" in choice:
                    choice["message"]["content"] = None
                else:
                    choice["text"] = None
        self._send(200, payload)

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timeout) and closed the connection
            self.close_connection = True
