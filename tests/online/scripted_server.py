"""A real OpenAI-compatible HTTP server on 127.0.0.1 with deterministic, pipeline-aware replies.

For tests and benchmarks that need exact reproducibility or a fixed answer time (the llama.cpp
server is used where a real model matters). Replies depend only on (prompt, seed), so a call asked
twice gets the same answer:

* code prompts ("python code block") → a fenced program defining the prompt's first function,
  returning ``hash mod 3``;
* judge prompts ("Reply with the number") → ``Best: k``; pairwise ("A or B") → ``A`` or ``B``;
  rubric ("Score: <0-10>") → ``Score: k``; yes/no prompts → ``Yes`` / ``No`` (one token, with a
  log-prob); reward requests (``/pooling``) → ``{"data": [{"data": [s1, s2]}]}``;
* anything else → a few words and ``Answer: N`` with N = (hash mod 5), written in ``step_tokens``-word
  steps separated by blank lines (so step search has steps), cut at ``max_tokens`` words and at
  the request's stop strings.

Each word is one token; every choice carries per-token log-probs derived from the hash. The server
answers after ``delay_s`` (or ``delay_fn(body)``; requests run concurrently), counts requests and
records ``(path, prompt, seed, n)`` of each. Stdlib only: an asyncio server in a daemon thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
from typing import Any


def _h(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).digest()[:8], "little")


def reply_text(prompt: str, seed: Any, max_tokens: int, stop: list[str]) -> tuple[str, str]:
    """(text, finish_reason) for a prompt (the rules in the module doc)."""
    h = _h(prompt, seed)
    tail = prompt[-400:]
    if "python code block" in prompt:  # a code task: a (wrong) program for the prompt's function
        import re

        m = re.search(r"def (\w+)\(", prompt)
        name = m.group(1) if m else "f"
        text = f"```python\ndef {name}(*args):\n    return {h % 3}\n```"
    elif prompt.rstrip().endswith("Answer:"):
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
    """Context manager: ``with ScriptedServer(delay_s=0.1) as srv: srv.base_url ...``.

    An asyncio HTTP/1.1 server (keep-alive, Content-Length bodies) on its own event loop in a daemon
    thread: thousands of concurrent delayed answers cost no thread each and no GIL hand-offs.
    """

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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def start(self) -> ScriptedServer:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024))
            self._port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            self._server.close()
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                async def drain() -> None:
                    await asyncio.gather(*pending, return_exceptions=True)

                loop.run_until_complete(drain())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                length = 0
                while True:
                    header = await reader.readline()
                    if header in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = header.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                raw = await reader.readexactly(length) if length else b""
                status, payload = await self._route(method, path, raw)
                data = json.dumps(payload).encode()
                writer.write(f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: "
                             f"application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def _route(self, method: str, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        if method == "GET":
            return 200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]}
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return 400, {"error": {"message": "body is not JSON"}}
        if not path.rstrip("/").endswith(("/chat/completions", "/completions", "/pooling")):
            return 404, {"error": {"message": f"no route {path}"}}
        return 200, await self.respond(path, body)

    async def respond(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
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
                await asyncio.sleep(delay)
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


def main() -> None:  # pragma: no cover - used by bench/pipelines.py to serve from another process
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="serve the scripted OpenAI-compatible server")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    srv = ScriptedServer(delay_s=args.delay).start()
    print(srv.base_url, flush=True)
    try:
        sys.stdin.read()  # until the parent closes stdin
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
