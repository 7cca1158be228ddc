"""Continuous batching of many samples over llama.cpp's low-level API (the embedded engine).

A request's prompt is evaluated once into a prompt stream (all but its last token); a later request
with exactly the same tokens (one sample per request, the runner's single-stream path) reads the
stream it left instead of evaluating it again. Its samples start
in free sequence slots: the prompt's KV cache is copied to the slot (``llama_memory_seq_cp``) and the
last prompt token is decoded there; then every ``llama_decode`` step advances every live sample by
one token -- of whichever request. A sample that stops (end of generation, a stop string, its token
limit) leaves the batch, its cells are freed (``llama_memory_seq_rm``) and the slot is refilled at
once from the oldest request with samples left, lowest free stream first; a step's rows go up the
streams (llama.cpp decodes rows that go down them about twice as slowly). Each sample has its own sampler chain seeded with its
own seed, built as llama-cpp-python's ``Llama`` builds it, and the next token is drawn in C
(``llama_sampler_sample``); Python only moves token ids and bytes.

Exactness. The KV cache is *not* unified: every sequence has a stream of its own, laid out as in a
single-sequence context, and flash attention is off (as in ``Llama``'s default). llama.cpp's CPU
kernels then compute each sequence's single-token rows independently of the other rows of a step, so
a sample's tokens depend only on the prompt, its seed and the sampling settings -- not on what it
shares a batch with, how a large ``n`` is spread over slots, the thread count or the context size --
and equal what ``create_chat_completion`` gives one sample at a time on a fresh ``Llama`` (tested
token for token). A unified cache (shared prompt cells) or flash attention changes the summation
order of attention and breaks this (measured). Prompts are evaluated alone and in one piece, never
mixed into a decode step: llama.cpp rounds a multi-token chunk of a sequence differently from
single tokens or other chunkings.

Memory. A stream holds ``cells`` KV cells (prompt + token limit, rounded up to 256); the context has
``PROMPT_STREAMS`` prompt streams and at most ``max_seqs`` sample slots, fewer if they would not fit
``kv_budget_mb``. A request needing longer streams than the context has waits until the current work
drains, then the context is rebuilt.
"""

from __future__ import annotations

import ctypes
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CELL_ALIGN = 256  # llama.cpp pads a sequence's KV stream to this many cells
LLAMA_MAX_SEQ = 256  # llama.cpp's limit on sequences per context
PENALTY_LAST_N = 64  # llama-cpp-python's ``Llama(last_n_tokens_size=64)``
SPLIT_CHAR_EXTRA = 8  # at most this many tokens past max_tokens to complete a split UTF-8 character
_LEAD_BYTES = ((2, 192), (3, 224), (4, 240))


@dataclass(frozen=True, slots=True)
class SamplerSettings:
    """The sampler chain of one sample, in llama-cpp-python's terms (``Llama._init_sampler``)."""

    temperature: float
    top_p: float = 1.0
    top_k: int = 0  # 0 disables
    min_p: float = 0.0
    typical_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repeat_penalty: float = 1.0
    penalty_last_n: int = PENALTY_LAST_N


@dataclass(slots=True)
class SequenceResult:
    """What one decoded sequence produced."""

    text: str
    finish_reason: str  # "stop" (end of generation or a stop string) or "length"
    completion_tokens: int
    latency_s: float
    token_logprobs: tuple[float, ...] | None
    tokens: tuple[int, ...] = ()


@dataclass(slots=True)
class DecodeStats:
    """Where the time of the decoder went (cumulative; ``reset()`` to start again)."""

    prompt_s: float = 0.0
    decode_s: float = 0.0
    sample_s: float = 0.0  # llama_sampler_sample (in C)
    python_s: float = 0.0  # the Python loop: stop strings, detokenising, filling the batch
    logprob_s: float = 0.0
    setup_s: float = 0.0
    prompt_tokens: int = 0
    decode_steps: int = 0
    decoded_tokens: int = 0
    contexts_created: int = 0
    prompts_reused: int = 0  # requests whose prompt was already evaluated in a prompt stream

    def reset(self) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, 0 if isinstance(getattr(self, name), int) else 0.0)

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(eq=False)
class DecodeJob:
    """One request: ``len(seeds)`` samples of ``prompt``; ``done`` receives the results (or an exception).

    ``done`` is called on the decoding thread; ``cancelled`` is polled there between steps.
    """

    prompt: list[int]
    seeds: list[int | None]
    settings: SamplerSettings
    max_tokens: int
    stops: list[bytes]
    logprobs: bool
    done: Callable[[list[SequenceResult] | BaseException], None]
    context: int | None = None  # cap on prompt + completion tokens
    cancelled: Callable[[], bool] = lambda: False
    # streaming: called on the decoding thread with (sample index, text so far) after each kept token
    on_text: Callable[[int, bytes], None] | None = None
    # scheduling state
    hard_limit: int = 0
    cells: int = 0
    max_stop: int = 0
    prompt_sid: int | None = None
    started: int = 0  # samples started
    finished: int = 0
    start: float = 0.0
    results: list[SequenceResult | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.prompt:
            raise ValueError("empty prompt")
        limit = self.max_tokens + SPLIT_CHAR_EXTRA
        if self.context is not None:
            limit = max(self.max_tokens, min(limit, self.context - len(self.prompt)))
        self.hard_limit = limit
        self.cells = BatchDecoder.cells_for(len(self.prompt), limit)
        self.results = [None] * len(self.seeds)
        self.max_stop = max((len(s) for s in self.stops), default=0)


@dataclass(slots=True, eq=False)
class _Seq:
    sid: int
    job: DecodeJob
    index: int
    chain: Any
    feed: int  # the token to decode next
    pos: int  # its position
    row: int = 0
    tokens: list[int] = field(default_factory=list)
    text: bytearray = field(default_factory=bytearray)
    logprobs: list[float] | None = None
    multibyte: int = 0  # tokens left before llama-cpp-python's split-character rule checks again
    checked: int = 0  # bytes of text already searched for stop strings


def _by_stream(q: _Seq) -> int:
    return q.sid


class BatchDecoder:
    """Continuous batching of the samples of many requests on a model a ``Llama`` loaded.

    ``submit`` queues a request (any thread); ``serve`` (the llama.cpp thread only) decodes until
    no work is left: each request's prompt is evaluated once into a prompt stream, its samples start
    in free sequence slots (at most ``max_seqs``, within the KV budget) and every step decodes one
    token of every live sample, of whichever request. A slot freed by a finished sample is refilled
    at once from the oldest request with samples left, so batches stay full.
    """

    PROMPT_STREAMS = 2  # prompts held at once (the next request's prompt is ready when slots free up)

    def __init__(self, llama: Any, *, n_threads: int, n_batch: int = 512, max_seqs: int = 16,
                 kv_budget_mb: float = 512.0) -> None:
        import llama_cpp

        self._lc = llama_cpp
        self.llama = llama
        self.model = llama._model.model
        self.vocab = llama._model.vocab
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.n_threads = n_threads
        self.n_batch = max(1, n_batch)
        self.max_seqs = max(1, min(max_seqs, LLAMA_MAX_SEQ - self.PROMPT_STREAMS))
        self.kv_budget_bytes = kv_budget_mb * 2**20
        self.bytes_per_cell = _kv_bytes_per_cell(llama)
        self.eog = frozenset(t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self.vocab, t))
        self.bos = int(llama_cpp.llama_vocab_bos(self.vocab))
        self.stats = DecodeStats()
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        self._ctx: Any = None
        self._mem: Any = None
        self._ctx_cells = 0  # KV cells per stream
        self._slots = 0  # sequence streams of the context (after the prompt streams)
        self._batch: Any = None
        self._batch_cap = 0
        self._lock = threading.Lock()
        self._waiting: deque[DecodeJob] = deque()
        self._serving = False
        self._admitted: list[DecodeJob] = []
        self._live: list[_Seq] = []
        self._free_prompt: list[int] = []  # least recently released first
        self._prompt_held: dict[int, tuple[int, ...]] = {}  # prompt stream -> the tokens evaluated in it
        self._prompt_users: dict[int, int] = {}  # prompt stream -> admitted requests reading it
        self._free_slots: list[int] = []

    # -- sizes ---------------------------------------------------------------------------------
    @staticmethod
    def cells_for(prompt_tokens: int, max_tokens: int) -> int:
        """KV cells one sequence needs: prompt plus its token limit, rounded up to llama.cpp's padding."""
        return max(CELL_ALIGN, math.ceil((prompt_tokens + max_tokens) / CELL_ALIGN) * CELL_ALIGN)

    def batch_size(self, n: int, cells: int) -> int:
        """Samples decoded together: at most ``max_seqs`` and what fits the KV budget (at least 1)."""
        fit = int(self.kv_budget_bytes // max(1, cells * self.bytes_per_cell)) - self.PROMPT_STREAMS
        return max(1, min(n, self.max_seqs, fit))

    # -- llama.cpp objects ---------------------------------------------------------------------
    def _new_context(self, cells: int) -> None:
        """A context of PROMPT_STREAMS + slots streams of ``cells`` cells (only when nothing is active)."""
        lc = self._lc
        start = time.perf_counter()
        self._free_context()
        cells = max(cells, self._ctx_cells)
        slots = self.batch_size(self.max_seqs, cells)
        streams = self.PROMPT_STREAMS + slots
        params = lc.llama_context_default_params()
        params.n_ctx = streams * cells
        params.n_seq_max = streams
        params.n_batch = params.n_ubatch = max(self.n_batch, streams)
        params.n_threads = params.n_threads_batch = self.n_threads
        params.kv_unified = False  # one stream per sequence: see the module docstring (exactness)
        params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.no_perf = True
        ctx = lc.llama_init_from_model(self.model, params)
        if not ctx:
            raise MemoryError(f"llama.cpp could not create a context of {streams} x {cells} KV cells")
        self._ctx, self._mem, self._ctx_cells, self._slots = ctx, lc.llama_get_memory(ctx), cells, slots
        self._free_prompt = list(range(self.PROMPT_STREAMS))
        self._prompt_held, self._prompt_users = {}, {}
        self._free_slots = list(range(self.PROMPT_STREAMS, streams))[::-1]
        self._ensure_batch(max(self.n_batch, streams))
        self.stats.contexts_created += 1
        self.stats.setup_s += time.perf_counter() - start

    def _ensure_batch(self, capacity: int) -> None:
        if self._batch is not None and self._batch_cap >= capacity:
            return
        if self._batch is not None:
            self._lc.llama_batch_free(self._batch)
        self._batch = self._lc.llama_batch_init(capacity, 0, 1)
        self._batch_cap = capacity
        b = self._batch
        self._tok = np.ctypeslib.as_array(b.token, shape=(capacity,))
        self._pos = np.ctypeslib.as_array(b.pos, shape=(capacity,))
        self._nseq = np.ctypeslib.as_array(b.n_seq_id, shape=(capacity,))
        self._logits = np.ctypeslib.as_array(b.logits, shape=(capacity,))
        self._seq_ptrs = [b.seq_id[i] for i in range(capacity)]
        self._nseq[:] = 1

    def _free_context(self) -> None:
        if self._ctx is not None:
            self._lc.llama_free(self._ctx)
            self._ctx = self._mem = None
            self._ctx_cells = self._slots = 0

    def close(self) -> None:
        """Free the context (call on the llama.cpp thread, when nothing is being decoded)."""
        self._free_context()
        if self._batch is not None:
            self._lc.llama_batch_free(self._batch)
            self._batch, self._batch_cap = None, 0

    def _decode(self, n_tokens: int) -> None:
        self._batch.n_tokens = n_tokens
        rc = self._lc.llama_decode(self._ctx, self._batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed with status {rc} ({n_tokens} tokens)")

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            n = self._lc.llama_token_to_piece(self.vocab, token, self._piece_buf, len(self._piece_buf), 0, False)
            piece = self._piece_buf.raw[:n] if n > 0 else b""
            self._pieces[token] = piece
        return piece

    def _chain(self, s: SamplerSettings, seed: int | None) -> Any:
        """The sampler chain ``Llama._init_sampler`` builds (no-op stages skipped: same draws)."""
        lc = self._lc
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        add = lc.llama_sampler_chain_add
        if s.repeat_penalty != 1.0 or s.frequency_penalty != 0.0 or s.presence_penalty != 0.0:
            add(chain, lc.llama_sampler_init_penalties(self.n_vocab, s.penalty_last_n, s.repeat_penalty,
                                                       s.frequency_penalty, s.presence_penalty))
        if s.temperature == 0.0:
            add(chain, lc.llama_sampler_init_greedy())
            return chain
        if s.top_k > 0:
            add(chain, lc.llama_sampler_init_top_k(s.top_k))
        if s.typical_p < 1.0:
            add(chain, lc.llama_sampler_init_typical(s.typical_p, 1))
        if s.top_p < 1.0:
            add(chain, lc.llama_sampler_init_top_p(s.top_p, 1))
        if s.min_p > 0.0:
            add(chain, lc.llama_sampler_init_min_p(s.min_p, 1))
        add(chain, lc.llama_sampler_init_temp(s.temperature))
        add(chain, lc.llama_sampler_init_dist(lc.LLAMA_DEFAULT_SEED if seed is None else int(seed)))
        return chain

    # -- requests ------------------------------------------------------------------------------
    def submit(self, job: DecodeJob) -> bool:
        """Queue a request; True when no ``serve`` is running or scheduled (the caller starts one)."""
        with self._lock:
            self._waiting.append(job)
            start = not self._serving
            self._serving = True
        return start

    def generate(self, prompt: list[int], seeds: list[int | None], settings: SamplerSettings, *,
                 max_tokens: int, stops: list[bytes], logprobs: bool,
                 context: int | None = None) -> list[SequenceResult]:
        """Decode one request now (blocking; on the llama.cpp thread): one result per seed.

        ``prompt`` must leave room for ``max_tokens``; ``context`` caps prompt + completion (a sample
        may run up to ``SPLIT_CHAR_EXTRA`` tokens past ``max_tokens`` to complete a split UTF-8
        character, as llama-cpp-python does, within it).
        """
        box: list[Any] = []
        self.submit(DecodeJob(prompt, list(seeds), settings, max_tokens, stops, logprobs, box.append, context))
        self.serve()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    # -- the scheduler -------------------------------------------------------------------------
    def serve(self) -> None:
        """Decode until every submitted request is done (the llama.cpp thread only)."""
        try:
            self._serve()
        except BaseException as exc:  # a bug or an interrupt: no request may wait forever
            with self._lock:
                waiting, self._waiting = list(self._waiting), deque()
                self._serving = False
            self._fail_active(exc)
            for job in waiting:
                job.done(exc)
            raise

    def _serve(self) -> None:
        while True:
            try:
                self._drop_cancelled()
                self._admit()
                self._start_samples()
                if self._live:
                    self._step()
                    continue
            except Exception as exc:  # a failed decode or context: fail what is in flight, go on
                self._fail_active(exc)
                continue
            with self._lock:
                if not self._waiting and not self._admitted:
                    self._serving = False
                    return

    def _admit(self) -> None:
        """Evaluate waiting requests' prompts into free prompt streams (FIFO)."""
        lc = self._lc
        while self._waiting:
            job = self._waiting[0]
            if job.cancelled():
                self._waiting.popleft()
                continue
            if self._ctx is None or job.cells > self._ctx_cells:
                if self._live or self._admitted:
                    return  # a larger context once the current work has drained
                try:
                    self._new_context(job.cells)
                except MemoryError as exc:
                    self._waiting.popleft()
                    job.done(exc)
                    continue
            # The prompt without its last token, once; every sample re-decodes the last token in its
            # own stream to get its first logits (as llama-cpp-python does for a cached prompt).
            head = job.prompt[:-1]
            key = tuple(head)
            held = next((sid for sid, toks in self._prompt_held.items() if toks == key), None)
            if held is None and not self._free_prompt:
                return
            self._waiting.popleft()
            job.start = time.perf_counter()
            self._admitted.append(job)
            if held is not None:
                # The same tokens are in a prompt stream already (another sample of the same question):
                # read them. Evaluated alone and in the same chunks, they are what a fresh evaluation
                # would give, so the samples do not depend on what came before.
                if held in self._free_prompt:
                    self._free_prompt.remove(held)
                self._prompt_users[held] = self._prompt_users.get(held, 0) + 1
                job.prompt_sid = held
                self.stats.prompts_reused += 1
                continue
            sid = self._free_prompt.pop(0)
            job.prompt_sid = sid
            self._prompt_users[sid] = 1
            self._prompt_held.pop(sid, None)
            lc.llama_memory_seq_rm(self._mem, sid, -1, -1)
            t0 = time.perf_counter()
            for at in range(0, len(head), self.n_batch):
                chunk = head[at:at + self.n_batch]
                k = len(chunk)
                self._tok[:k] = chunk
                self._pos[:k] = np.arange(at, at + k, dtype=np.int32)
                self._logits[:k] = 0
                for i in range(k):
                    self._seq_ptrs[i][0] = sid
                self._decode(k)
            self.stats.prompt_s += time.perf_counter() - t0
            self.stats.prompt_tokens += len(head)
            self._prompt_held[sid] = key

    def _start_samples(self) -> None:
        """Fill free sequence slots with the next samples of the oldest admitted requests."""
        lc = self._lc
        t0 = time.perf_counter()
        if not self._free_slots:
            return
        self._free_slots.sort(reverse=True)  # pop() takes the lowest stream: live streams stay packed
        started = False
        for job in self._admitted:
            while job.started < len(job.seeds) and self._free_slots:
                started = True
                sid = self._free_slots.pop()
                lc.llama_memory_seq_rm(self._mem, sid, -1, -1)
                if len(job.prompt) > 1:
                    lc.llama_memory_seq_cp(self._mem, job.prompt_sid, sid, -1, -1)
                j = job.started
                job.started += 1
                self._live.append(_Seq(sid=sid, job=job, index=j, chain=self._chain(job.settings, job.seeds[j]),
                                       feed=job.prompt[-1], pos=len(job.prompt) - 1,
                                       logprobs=[] if job.logprobs else None))
            if job.started == len(job.seeds) and job.prompt_sid is not None:
                self._release_prompt(job)
            if not self._free_slots:
                break
        if started:
            # Rows in ascending stream order: llama.cpp decodes a step whose rows go down the streams
            # about twice as slowly (measured with 8 sequences: 9.1 vs 5.3 ms per token).
            self._live.sort(key=_by_stream)
        self.stats.setup_s += time.perf_counter() - t0

    def _release_prompt(self, job: DecodeJob) -> None:
        sid = job.prompt_sid
        if sid is not None:
            job.prompt_sid = None
            users = self._prompt_users.get(sid, 1) - 1
            if users > 0:
                self._prompt_users[sid] = users
                return
            self._prompt_users.pop(sid, None)
            self._free_prompt.append(sid)  # its tokens stay for a later request with the same prompt

    def _step(self) -> None:
        """Decode one token of every live sample, sample the next ones, retire finished samples."""
        st = self.stats
        clock = time.perf_counter
        live = self._live
        t0 = clock()
        k = len(live)
        for i, q in enumerate(live):
            self._tok[i] = q.feed
            self._pos[i] = q.pos
            self._seq_ptrs[i][0] = q.sid
            q.row = i
        self._logits[:k] = 1
        t1 = clock()
        self._decode(k)
        t2 = clock()
        st.decode_s += t2 - t1
        st.decode_steps += 1
        st.decoded_tokens += k
        ctx, sample, eog, piece = self._ctx, self._lc.llama_sampler_sample, self.eog, self._piece
        t_sampler = t_logprob = 0.0
        keep: list[_Seq] = []
        for q in live:
            job = q.job
            ts = clock()
            tok = sample(q.chain, ctx, q.row)
            t_sampler += clock() - ts
            if tok in eog:
                self._retire(q, "stop")
                continue
            if q.logprobs is not None:
                ts = clock()
                q.logprobs.append(self._logprob(q.row, tok))
                t_logprob += clock() - ts
            q.tokens.append(tok)
            text = q.text
            text += piece(tok)
            q.feed, q.pos = tok, q.pos + 1
            # llama-cpp-python checks neither stop strings nor the token limit while the text ends
            # in a split UTF-8 character (its "multibyte fix"); doing the same keeps the samples equal.
            for back, byte in enumerate(text[-3:]):
                if byte >= 0xC0:
                    for num, pattern in _LEAD_BYTES:
                        if num > 3 - back and byte & pattern == pattern:
                            q.multibyte = num - 3 + back
            if q.multibyte > 0 and len(q.tokens) < job.hard_limit:
                q.multibyte -= 1
                keep.append(q)
                continue
            if job.stops:
                window = bytes(text[max(0, q.checked - job.max_stop + 1):])
                q.checked = len(text)
                hit = next((s for s in job.stops if s in window), None)
                if hit is not None:
                    del text[text.index(hit):]
                    self._retire(q, "stop")
                    continue
            if len(q.tokens) >= job.max_tokens:
                self._retire(q, "length")
                continue
            if job.on_text is not None:
                job.on_text(q.index, bytes(text))
            keep.append(q)
        self._live = keep
        t3 = clock()
        st.sample_s += t_sampler
        st.logprob_s += t_logprob
        st.python_s += (t1 - t0) + (t3 - t2) - t_sampler - t_logprob

    def _retire(self, q: _Seq, reason: str) -> None:
        lc = self._lc
        lc.llama_memory_seq_rm(self._mem, q.sid, -1, -1)
        lc.llama_sampler_free(q.chain)
        q.chain = None
        self._free_slots.append(q.sid)
        job = q.job
        text = bytes(q.text)
        if q.tokens and q.tokens[0] == self.bos and text[:1] == b" ":  # as llama-cpp-python's detokenize
            text = text[1:]
        job.results[q.index] = SequenceResult(
            text=text.decode("utf-8", errors="ignore"), finish_reason=reason, completion_tokens=len(q.tokens),
            latency_s=time.perf_counter() - job.start,
            token_logprobs=tuple(q.logprobs) if q.logprobs is not None else None, tokens=tuple(q.tokens),
        )
        job.finished += 1
        if job.finished == len(job.seeds):
            self._admitted.remove(job)
            self._release_prompt(job)
            job.done(list(job.results))  # type: ignore[arg-type]

    def _drop_cancelled(self) -> None:
        for job in [j for j in self._admitted if j.cancelled()]:
            for q in [q for q in self._live if q.job is job]:
                self._lc.llama_memory_seq_rm(self._mem, q.sid, -1, -1)
                self._lc.llama_sampler_free(q.chain)
                self._free_slots.append(q.sid)
                self._live.remove(q)
            self._admitted.remove(job)
            self._release_prompt(job)

    def _fail_active(self, exc: BaseException) -> None:
        """Every request in flight gets ``exc``; the context is dropped (waiting requests go on)."""
        for q in self._live:
            self._lc.llama_sampler_free(q.chain)
        jobs, self._admitted, self._live = self._admitted, [], []
        self._free_context()
        for job in jobs:
            job.done(exc)

    def _logprob(self, row: int, token: int) -> float:
        """log softmax of the raw logits (the model's distribution, as llama-cpp-python reports it)."""
        ptr = self._lc.llama_get_logits_ith(self._ctx, row)
        logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)
        top = logits.max()
        return float(logits[token] - top - math.log(np.exp(logits - top).sum()))


def _kv_bytes_per_cell(llama: Any) -> int:
    """Bytes of f16 K and V one token occupies over all layers (from the GGUF metadata)."""
    meta = getattr(llama, "metadata", None) or {}
    arch = meta.get("general.architecture", "")

    def num(key: str) -> int | None:
        value = meta.get(f"{arch}.{key}")
        try:
            return int(value) if value not in (None, "") else None
        except ValueError:
            return None

    layers = num("block_count") or 32
    heads = num("attention.head_count") or 32
    kv_heads = num("attention.head_count_kv") or heads
    hidden = num("embedding_length") or 4096
    k_dim = num("attention.key_length") or hidden // heads
    v_dim = num("attention.value_length") or k_dim
    return layers * kv_heads * (k_dim + v_dim) * 2
