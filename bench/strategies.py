"""Strategy estimators: exact (ttclab) vs the Monte-Carlo baseline common in research code.

Baseline (as in many TTS papers' analysis scripts): 50 random permutations per question; for each
k the first k samples of each permutation are "the k samples"; majority found by pairwise equality
counting over them (O(k²)), best-of-k by argmax of the reward, pass@k by any(correct). It is
written vectorised over questions × permutations (numpy), as fast as that method goes.

Ours: exact expectations over all k-subsets (``majority_accuracy``, ``expected_best``,
``pass_at_k``).

1. 1,319 questions × 128 samples, k in {1, 2, 4, …, 128}, majority + best-of-N + pass@k:
   wall time and peak traced memory (tracemalloc, same method for both, measured in separate
   passes from the timing), ratios, and the baseline's noise against our exact values.
   Goals: >= 20x faster, <= 1/5 of the peak memory.
2. 10,000 questions × 1,024 samples, k in {1, …, 1024}: ours only (the baseline's pairwise tensor
   would need ~500 GB). Goal: under 60 s within 4 GB (peak RSS of a fresh subprocess).

Synthetic but realistic data: per question a difficulty; 1-5 distinct wrong answers with skewed
(Dirichlet) frequencies beside the correct one, ~5 % unparseable samples, rewards correlated with
correctness, token counts log-normal.

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

from ttclab.strategies.estimators import expected_best, pass_at_k
from ttclab.strategies.voting import majority_accuracy
from ttclab.strategies.arrays import SampleArrays


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


def peak_traced(fn, *args) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def part1() -> None:
    a = synthetic(1319, 128, seed=1)
    ks = 2 ** np.arange(8)
    print("== 1,319 questions x 128 samples, k in 1..128 (powers of two): majority + best-of-N + pass@k")
    t_ours, exact = min((timed(ours, a, ks) for _ in range(3)), key=lambda r: r[0])
    t_base, mc = timed(baseline, a, ks, np.random.default_rng(0))
    m_ours = peak_traced(ours, a, ks)
    m_base = peak_traced(baseline, a, ks, np.random.default_rng(0))
    print(f"time   baseline {t_base:8.2f} s   ours {t_ours:8.3f} s   speed-up {t_base / t_ours:7.1f}x  (goal >= 20x)")
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


def large_child() -> None:
    a = synthetic(10_000, 1024, seed=2)
    ks = 2 ** np.arange(11)
    t, res = timed(ours, a, ks)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB -> MiB on Linux
    print(json.dumps({"seconds": t, "peak_rss_mib": rss,
                      "majority": res["majority"].mean(0).round(4).tolist(),
                      "best_of_n": res["best_of_n"].mean(0).round(4).tolist(),
                      "pass_at_k": res["pass_at_k"].mean(0).round(4).tolist()}))


def part2() -> None:
    print("== 10,000 questions x 1,024 samples, k in 1..1024 (powers of two), ours only (fresh subprocess)")
    out = subprocess.run([sys.executable, __file__, "--large-child"], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"time {r['seconds']:.1f} s (goal < 60 s)   peak RSS {r['peak_rss_mib']:.0f} MiB (goal < 4096 MiB, incl. data)")
    for name in ("majority", "best_of_n", "pass_at_k"):
        print(f"  {name:10s} mean accuracy by k: {r[name]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--large-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.large_child:
        large_child()
        return
    part1()
    if not args.skip_large:
        part2()


if __name__ == "__main__":
    main()
