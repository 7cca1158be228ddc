"""Per-run and per-question summaries (accuracy, majority vote over all samples, tokens)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ttclab.store.reader import Run


@dataclass(frozen=True)
class QuestionSummary:
    question_index: int
    question_id: str
    gold: str
    n: int  # successful samples
    errors: int
    accuracy: float  # mean correctness of the samples (NaN when n == 0)
    majority_answer: str | None
    majority_accuracy: float  # plurality vote over all samples, ties split (NaN when n == 0 or no answers stored)
    answers: list[tuple[str | None, int]]  # answer counts, most common first (None = unparseable)


def question_summaries(run: Run) -> list[QuestionSummary]:
    cols = ["question_index", "question_id", "answer", "verdict", "correct"]
    samples = run.samples(cols).to_pydict()
    questions = run.questions().to_pydict()
    gold = dict(zip(questions["question_index"], questions["gold"]))
    ids = dict(zip(questions["question_index"], questions["question_id"]))
    by_q: dict[int, list[tuple[str | None, str, bool]]] = {qi: [] for qi in questions["question_index"]}
    for qi, qid, ans, verdict, ok in zip(*(samples[c] for c in cols)):
        by_q.setdefault(qi, []).append((ans, verdict, ok))
        ids.setdefault(qi, qid)
    answers = (run.meta.get("data") or {}).get("answers", True)  # False: an import of correct/incorrect counts
    out = []
    for qi in sorted(by_q):
        rows = by_q[qi]
        good = [r for r in rows if r[1] != "error"]
        counts = Counter(r[0] for r in good)
        valid = {a: c for a, c in counts.items() if a is not None}
        acc = float(np.mean([r[2] for r in good])) if good else float("nan")
        if not answers:
            maj, maj_acc = None, float("nan")  # no answers were stored: there is no vote to count
        elif valid:
            top = max(valid.values())
            leaders = [a for a, c in valid.items() if c == top]
            # A tie among t answers credits 1/t per correct leader.
            maj_acc = sum(any(r[2] for r in good if r[0] == a) for a in leaders) / len(leaders)
            maj = sorted(leaders)[0] if len(leaders) > 1 else leaders[0]
        else:
            maj, maj_acc = None, (0.0 if good else float("nan"))  # nobody answered: the vote abstains
        g = gold.get(qi)
        out.append(QuestionSummary(qi, str(ids.get(qi, qi)), "" if g is None else str(g), len(good), len(rows) - len(good),
                                   acc, maj, maj_acc, counts.most_common()))
    return out


def live_status(run: Run) -> str:
    """run.json's status, except that ``running`` with no process writing the run is ``interrupted``."""
    from ttclab.store.integrity import writer_alive

    status = str(run.meta.get("status", ""))
    return "interrupted" if status == "running" and not writer_alive(run.path) else status


def run_summary(run: Run) -> dict[str, Any]:
    """One line of ``ttclab runs``: counts, accuracy, majority accuracy, tokens."""
    meta = run.meta
    table = run.samples(["verdict", "correct", "completion_tokens", "latency_s", "finish_reason"])
    verdict = np.asarray(table["verdict"].to_pylist(), dtype=object)
    ok = verdict != "error"
    correct = np.asarray(table["correct"].to_pylist(), dtype=bool)
    tokens = np.asarray(table["completion_tokens"].to_pylist(), dtype=object)
    tokens = np.asarray([t or 0 for t in tokens], dtype=np.int64)
    latency = np.asarray([x if x is not None else np.nan for x in table["latency_s"].to_pylist()], dtype=float)
    truncated = np.asarray([f == "length" for f in table["finish_reason"].to_pylist()], dtype=bool) & ok
    per_q = question_summaries(run)
    maj = [q.majority_accuracy for q in per_q if not np.isnan(q.majority_accuracy)]
    gen_time = float(np.nansum(latency[ok])) if ok.any() else 0.0
    return {
        "run_id": run.run_id,
        "model": run.model,
        "task": (meta.get("task") or {}).get("name", ""),
        "status": live_status(run),
        "questions": len(per_q),
        "samples_per_question": meta.get("samples", ""),
        "rows": int(ok.sum()),
        "errors": int((~ok).sum()),
        "truncated": int(truncated.sum()),
        "truncated_pct": float(100 * truncated.sum() / ok.sum()) if ok.any() else float("nan"),
        "accuracy": float(correct[ok].mean()) if ok.any() else float("nan"),
        "majority_accuracy": float(np.mean(maj)) if maj else float("nan"),
        # None (shown as '-') when the run stores no token counts (an import of counts), not a count of 0
        "completion_tokens": int(tokens[ok].sum()) if (meta.get("data") or {}).get("tokens", True) else None,
        "tokens_per_s": float(tokens[ok].sum() / gen_time) if gen_time > 0 else float("nan"),
        # seconds per sample (prompt, decoding and waiting in its batch): with answers of a few tokens the
        # prompt dominates, and completion tokens / latency reads as a broken engine (0.4 tok/s)
        "latency_s_mean": float(np.nanmean(latency[ok])) if ok.any() and not np.isnan(latency[ok]).all()
        else float("nan"),
    }
