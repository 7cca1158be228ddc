"""Re-run ``select`` offline from stored judgments: accuracy at every n, with no new calls.

* By score (LLM rubric, self-evaluation, confidence, reward model, oracle): the candidate with the
  highest stored score among a uniformly random n-subset of a question's N scored candidates,
  ties split evenly — exact (:func:`score_select_accuracy`).
* Pairwise tournament: the candidate with the most wins inside the subset, from the stored
  comparisons (a pair never compared, or an unparsed verdict, is no win for either), ties split —
  exact by enumerating the subsets when there are at most ``max_subsets``, else resampled with a
  seeded RNG (:func:`tournament_accuracy`).
* LLM pick-1-of-n: the picks recorded at each size n (the pipeline's own pick over all N, plus
  ``select: {subsets: [...]}`` picks over seeded random subsets) — their mean correctness per size.

:func:`select_curves` returns rows ``{step_id, method, n, accuracy, questions, exact}`` averaged
over the questions that have the judgments.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import comb

from ttclab.store.journal import read_table
from ttclab.store.reader import Run


def score_select_accuracy(scores: Sequence[float], correct: Sequence[bool], ks: Sequence[int]) -> np.ndarray:
    """Exact expected correctness of argmax-score over random k-subsets (ties split), per k."""
    s = np.asarray(scores, dtype=float)
    c = np.asarray(correct, dtype=float)
    n = s.size
    out = np.full(len(ks), np.nan)
    for ki, k in enumerate(ks):
        if not 1 <= k <= n:
            continue
        total = comb(n, k, exact=False)
        acc = 0.0
        for i in range(n):
            below = int((s < s[i]).sum())
            ties = int((s == s[i]).sum())  # including i
            # i is in the subset with t - 1 of its ties and k - t lower candidates, none higher
            p = sum(comb(ties - 1, t - 1, exact=False) * comb(below, k - t, exact=False) / t for t in range(1, min(ties, k) + 1))
            acc += c[i] * p / total
        out[ki] = acc
    return out


def tournament_accuracy(wins: np.ndarray, correct: Sequence[bool], ks: Sequence[int], *,
                        rng: np.random.Generator, max_subsets: int = 5000, draws: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy per k, exact per k) of a tournament over random k-subsets; ``wins[i, j]`` = i beat j."""
    w = np.asarray(wins, dtype=float)
    c = np.asarray(correct, dtype=float)
    n = c.size
    acc = np.full(len(ks), np.nan)
    exact = np.zeros(len(ks), dtype=bool)
    for ki, k in enumerate(ks):
        if not 1 <= k <= n:
            continue
        if comb(n, k, exact=True) <= max_subsets:
            subsets: Any = itertools.combinations(range(n), k)
            exact[ki] = True
        else:
            subsets = (rng.choice(n, size=k, replace=False) for _ in range(draws))
        values = []
        for sub in subsets:
            idx = np.asarray(sub)
            score = w[np.ix_(idx, idx)].sum(axis=1)
            leaders = idx[score == score.max()]
            values.append(c[leaders].mean())
        acc[ki] = float(np.mean(values))
    return acc, exact


def select_curves(run: Run, *, seed: int = 0, max_subsets: int = 5000) -> list[dict[str, Any]]:
    """Offline selection accuracy at every n for each scoring, tournament and pick step of a run."""
    cands = read_table(run.path, "candidates", ["candidate_id", "verdict"]).to_pydict()
    correct = {cid: v == "correct" for cid, v in zip(cands["candidate_id"], cands["verdict"])}
    judgments = read_table(run.path, "judgments").to_pylist()
    rng = np.random.default_rng(seed)
    per: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    exact_of: dict[tuple[str, str, int], bool] = {}
    scores: dict[tuple[str, str, int], dict[str, float]] = defaultdict(dict)
    pairs: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for j in judgments:
        if j["kind"] == "score" and j["value"] is not None and j["candidate_ids"]:
            scores[(j["step_id"], j["method"], j["question_index"])][j["candidate_ids"][0]] = float(j["value"])
        elif j["kind"] == "pairwise":
            pairs[(j["step_id"], j["question_index"])].append(j)
        elif j["kind"] in ("pick", "pick_eval") and j["chosen"] is not None:
            key = (j["step_id"], "llm_pick", len(j["candidate_ids"]))
            per[key].append(float(correct.get(j["chosen"], False)))
            exact_of[key] = True
    for (step, method, _q), by_cand in scores.items():
        ids = list(by_cand)
        ks = list(range(1, len(ids) + 1))
        accs = score_select_accuracy([by_cand[i] for i in ids], [correct.get(i, False) for i in ids], ks)
        for k, a in zip(ks, accs):
            per[(step, method, k)].append(float(a))
            exact_of[(step, method, k)] = True
    for (step, _q), rows in pairs.items():
        ids = sorted({i for r in rows for i in r["candidate_ids"]})
        pos = {cid: i for i, cid in enumerate(ids)}
        wins = np.zeros((len(ids), len(ids)))
        for r in rows:
            if r["chosen"] is None:
                continue
            a, b = r["candidate_ids"]
            loser = b if r["chosen"] == a else a
            wins[pos[r["chosen"]], pos[loser]] = 1.0
        ks = list(range(1, len(ids) + 1))
        accs, exact = tournament_accuracy(wins, [correct.get(i, False) for i in ids], ks, rng=rng,
                                          max_subsets=max_subsets)
        for k, a, e in zip(ks, accs, exact):
            per[(step, "pairwise", k)].append(float(a))
            exact_of[(step, "pairwise", k)] = exact_of.get((step, "pairwise", k), True) and bool(e)
    rows_out = []
    for (step, method, n), values in sorted(per.items()):
        vals = [v for v in values if not math.isnan(v)]
        rows_out.append({"step_id": step, "method": method, "n": n, "accuracy": float(np.mean(vals)) if vals else math.nan,
                         "questions": len(vals), "exact": exact_of[(step, method, n)]})
    return rows_out
