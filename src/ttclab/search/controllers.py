"""Controllers for the replay environment: reference controllers with one monotone knob beta, and a
parameterised family for controller search.

Every controller is a function ``(env, beta, rng) -> None`` that acts on a :class:`ReplayEnv`
and ends with ``env.answer(a)``. Larger beta spends more (weakly), so a beta sweep is the
controller's scaling curve:

* ``sc`` — self-consistency@k, k = beta: k traces to the end, plurality of the finals;
* ``adaptive`` — adaptive consistency: traces one at a time until the Beta posterior
  P(leader's share > runner-up's) >= beta (beta in (0.5, 1)); at most all traces;
* ``esc`` — early-stopping SC: windows of w = beta traces, stop at the first unanimous window;
* ``probe_prune`` — Parallel-Probe style: ``width`` traces decoded in lockstep, probed after every
  segment; a trace whose probe disagrees with the running majority of probes for ``patience =
  beta`` consecutive segments is pruned; stops when the running traces' probes have agreed for
  ``patience`` segments; answer: plurality of finals and last probes;
* ``confidence`` — traces one at a time; each finished trace votes with its confidence (exp of
  its last probe's mean log-prob); stop when the leader's weighted share >= beta (beta in (0, 1)).

Ties are broken by the injected ``rng``. :data:`REFERENCE` lists each controller's beta grid.
:func:`family` is the searched family (width, patience, agreement, probing period, maximum
rounds), :func:`family_space` its search space.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ttclab.search.methods import Dim, Space
from ttclab.search.replay import ReplayEnv

Controller = Callable[[ReplayEnv, float, np.random.Generator], None]


def plurality(answers: Sequence[int], rng: np.random.Generator, weights: Sequence[float] | None = None) -> int:
    """The most frequent (or heaviest) valid answer code; ties broken by ``rng``; -1 when none is valid."""
    tally: dict[int, float] = {}
    for k, a in enumerate(answers):
        if a >= 0:
            tally[a] = tally.get(a, 0.0) + (1.0 if weights is None else float(weights[k]))
    if not tally:
        return -1
    top = max(tally.values())
    leaders = [a for a, v in tally.items() if v >= top - 1e-12]
    return leaders[int(rng.integers(len(leaders)))] if len(leaders) > 1 else leaders[0]


def sc(env: ReplayEnv, beta: float, rng: np.random.Generator) -> None:
    k = max(1, min(int(round(beta)), env.n_traces))
    finals = [env.finish(env.branch()) for _ in range(k)]
    env.answer(plurality(finals, rng))


def adaptive(env: ReplayEnv, beta: float, rng: np.random.Generator) -> None:
    from scipy.special import betainc

    finals: list[int] = []
    while env.n_left:
        finals.append(env.finish(env.branch()))
        counts = sorted(np.bincount([a for a in finals if a >= 0]).tolist() if any(a >= 0 for a in finals) else [0])
        c1 = counts[-1]
        c2 = counts[-2] if len(counts) > 1 else 0
        # P(p1 > p2) for p1 / (p1 + p2) ~ Beta(c1 + 1, c2 + 1): 1 - I_0.5(c1 + 1, c2 + 1)
        if c1 > 0 and 1.0 - float(betainc(c1 + 1, c2 + 1, 0.5)) >= beta:
            break
    env.answer(plurality(finals, rng))


def esc(env: ReplayEnv, beta: float, rng: np.random.Generator) -> None:
    w = max(1, int(round(beta)))
    finals: list[int] = []
    while env.n_left:
        window = [env.finish(env.branch()) for _ in range(min(w, env.n_left))]
        finals += window
        if window[0] >= 0 and all(a == window[0] for a in window):
            break
    env.answer(plurality(finals, rng))


def confidence(env: ReplayEnv, beta: float, rng: np.random.Generator) -> None:
    finals: list[int] = []
    weights: list[float] = []
    while env.n_left:
        i = env.branch()
        a = env.finish(i)
        conf = env.probe(i)[1]
        finals.append(a)
        weights.append(float(np.exp(conf)) if np.isfinite(conf) else 0.5)
        valid = [w for x, w in zip(finals, weights) if x >= 0]
        if len(valid) >= 2:
            lead = plurality(finals, rng, weights)
            share = sum(w for x, w in zip(finals, weights) if x == lead) / sum(valid)
            if share >= beta:
                break
    env.answer(plurality(finals, rng, weights))


def family(env: ReplayEnv, params: Mapping[str, Any], rng: np.random.Generator) -> None:
    """The searched family: ``width`` traces in lockstep, probed every ``period`` segments; prune a
    trace after ``patience`` disagreeing probes; stop when a share ``agree`` of the running traces'
    probes agree for ``patience`` probe rounds, or after ``max_rounds`` rounds; answer the
    plurality of finals and last probes."""
    width = min(int(params["width"]), env.n_traces)
    patience, agree = int(params["patience"]), float(params["agree"])
    period, max_rounds = int(params.get("period", 1)), int(params.get("max_rounds", 10**9))
    handles = [env.branch() for _ in range(width)]
    last = {i: -1 for i in handles}
    strikes = dict.fromkeys(handles, 0)
    streak = 0
    rounds = 1
    while True:
        running = [i for i in handles if not env.finished(i) and not env.pruned(i)]
        if not running or rounds >= max_rounds:
            break
        if rounds % period == 0:
            for i in running:
                last[i] = env.probe(i)[0]
            votes = [last[i] for i in handles if not env.pruned(i)]
            lead = plurality([v for v in votes], rng)
            if lead >= 0:
                for i in running:
                    strikes[i] = strikes[i] + 1 if last[i] != lead else 0
                    if strikes[i] >= patience and len(running) > 1:
                        env.prune(i)
                        running.remove(i)
                share = sum(1 for i in running if last[i] == lead) / max(1, len(running))
                streak = streak + 1 if share >= agree else 0
                if streak >= patience:
                    break
        for i in running:
            env.cont(i)
        rounds += 1
    votes = [env.final_answer(i) if env.finished(i) else last[i] for i in handles if not env.pruned(i)]
    if all(v < 0 for v in votes):  # every remaining vote is missing: fall back on the last probes seen
        votes = [last[i] for i in handles]
    env.answer(plurality(votes, rng))


def probe_prune(env: ReplayEnv, beta: float, rng: np.random.Generator, width: int = 16) -> None:
    family(env, {"width": width, "patience": max(1, int(round(beta))), "agree": 1.0, "period": 1}, rng)


REFERENCE: dict[str, tuple[Controller, tuple[float, ...]]] = {
    "sc": (sc, (1, 2, 4, 8, 16, 32, 64)),
    "adaptive": (adaptive, (0.6, 0.7, 0.8, 0.9, 0.95, 0.99)),
    "esc": (esc, (2, 3, 4, 6, 8)),
    "probe_prune": (probe_prune, (1, 2, 3, 4, 6, 8)),
    "confidence": (confidence, (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)),
}


def family_space(max_width: int = 64) -> Space:
    widths = tuple(w for w in (2, 4, 8, 16, 32, 64) if w <= max_width) or (max_width,)
    return Space([Dim("width", widths), Dim("patience", (1, 2, 3, 4, 6)), Dim("agree", (0.5, 0.75, 0.9, 1.0)),
                  Dim("period", (1, 2)), Dim("max_rounds", (2, 4, 8, 16, 1000))])
