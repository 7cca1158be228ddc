"""Pure functions for stop rules and confidence (no I/O): consensus, trace confidence, votes.

* Adaptive consistency (Aggarwal et al. 2023, Beta rule): with v1 >= v2 the two largest vote
  counts, stop once P(Beta(v1 + 1, v2 + 1) > 1/2) = I_{1/2}(v2 + 1, v1 + 1) >= threshold.
* Agreement window (early-stopping self-consistency): stop when the last ``size`` answers are equal
  and valid.
* Trace confidence (DeepConf, Fu et al. 2025): the backends report the sampled token's log-prob,
  which serves as the token confidence; the group confidence is the mean over a sliding window of
  ``window`` tokens; a trace's confidence is its lowest group confidence (the whole trace's mean
  when it is shorter than the window).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy.special import betainc


def beta_stop_probability(v1: int, v2: int) -> float:
    """P(p1 > p2) under a uniform prior after v1 and v2 votes for the two leading answers."""
    return float(betainc(v2 + 1.0, v1 + 1.0, 0.5))


def top_two(answers: Sequence[str | None]) -> tuple[int, int]:
    counts = sorted(Counter(a for a in answers if a is not None).values(), reverse=True)
    return (counts[0] if counts else 0), (counts[1] if len(counts) > 1 else 0)


def beta_consensus(answers: Sequence[str | None], threshold: float) -> bool:
    """The adaptive-consistency rule on the answers so far (unparseable answers never vote)."""
    v1, v2 = top_two(answers)
    return v1 > 0 and beta_stop_probability(v1, v2) >= threshold


def window_consensus(answers: Sequence[str | None], size: int) -> bool:
    """The last ``size`` answers are valid and all equal."""
    tail = list(answers)[-size:]
    return len(tail) == size and tail[0] is not None and all(a == tail[0] for a in tail)


def sliding_means(logprobs: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Mean log-prob of every window of ``window`` consecutive tokens (one value when shorter)."""
    x = np.asarray(logprobs, dtype=np.float64)
    if x.size == 0:
        return np.zeros(0)
    if x.size <= window:
        return np.array([x.mean()])
    c = np.concatenate([[0.0], np.cumsum(x)])
    return (c[window:] - c[:-window]) / window


def trace_confidence(logprobs: Sequence[float], window: int) -> float:
    """Lowest group confidence of a trace (NaN without log-probs)."""
    means = sliding_means(logprobs, window)
    return float(means.min()) if means.size else float("nan")


def first_window_below(logprobs: Sequence[float], window: int, threshold: float) -> int | None:
    """Token count after which the first full window's mean falls below ``threshold`` (None if never)."""
    x = np.asarray(logprobs, dtype=np.float64)
    if x.size < window:
        return None
    means = sliding_means(x, window)
    below = np.flatnonzero(means < threshold)
    return int(below[0]) + window if below.size else None


def plurality(answers: Sequence[str | None], weights: Sequence[float] | None = None) -> list[str]:
    """The answers with the largest (weighted) vote, in first-seen order (empty when none is valid)."""
    tally: dict[str, float] = {}
    for i, a in enumerate(answers):
        if a is None:
            continue
        w = 1.0 if weights is None else float(weights[i])
        if not np.isfinite(w):
            continue
        tally[a] = tally.get(a, 0.0) + w
    if not tally:
        return []
    best = max(tally.values())
    return [a for a, v in tally.items() if np.isclose(v, best, rtol=1e-12, atol=1e-12)]
