"""Work of one sample in FLOPs and memory traffic, from the model's architecture (pure functions).

A token at position t attends to t positions (causal, including itself; a local layer at most
``sliding_window``). Prefill of p tokens costs ``2 P_mm p + 4 d_attn x attended positions``; decode
of d tokens after it the same over positions p+1..p+d (Kaplan et al. 2020, forward pass only).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ttclab.ledger.models import ModelArch


def context_sum(positions: np.ndarray, window: float | None = None) -> np.ndarray:
    """sum_{t=1}^{S} min(t, window): attended positions over a causal sequence of length S."""
    s = np.asarray(positions, dtype=np.float64)
    if window is None:
        return s * (s + 1) / 2
    w = float(window)
    return np.where(s <= w, s * (s + 1) / 2, w * (w + 1) / 2 + (s - w) * w)


def _attended(arch: ModelArch, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Sum over layers of the attended positions of tokens start+1..end."""
    total = arch.n_global_layers * (context_sum(end) - context_sum(start))
    if arch.n_local_layers:
        w = arch.sliding_window
        total = total + arch.n_local_layers * (context_sum(end, w) - context_sum(start, w))
    return np.asarray(total)


def prefill_flops(arch: ModelArch, prompt_tokens: Any) -> np.ndarray:
    """Forward FLOPs to process a prompt of p tokens: 2 P_mm p + 4 d_attn x attended positions."""
    p = np.asarray(prompt_tokens, dtype=np.float64)
    return 2.0 * arch.matmul_params * p + 4.0 * arch.attn_width * _attended(arch, np.zeros_like(p), p)


def decode_flops(arch: ModelArch, prompt_tokens: Any, completion_tokens: Any) -> np.ndarray:
    """Forward FLOPs to generate d tokens after a p-token prompt."""
    p = np.asarray(prompt_tokens, dtype=np.float64)
    d = np.asarray(completion_tokens, dtype=np.float64)
    return 2.0 * arch.matmul_params * d + 4.0 * arch.attn_width * _attended(arch, p, p + d)


def kv_bytes_per_token(arch: ModelArch, bytes_per_kv: float = 2.0) -> float:
    """Bytes of K and V cached per token over all layers."""
    return arch.kv_bytes_per_token_layer_element * arch.n_layers * bytes_per_kv


def decode_kv_read_bytes(arch: ModelArch, prompt_tokens: Any, completion_tokens: Any, bytes_per_kv: float = 2.0) -> np.ndarray:
    """KV-cache bytes read while generating d tokens after a p-token prompt (each token reads its context)."""
    p = np.asarray(prompt_tokens, dtype=np.float64)
    d = np.asarray(completion_tokens, dtype=np.float64)
    return arch.kv_bytes_per_token_layer_element * bytes_per_kv * _attended(arch, p, p + d)


