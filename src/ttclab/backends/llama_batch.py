"""Batched multi-sequence decoding of the ``n`` samples of one prompt over llama.cpp's low-level API.

The prompt is evaluated once into sequence 0 (all but its last token); every batch of samples copies
that KV cache to its own sequences (``llama_memory_seq_cp``) and then each ``llama_decode`` advances
every live sequence by one token. A sequence that stops (end of generation, a stop string, its token
limit) leaves the batch and its cells are freed (``llama_memory_seq_rm``). Each sample has its own
sampler chain seeded with its own seed, built exactly as llama-cpp-python's ``Llama`` builds it, and
the next token is drawn in C (``llama_sampler_sample``); Python only moves token ids.

Exactness. The KV cache is *not* unified: every sequence has a stream of its own, laid out as in a
single-sequence context, and flash attention is off (as in ``Llama``'s default). llama.cpp's CPU
kernels compute each token's row independently of the other rows of a batch, so a sample's tokens
depend only on the prompt, its seed and the sampling settings -- not on how many other samples share
the batch, how a large ``n`` is split, or the context size -- and equal what ``create_chat_completion``
gives one sample at a time (tested token for token). A unified cache (shared prompt cells) or flash
attention changes the summation order of attention and breaks this (measured), for no speed gain here.

Memory. Sequence ``s`` owns ``cells`` KV cells (prompt + its token limit, rounded up to 256); a batch
holds at most ``max_seqs`` samples and at most what fits ``kv_budget_mb`` (at least one sample), so a
large ``n`` is decoded as several batches that reuse the evaluated prompt.
"""

from __future__ import annotations

import ctypes
import math
import time
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

    def reset(self) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, 0 if isinstance(getattr(self, name), int) else 0.0)

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(slots=True)
class _Seq:
    sid: int
    chain: Any
    out_row: int = 0
    tokens: list[int] = field(default_factory=list)
    text: bytearray = field(default_factory=bytearray)
    logprobs: list[float] | None = None
    result: SequenceResult | None = None
    multibyte: int = 0  # tokens left before llama-cpp-python's split-character rule checks again
    checked: int = 0  # bytes of text already searched for stop strings


class BatchDecoder:
    """Decodes many samples of one prompt per ``llama_decode`` step, on a model a ``Llama`` loaded.

    Not thread-safe: call it from one thread (the backend's llama.cpp worker thread).
    """

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
        self.max_seqs = max(1, min(max_seqs, LLAMA_MAX_SEQ - 1))
        self.kv_budget_bytes = kv_budget_mb * 2**20
        self.bytes_per_cell = _kv_bytes_per_cell(llama)
        self.eog = frozenset(t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self.vocab, t))
        self.bos = int(llama_cpp.llama_vocab_bos(self.vocab))
        self.stats = DecodeStats()
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        self._ctx: Any = None
        self._ctx_seqs = 0  # sequences the context holds (sequence 0 keeps the prompt)
        self._ctx_cells = 0  # KV cells per sequence
        self._batch: Any = None
        self._batch_cap = 0

    # -- sizes ---------------------------------------------------------------------------------
    @staticmethod
    def cells_for(prompt_tokens: int, max_tokens: int) -> int:
        """KV cells one sequence needs: prompt plus its token limit, rounded up to llama.cpp's padding."""
        return max(CELL_ALIGN, math.ceil((prompt_tokens + max_tokens) / CELL_ALIGN) * CELL_ALIGN)

    def batch_size(self, n: int, cells: int) -> int:
        """Samples decoded together: at most ``max_seqs`` and what fits the KV budget (at least 1)."""
        fit = int(self.kv_budget_bytes // max(1, cells * self.bytes_per_cell)) - 1  # one stream keeps the prompt
        return max(1, min(n, self.max_seqs, fit))

    # -- llama.cpp objects ---------------------------------------------------------------------
    def _ensure_context(self, seqs: int, cells: int) -> None:
        lc = self._lc
        need_seqs = seqs + 1
        if self._ctx is not None and self._ctx_seqs >= need_seqs and self._ctx_cells >= cells:
            return
        start = time.perf_counter()
        self._free_context()
        need_seqs = max(need_seqs, self._ctx_seqs)
        cells = max(cells, self._ctx_cells)
        params = lc.llama_context_default_params()
        params.n_ctx = need_seqs * cells
        params.n_seq_max = need_seqs
        params.n_batch = params.n_ubatch = max(self.n_batch, need_seqs)
        params.n_threads = params.n_threads_batch = self.n_threads
        params.kv_unified = False  # one stream per sequence: see the module docstring (exactness)
        params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.no_perf = True
        ctx = lc.llama_init_from_model(self.model, params)
        if not ctx:
            raise MemoryError(f"llama.cpp could not create a context of {need_seqs} x {cells} KV cells")
        self._ctx, self._ctx_seqs, self._ctx_cells = ctx, need_seqs, cells
        self._ensure_batch(max(self.n_batch, need_seqs))
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
            self._ctx, self._ctx_seqs, self._ctx_cells = None, 0, 0

    def close(self) -> None:
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

    def _chain(self, s: SamplerSettings, seed: int) -> Any:
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
        add(chain, lc.llama_sampler_init_dist(seed))
        return chain

    # -- generation ----------------------------------------------------------------------------
    def generate(self, prompt: list[int], seeds: list[int | None], settings: SamplerSettings, *,
                 max_tokens: int, stops: list[bytes], logprobs: bool,
                 context: int | None = None) -> list[SequenceResult]:
        """One result per seed; ``prompt`` must leave room for ``max_tokens`` (the caller checks).

        ``context`` caps prompt + completion (a sequence may run up to ``SPLIT_CHAR_EXTRA`` tokens past
        ``max_tokens`` to complete a split UTF-8 character, as llama-cpp-python does, within it).
        """
        if not prompt:
            raise ValueError("empty prompt")
        lc = self._lc
        start = time.perf_counter()
        hard_limit = max_tokens + SPLIT_CHAR_EXTRA
        if context is not None:
            hard_limit = max(max_tokens, min(hard_limit, context - len(prompt)))
        cells = self.cells_for(len(prompt), hard_limit)
        size = self.batch_size(len(seeds), cells)
        self._ensure_context(size, cells)
        mem = lc.llama_get_memory(self._ctx)
        lc.llama_memory_clear(mem, False)
        t0 = time.perf_counter()
        # The prompt without its last token goes into sequence 0 once; each batch re-decodes the
        # last token in every sequence of its own to get that sequence's first logits.
        head, last = prompt[:-1], prompt[-1]
        for at in range(0, len(head), self.n_batch):
            chunk = head[at:at + self.n_batch]
            k = len(chunk)
            self._tok[:k] = chunk
            self._pos[:k] = np.arange(at, at + k, dtype=np.int32)
            self._logits[:k] = 0
            for i in range(k):
                self._seq_ptrs[i][0] = 0
            self._decode(k)
        self.stats.prompt_s += time.perf_counter() - t0
        self.stats.prompt_tokens += len(head)
        results: list[SequenceResult] = []
        for at in range(0, len(seeds), size):
            group = seeds[at:at + size]
            results += self._run(mem, group, last, len(prompt) - 1, settings, max_tokens, hard_limit, stops,
                                 logprobs, start)
        return results

    def _run(self, mem: Any, seeds: list[int | None], last: int, last_pos: int, settings: SamplerSettings,
             max_tokens: int, hard_limit: int, stops: list[bytes], logprobs: bool,
             start: float) -> list[SequenceResult]:
        lc = self._lc
        st = self.stats
        t_setup = time.perf_counter()
        seqs = []
        for j, seed in enumerate(seeds):
            sid = j + 1
            lc.llama_memory_seq_rm(mem, sid, -1, -1)
            if last_pos > 0:
                lc.llama_memory_seq_cp(mem, 0, sid, -1, -1)
            seed_value = lc.LLAMA_DEFAULT_SEED if seed is None else int(seed)
            seqs.append(_Seq(sid=sid, chain=self._chain(settings, seed_value), out_row=j,
                             logprobs=[] if logprobs else None))
        n = len(seqs)
        self._tok[:n] = last
        self._pos[:n] = last_pos
        self._logits[:n] = 1
        for j, q in enumerate(seqs):
            self._seq_ptrs[j][0] = q.sid
        st.setup_s += time.perf_counter() - t_setup
        t0 = time.perf_counter()
        self._decode(n)
        st.decode_s += time.perf_counter() - t0
        st.decode_steps += 1
        st.decoded_tokens += n

        ctx, sample, eog, piece = self._ctx, lc.llama_sampler_sample, self.eog, self._piece
        max_stop = max((len(s) for s in stops), default=0)
        live = seqs
        pos = last_pos + 1
        clock = time.perf_counter
        while live:
            t0 = clock()
            t_sampler = t_logprob = 0.0
            nxt: list[_Seq] = []
            for q in live:
                ts = clock()
                tok = sample(q.chain, ctx, q.out_row)
                t_sampler += clock() - ts
                if tok in eog:
                    self._finish(mem, q, "stop", start)
                    continue
                if q.logprobs is not None:
                    ts = clock()
                    q.logprobs.append(self._logprob(q.out_row, tok))
                    t_logprob += clock() - ts
                q.tokens.append(tok)
                text = q.text
                text += piece(tok)
                # llama-cpp-python checks neither stop strings nor the token limit while the text ends
                # in a split UTF-8 character (its "multibyte fix"); doing the same keeps the samples equal.
                for back, byte in enumerate(text[-3:]):
                    if byte >= 0xC0:
                        k = 3 - back
                        for num, pattern in _LEAD_BYTES:
                            if num > k and byte & pattern == pattern:
                                q.multibyte = num - k
                if q.multibyte > 0 and len(q.tokens) < hard_limit:
                    q.multibyte -= 1
                    nxt.append(q)
                    continue
                if stops:
                    window = bytes(text[max(0, q.checked - max_stop + 1):])
                    q.checked = len(text)
                    hit = next((s for s in stops if s in window), None)
                    if hit is not None:
                        del text[text.index(hit):]
                        self._finish(mem, q, "stop", start)
                        continue
                if len(q.tokens) >= max_tokens:
                    self._finish(mem, q, "length", start)
                    continue
                nxt.append(q)
            live = nxt
            if live:
                k = len(live)
                for i, q in enumerate(live):
                    self._tok[i] = q.tokens[-1]
                    self._seq_ptrs[i][0] = q.sid
                    q.out_row = i
                self._pos[:k] = pos
                self._logits[:k] = 1
            t1 = clock()
            st.sample_s += t_sampler
            st.logprob_s += t_logprob
            st.python_s += t1 - t0 - t_sampler - t_logprob
            if not live:
                break
            self._decode(k)
            st.decode_s += clock() - t1
            st.decode_steps += 1
            st.decoded_tokens += k
            pos += 1
        out = []
        for q in seqs:
            assert q.result is not None
            out.append(q.result)
        return out

    def _logprob(self, row: int, token: int) -> float:
        """log softmax of the raw logits (the model's distribution, as llama-cpp-python reports it)."""
        ptr = self._lc.llama_get_logits_ith(self._ctx, row)
        logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)
        top = logits.max()
        return float(logits[token] - top - math.log(np.exp(logits - top).sum()))

    def _finish(self, mem: Any, q: _Seq, reason: str, start: float) -> None:
        self._lc.llama_memory_seq_rm(mem, q.sid, -1, -1)
        self._lc.llama_sampler_free(q.chain)
        q.chain = None
        text = bytes(q.text)
        if q.tokens and q.tokens[0] == self.bos and text[:1] == b" ":  # as llama-cpp-python's detokenize
            text = text[1:]
        q.result = SequenceResult(
            text=text.decode("utf-8", errors="ignore"), finish_reason=reason, completion_tokens=len(q.tokens),
            latency_s=time.perf_counter() - start,
            token_logprobs=tuple(q.logprobs) if q.logprobs is not None else None, tokens=tuple(q.tokens),
        )


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
