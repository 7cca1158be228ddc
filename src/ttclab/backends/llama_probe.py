"""Probes on the embedded engine: the answer a model gives when forced to answer after a prefix.

For one trace (prompt tokens + completion text) and a spacing ``every``, the prober evaluates the
prompt and the trace's tokens once, left to right, on a context of its own. At each boundary
``b = every, 2 every, ...`` (before the trace's end) it appends the answer cue, decodes up to
``max_tokens`` tokens greedily (stopping at an end-of-generation token or a newline) with their
log-probs, then drops the cue and the probe tokens from the KV cache and continues the trace from
``b``: the prefix is never evaluated twice (the KV cache of the prefix is reused by every probe).
The trace's tokens are the completion text tokenized again (the sampled tokens are not stored;
re-tokenizing can differ from them by a token or two at most, at unusual merges).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Probe:
    boundary: int  # 1, 2, ...: after boundary * every trace tokens
    prefix_tokens: int
    text: str
    token_ids: tuple[int, ...]
    token_logprobs: tuple[float, ...]
    cue_tokens: int


class Prober:
    """A second llama.cpp context over the same model file (lazily loaded; use on the llama.cpp thread)."""

    def __init__(self, model_path: str, *, n_ctx: int, n_threads: int, n_batch: int = 512) -> None:
        from llama_cpp import Llama

        self.llama = Llama(model_path=model_path, n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads, verbose=False)
        self.n_ctx = n_ctx

    def close(self) -> None:
        self.llama.close()

    def trace_tokens(self, text: str) -> list[int]:
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False) if text else []

    def probe(self, prompt_tokens: list[int], text: str, *, every: int, cue: str,
              max_tokens: int) -> tuple[list[Probe], int]:
        """The probes of one trace and the trace's token count."""
        llm = self.llama
        trace = self.trace_tokens(text)
        cue_ids = self.llama.tokenize(cue.encode("utf-8"), add_bos=False, special=False)
        n_vocab = llm.n_vocab()
        eos = {llm.token_eos()}
        probes: list[Probe] = []
        llm.reset()
        llm.eval(prompt_tokens)
        done = 0
        boundary = 1
        while boundary * every < len(trace):
            end = boundary * every
            if len(prompt_tokens) + end + len(cue_ids) + max_tokens > self.n_ctx:
                break  # the probe would not fit the context
            llm.eval(trace[done:end])
            done = end
            base = llm.n_tokens
            llm.eval(cue_ids)
            ids: list[int] = []
            lps: list[float] = []
            for _ in range(max_tokens):
                logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,)).astype(np.float64)
                top = float(logits.max())
                logz = top + float(np.log(np.exp(logits - top).sum()))
                tok = int(np.argmax(logits))
                if tok in eos:
                    break
                piece = llm.detokenize([tok]).decode("utf-8", errors="ignore")
                if "\n" in piece and ids:
                    break
                ids.append(tok)
                lps.append(float(np.float32(logits[tok] - logz)))
                llm.eval([tok])
            probes.append(Probe(boundary, end, llm.detokenize(ids).decode("utf-8", errors="replace").strip(),
                                tuple(ids), tuple(lps), len(cue_ids)))
            llm.n_tokens = base  # drop the cue and the probe: the next eval continues the trace here
            boundary += 1
        return probes, len(trace)


def prompt_tokens_of(llama: Any, prompt: Any) -> list[int]:
    """The prompt's tokens as the engine evaluates them for sampling (chat template applied)."""
    from ttclab.backends.base import Request
    from ttclab.backends.llamacpp import render_prompt

    return render_prompt(llama, Request(prompt if isinstance(prompt, str) else tuple(prompt)), ())[0]
