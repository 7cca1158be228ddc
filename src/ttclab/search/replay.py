"""The replay environment: width-depth control over stored traces with probe answers, no model calls.

:class:`ReplayData` holds, per question, N stored traces: each trace's length in tokens, its final
answer, and the probe answer after every ``every`` tokens (``ttclab sample --probe-every``), with
the probe's cost in tokens and its confidence (mean log-prob). Answers are integer codes per
question (``-1``: none), ``correct[q, code]`` says which are right.

:class:`ReplayEnv` is one episode on one question, with the traces in a random order drawn from a
seeded generator. Actions:

* ``branch()`` — start the next trace of the order and decode its first segment (``every`` tokens,
  fewer if the trace is shorter); returns its handle ``i`` (0, 1, ... in start order);
* ``cont(i)`` — decode ``every`` more tokens of trace ``i`` (CONTINUE);
* ``probe(i)`` — the answer trace ``i`` would give now (its final answer, free, once finished);
  charges the probe's tokens;
* ``prune(i)`` — stop trace ``i`` for good;
* ``answer(a)`` — end the episode with answer code ``a`` (``-1`` abstains); returns correctness.

Impossible actions raise :class:`ReplayError` with the reason (branch with no trace left, cont or
probe of a pruned, finished or unknown trace, any action after ``answer``). Costs: ``decode_tokens``
(every token decoded), ``probe_tokens``, ``tokens`` = their sum, ``sequential_tokens`` = the
longest trace decoded (the parallel critical path).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class ReplayError(ValueError):
    """An action the environment cannot take in its state (the message says why)."""


@dataclass
class ReplayData:
    """Stored traces of Q questions, padded to N traces and S probe boundaries."""

    every: int
    length: np.ndarray  # (Q, N) int: trace tokens (0 where absent)
    present: np.ndarray  # (Q, N) bool
    final: np.ndarray  # (Q, N) int: final answer code (-1: none)
    probe: np.ndarray  # (Q, N, S) int: answer code after (s + 1) * every tokens (-1: none)
    probe_cost: np.ndarray  # (Q, N, S) float: tokens of that probe (cue + decoded)
    probe_conf: np.ndarray  # (Q, N, S) float: mean log-prob of the probe tokens (NaN: none)
    correct: np.ndarray  # (Q, A) bool: whether answer code a of question q is right
    question_ids: list[str]
    source: str = ""

    @property
    def n_questions(self) -> int:
        return int(self.length.shape[0])

    def subset(self, idx: Any) -> ReplayData:
        idx = np.asarray(idx)
        return ReplayData(self.every, self.length[idx], self.present[idx], self.final[idx], self.probe[idx],
                          self.probe_cost[idx], self.probe_conf[idx], self.correct[idx],
                          [self.question_ids[i] for i in idx], self.source)

    def segments(self, q: int, j: int) -> int:
        return int(-(-int(self.length[q, j]) // self.every))


_RUNNING, _FINISHED, _PRUNED = 0, 1, 2


class ReplayEnv:
    """One episode on question ``q`` of ``data`` (see the module doc)."""

    __slots__ = ("data", "q", "order", "every", "_pos", "_len", "_state", "_trace", "decode_tokens", "probe_tokens",
                 "answered", "correct", "probes_used", "_seg")

    def __init__(self, data: ReplayData, q: int, rng: np.random.Generator | int = 0) -> None:
        rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        self.data = data
        self.q = q
        avail = np.flatnonzero(data.present[q])
        self.order = avail[rng.permutation(len(avail))]
        self.every = data.every
        self._trace: list[int] = []  # handle -> stored trace index
        self._pos: list[int] = []  # tokens decoded
        self._len: list[int] = []
        self._seg: list[int] = []  # segments decoded
        self._state: list[int] = []
        self.decode_tokens = 0
        self.probe_tokens = 0.0
        self.probes_used = 0
        self.answered: int | None = None
        self.correct: bool | None = None

    # -- observations -----------------------------------------------------------------------
    @property
    def n_started(self) -> int:
        return len(self._trace)

    @property
    def n_left(self) -> int:
        return len(self.order) - len(self._trace)

    @property
    def n_traces(self) -> int:
        return len(self.order)

    @property
    def tokens(self) -> float:
        return self.decode_tokens + self.probe_tokens

    @property
    def sequential_tokens(self) -> int:
        return max(self._pos, default=0)

    def position(self, i: int) -> int:
        return self._pos[i]

    def finished(self, i: int) -> bool:
        return self._state[i] == _FINISHED

    def pruned(self, i: int) -> bool:
        return self._state[i] == _PRUNED

    def running(self) -> list[int]:
        return [i for i, s in enumerate(self._state) if s == _RUNNING]

    def final_answer(self, i: int) -> int:
        """The final answer of a finished trace."""
        self._check(i)
        if self._state[i] != _FINISHED:
            raise ReplayError(f"trace {i} has not finished (at {self._pos[i]} of its tokens); its final answer is unknown")
        return int(self.data.final[self.q, self._trace[i]])

    def finals(self) -> list[int]:
        """Final answers of the finished traces (in start order)."""
        return [int(self.data.final[self.q, self._trace[i]]) for i, s in enumerate(self._state) if s == _FINISHED]

    # -- actions ------------------------------------------------------------------------------
    def branch(self) -> int:
        self._open()
        if not self.n_left:
            raise ReplayError(f"branch: all {len(self.order)} stored traces of question {self.q} are started")
        j = int(self.order[len(self._trace)])
        self._trace.append(j)
        self._pos.append(0)
        self._seg.append(0)
        self._len.append(int(self.data.length[self.q, j]))
        self._state.append(_RUNNING)
        i = len(self._trace) - 1
        self._advance(i)
        return i

    def cont(self, i: int) -> None:
        self._open()
        self._check(i)
        if self._state[i] != _RUNNING:
            raise ReplayError(f"continue({i}): the trace is {'finished' if self._state[i] == _FINISHED else 'pruned'}")
        self._advance(i)

    def finish(self, i: int) -> int:
        """CONTINUE(i) until the trace ends (the same cost); returns its final answer."""
        self._open()
        self._check(i)
        if self._state[i] == _PRUNED:
            raise ReplayError(f"finish({i}): the trace is pruned")
        if self._state[i] == _RUNNING:
            self.decode_tokens += self._len[i] - self._pos[i]
            self._pos[i] = self._len[i]
            self._seg[i] = -(-self._len[i] // self.every)
            self._state[i] = _FINISHED
        return int(self.data.final[self.q, self._trace[i]])

    def probe(self, i: int) -> tuple[int, float]:
        """(answer code, confidence) of trace ``i`` now; a finished trace gives its final answer for free."""
        self._open()
        self._check(i)
        if self._state[i] == _PRUNED:
            raise ReplayError(f"probe({i}): the trace is pruned")
        j = self._trace[i]
        if self._state[i] == _FINISHED:
            conf = self._last_conf(j)
            return int(self.data.final[self.q, j]), conf
        s = self._seg[i] - 1  # probe after the decoded segments
        if s < 0 or s >= self.data.probe.shape[2]:
            return -1, float("nan")
        self.probe_tokens += float(self.data.probe_cost[self.q, j, s])
        self.probes_used += 1
        return int(self.data.probe[self.q, j, s]), float(self.data.probe_conf[self.q, j, s])

    def prune(self, i: int) -> None:
        self._open()
        self._check(i)
        if self._state[i] != _RUNNING:
            raise ReplayError(f"prune({i}): the trace is already {'finished' if self._state[i] == _FINISHED else 'pruned'}")
        self._state[i] = _PRUNED

    def answer(self, a: int) -> bool:
        self._open()
        a = int(a)
        ok = 0 <= a < self.data.correct.shape[1] and bool(self.data.correct[self.q, a])
        self.answered, self.correct = a, ok
        return ok

    # -- internals ----------------------------------------------------------------------------
    def _advance(self, i: int) -> None:
        step = min(self.every, self._len[i] - self._pos[i])
        self._pos[i] += step
        self._seg[i] += 1
        self.decode_tokens += step
        if self._pos[i] >= self._len[i]:
            self._state[i] = _FINISHED

    def _last_conf(self, j: int) -> float:
        confs = self.data.probe_conf[self.q, j]
        ok = np.flatnonzero(np.isfinite(confs))
        return float(confs[ok[-1]]) if len(ok) else float("nan")

    def _check(self, i: int) -> None:
        if not (0 <= i < len(self._trace)):
            raise ReplayError(f"trace {i} is not started ({len(self._trace)} started); branch() first")

    def _open(self) -> None:
        if self.answered is not None:
            raise ReplayError("the episode has ended (answer was given)")


# -- building data ---------------------------------------------------------------------------------
def from_run(run: Any, every: int | None = None) -> ReplayData:
    """Replay data from a stored run with probes (``ttclab sample --probe-every``)."""
    from ttclab.errors import DataError
    from ttclab.probes import read_probes
    from ttclab.store.reader import Run

    run = run if not isinstance(run, (str, Path)) else Run(Path(run))
    probes = read_probes(run.path).to_pydict()
    if not probes["every"]:
        raise DataError(f"{run.path}: the run has no probes; sample it with --probe-every D first")
    spacings = sorted(set(probes["every"]))
    every = every or spacings[0]
    if every not in spacings:
        raise DataError(f"{run.path}: no probes every {every} tokens (the run has every {spacings})")
    s = run.samples(["question_index", "sample_index", "completion_tokens", "answer", "correct", "error"]).to_pydict()
    qids = run.questions().to_pydict()["question_id"]
    n_q = len(qids)
    n = max(s["sample_index"], default=-1) + 1
    codes: list[dict[str, int]] = [{} for _ in range(n_q)]
    right: list[dict[int, bool]] = [{} for _ in range(n_q)]

    def code(qi: int, answer: str | None, ok: bool) -> int:
        if answer is None:
            return -1
        c = codes[qi].setdefault(answer, len(codes[qi]))
        right[qi][c] = right[qi].get(c, False) or ok
        return c

    length = np.zeros((n_q, n), int)
    present = np.zeros((n_q, n), bool)
    final = np.full((n_q, n), -1)
    for qi, si, d, ans, ok, err in zip(s["question_index"], s["sample_index"], s["completion_tokens"], s["answer"],
                                       s["correct"], s["error"]):
        if err is None:
            present[qi, si] = True
            length[qi, si] = int(d or 0)
            final[qi, si] = code(qi, ans, bool(ok))
    n_seg = max(1, int(np.ceil(length.max() / every)) if length.size else 1)
    probe = np.full((n_q, n, n_seg), -1)
    cost = np.zeros((n_q, n, n_seg))
    conf = np.full((n_q, n, n_seg), np.nan)
    for qi, si, e, b, ans, ok, cue, lps in zip(probes["question_index"], probes["sample_index"], probes["every"],
                                               probes["boundary"], probes["answer"], probes["correct"],
                                               probes["cue_tokens"], probes["token_logprobs"]):
        if e != every or not present[qi, si] or b - 1 >= n_seg:
            continue
        probe[qi, si, b - 1] = code(qi, ans, bool(ok))
        cost[qi, si, b - 1] = float(cue + len(lps or []))
        conf[qi, si, b - 1] = float(np.mean(lps)) if lps else np.nan
    n_codes = max((len(c) for c in codes), default=0) or 1
    correct = np.zeros((n_q, n_codes), bool)
    for qi in range(n_q):
        for c, ok in right[qi].items():
            correct[qi, c] = ok
    return ReplayData(every, length, present, final, probe, cost, conf, correct, list(qids), str(run.path))


def synthetic(n_questions: int = 100, n_traces: int = 64, *, every: int = 500, seed: int = 0,
              mean_tokens: float = 4000.0) -> ReplayData:
    """Replay data with a known structure (for benchmarks and tests; no model): per question a
    right answer with probability ``p_q`` per trace, probes converging to the final answer."""
    rng = np.random.default_rng(seed)
    n_seg = int(np.ceil(mean_tokens * 3 / every))
    length = np.clip(rng.gamma(4.0, mean_tokens / 4.0, size=(n_questions, n_traces)), every / 2, n_seg * every).astype(int)
    p = rng.beta(2.0, 2.0, size=n_questions)
    n_wrong = 4
    right = rng.random((n_questions, n_traces)) < p[:, None]
    final = np.where(right, 0, 1 + rng.integers(n_wrong, size=(n_questions, n_traces)))
    frac = (np.arange(1, n_seg + 1) * every)[None, None, :] / length[:, :, None]
    settle = rng.random((n_questions, n_traces, n_seg)) < np.clip(frac, 0, 1) ** 2
    noise = rng.integers(n_wrong + 1, size=(n_questions, n_traces, n_seg))
    probe = np.where(settle, final[:, :, None], noise)
    probe = np.where(frac < 1, probe, -1)
    cost = np.where(probe >= 0, 8.0, 0.0)
    conf = np.where(probe >= 0, -rng.gamma(2.0, 0.3, size=probe.shape) * np.where(probe == final[:, :, None], 0.5, 1.5),
                    np.nan)
    correct = np.zeros((n_questions, n_wrong + 1), bool)
    correct[:, 0] = True
    return ReplayData(every, length, np.ones_like(length, bool), final, probe, cost, conf, correct,
                      [f"s{i}" for i in range(n_questions)], "synthetic")
