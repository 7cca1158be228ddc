"""A real OpenAI-compatible upstream on 127.0.0.1 (Starlette + uvicorn in a thread), deterministic.

Replies depend only on (prompt, seed): ``"w1 w2 ... Answer: N"`` with N = hash mod ``answers``; each
word is one token. ``n`` is honoured unless ``supports_n=False`` (then a 400 that mentions n, as some
servers answer). ``delay_s`` holds every answer (while watching for the client going away); a
streamed answer sends one word every ``token_delay_s``. ``POST /pooling`` is a reward model: one
score per request from the hash of the solution. The server counts and logs requests and notices
disconnects (a request whose client closed the connection before the answer was sent).
Used by the serve tests and bench/serve.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from typing import Any


def _h(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).digest()[:8], "little")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Upstream:
    """The server; ``with Upstream() as up: up.base_url``."""

    def __init__(self, *, delay_s: float = 0.0, token_delay_s: float = 0.0, supports_n: bool = True,
                 answers: int = 3, words: int = 6, port: int | None = None) -> None:
        self.delay_s = delay_s
        self.token_delay_s = token_delay_s
        self.supports_n = supports_n
        self.answers = answers
        self.words = words
        self.port = port or free_port()
        self.log: list[dict[str, Any]] = []
        self.disconnects = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.completed = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> int:
        return len(self.log)

    def reset(self) -> None:
        self.log.clear()
        self.disconnects = self.completed = self.max_in_flight = 0

    # -- replies ----------------------------------------------------------------------------------
    def reply(self, prompt: str, seed: Any, max_tokens: int) -> tuple[str, str]:
        h = _h(prompt, seed)
        words = [f"w{(h >> (4 * k)) % 10}" for k in range(self.words)] + ["Answer:", str(h % self.answers)]
        if len(words) > max_tokens:
            return " ".join(words[:max_tokens]), "length"
        return " ".join(words), "stop"

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def wait(request: Request, seconds: float) -> bool:
            """Sleep, watching the client; False when it went away."""
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if await request.is_disconnected():
                    self.disconnects += 1
                    return False
                await asyncio.sleep(min(0.01, max(0.0, end - time.monotonic())))
            return True

        async def complete(request: Request) -> Any:
            body = await request.json()
            chat = request.url.path.endswith("/chat/completions")
            prompt = json.dumps(body.get("messages")) if chat else str(body.get("prompt"))
            n = int(body.get("n") or 1)
            entry = {"path": request.url.path, "n": n, "seed": body.get("seed"), "prompt": prompt,
                     "stream": bool(body.get("stream")), "t": time.monotonic()}
            self.log.append(entry)
            if n > 1 and not self.supports_n:
                return JSONResponse({"error": {"message": "n must be 1 on this server", "type": "invalid_request_error"}},
                                    status_code=400)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                if self.delay_s and not await wait(request, self.delay_s):
                    entry["disconnected"] = True
                    return JSONResponse({}, status_code=499)
                seed = body.get("seed")
                max_tokens = int(body.get("max_tokens") or 16)
                prompt_tokens = len(prompt.split())
                if body.get("stream"):
                    return self._stream(request, entry, prompt, seed, max_tokens, chat, prompt_tokens, wait)
                choices, total = [], 0
                for j in range(n):
                    text, finish = self.reply(prompt, None if seed is None else seed + j, max_tokens)
                    total += len(text.split())
                    choices.append({"index": j, "finish_reason": finish, "logprobs": None,
                                    **({"message": {"role": "assistant", "content": text}} if chat else {"text": text})})
                self.completed += 1
                return JSONResponse({"id": "up-1", "object": "chat.completion" if chat else "text_completion",
                                     "created": int(time.time()), "model": body.get("model"), "choices": choices,
                                     "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": total,
                                               "total_tokens": prompt_tokens + total}})
            finally:
                self.in_flight -= 1

        async def pooling(request: Request) -> Any:
            body = await request.json()
            self.log.append({"path": request.url.path, "n": 1, "seed": None, "prompt": json.dumps(body), "stream": False,
                             "t": time.monotonic()})
            if self.delay_s and not await wait(request, self.delay_s):
                return JSONResponse({}, status_code=499)
            solution = json.dumps(body.get("messages") or body.get("input"))
            score = (_h("reward", solution) % 1000) / 1000.0
            self.completed += 1
            return JSONResponse({"data": [{"data": [score]}], "usage": {"prompt_tokens": len(solution.split())}})

        async def models(request: Request) -> Any:
            return JSONResponse({"object": "list", "data": [{"id": "up-model", "object": "model"}]})

        return Starlette(routes=[Route("/v1/chat/completions", complete, methods=["POST"]),
                                 Route("/v1/completions", complete, methods=["POST"]),
                                 Route("/pooling", pooling, methods=["POST"]),
                                 Route("/v1/models", models, methods=["GET"])])

    def _stream(self, request: Any, entry: dict[str, Any], prompt: str, seed: Any, max_tokens: int, chat: bool,
                prompt_tokens: int, wait: Any) -> Any:
        from starlette.responses import StreamingResponse

        text, finish = self.reply(prompt, seed, max_tokens)
        words = text.split(" ")

        async def events() -> Any:
            done = False
            try:
                for i, w in enumerate(words):
                    if self.token_delay_s and not await wait(request, self.token_delay_s):
                        entry["disconnected"] = True
                        return
                    piece = w if i == 0 else " " + w
                    choice = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
                    yield f"data: {json.dumps({'choices': [choice]})}\n\n"
                end = {"index": 0, "delta": {}, "finish_reason": finish} if chat else {"index": 0, "text": "",
                                                                                      "finish_reason": finish}
                yield f"data: {json.dumps({'choices': [end]})}\n\n"
                usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
                         "total_tokens": prompt_tokens + len(words)}
                yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
                yield "data: [DONE]\n\n"
                done = True
                self.completed += 1
            finally:
                if not done and not entry.get("disconnected"):
                    entry["disconnected"] = True
                    self.disconnects += 1

        return StreamingResponse(events(), media_type="text/event-stream")

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> Upstream:
        import uvicorn

        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
                                lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("upstream did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)


def main() -> None:  # python tests/serve/upstream.py PORT [DELAY_S]: run one in the foreground (for bench)
    import sys

    import uvicorn

    port = int(sys.argv[1])
    up = Upstream(delay_s=float(sys.argv[2]) if len(sys.argv) > 2 else 0.0, port=port)
    uvicorn.run(up.app(), host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


if __name__ == "__main__":
    main()
