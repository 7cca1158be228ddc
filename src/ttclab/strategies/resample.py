"""Vectorised resampling over random orders of each question's samples (injected RNG, with SEs).

A uniformly random permutation of a question's present samples is drawn ``draws`` times; its first
k entries are a uniformly random k-subset for every k at once. Votes are tallied as cumulative
count / weight vectors per answer code (never O(k²) pairwise comparisons). Each estimate comes
with its Monte-Carlo standard error (std over draws / sqrt(draws)); it is 0 where k = n_q.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: Cells (questions × draws × samples × codes) processed at once; bounds memory.
CHUNK_CELLS = 1 << 23


def random_orders(present: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(Q, draws, N) sample indices: a uniform random order of the present samples, padding last."""
    q, n = present.shape
    keys = rng.random((q, draws, n))
    keys[np.broadcast_to(~present[:, None, :], keys.shape)] = 2.0
    return np.argsort(keys, axis=2, kind="stable")


def question_chunks(n_questions: int, per_question_cells: int) -> Iterator[slice]:
    """Slices of questions so that each chunk has about CHUNK_CELLS cells."""
    step = max(1, CHUNK_CELLS // max(per_question_cells, 1))
    for start in range(0, n_questions, step):
        yield slice(start, min(start + step, n_questions))


def plurality_credit(scores: np.ndarray, voted: np.ndarray, code_correct: np.ndarray) -> np.ndarray:
    """Credit of a plurality decision with ties split.

    ``scores`` (..., A) vote totals, ``voted`` (..., A) which codes received a vote, ``code_correct``
    broadcastable (..., A) correctness of each code. No vote at all gives 0 (abstain = wrong).
    """
    s = np.where(voted, scores, -np.inf)
    best = s.max(axis=-1, keepdims=True)
    lead = voted & (s == best)
    n_lead = lead.sum(axis=-1)
    good = (lead * code_correct).sum(axis=-1)
    return np.asarray(np.divide(good, n_lead, out=np.zeros(good.shape), where=n_lead > 0))


def mean_se(values: np.ndarray, axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Mean over draws and its standard error."""
    draws = values.shape[axis]
    mean = values.mean(axis=axis)
    se = values.std(axis=axis, ddof=1) / np.sqrt(draws) if draws > 1 else np.zeros_like(mean)
    return mean, se


def resample_vote(
    answers: np.ndarray,
    present: np.ndarray,
    code_correct: np.ndarray,
    ks: np.ndarray,
    rng: np.random.Generator,
    *,
    weights: np.ndarray | None = None,
    draws: int = 256,
    ties: str = "split",
) -> tuple[np.ndarray, np.ndarray]:
    """(Q, K) mean and SE of a (weighted) plurality vote over random k-subsets.

    ``weights`` (Q, N) per-sample vote weights (None: one vote each; NaN counts as 0 but the sample
    is still drawn). Unparseable samples (code -1) never vote. ``ties='split'`` counts a tie among t
    leaders as 1/t; ``ties='first'`` gives the tie to the leader whose earliest drawn sample has the
    lowest original sample index (``collections.Counter.most_common`` over samples in stored order).
    k > n_q entries are NaN.
    """
    if ties not in ("split", "first"):
        raise ValueError(f"ties must be 'split' or 'first', got {ties!r}")
    q, n = answers.shape
    a = max(int(code_correct.shape[1]), 1)
    mean = np.full((q, ks.size), np.nan)
    se = np.full((q, ks.size), np.nan)
    n_q = present.sum(axis=1)
    codes_all = np.where(present, answers, -1)
    w_all = np.ones((q, n)) if weights is None else np.nan_to_num(np.where(present, weights, 0.0))
    cc_all = np.zeros((q, a))
    cc_all[:, : code_correct.shape[1]] = code_correct
    for sl in question_chunks(q, draws * n * a):
        order = random_orders(present[sl], draws, rng)
        codes = np.take_along_axis(np.broadcast_to(codes_all[sl, None, :], order.shape), order, axis=2)
        w = np.take_along_axis(np.broadcast_to(w_all[sl, None, :], order.shape), order, axis=2)
        onehot = (codes[..., None] == np.arange(a)).astype(np.float64)  # (q, D, N, A)
        cum_w = np.cumsum(onehot * w[..., None], axis=2)
        cum_n = np.cumsum(onehot, axis=2)
        if ties == "first":
            big = np.float64(n + 1)
            first_idx = np.minimum.accumulate(np.where(onehot > 0, order[..., None].astype(np.float64), big), axis=2)
        cc = cc_all[sl, None, :]
        for ki, k in enumerate(ks):
            if k > n:
                continue
            scores, voted = cum_w[:, :, k - 1, :], cum_n[:, :, k - 1, :] > 0
            if ties == "split":
                credit = plurality_credit(scores, voted, cc)
            else:
                s = np.where(voted, scores, -np.inf)
                lead = voted & (s == s.max(axis=-1, keepdims=True))
                fi = np.where(lead, first_idx[:, :, k - 1, :], big)
                win = fi.argmin(axis=-1)
                credit = np.where(
                    lead.any(axis=-1),
                    np.take_along_axis(np.broadcast_to(cc, lead.shape), win[..., None], -1)[..., 0],
                    0.0,
                )
            m, s_ = mean_se(credit)
            mean[sl, ki], se[sl, ki] = m, s_
    too_big = ks[None, :] > n_q[:, None]
    mean[too_big] = np.nan
    se[too_big] = np.nan
    se[ks[None, :] == n_q[:, None]] = 0.0
    return mean, se
