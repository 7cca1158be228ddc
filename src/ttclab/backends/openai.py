"""Any OpenAI-compatible HTTP server: vLLM, SGLang, llama.cpp server, Ollama, hosted APIs.

Behaviour, in one place:

- **Endpoints.** Chat prompts (``Request.is_chat``) go to ``{base_url}/chat/completions``, plain strings
  (few-shot) to ``{base_url}/completions``. A base URL with no path gets ``/v1`` appended; one with a
  path (``https://host/v1``, ``.../v1beta/openai``) is used as given, like the OpenAI SDK's ``base_url``.
- **Several base URLs** share the load: each HTTP attempt goes to the endpoint with the fewest requests
  in flight (ties broken round-robin). An endpoint with ``endpoint_failures`` transient failures in a
  row is skipped for ``endpoint_cooldown_s`` (when every endpoint is cooling down, the one that
  recovers first is used).
- **Concurrency.** At most ``max_concurrency`` HTTP requests are in flight (an ``asyncio.Semaphore``);
  backoff sleeps do not hold a slot.
- **n.** With ``supports_n`` ``True`` or ``"auto"`` one request asks for ``n`` choices. In ``"auto"`` an
  endpoint that answers with fewer choices than asked, or rejects the request with a 400 mentioning
  ``n``, is remembered as not supporting ``n``; the missing samples are then requested as parallel
  single requests (sample ``j`` gets seed ``base + j``, as in the embedded backend). ``False`` always
  sends single requests.
- **Permanent failures stop the run.** HTTP 401 / 403 (the key), 404 (an unknown model, or no such
  route under the base URL) and a refused connection before the endpoint ever answered (nothing is
  listening there) raise :class:`~ttclab.errors.BackendError` from ``generate``: one line naming the
  endpoint, the status, the server's message and the fix. Every later call raises it at once without
  sending anything, and until the first request succeeds only one request is in flight, so a bad
  key costs exactly one request. With several base URLs a refusing endpoint is dropped and the run
  continues on the others; only when every endpoint refuses is it permanent. ``fail_fast: false``
  (what ``ttclab serve`` uses: a gateway lives longer than any one upstream outage) raises the same
  one-line error for that call but remembers nothing: a refusing endpoint is a transient failure
  (cooled down like any other), and the next call tries again, so a gateway started before its
  upstream works as soon as the upstream is up.
- **Retries.** Only transient failures are retried (HTTP 429, 500, 502, 503, 504, timeouts, connection
  errors and resets), at most ``max_retries`` times, after a capped exponential backoff with full
  jitter: ``uniform(0, min(backoff_cap_s, backoff_base_s * 2**attempt))`` drawn from an injected RNG,
  and never shorter than the server's ``Retry-After`` (seconds or HTTP date) or ``retry-after-ms``.
  Any other status is an error completion at once, with the status and the server's message. After
  the retry cap every requested sample is an error completion naming the last status.
- **No content.** A choice with ``content: null`` (chat) or ``text: null`` (completions), e.g. a tool
  call or a reasoning model stopped by ``max_tokens`` before it answered, is a failed call (an error
  completion naming the finish reason), never an empty answer that gets graded.
- **Tokens.** ``usage`` is per request. With one choice it is that choice's count. With several, each
  choice's count is the length of its log-probs when every choice has them (exact), otherwise
  ``usage.completion_tokens`` split in proportion to text length (largest remainder, so the counts sum
  to the reported total). ``prompt_tokens`` is the prompt's length, recorded on every completion.
- **Latency** is the wall time of the HTTP request that produced the completion; on an error
  completion it is the total time spent, retries and backoff included.

Server defaults differ: llama.cpp's server samples with ``top_k=40``, ``min_p=0.05`` and
``repeat_penalty=1.1`` unless told otherwise, and ``top_k`` / ``min_p`` are only sent when set here
(hosted APIs reject unknown fields); pass server-specific fields through ``extra_body``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import random
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from ttclab.backends.base import Completion, ModelInfo, Request, SamplingParams
from ttclab.errors import BackendError, ConfigError, missing_extra
from ttclab.seeds import sample_seed

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
PERMANENT_STATUS = frozenset({401, 403, 404})  # the key or the model: every request would fail the same
MAX_RETRY_AFTER_S = 300.0  # a larger Retry-After is clamped to this
_MENTIONS_N = re.compile(r"(?<![A-Za-z0-9_])n(?![A-Za-z0-9_])")


@dataclass
class _Endpoint:
    base_url: str
    in_flight: int = 0
    requests: int = 0
    consecutive_failures: int = 0
    down_until: float = 0.0
    supports_n: bool | None = None  # None: not known yet
    answered: bool = False  # the server ever sent an HTTP response
    dead: str | None = None  # why it is out of rotation for good (refused before it ever answered)


@dataclass(frozen=True, slots=True)
class _Failure:
    """One failed HTTP attempt."""

    message: str
    transient: bool
    status: int | None = None
    retry_after: float | None = None
    rejects_n: bool = False
    refused: bool = False  # could not connect at all (nothing listening, unknown host)


class _NoN:
    """Marker: the chosen endpoint does not support ``n``; the caller falls back to single requests."""


_NO_N = _NoN()


def normalize_base_url(url: str) -> str:
    """``http://host:port`` → ``http://host:port/v1``; a URL with a path is kept (trailing ``/`` removed)."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"base_urls: {url!r} is not an http(s) URL; give e.g. http://127.0.0.1:8000/v1")
    return url if parts.path else url + "/v1"


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date); None if absent."""
    lower = {k.lower(): v for k, v in headers.items()}
    raw_ms = lower.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return min(MAX_RETRY_AFTER_S, max(0.0, float(raw_ms) / 1000.0))
        except ValueError:
            pass
    raw = lower.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))


def split_completion_tokens(
    total: int | None, texts: Sequence[str], logprobs: Sequence[Sequence[float] | None]
) -> list[int]:
    """Per-choice completion tokens from a per-request ``usage.completion_tokens`` (see module doc)."""
    k = len(texts)
    if k == 0:
        return []
    if k == 1:
        if total is not None:
            return [int(total)]
        return [len(logprobs[0]) if logprobs[0] is not None else 0]
    if all(lp is not None for lp in logprobs):
        return [len(lp) for lp in logprobs]  # type: ignore[arg-type]
    if total is None:
        return [len(lp) if lp is not None else 0 for lp in logprobs]
    total = int(total)
    weights = [len(t) for t in texts]
    if sum(weights) == 0:
        weights = [1] * k
    wsum = sum(weights)
    shares = [total * w / wsum for w in weights]
    counts = [math.floor(s) for s in shares]
    order = sorted(range(k), key=lambda i: (counts[i] - shares[i], i))  # largest remainder first
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _error_message(response: Any) -> str:
    """The server's error message from a JSON body (``error.message``, ``error``, ``detail``) or text."""
    text = response.text or ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    message: Any = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            message = err.get("message") or err
        elif err:
            message = err
        elif data.get("detail"):
            message = data["detail"]
        elif data.get("message"):
            message = data["message"]
    if message is None:
        message = text or response.reason_phrase or ""
    if not isinstance(message, str):
        message = json.dumps(message)
    message = " ".join(message.split())
    return message[:300] + ("…" if len(message) > 300 else "")


class OpenAIBackend:
    """Backend over one or several OpenAI-compatible servers (see the module doc for the behaviour).

    Construction only stores parameters; the HTTP client (``httpx.AsyncClient``) is created on first
    use, one per event loop. ``rng`` (or ``jitter_seed``) drives the backoff jitter.
    """

    name = "openai"
    #: Options that change how fast samples come, not which samples (not part of a run's id).
    #: ``base_url`` is the one-endpoint spelling of ``base_urls``.
    OPERATIONAL_OPTIONS: ClassVar[frozenset[str]] = frozenset({
        "base_url", "base_urls", "api_key_env", "max_concurrency", "timeout_s", "max_retries", "backoff_base_s",
        "backoff_cap_s", "endpoint_failures", "endpoint_cooldown_s", "headers", "jitter_seed", "rng", "fail_fast",
    })
    #: Options that determine the samples (part of a run's id).
    SAMPLE_OPTIONS: ClassVar[frozenset[str]] = frozenset({"model", "chat", "supports_n"})

    @staticmethod
    def speaks_chat(model: str, options: dict[str, Any]) -> bool:
        """Whether this model's prompts are chat messages (the ``chat`` option; default True)."""
        return bool(options.get("chat", True))

    def __init__(
        self,
        model: str,
        *,
        base_urls: str | Sequence[str] | None = None,
        base_url: str | None = None,
        api_key_env: str | None = None,
        max_concurrency: int = 16,
        timeout_s: float = 600.0,
        max_retries: int = 5,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        chat: bool | None = None,
        supports_n: bool | Literal["auto"] = "auto",
        endpoint_failures: int = 3,
        endpoint_cooldown_s: float = 30.0,
        headers: Mapping[str, str] | None = None,
        jitter_seed: int = 0,
        rng: random.Random | None = None,
        fail_fast: bool = True,
    ) -> None:
        self.model = model
        self.fail_fast = fail_fast
        if base_url is not None and base_urls is not None:
            raise ConfigError("backend openai: give base_url (one endpoint) or base_urls (a list), not both")
        if base_urls is None:
            base_urls = base_url if base_url is not None else "http://127.0.0.1:8000/v1"
        self.base_urls = (base_urls,) if isinstance(base_urls, str) else tuple(base_urls)
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.chat = chat
        self.supports_n = supports_n
        self.endpoint_failures = endpoint_failures
        self.endpoint_cooldown_s = endpoint_cooldown_s
        self.headers = dict(headers or {})
        self.rng = rng if rng is not None else random.Random(jitter_seed)
        self._endpoints: list[_Endpoint] | None = None
        self._rr = 0
        self._client: Any = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._permanent: BackendError | None = None  # set once: every later call raises it
        self._succeeded = False  # some request got a usable response
        self._first: asyncio.Lock | None = None  # one request at a time until the first success

    # -- set-up ----------------------------------------------------------------------------
    def _check_options(self) -> None:
        if not self.base_urls:
            raise ConfigError("base_urls is empty; give at least one URL such as http://127.0.0.1:8000/v1")
        if self.max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {self.max_retries}")
        if not self.timeout_s > 0:
            raise ConfigError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.supports_n not in (True, False, "auto"):
            raise ConfigError(f"supports_n must be true, false or 'auto', got {self.supports_n!r}")

    def _api_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self.headers}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env, "").strip()
            if not key:
                raise BackendError(
                    f"environment variable {self.api_key_env} (api_key_env) is not set; "
                    f"export {self.api_key_env}=<your API key> or change api_key_env"
                )
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _ready(self) -> Any:
        """The HTTP client of the running event loop (created on first use in each loop)."""
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is loop:
            return self._client
        self._check_options()
        headers = self._api_headers()
        try:
            import httpx
        except ModuleNotFoundError:
            raise missing_extra("httpx", "openai") from None
        if self._endpoints is None:
            self._endpoints = [_Endpoint(normalize_base_url(u)) for u in self.base_urls]
        for ep in self._endpoints:
            ep.in_flight = 0
        limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
        try:  # aiohttp on the wire when installed: a tenth of httpcore's CPU per request (see aiohttp_transport)
            from ttclab.backends.aiohttp_transport import AiohttpTransport

            transport: Any = AiohttpTransport(self.max_concurrency)
        except ModuleNotFoundError:
            transport = None
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s), limits=limits, headers=headers,
                                         transport=transport)
        self._semaphore = asyncio.Semaphore(self.max_concurrency)
        self._first = asyncio.Lock()
        self._loop = loop
        return self._client

    def info(self) -> ModelInfo:
        urls = [e.base_url for e in self._endpoints] if self._endpoints else list(self.base_urls)
        return ModelInfo(name=self.model, backend="openai",
                         extra={"base_urls": urls, "supports_n": self.supports_n, "chat": self.chat})

    def endpoint_stats(self) -> list[dict[str, Any]]:
        """Per endpoint: URL, HTTP requests sent, consecutive transient failures, known ``n`` support."""
        return [
            {"base_url": e.base_url, "requests": e.requests, "consecutive_failures": e.consecutive_failures,
             "supports_n": e.supports_n}
            for e in self._endpoints or []
        ]

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except RuntimeError:  # created in an event loop that is closed now
                pass
        self._loop = None
        self._semaphore = None

    # -- generation ------------------------------------------------------------------------
    async def generate(self, request: Request, params: SamplingParams) -> list[Completion]:
        """Exactly ``params.n`` completions; failures are error completions.

        Raises :class:`BackendError` for a permanent failure (see the module doc): the run must stop.
        """
        if self._permanent is not None:
            raise self._permanent
        self._ready()
        chat = self._use_chat(request)
        base_seed = request.seed if request.seed is not None else params.seed
        n = params.n
        results: list[Completion | None] = [None] * n
        if n > 1 and self.supports_n is not False:
            got = await self._request(request, params, chat, n=n, seed=base_seed)
            if not isinstance(got, _NoN):
                for j, c in enumerate(got[:n]):
                    results[j] = c
        missing = [j for j in range(n) if results[j] is None]
        if missing:
            singles = await asyncio.gather(
                *(self._request(request, params, chat, n=1, seed=sample_seed(base_seed, j)) for j in missing)
            )
            for j, got in zip(missing, singles):
                assert not isinstance(got, _NoN)
                results[j] = got[0]
        return [c for c in results if c is not None]

    async def stream(self, request: Request, params: SamplingParams) -> AsyncIterator[str | Completion]:
        """One sample as a token stream (``stream: true``): text deltas, then the :class:`Completion`.

        Transient failures before the first token are retried as in :meth:`generate`; permanent ones
        raise :class:`BackendError`. Tokens come from the server's final ``usage`` event
        (``stream_options.include_usage``), else one per content event. A server that ignores ``stream``
        and answers with one JSON completion gives that text as one delta. Cancelling the iteration
        closes the HTTP connection, so the server stops generating.
        """
        if self._permanent is not None:
            raise self._permanent
        client = self._ready()
        chat = self._use_chat(request)
        body = self._body(request, params.with_(n=1), chat, 1, request.seed if request.seed is not None else params.seed)
        body.update(stream=True, stream_options={"include_usage": True})
        path = "/chat/completions" if chat else "/completions"
        started = time.perf_counter()
        message = "no attempt"
        refused: set[str] = set()  # endpoints that refused this call (fail_fast off), as in generate
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self._backoff(attempt - 1, None))
            assert self._semaphore is not None
            ep = self._pick()
            url = ep.base_url + path
            texts: list[str] = []
            usage: dict[str, Any] = {}
            finish = "stop"
            events = 0
            import httpx

            async with self._semaphore:
                ep.in_flight += 1
                ep.requests += 1
                try:
                    async with client.stream("POST", url, json=body) as response:
                        if response.status_code >= 400:
                            await response.aread()
                            failure = _Failure(f"HTTP {response.status_code}: {_error_message(response)}",
                                               transient=response.status_code in TRANSIENT_STATUS,
                                               status=response.status_code)
                            ep.answered = True
                            if failure.transient:
                                message = failure.message
                                continue
                            if failure.status in PERMANENT_STATUS:
                                raise self._stop(self._permanent_error(ep, path, failure))
                            yield Completion.failed(f"{failure.message} ({url})", time.perf_counter() - started)
                            return
                        ep.answered = True
                        self._succeeded = True
                        if "json" in response.headers.get("content-type", ""):
                            # a server that ignores stream: true answers with one completion body
                            await response.aread()
                            data = json.loads(response.content)
                            got = _parse(data, chat, False, time.perf_counter() - started) if isinstance(data, dict) else []
                            if not got:
                                yield Completion.failed(f"response from {url} has no choices", time.perf_counter() - started)
                            else:
                                if got[0].text:
                                    yield got[0].text
                                yield got[0]
                            return
                        async for line in response.aiter_lines():
                            if not line.startswith("data:"):
                                continue
                            data = line[5:].strip()
                            if data == "[DONE]":
                                break
                            event = json.loads(data)
                            if event.get("usage"):
                                usage = event["usage"]
                            for choice in event.get("choices") or []:
                                piece = ((choice.get("delta") or {}).get("content") if chat else choice.get("text"))
                                if piece:
                                    texts.append(piece)
                                    events += 1
                                    yield piece
                                if choice.get("finish_reason"):
                                    finish = choice["finish_reason"]
                except httpx.ConnectError as exc:  # nothing sent yet: say where and why, as generate does
                    failure = _connect_failure(exc)
                    message = f"{failure.message} ({url})"
                    if failure.refused and not self.fail_fast:
                        refused.add(ep.base_url)
                        self._mark(ep, ok=False)
                        if len(refused) == len(self._endpoints or []):
                            raise self._refused_error(failure.message) from None
                    continue
                except (httpx.TimeoutException, httpx.TransportError) as exc:
                    if texts:
                        yield Completion.failed(f"stream from {url} broke: {type(exc).__name__}",
                                                time.perf_counter() - started)
                        return
                    message = f"connection error ({type(exc).__name__})"
                    continue
                except ValueError as exc:
                    yield Completion.failed(f"malformed stream event from {url}: {exc}", time.perf_counter() - started)
                    return
                finally:
                    ep.in_flight -= 1
            yield Completion(text="".join(texts), finish_reason=finish, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                             completion_tokens=int(usage.get("completion_tokens") or events),
                             latency_s=time.perf_counter() - started)
            return
        yield Completion.failed(f"{message} ({path}; gave up after {self.max_retries + 1} attempts)",
                                time.perf_counter() - started)

    def _use_chat(self, request: Request) -> bool:
        if self.chat is False and request.is_chat:
            raise ConfigError("backend openai: chat is false but the prompt is chat messages; "
                              "set chat: true or use a completion prompt template")
        return bool(self.chat) or request.is_chat

    def _body(self, request: Request, params: SamplingParams, chat: bool, n: int, seed: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model}
        if chat:
            prompt = request.prompt
            body["messages"] = (
                [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
            )
        else:
            body["prompt"] = request.prompt
        body.update(
            max_tokens=params.max_tokens, temperature=params.temperature, top_p=params.top_p,
            presence_penalty=params.presence_penalty, frequency_penalty=params.frequency_penalty,
        )
        if n > 1:
            body["n"] = n
        if seed is not None:
            body["seed"] = seed
        if params.stop:
            body["stop"] = list(params.stop)
        if params.logprobs:
            if chat:
                body.update(logprobs=True, top_logprobs=0)  # llama.cpp's server needs top_logprobs set
            else:
                body["logprobs"] = 1
        if params.top_k is not None:
            body["top_k"] = params.top_k
        if params.min_p > 0:
            body["min_p"] = params.min_p
        body.update(params.extra_body)
        return body

    def _pick(self) -> _Endpoint:
        eps = self._endpoints
        assert eps
        k = len(eps)
        start, self._rr = self._rr, (self._rr + 1) % k
        order = [eps[(start + i) % k] for i in range(k)]
        order = [e for e in order if not e.dead] or order
        now = time.monotonic()
        healthy = [e for e in order if e.down_until <= now]
        pool = healthy or [min(order, key=lambda e: e.down_until)]
        return min(pool, key=lambda e: e.in_flight)  # min keeps rotation order on ties

    def _mark(self, ep: _Endpoint, ok: bool) -> None:
        if ok:
            ep.consecutive_failures = 0
            ep.down_until = 0.0
            return
        ep.consecutive_failures += 1
        if ep.consecutive_failures >= self.endpoint_failures:
            ep.down_until = time.monotonic() + self.endpoint_cooldown_s

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = self.rng.uniform(0.0, min(self.backoff_cap_s, self.backoff_base_s * 2**attempt))
        return max(delay, retry_after or 0.0)

    async def _request(
        self, request: Request, params: SamplingParams, chat: bool, n: int, seed: int | None
    ) -> list[Completion] | _NoN:
        """One logical request (with retries): its completions (possibly fewer than ``n``), or ``_NO_N``."""
        if not self._succeeded:  # until something worked, probe with one request at a time
            assert self._first is not None
            async with self._first:
                if not self._succeeded:
                    return await self._request_once_ready(request, params, chat, n, seed)
        return await self._request_once_ready(request, params, chat, n, seed)

    async def _request_once_ready(
        self, request: Request, params: SamplingParams, chat: bool, n: int, seed: int | None
    ) -> list[Completion] | _NoN:
        if self._permanent is not None:
            raise self._permanent
        body = self._body(request, params, chat, n, seed)
        path = "/chat/completions" if chat else "/completions"
        started = time.perf_counter()
        failure: _Failure | None = None
        url = ""
        attempts = 0
        refused: set[str] = set()  # endpoints that refused this call (fail_fast off)
        for attempt in range(self.max_retries + 1):
            if attempt:
                assert failure is not None
                await asyncio.sleep(self._backoff(attempt - 1, failure.retry_after))
            client = self._ready()
            assert self._semaphore is not None
            async with self._semaphore:
                ep = self._pick()
                if n > 1 and (ep.supports_n is False and self.supports_n == "auto"):
                    return _NO_N
                url = ep.base_url + path
                attempts += 1
                ep.in_flight += 1
                ep.requests += 1
                t0 = time.perf_counter()
                try:
                    outcome = await self._post(client, url, body)
                finally:
                    ep.in_flight -= 1
                latency = time.perf_counter() - t0
            if isinstance(outcome, _Failure):
                failure = outcome
                if outcome.refused and not ep.answered and self.fail_fast:  # nothing listening: a wrong URL
                    ep.dead = outcome.message
                    if all(e.dead for e in self._endpoints or []):
                        raise self._stop(self._refused_error(outcome.message))
                    continue
                if outcome.refused and not self.fail_fast:  # an upstream down or still starting: this call fails
                    refused.add(ep.base_url)
                    self._mark(ep, ok=False)
                    if len(refused) == len(self._endpoints or []):
                        raise self._refused_error(outcome.message)
                    continue
                if outcome.transient:
                    self._mark(ep, ok=False)
                    continue
                ep.answered = True
                self._mark(ep, ok=True)  # the server answered: it is up
                if outcome.status in PERMANENT_STATUS:
                    raise self._stop(self._permanent_error(ep, path, outcome))
                if outcome.rejects_n and n > 1 and self.supports_n == "auto":
                    ep.supports_n = False
                    return _NO_N
                return self._failed(n, f"{outcome.message} ({url})", started)
            ep.answered = True
            self._mark(ep, ok=True)
            try:
                completions = _parse(outcome, chat, params.logprobs, latency)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                return self._failed(n, f"malformed response from {url}: {type(exc).__name__}: {exc}", started)
            if not completions:
                return self._failed(n, f"response from {url} has no choices", started)
            if n > 1 and self.supports_n == "auto":
                ep.supports_n = len(completions) >= n
            self._succeeded = True
            return completions
        assert failure is not None
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        return self._failed(n, f"{failure.message} ({url}; gave up after {tries})", started)

    def _stop(self, error: BackendError) -> BackendError:
        """Remember a permanent failure (every later call raises it; not with ``fail_fast`` off) and return it."""
        if not self.fail_fast:
            return error
        if self._permanent is None:
            self._permanent = error
        return self._permanent

    def _permanent_error(self, ep: _Endpoint, path: str, failure: _Failure) -> BackendError:
        status = failure.status
        if status == 401:
            fix = (
                f"the server refused the API key in ${self.api_key_env}; set it to a valid key"
                if self.api_key_env
                else "the server needs an API key: set api_key_env: NAME in the model's options and export NAME=<key>"
            )
        elif status == 403:
            key = f"the key in ${self.api_key_env}" if self.api_key_env else "this client"
            fix = f"{key} has no permission for model {self.model!r} here; use a key or model it may use"
        elif "model" in failure.message.lower():
            fix = f"unknown model {self.model!r}; list the served models with: curl {ep.base_url}/models"
        else:
            fix = f"the server has no {path} under {ep.base_url}; check base_url (it usually ends in /v1)"
        stopped = "stopped: this fails every request" if self.fail_fast else "the next request tries again"
        return BackendError(f"{ep.base_url}{path}: {failure.message}; {fix} ({stopped})")

    def _refused_error(self, detail: str) -> BackendError:
        eps = self._endpoints or []
        urls = ", ".join(e.base_url for e in eps)
        option = "base_url" if len(eps) == 1 else "base_urls"
        stopped = "stopped before any request was answered" if self.fail_fast else "the next request tries again"
        return BackendError(f"{urls}: {detail}; nothing is listening there: start the server or fix {option} ({stopped})")

    @staticmethod
    def _failed(n: int, message: str, started: float) -> list[Completion]:
        elapsed = time.perf_counter() - started
        return [Completion.failed(error=message, latency_s=elapsed) for _ in range(n)]

    async def _post(self, client: Any, url: str, body: dict[str, Any]) -> dict[str, Any] | _Failure:
        import httpx

        transport = getattr(client, "_transport", None)
        if hasattr(transport, "post_json"):  # aiohttp on the wire: skip httpx's request/response objects
            return await self._post_aiohttp(transport, client, url, body)
        try:
            response = await client.post(url, json=body)
        except httpx.TimeoutException as exc:
            return _Failure(f"timeout after {self.timeout_s:g} s ({type(exc).__name__})", transient=True)
        except httpx.ConnectError as exc:
            return _connect_failure(exc)
        except httpx.TransportError as exc:
            return _transport_failure(exc)
        return self._outcome(response)

    async def _post_aiohttp(self, transport: Any, client: Any, url: str, body: dict[str, Any]) -> dict[str, Any] | _Failure:
        """:meth:`_post` over :class:`~ttclab.backends.aiohttp_transport.AiohttpTransport` directly (same outcomes)."""
        import aiohttp

        try:
            response = await transport.post_json(url, body, client.headers.multi_items(), self.timeout_s)
        except TimeoutError:
            return _Failure(f"timeout after {self.timeout_s:g} s (TimeoutError)", transient=True)
        except aiohttp.ClientConnectorError as exc:
            return _connect_failure(exc)
        except aiohttp.ClientError as exc:
            return _transport_failure(exc)
        return self._outcome(response)

    def _outcome(self, response: Any) -> dict[str, Any] | _Failure:
        """The parsed body of an HTTP response, or the failure it is."""
        status = response.status_code
        if status >= 400 or status < 200:
            message = _error_message(response)
            return _Failure(
                f"HTTP {status}: {message}" if message else f"HTTP {status}",
                transient=status in TRANSIENT_STATUS,
                status=status,
                retry_after=parse_retry_after(response.headers),
                rejects_n=status == 400 and bool(_MENTIONS_N.search(message)),
            )
        try:
            data = response.json()
        except ValueError:
            return _Failure(f"HTTP {status} with a body that is not JSON", transient=False, status=status)
        if not isinstance(data, dict):
            return _Failure(f"HTTP {status} with a JSON body that is not an object", transient=False, status=status)
        return data


def _connect_failure(exc: BaseException) -> _Failure:
    """Could not connect: refused (nothing listening) or another connect error (transient)."""
    root = _root_cause(exc)
    detail = " ".join(str(root).split()) or type(root).__name__
    what = "connection refused" if isinstance(root, ConnectionRefusedError) else "cannot connect"
    return _Failure(f"connection error ({what}: {detail})", transient=True, refused=True)


def _transport_failure(exc: BaseException) -> _Failure:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return _Failure(f"connection error ({type(exc).__name__}: {detail})", transient=True)


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain (httpx wraps the socket's ConnectionRefusedError twice)."""
    seen = {id(exc)}
    while (nxt := exc.__cause__ or exc.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        exc = nxt
    return exc


def _parse(data: dict[str, Any], chat: bool, want_logprobs: bool, latency: float) -> list[Completion]:
    """Completions from one response body, in choice-index order."""
    choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
    usage = data.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    total = usage.get("completion_tokens")
    texts: list[str] = []
    lps: list[tuple[float, ...] | None] = []
    missing: list[str | None] = []  # why a choice has no text (None: it has one)
    for choice in choices:
        lp = choice.get("logprobs") or {}
        raw = (choice.get("message") or {}).get("content") if chat else choice.get("text")
        field = "message.content" if chat else "text"
        missing.append(
            None
            if isinstance(raw, str)
            else f"choice {choice.get('index', len(missing))} has {field}: null "
            f"(finish_reason {choice.get('finish_reason')!r}); no answer to grade"
        )
        texts.append(raw if isinstance(raw, str) else "")
        if chat:
            content = lp.get("content") if isinstance(lp, dict) else None
            lps.append(tuple(float(t["logprob"]) for t in content) if content is not None else None)
        else:
            tokens = lp.get("token_logprobs") if isinstance(lp, dict) else None
            lps.append(tuple(float(x) for x in tokens if x is not None) if tokens is not None else None)
    counts = split_completion_tokens(None if total is None else int(total), texts, lps)
    return [
        Completion.failed(error=why, latency_s=latency, prompt_tokens=prompt_tokens)
        if why
        else Completion(
            text=text,
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=count,
            latency_s=latency,
            token_logprobs=lp if want_logprobs else None,
        )
        for choice, text, lp, count, why in zip(choices, texts, lps, counts, missing)
    ]


__all__ = ["OpenAIBackend", "normalize_base_url", "parse_retry_after", "split_completion_tokens"]
