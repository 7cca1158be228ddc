"""Voting strategies: majority (exact) and weighted votes by reward or confidence (resampled).

Answers are integer codes per question (equal canonical answers share a code); unparseable
samples (-1) are drawn but never vote. A winning code is credited with the fraction of its samples
graded correct (normally 0 or 1). A tie among t leaders counts 1/t of their mean credit. A subset
with no valid answer abstains, which is wrong (credit 0), so a question without any valid answer
has accuracy 0 — a real outcome, not an undefined one.
"""

from __future__ import annotations

import numpy as np

from ttclab.strategies.arrays import SampleArrays
from ttclab.strategies.base import StrategyResult
from ttclab.strategies.common import code_tallies, finish, undefined
from ttclab.strategies.estimators import majority_win_prob
from ttclab.strategies.resample import resample_vote


def majority_accuracy(arrays: SampleArrays, ks: np.ndarray) -> np.ndarray:
    """(Q, K) exact expected plurality-vote accuracy over random k-subsets, ties split."""
    counts, frac = code_tallies(arrays)
    q = arrays.n_questions
    n_q = arrays.n_per_question.astype(np.int64)
    acc = np.zeros((q, ks.size))
    # one row per (question, code with some correct samples): that code's win probability
    rows, codes = np.nonzero(frac > 0)
    if rows.size:
        target = counts[rows, codes]
        comp = counts[rows].copy()
        comp[np.arange(rows.size), codes] = 0
        win = majority_win_prob(target, comp, n_q[rows], ks)
        np.add.at(acc, rows, np.nan_to_num(win) * frac[rows, codes][:, None])
    return acc


def majority(arrays: SampleArrays, ks: np.ndarray, rng: np.random.Generator | None = None, *,
             ties: str = "split", draws: int = 256) -> StrategyResult:
    """Plurality vote of k random samples (self-consistency, maj@k).

    ``ties='split'`` (default) is exact via the hypergeometric generating-function DP.
    ``ties='first'`` breaks ties towards the answer seen first in stored sample order (what
    ``Counter.most_common`` does in most evaluation scripts); it is resampled (exact at k = n_q).
    """
    if ties == "split":
        return finish("majority", arrays, ks, majority_accuracy(arrays, ks), exact=True)
    counts, frac = code_tallies(arrays)
    rng = rng if rng is not None else np.random.default_rng(0)
    mean, se = resample_vote(arrays.answers, arrays.present, frac, ks, rng, draws=draws, ties=ties)
    return finish("majority", arrays, ks, mean, se=se, exact=False, reason=f"ties broken by '{ties}'")


def reward_weights(rewards: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Vote weights from reward scores: as is when all are >= 0, else sigmoid (scores as logits)."""
    r = np.where(present, rewards, np.nan)
    if np.nanmin(r) < 0:
        r = 1.0 / (1.0 + np.exp(-r))
    return r


def weighted_reward(arrays: SampleArrays, ks: np.ndarray, rng: np.random.Generator, *,
                    draws: int = 256) -> StrategyResult:
    """Weighted majority: each answer scores the sum of its samples' reward (see reward_weights)."""
    if not arrays.has_rewards:
        return undefined("weighted_reward", arrays, ks, "no reward-model scores in this run", exact=False,
                         uses_reward_model=True)
    _, frac = code_tallies(arrays)
    w = reward_weights(arrays.rewards, arrays.present)
    mean, se = resample_vote(arrays.answers, arrays.present, frac, ks, rng, weights=w, draws=draws)
    return finish("weighted_reward", arrays, ks, mean, se=se, exact=False, uses_reward_model=True)


def weighted_confidence(arrays: SampleArrays, ks: np.ndarray, rng: np.random.Generator, *,
                        draws: int = 256) -> StrategyResult:
    """Weighted majority: each answer scores the sum of exp(mean token log-prob) of its samples."""
    lp = np.where(arrays.present, arrays.mean_logprob, np.nan)
    if not np.isfinite(lp).any():
        return undefined("weighted_confidence", arrays, ks, "no token log-probs in this run", exact=False)
    _, frac = code_tallies(arrays)
    mean, se = resample_vote(arrays.answers, arrays.present, frac, ks, rng, weights=np.exp(lp), draws=draws)
    return finish("weighted_confidence", arrays, ks, mean, se=se, exact=False)
