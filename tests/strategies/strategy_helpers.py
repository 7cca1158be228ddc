"""Builders and brute-force references for the strategy tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from ttclab.store.schema import SAMPLES_SCHEMA, validate_table
from ttclab.strategies.arrays import SampleArrays


def make_arrays(answers, correct=None, rewards=None, tokens=None, present=None, logprob=None, latency=None) -> SampleArrays:
    answers = np.asarray(answers, dtype=np.int32)
    if answers.ndim == 1:
        answers = answers[None, :]
    shape = answers.shape
    present = np.ones(shape, bool) if present is None else np.asarray(present, bool).reshape(shape)
    correct = (answers == 0) if correct is None else np.asarray(correct, bool).reshape(shape)

    def f(x, default):
        return np.full(shape, default, float) if x is None else np.asarray(x, float).reshape(shape)

    return SampleArrays(
        answers=np.where(present, answers, -1).astype(np.int32), correct=correct & present, present=present,
        completion_tokens=f(tokens, 10.0), prompt_tokens=f(None, 5.0), rewards=f(rewards, np.nan),
        mean_logprob=f(logprob, np.nan), latency_s=f(latency, np.nan),
        question_ids=np.array([f"q{i}" for i in range(shape[0])]), difficulty=np.full(shape[0], np.nan),
    )


def code_frac(codes, correct):
    out = {}
    for a in set(int(c) for c in codes if c >= 0):
        sel = [bool(correct[i]) for i in range(len(codes)) if codes[i] == a]
        out[a] = sum(sel) / len(sel)
    return out


def brute(codes, correct, rewards, tokens, k):
    """Brute-force expectations over all k-subsets of one question: majority, best, pass, shortest."""
    n = len(codes)
    frac = code_frac(codes, correct)
    totals = np.zeros(4)
    subsets = list(itertools.combinations(range(n), k))
    for sub in subsets:
        votes = {}
        for i in sub:
            if codes[i] >= 0:
                votes[codes[i]] = votes.get(codes[i], 0) + 1
        if votes:
            top = max(votes.values())
            leaders = [a for a, v in votes.items() if v == top]
            totals[0] += sum(frac[a] for a in leaders) / len(leaders)
        r = [(-np.inf if np.isnan(rewards[i]) else rewards[i]) for i in sub]
        best = [i for i, v in zip(sub, r) if v == max(r)]
        totals[1] += np.mean([correct[i] for i in best])
        totals[2] += any(correct[i] for i in sub)
        short = [i for i in sub if tokens[i] == min(tokens[j] for j in sub)]
        totals[3] += np.mean([correct[i] for i in short])
    return totals / len(subsets)


def imported_like_table(n_questions: int = 6, n_samples: int = 5, seed: int = 0) -> pa.Table:
    """A samples table shaped like a strategic-ttc import: rewards and tokens, no log-probs,
    null answers for unparseable samples, a few failed calls (verdict 'error')."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    rows = []
    for q in range(n_questions):
        gold = str(q)
        for s in range(n_samples):
            u = rng.random()
            if q == 0:  # a question without any valid answer
                answer, verdict = None, "unparseable"
            elif u < 0.1:
                answer, verdict = None, "error"
            elif u < 0.2:
                answer, verdict = None, "unparseable"
            else:
                answer = gold if rng.random() < 0.6 else str(100 + rng.integers(3))
                verdict = "correct" if answer == gold else "incorrect"
            rows.append({
                "run_id": "import-test", "model": "m", "question_id": f"q{q}", "question_index": q,
                "sample_index": s, "text": "...", "finish_reason": None, "prompt_tokens": None,
                "completion_tokens": int(rng.integers(10, 100)), "latency_s": None, "token_logprobs": None,
                "mean_logprob": None, "error": "boom" if verdict == "error" else None, "answer": answer,
                "verdict": verdict, "correct": verdict == "correct", "verify_reason": None,
                "reward": None if verdict == "error" else float(rng.normal()), "seed": None, "created_at": now,
            })
    return validate_table(pa.Table.from_pylist(rows, schema=SAMPLES_SCHEMA), SAMPLES_SCHEMA, "test")
