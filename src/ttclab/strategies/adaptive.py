"""Adaptive stopping (resampled): samples are drawn one by one, in a random order of the stored
samples, until a stopping rule fires or the budget k is spent; the answer is the plurality of the
samples drawn so far (ties split, unparseable samples never vote).

* Early-stopping self-consistency (ESC, Li et al. 2024): samples come in windows of ``window``;
  stop after the first window whose samples all carry the same valid answer.
* Adaptive consistency (Aggarwal et al. 2023, Beta criterion): after each sample, with v1 ≥ v2 the
  two largest vote counts, stop once P(p1 > p2) = P(Beta(v1 + 1, v2 + 1) > 1/2) ≥ ``threshold``.

``samples_used`` is the expected number of samples actually drawn (≤ k).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import betainc

from ttclab.strategies.arrays import SampleArrays
from ttclab.strategies.base import StrategyResult
from ttclab.strategies.common import code_tallies, finish
from ttclab.strategies.resample import mean_se, plurality_credit, question_chunks, random_orders

StopFn = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def _simulate(arrays: SampleArrays, ks: np.ndarray, rng: np.random.Generator, draws: int,
              stop_fn: StopFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shared driver: stop_fn(codes, cum_counts, k) -> (q, D) number of samples drawn (1..k)."""
    _, frac = code_tallies(arrays)
    q, n = arrays.answers.shape
    a = max(frac.shape[1], 1)
    cc_all = np.zeros((q, a))
    cc_all[:, : frac.shape[1]] = frac
    acc = np.full((q, ks.size), np.nan)
    se = np.full((q, ks.size), np.nan)
    used = np.full((q, ks.size), np.nan)
    codes_all = np.where(arrays.present, arrays.answers, -1)
    for sl in question_chunks(q, draws * n * a):
        order = random_orders(arrays.present[sl], draws, rng)
        codes = np.take_along_axis(np.broadcast_to(codes_all[sl, None, :], order.shape), order, axis=2)
        cum = np.cumsum(codes[..., None] == np.arange(a), axis=2, dtype=np.int32)  # (q, D, N, A)
        for ki, k in enumerate(ks):
            if k > n:
                continue
            stop = stop_fn(codes, cum, int(k))
            counts = np.take_along_axis(cum, (stop - 1)[:, :, None, None], axis=2)[:, :, 0, :]
            credit = plurality_credit(counts.astype(np.float64), counts > 0, cc_all[sl, None, :])
            acc[sl, ki], se[sl, ki] = mean_se(credit)
            used[sl, ki] = stop.mean(axis=1)
    return acc, se, used


def early_stopping_sc(arrays: SampleArrays, ks: np.ndarray, rng: np.random.Generator, *,
                      window: int = 5, draws: int = 256) -> StrategyResult:
    """ESC: stop at the first window of ``window`` samples that all agree (budget k caps it)."""
    if window < 1:
        raise ValueError("window must be >= 1")

    def stop_fn(codes: np.ndarray, cum: np.ndarray, k: int) -> np.ndarray:
        n_win = k // window
        stop = np.full(codes.shape[:2], k, dtype=np.int64)
        if n_win == 0:
            return stop
        blocks = codes[:, :, : n_win * window].reshape(*codes.shape[:2], n_win, window)
        agree = (blocks >= 0).all(axis=3) & (blocks == blocks[..., :1]).all(axis=3)
        first = np.where(agree.any(axis=2), agree.argmax(axis=2), n_win)
        return np.where(first < n_win, (first + 1) * window, k)

    acc, se, used = _simulate(arrays, ks, rng, draws, stop_fn)
    return finish("esc", arrays, ks, acc, se=se, samples_used=used, exact=False)


def adaptive_consistency(arrays: SampleArrays, ks: np.ndarray, rng: np.random.Generator, *,
                         threshold: float = 0.95, draws: int = 256) -> StrategyResult:
    """Stop once the posterior probability that the current leader stays ahead reaches ``threshold``."""
    if not 0.5 < threshold < 1.0:
        raise ValueError("threshold must be in (0.5, 1)")
    n = arrays.n_samples
    v = np.arange(n + 1, dtype=np.float64)
    # P(Beta(v1 + 1, v2 + 1) > 1/2) = I_{1/2}(v2 + 1, v1 + 1)
    table = betainc(v[None, :] + 1.0, v[:, None] + 1.0, 0.5)  # [v1, v2]

    def stop_fn(codes: np.ndarray, cum: np.ndarray, k: int) -> np.ndarray:
        c = cum[:, :, :k, :]
        if c.shape[-1] >= 2:
            top2 = -np.partition(-c, 1, axis=-1)[..., :2]
            v1, v2 = top2[..., 0], top2[..., 1]
        else:
            v1, v2 = c[..., 0], np.zeros_like(c[..., 0])
        ok = (table[v1, v2] >= threshold) & (v1 > 0)
        return np.where(ok.any(axis=2), ok.argmax(axis=2) + 1, k)

    acc, se, used = _simulate(arrays, ks, rng, draws, stop_fn)
    return finish("adaptive_consistency", arrays, ks, acc, se=se, samples_used=used, exact=False)
