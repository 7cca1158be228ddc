"""Search benchmarks (issue 9): replay speed and search efficiency, as ratios measured in one run.

* Replay speed: a full beta sweep of the 5 reference controllers over 100 questions x 64 traces
  (synthetic replay data with probes every 500 tokens; no model), ``replay_questions_per_s``
  (question episodes per second over the sweep), controller decisions per second, and the sweep's
  wall time against the 10 s target. Baseline in the same run: SC@64 episodes, the cheapest
  controller per decision, so ``decisions_per_s`` of the sweep is also given relative to it.
* Code controllers: SC@16 written as ``decide(observation)`` (tests/search/sc_controller.py) in
  one sandbox process over 20 questions x 64 traces, against the built-in SC@16 on the same
  episodes (identical results, checked): sandboxed decisions per second and the slowdown per episode.
* Search efficiency: on a synthetic graph-like space with one known best candidate (6 dimensions
  x 4 choices, score = fraction of dimensions right), the evaluations REINFORCE needs to reach the
  optimum vs random search, over seeds (random: capped at the space size), and their ratio.

    .venv/bin/python bench/search.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def replay_bench() -> dict[str, float]:
    from ttclab.search.controller_search import evaluate_controller
    from ttclab.search.controllers import REFERENCE
    from ttclab.search.replay import synthetic

    data = synthetic(100, 64, every=500, seed=0)
    t0 = time.perf_counter()
    episodes = 0
    decisions = 0
    for fn, grid in REFERENCE.values():
        for beta in grid:
            ev = evaluate_controller(data, lambda env, rng, f=fn, b=beta: f(env, b, rng), orders=1, seed=0)
            episodes += data.n_questions
            decisions += ev.decisions
    sweep = time.perf_counter() - t0
    t1 = time.perf_counter()
    base = evaluate_controller(data, lambda env, rng: REFERENCE["sc"][0](env, 64, rng), orders=1, seed=0)
    base_s = time.perf_counter() - t1
    return {"sweep_s": sweep, "episodes": episodes, "replay_questions_per_s": episodes / sweep,
            "decisions_per_s": decisions / sweep, "sc64_decisions_per_s": base.decisions / base_s,
            "points": sum(len(g) for _, g in REFERENCE.values())}


def code_bench() -> dict[str, float]:
    from pathlib import Path

    from ttclab.search.code_controller import CodeController, evaluate_code_controller
    from ttclab.search.controller_search import evaluate_controller, with_beta
    from ttclab.search.controllers import sc
    from ttclab.search.replay import synthetic

    source = (Path(__file__).resolve().parents[1] / "tests" / "search" / "sc_controller.py").read_text()
    data = synthetic(20, 64, every=500, seed=0)
    t0 = time.perf_counter()
    code = evaluate_code_controller(data, CodeController(source), 16, orders=2, seed=0)
    code_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    ref = evaluate_controller(data, with_beta(sc, 16), orders=2, seed=0)
    ref_s = time.perf_counter() - t1
    if not (np.array_equal(code.accuracy, ref.accuracy) and np.array_equal(code.tokens, ref.tokens)):
        raise SystemExit("code SC@16 differs from the built-in SC@16")
    episodes = data.n_questions * 2
    return {"code_s": code_s, "ref_s": ref_s, "code_decisions_per_s": code.decisions / code_s,
            "code_episodes_per_s": episodes / code_s, "ref_episodes_per_s": episodes / ref_s,
            "slowdown": code_s / ref_s}


def search_bench(seeds: int) -> dict[str, float]:
    from ttclab.search.methods import Dim, RandomSearch, Reinforce, Space, run_search

    space = Space([Dim(f"d{i}", tuple(range(4))) for i in range(6)])
    target = {f"d{i}": (3 * i) % 4 for i in range(6)}

    def score(c):
        return sum(c[k] == v for k, v in target.items()) / 6, {}

    def hits(method):
        trials = run_search(method, score, evaluations=space.size(), stop=lambda t: t.score == 1.0)
        return next((t.index + 1 for t in trials if t.score == 1.0), space.size())

    rf = [hits(Reinforce(space, seed=s, batch=8, lr=1.0)) for s in range(seeds)]
    rnd = [hits(RandomSearch(space, seed=s, batch=8)) for s in range(seeds)]
    return {"reinforce_evals": float(np.mean(rf)), "random_evals": float(np.mean(rnd)),
            "random_over_reinforce": float(np.mean(rnd) / np.mean(rf)), "space": space.size()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args()
    r = replay_bench()
    print(f"replay: beta sweep of 5 reference controllers ({r['points']} points) over 100 questions x 64 traces: "
          f"{r['sweep_s']:.2f} s (target < 10 s: {'yes' if r['sweep_s'] < 10 else 'NO'})")
    print(f"replay_questions_per_s {r['replay_questions_per_s']:.0f}")
    print(f"decisions_per_s {r['decisions_per_s']:.0f} (SC@64 alone: {r['sc64_decisions_per_s']:.0f}; "
          f"ratio {r['decisions_per_s'] / r['sc64_decisions_per_s']:.2f})")
    c = code_bench()
    print(f"code controller (SC@16 in the sandbox, one process): code_decisions_per_s {c['code_decisions_per_s']:.0f}, "
          f"{c['code_episodes_per_s']:.0f} episodes/s vs {c['ref_episodes_per_s']:.0f} in-process "
          f"(slowdown {c['slowdown']:.1f}x, same accuracy and tokens)")
    s = search_bench(args.seeds)
    print(f"search: evaluations to reach the known optimum of {s['space']} candidates, mean over {args.seeds} seeds: "
          f"REINFORCE {s['reinforce_evals']:.0f}, random {s['random_evals']:.0f}; "
          f"random / REINFORCE = {s['random_over_reinforce']:.1f}x")


if __name__ == "__main__":
    main()
