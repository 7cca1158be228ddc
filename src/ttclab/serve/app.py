"""The ASGI app: OpenAI endpoints, streaming, auth, admission control, disconnects.

* ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``, ``GET /health``.
* Errors are OpenAI-style bodies with the right status: 400 bad JSON / wrong types / unknown
  strategy / over a cap, 401 missing or wrong key, 404 unknown model, 413 body too large, 429 queue
  full (``Retry-After``), 502 an upstream failure, 504 timeout, 500 a bug (logged; never a trace in
  the response).
* At most ``limits.max_concurrency`` requests are worked on at once and ``limits.max_queue`` wait;
  a streamed request holds its slot until its stream ends.
* A client that disconnects (streamed or not) cancels the request's internal calls: HTTP requests
  to the upstream are closed, embedded decodes dropped at their next step.
* Streaming: ``chat.completion.chunk`` events. Pass-through streams tokens as they are decoded;
  a strategy sends the role at once, ``: keep-alive`` comments every ``limits.keepalive_s`` while it
  works, then the answer; ``stream_options.include_usage`` adds the usage event (with ``ttc_usage``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ttclab.errors import ConfigError
from ttclab.serve.config import ServeConfig
from ttclab.serve.gateway import ChoiceOutcome, Gateway, Job, usage_of
from ttclab.serve.protocol import (
    APIError,
    ChatRequest,
    CompletionRequest,
    chat_response,
    chunk,
    completion_response,
    parse_request,
    usage_chunk,
)

log = logging.getLogger("ttclab.serve")
_JSON = [(b"content-type", b"application/json")]
#: Request fields of the OpenAI API the gateway refuses rather than silently ignores.
_UNSUPPORTED = ("logprobs", "top_logprobs", "tools", "functions", "tool_choice", "response_format", "suffix")


def load_keys(config: ServeConfig) -> frozenset[str] | None:
    """The accepted bearer keys (None: no auth). A configured but empty source is a ConfigError."""
    auth = config.auth
    if auth.keys_env is None and auth.keys_file is None:
        return None
    keys: set[str] = set()
    if auth.keys_env is not None:
        raw = os.environ.get(auth.keys_env, "")
        keys |= {k.strip() for k in raw.split(",") if k.strip()}
    if auth.keys_file is not None:
        path = config.resolve(auth.keys_file)
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"auth.keys_file: cannot read {path} ({exc.strerror or exc})") from None
        keys |= {ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")}
    if not keys:
        where = " and ".join(x for x in (f"${auth.keys_env}" if auth.keys_env else "",
                                         str(auth.keys_file) if auth.keys_file else "") if x)
        raise ConfigError(f"auth: no API keys in {where}; set them (comma-separated / one per line) or remove auth")
    return frozenset(keys)


class _Gone(Exception):
    """The client disconnected before its request was read."""


class Admission:
    """Bounded concurrency with a bounded queue (429 beyond it)."""

    def __init__(self, slots: int, queue: int, retry_after_s: int) -> None:
        self.slots = asyncio.Semaphore(slots)
        self.queue = queue
        self.waiting = 0
        self.retry_after_s = retry_after_s

    async def enter(self) -> None:
        if self.slots.locked() and self.waiting >= self.queue:
            raise APIError(429, "the server is at capacity (queue full); retry after a moment",
                           type="rate_limit_error", code="rate_limit_exceeded",
                           headers={"retry-after": str(self.retry_after_s)})
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1

    def leave(self) -> None:
        self.slots.release()


async def _send_json(send: Any, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [*_JSON, (b"content-length", str(len(data)).encode()), *extra]})
    await send({"type": "http.response.body", "body": data})


async def _until_disconnect(receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class ServeApp:
    """The ASGI application (plain ASGI: the pass-through path stays thin)."""

    def __init__(self, config: ServeConfig, *, record: str | Path | None = None, gateway: Gateway | None = None) -> None:
        self.config = config
        self.keys = load_keys(config)
        self.record = record if record is not None else config.record
        if gateway is None:  # built now: a bad config or model option stops before the port opens
            gateway = Gateway(config)
            if self.record is not None:  # after the gateway: a config that does not start makes no --record folder
                from ttclab.serve.record import Recorder

                gateway.recorder = Recorder(self.record, config)
        self.gateway: Gateway = gateway
        self.admission = Admission(config.limits.max_concurrency, config.limits.max_queue, config.limits.retry_after_s)
        self.started = time.time()
        self.counts = {"requests": 0, "errors": 0, "active": 0}
        self._flusher: asyncio.Task[None] | None = None
        self.url: str | None = None  # where clients point (set by ttclab.serve.serve; in the startup line)
        self.remote_url: str | None = None  # the same from other machines (listening on all addresses)

    # -- lifecycle ---------------------------------------------------------------------------------
    async def startup(self) -> None:
        if self.gateway.recorder is not None:
            self._flusher = asyncio.ensure_future(self._flush_every(2.0))
        log.info("%s", self.describe())

    def describe(self) -> str:
        """The startup line: what is served, how a strategy is picked, where traffic is recorded."""
        gw = self.gateway
        ids = [mid for mid, _ in gw.model_ids()]
        example = next((mid for mid in ids if ":" in mid), None)
        served = f"ttclab serve: {', '.join(gw.models)}"
        if self.url is not None:
            key = "api_key: one of the accepted keys" if self.keys is not None else "any api_key"
            others = f", {self.remote_url} from other machines" if self.remote_url else ""
            served += f" at {self.url} (the OpenAI client's base_url{others}; {key})"
        parts = [served, f"default strategy {gw.default.label}",
                 f"GET /v1/models lists {len(ids)} model ids" + (f" (aliases such as {example})" if example else ""),
                 f"recording every request to {self.record}" if self.record is not None else "not recording (--record DIR)"]
        if self.keys is not None:
            parts.append(f"{len(self.keys)} API key(s) accepted")
        return "; ".join(parts)

    async def shutdown(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        if self.gateway is not None:
            await self.gateway.aclose()
            if self.gateway.recorder is not None:
                self.gateway.recorder.close()

    async def _flush_every(self, seconds: float) -> None:
        """Flush the recordings every ``seconds``, or less often when a flush is slow: a flush runs on the
        event loop, so the pause after it is at least 10x its duration (at most ~10% of the loop's time)."""
        pause = seconds
        while True:
            await asyncio.sleep(pause)
            t0 = time.perf_counter()
            try:
                assert self.gateway is not None and self.gateway.recorder is not None
                self.gateway.recorder.flush()
            except Exception:  # keep serving; the next flush retries
                log.exception("ttclab serve: flushing the recorded runs failed")
            pause = max(seconds, 10.0 * (time.perf_counter() - t0))

    # -- ASGI --------------------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"].rstrip("/") or "/", scope["method"]
        try:
            if path == "/health" and method == "GET":
                await _send_json(send, 200, self._health())
                return
            self._authorize(scope)
            if path == "/v1/models" and method == "GET":
                await _send_json(send, 200, self._models())
            elif path == "/v1/models" or path.startswith("/v1/models/") and method == "GET":
                await self._model(path.removeprefix("/v1/models/"), send)
            elif path in ("/v1/chat/completions", "/v1/completions"):
                if method != "POST":
                    raise APIError(405, f"{path} takes POST", type="invalid_request_error")
                await self._completion(scope, receive, send, chat=path == "/v1/chat/completions")
            else:
                raise APIError(404, f"no route {method} {path}; this server has POST /v1/chat/completions, "
                                    "POST /v1/completions, GET /v1/models, GET /health", code="unknown_url")
        except _Gone:
            return
        except APIError as exc:
            self.counts["errors"] += 1
            await _send_json(send, exc.status, exc.body(), exc.headers)
        except Exception:
            self.counts["errors"] += 1
            log.exception("ttclab serve: internal error on %s %s", method, path)
            await _send_json(send, 500, APIError(500, "internal server error (logged by the server)",
                                                 type="server_error").body())

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            try:
                message = await receive()
            except asyncio.CancelledError:  # Ctrl-C while uvicorn shuts down: a quiet exit, no traceback
                await self.shutdown()
                return
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # a bad config or model: one line, the server does not start
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _authorize(self, scope: dict[str, Any]) -> None:
        if self.keys is None:
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise APIError(401, "missing API key: send Authorization: Bearer <key>", code="invalid_api_key")
        if key.strip() not in self.keys:
            raise APIError(401, "incorrect API key provided", code="invalid_api_key")

    def _health(self) -> dict[str, Any]:
        gw = self.gateway
        return {"status": "ok" if gw is not None else "starting", "models": list(gw.models) if gw else [],
                "uptime_s": round(time.time() - self.started, 3), "active": self.counts["active"],
                "waiting": self.admission.waiting, "requests": self.counts["requests"]}

    def _models(self) -> dict[str, Any]:
        assert self.gateway is not None
        created = int(self.started)
        return {"object": "list", "data": [{"id": mid, "object": "model", "created": created, "owned_by": owner}
                                           for mid, owner in self.gateway.model_ids()]}

    async def _model(self, mid: str, send: Any) -> None:
        for entry in self._models()["data"]:
            if entry["id"] == mid:
                await _send_json(send, 200, entry)
                return
        raise APIError(404, f"The model {mid!r} does not exist", param="model", code="model_not_found")

    async def _body(self, scope: dict[str, Any], receive: Any) -> Any:
        limit = self.config.limits.max_body_bytes
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise APIError(413, f"request body of {int(length)} bytes is over this server's limit of {limit} bytes",
                           code="request_too_large")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                raise APIError(413, f"request body is over this server's limit of {limit} bytes",
                               code="request_too_large")
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if not body.strip():
            raise APIError(400, "the request body is empty; send a JSON object (Content-Type: application/json)",
                           code="invalid_json")
        try:
            return json.loads(body)
        except json.JSONDecodeError as exc:
            raise APIError(400, f"the request body is not valid JSON ({exc.msg} at line {exc.lineno} column "
                                f"{exc.colno}); send a JSON object", code="invalid_json") from None
        except (ValueError, UnicodeDecodeError):
            raise APIError(400, "the request body is not UTF-8 JSON; send a JSON object encoded as UTF-8",
                           code="invalid_json") from None

    async def _completion(self, scope: dict[str, Any], receive: Any, send: Any, *, chat: bool) -> None:
        self.counts["requests"] += 1
        data = await self._body(scope, receive)
        assert self.gateway is not None
        if chat:
            req = parse_request(ChatRequest, data)
            prompts: list[Any] = [req.prompt()]
        else:
            req = parse_request(CompletionRequest, data)
            if req.best_of not in (None, 1):
                raise APIError(400, "best_of: use the ttc field instead, e.g. extra_body={'ttc': {'strategy': "
                                    "'best_of_n', 'k': 4}} (or a model alias MODEL:majority@4)", param="best_of")
            if req.echo:
                raise APIError(400, "echo is not supported", param="echo")
            prompts = req.prompts()
            if not prompts:
                raise APIError(400, "prompt: give at least one prompt", param="prompt")
        for name in _UNSUPPORTED:  # known OpenAI features this gateway does not do: refused, never ignored
            if data.get(name) not in (None, False, [], {}, {"type": "text"}):
                raise APIError(400, f"{name} is not supported by ttclab serve; remove it", param=name)
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        job = self.gateway.job(rid, "chat" if chat else "completions", req, prompts, chat)
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        await self.admission.enter()
        self.counts["active"] += 1
        strategy = job.plan.strategy != "none"  # pass-through requests are logged only when they fail
        where = f"{job.rid} {job.served.name}:{job.plan.label}"
        if strategy:
            log.info("%s: %d choice(s) started (%d active)", where, job.choices, self.counts["active"])
        t0, outcome = time.perf_counter(), "cancelled"
        failure: APIError | None = None
        try:
            if req.stream:
                outcome, failure = await self._stream(job, receive, send, include_usage, model=req.model)
            else:
                outcome = await self._answer(job, receive, send, model=req.model)
        except APIError as exc:
            failure = exc
            raise
        except Exception:
            outcome = "internal error (its traceback follows)"
            raise
        finally:
            self.counts["active"] -= 1
            self.admission.leave()
            took = time.perf_counter() - t0
            if failure is not None and failure.status >= 500:  # the operator's problem (upstream down, timeout)
                log.warning("%s: error %d in %.1f s: %s", where, failure.status, took, failure.message)
            elif strategy:
                log.info("%s: %s in %.1f s", where, f"error {failure.status}" if failure else outcome, took)

    async def _answer(self, job: Job, receive: Any, send: Any, *, model: str) -> str:
        """Run the job and send its answer: what happened, for the log ("answered (4 calls, ...)", or
        "cancelled ..." when the client went away first and the work was cancelled)."""
        assert self.gateway is not None
        t0 = time.perf_counter()
        work = asyncio.ensure_future(asyncio.wait_for(self.gateway.run(job), self.config.limits.timeout_s))
        watch = asyncio.ensure_future(_until_disconnect(receive))
        try:
            done, _ = await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            work.cancel()
            raise
        finally:
            watch.cancel()
        if work not in done:  # the client went away: stop every internal call
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            return _GONE
        try:
            outcomes = work.result()
        except TimeoutError:
            raise APIError(504, f"the request took longer than {self.config.limits.timeout_s:g} s "
                                "(limits.timeout_s)", type="server_error", code="timeout") from None
        _raise_failed(outcomes)
        usage, ttc = usage_of(self.gateway, job, outcomes, time.perf_counter() - t0)
        choices = [{"index": o.index, "text": o.text, "finish_reason": o.finish_reason} for o in outcomes]
        created = int(job.created)
        body = (chat_response(job.rid, model, created, choices, usage) if job.chat
                else completion_response(job.rid, model, created, choices, usage))
        body["ttc_usage"] = ttc
        await _send_json(send, 200, body)
        return _answered(outcomes) if job.plan.strategy != "none" else "answered"  # pass-through: not logged

    async def _stream(self, job: Job, receive: Any, send: Any, include_usage: bool, *,
                      model: str) -> tuple[str, APIError | None]:
        """Stream the job's answer: what happened, for the log, and the error the stream ended with (its
        status is 200 by then: the error is an event)."""
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
                                (b"x-accel-buffering", b"no")]})
        result: dict[str, Any] = {}
        events = self._events(job, include_usage, model, result)
        pump = asyncio.ensure_future(self._pump(events, send))
        watch = asyncio.ensure_future(_until_disconnect(receive))
        try:
            done, _ = await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
        if pump not in done:  # the client went away: cancel the work behind the stream
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            return _GONE, None
        pump.result()
        return result.get("outcome", _GONE), result.get("error")

    @staticmethod
    async def _pump(events: AsyncIterator[bytes], send: Any) -> None:
        try:
            async for data in events:
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    async def _events(self, job: Job, include_usage: bool, model: str, result: dict[str, Any]) -> AsyncIterator[bytes]:
        """The SSE events of a streamed request (the work runs in tasks cancelled when this closes); ``result``
        gets the ``outcome`` for the log and the ``error`` event that ended the stream, if one did."""
        gw = self.gateway
        assert gw is not None
        t0 = time.perf_counter()
        created = int(job.created)
        queue: asyncio.Queue[tuple[str, int, Any]] = asyncio.Queue()
        passthrough = job.plan.strategy == "none"

        def event(obj: Any) -> bytes:
            return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"

        async def one(choice: int) -> None:
            try:
                if passthrough:
                    out = await gw.stream_passthrough(job, choice, lambda text: queue.put_nowait(("delta", choice, text)))
                else:
                    out = await gw._strategy_run(job, choice)
                queue.put_nowait(("done", choice, out))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug: reported as a failed choice (logged)
                log.exception("ttclab serve: internal error in a streamed choice")
                queue.put_nowait(("done", choice, ChoiceOutcome(choice, "", "error", None, [],
                                                                error=f"internal error ({type(exc).__name__})")))

        tasks = [asyncio.ensure_future(one(i)) for i in range(job.choices)]
        outcomes: dict[int, ChoiceOutcome] = {}
        deadline = time.monotonic() + self.config.limits.timeout_s
        try:
            for i in range(job.choices):
                yield event(chunk(job.rid, model, created, job.chat, i, role=True))
            while len(outcomes) < job.choices:
                left = deadline - time.monotonic()
                if left <= 0:
                    result["error"] = APIError(504, f"the request took longer than {self.config.limits.timeout_s:g} s "
                                                    "(limits.timeout_s)", type="server_error", code="timeout")
                    yield event(result["error"].body())
                    return
                try:
                    kind, i, value = await asyncio.wait_for(queue.get(), min(self.config.limits.keepalive_s, left))
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if kind == "delta":
                    yield event(chunk(job.rid, model, created, job.chat, i, text=value))
                    continue
                out: ChoiceOutcome = value
                outcomes[i] = out
                if out.error is not None:
                    result["error"] = _failure(out.error)
                    yield event(result["error"].body())
                    return
                if not passthrough:
                    for piece in _pieces(out.text):
                        yield event(chunk(job.rid, model, created, job.chat, i, text=piece))
                yield event(chunk(job.rid, model, created, job.chat, i, finish_reason=out.finish_reason))
            if include_usage:
                ordered = [outcomes[i] for i in sorted(outcomes)]
                usage, ttc = usage_of(gw, job, ordered, time.perf_counter() - t0)
                body = usage_chunk(job.rid, model, created, job.chat, usage)
                body["ttc_usage"] = ttc
                yield event(body)
            result["outcome"] = (_answered([outcomes[i] for i in sorted(outcomes)]) if not passthrough
                                 else "answered")
            yield b"data: [DONE]\n\n"
        finally:
            for t in tasks:
                t.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)


def _pieces(text: str, size: int = 48) -> list[str]:
    """A finished answer in stream-sized pieces (split after whitespace where possible)."""
    out, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            space = text.rfind(" ", start + 1, end)
            end = space + 1 if space > start else end
        out.append(text[start:end])
        start = end
    return out


_GONE = "cancelled (the client went away)"


def _answered(outcomes: list[ChoiceOutcome]) -> str:
    """The log's word on an answered request: its calls and tokens over every choice."""
    rows = [r for o in outcomes for r in o.rows]
    tokens = sum(int(r["prompt_tokens"] or 0) + int(r["completion_tokens"] or 0) for r in rows)
    failed = sum(1 for r in rows if r["error"] is not None)
    return f"answered ({len(rows)} calls{f', {failed} failed' if failed else ''}, {tokens} tokens)"


def _failure(error: str) -> APIError:
    return APIError(502, f"the model call failed: {error}", type="upstream_error", code="upstream_error")


def _raise_failed(outcomes: list[ChoiceOutcome]) -> None:
    for o in outcomes:
        if o.error is not None:
            raise _failure(o.error)


def create_app(config: ServeConfig, *, record: str | Path | None = None) -> ServeApp:
    """The ASGI app for a serve config (models load on startup)."""
    return ServeApp(config, record=record)
