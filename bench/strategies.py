"""Strategy estimators: exact (ttclab) vs the Monte-Carlo baseline common in research code.

Baseline (as in many TTS papers' analysis scripts): 50 random permutations per question; for each
k the first k samples of each permutation are "the k samples"; majority found by pairwise equality
counting over them (O(k²)), best-of-k by argmax of the reward, pass@k by any(correct). It is
written vectorised over questions × permutations (numpy), as fast as that method goes.

Ours: exact expectations over all k-subsets (``majority_accuracy``, ``expected_best``,
``pass_at_k``).

1. 1,319 questions × 128 samples, k in {1, 2, 4, …, 128} (the seed's k set), majority + best-of-N +
   pass@k, on two kinds of data (below): wall time (best of 3 for ours, one pass of the baseline)
   and peak traced memory (tracemalloc, same method for both, measured in separate passes from
   the timing), ratios, and the baseline's noise against our exact values.
   Goals: >= 20x faster, <= 1/5 of the peak memory.
2. 10,000 questions × 1,024 samples, k in {1, …, 1024}: ours only (the baseline's pairwise tensor
   would need ~500 GB), on both kinds of data. Goal: under 60 s within 4 GiB (peak RSS of a fresh
   subprocess, data included).

Synthetic but realistic data, two kinds:

* ``few``: per question a difficulty; 1-5 distinct wrong answers with skewed (Dirichlet)
  frequencies beside the correct one.
* ``long-tail``: the spread of real model outputs on hard problems: answers drawn from a
  stick-breaking (GEM) distribution whose concentration is log-normal across questions, so at
  N = 128 a question has on average ~6.3 distinct answers (p90 ~13, max ~45; printed), most of
  them rare; the correct answer is the most common one for 60 % of the questions, a runner-up for
  25 %, absent otherwise.

Both: ~5 % unparseable samples, rewards correlated with correctness, token counts log-normal.

    .venv/bin/python bench/strategies.py [--skip-large]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

from ttclab.strategies.arrays import SampleArrays
from ttclab.strategies.estimators import expected_best, pass_at_k
from ttclab.strategies.voting import majority_accuracy


def synthetic(n_questions: int, n_samples: int, seed: int = 0) -> SampleArrays:
    rng = np.random.default_rng(seed)
    q, n = n_questions, n_samples
    difficulty = rng.beta(1.2, 1.2, q)
    n_wrong = rng.integers(1, 6, q)
    alpha = np.where(np.arange(5)[None, :] < n_wrong[:, None], 0.4, 1e-3)
    probs = np.concatenate([(0.5 + 6 * (1 - difficulty))[:, None], alpha], axis=1)
    probs = rng.gamma(probs)
    probs /= probs.sum(axis=1, keepdims=True)
    probs = np.concatenate([probs * 0.95, np.full((q, 1), 0.05)], axis=1)  # last: unparseable
    u = rng.random((q, n, 1))
    codes = (u > np.cumsum(probs, axis=1)[:, None, :]).sum(axis=2)  # 0 = correct, 1..5 wrong, 6 invalid
    answers = np.where(codes == 6, -1, codes).astype(np.int32)
    correct = answers == 0
    rewards = rng.normal(size=(q, n)) + 1.2 * correct
    tokens = np.round(rng.lognormal(5.5, 0.5, size=(q, n)))
    nan = np.full((q, n), np.nan)
    return SampleArrays(answers=answers, correct=correct, present=np.ones((q, n), bool), completion_tokens=tokens,
                        prompt_tokens=np.full((q, n), 100.0), rewards=rewards, mean_logprob=nan, latency_s=nan,
                        question_ids=np.arange(q).astype(str), difficulty=difficulty)


def longtail(n_questions: int, n_samples: int, seed: int = 0, atoms: int = 256) -> SampleArrays:
    """Long-tail answer spreads (see the module docstring), generated in memory-bounded chunks."""
    rng = np.random.default_rng(seed)
    q, n = n_questions, n_samples
    answers = np.empty((q, n), dtype=np.int32)
    for start in range(0, q, 1000):
        rows = min(1000, q - start)
        alpha = np.exp(rng.normal(0.0, 0.9, rows))  # GEM concentration: the question's spread
        v = rng.beta(1.0, alpha[:, None], size=(rows, atoms))
        w = v * np.concatenate([np.ones((rows, 1)), np.cumprod(1 - v, axis=1)[:, :-1]], axis=1)
        cdf = np.cumsum(w, axis=1)
        u = rng.random((rows, n)) * cdf[:, -1:]
        answers[start:start + rows] = (u[:, :, None] > cdf[:, None, :]).sum(axis=2) if n * atoms <= 1 << 16 \
            else np.stack([np.searchsorted(cdf[i], u[i]) for i in range(rows)])
    which = rng.random(q)
    target = np.where(which < 0.6, 0, np.where(which < 0.85, rng.integers(1, 3, q), -2))
    invalid = rng.random((q, n)) < 0.05
    answers = np.where(invalid, -1, answers).astype(np.int32)
    correct = answers == target[:, None]
    rewards = rng.normal(size=(q, n)) + 1.2 * correct
    tokens = np.round(rng.lognormal(5.5, 0.5, size=(q, n)))
    nan = np.full((q, n), np.nan)
    return SampleArrays(answers=answers, correct=correct, present=np.ones((q, n), bool), completion_tokens=tokens,
                        prompt_tokens=np.full((q, n), 100.0), rewards=rewards, mean_logprob=nan, latency_s=nan,
                        question_ids=np.arange(q).astype(str), difficulty=np.clip(alpha_rank(answers), 0, 1))


def alpha_rank(answers: np.ndarray) -> np.ndarray:
    """A difficulty proxy in [0, 1]: the share of samples outside each question's modal answer."""
    top = np.array([np.bincount(r[r >= 0]).max(initial=0) if (r >= 0).any() else 0 for r in answers])
    return 1.0 - top / answers.shape[1]


def distinct_answers(a: SampleArrays) -> np.ndarray:
    return np.array([np.unique(r[r >= 0]).size for r in a.answers])


DATA = {"few": synthetic, "long-tail": longtail}


def baseline(a: SampleArrays, ks: np.ndarray, rng: np.random.Generator, perms: int = 50) -> dict[str, np.ndarray]:
    q, n = a.answers.shape
    order = np.argsort(rng.random((q, perms, n)), axis=2)

    def take(x):
        return np.take_along_axis(np.broadcast_to(x[:, None, :], order.shape), order, axis=2)

    ans, cor, rew = take(a.answers), take(a.correct), take(a.rewards)
    out = {name: np.empty((q, ks.size)) for name in ("majority", "best_of_n", "pass_at_k")}
    for i, k in enumerate(ks):
        ak, ck = ans[:, :, :k], cor[:, :, :k]
        eq = (ak[:, :, :, None] == ak[:, :, None, :]) & (ak[:, :, None, :] >= 0)
        votes = eq.sum(axis=-1)
        votes[ak < 0] = -1
        win = votes.argmax(axis=-1)
        maj = np.take_along_axis(ck, win[..., None], 2)[..., 0] & (votes.max(axis=-1) > 0)
        bon = np.take_along_axis(ck, rew[:, :, :k].argmax(axis=-1)[..., None], 2)[..., 0]
        out["majority"][:, i] = maj.mean(axis=1)
        out["best_of_n"][:, i] = bon.mean(axis=1)
        out["pass_at_k"][:, i] = ck.any(axis=-1).mean(axis=1)
    return out


def ours(a: SampleArrays, ks: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "majority": majority_accuracy(a, ks),
        "best_of_n": expected_best(a.rewards, a.correct, a.present, ks, descending=True),
        "pass_at_k": pass_at_k(a.correct.sum(axis=1), a.n_per_question, ks),
    }


def timed(fn, *args) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def timed_cpu(fn, *args) -> tuple[float, float, object]:
    """(wall s, CPU s of this process, result): CPU time is what other processes' load cannot inflate."""
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return time.perf_counter() - w, time.process_time() - c, out


def peak_traced(fn, *args) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def part1(kind: str) -> dict[str, float]:
    a = DATA[kind](1319, 128, seed=1)
    ks = 2 ** np.arange(8)
    d = distinct_answers(a)
    print(f"== {kind}: 1,319 questions x 128 samples, k in 1..128 (powers of two): majority + best-of-N + pass@k")
    print(f"distinct answers per question: mean {d.mean():.1f}, p90 {np.percentile(d, 90):.0f}, max {d.max()}")
    runs = [timed_cpu(ours, a, ks) for _ in range(3)]
    t_ours, _, exact = min(runs, key=lambda r: r[0])
    c_ours = min(r[1] for r in runs)
    t_base, c_base, mc = timed_cpu(baseline, a, ks, np.random.default_rng(0))
    m_ours = peak_traced(ours, a, ks)
    m_base = peak_traced(baseline, a, ks, np.random.default_rng(0))
    print(f"time   baseline {t_base:8.2f} s   ours {t_ours:8.3f} s   speed-up {t_base / t_ours:7.1f}x  (goal >= 20x)")
    print(f"CPU    baseline {c_base:8.2f} s   ours {c_ours:8.3f} s   speed-up {c_base / c_ours:7.1f}x  "
          "(CPU seconds of this process: not inflated by other load)")
    print(f"memory baseline {m_base:8.1f} MiB ours {m_ours:8.1f} MiB ratio    {m_ours / m_base:7.3f}   (goal <= 0.2)")
    print("baseline noise vs exact (50 permutations):")
    print("  strategy     k   exact mean   baseline mean   |diff|   per-question RMS error")
    for name in ("majority", "best_of_n", "pass_at_k"):
        for i, k in enumerate(ks):
            if k not in (1, 8, 32, 128):
                continue
            e, b = exact[name][:, i], mc[name][:, i]
            print(f"  {name:11s} {k:4d}   {e.mean():.5f}      {b.mean():.5f}        {abs(e.mean() - b.mean()):.5f}"
                  f"   {np.sqrt(np.mean((e - b) ** 2)):.4f}")
    return {"speedup": t_base / t_ours, "cpu_speedup": c_base / c_ours, "memory_ratio": m_ours / m_base}


def large_child(kind: str) -> None:
    a = DATA[kind](10_000, 1024, seed=2)
    ks = 2 ** np.arange(11)
    t, cpu, res = timed_cpu(ours, a, ks)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB -> MiB on Linux
    d = distinct_answers(a)
    print(
        json.dumps(
            {
                "seconds": t,
                "cpu_seconds": cpu,
                "peak_rss_mib": rss,
                "distinct": [float(d.mean()), float(np.percentile(d, 90)), int(d.max())],
                "majority": res["majority"].mean(0).round(4).tolist(),
                "best_of_n": res["best_of_n"].mean(0).round(4).tolist(),
                "pass_at_k": res["pass_at_k"].mean(0).round(4).tolist(),
            }
        )
    )


def part2(kind: str) -> dict[str, float]:
    print(f"== {kind}: 10,000 questions x 1,024 samples, k in 1..1024 (powers of two), ours only (fresh subprocess)")
    out = subprocess.run([sys.executable, __file__, "--large-child", kind], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"distinct answers per question: mean {r['distinct'][0]:.1f}, p90 {r['distinct'][1]:.0f}, max {r['distinct'][2]}"
    )
    print(
        f"time {r['seconds']:.1f} s wall, {r['cpu_seconds']:.1f} s CPU (goal < 60 s)   peak RSS {r['peak_rss_mib']:.0f} MiB "
        "(goal < 4096 MiB, incl. data)"
    )
    for name in ("majority", "best_of_n", "pass_at_k"):
        print(f"  {name:10s} mean accuracy by k: {r[name]}")
    return {"seconds": r["seconds"], "peak_rss_mib": r["peak_rss_mib"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--data", choices=[*DATA, "all"], default="all")
    ap.add_argument("--large-child", choices=list(DATA), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.large_child:
        large_child(args.large_child)
        return
    kinds = list(DATA) if args.data == "all" else [args.data]
    summary = {kind: part1(kind) for kind in kinds}
    if not args.skip_large:
        for kind in kinds:
            summary[kind].update(part2(kind))
    print("== summary")
    for kind, res in summary.items():
        line = (
            f"  {kind:9s} speed-up {res['speedup']:6.1f}x wall, {res['cpu_speedup']:6.1f}x CPU (goal >= 20x)   "
            f"memory ratio {res['memory_ratio']:.3f}"
        )
        if "seconds" in res:
            line += f"   10k x 1024: {res['seconds']:.1f} s, {res['peak_rss_mib']:.0f} MiB"
        print(line)


if __name__ == "__main__":
    main()
