"""Search methods over a factorised categorical space, all behind one ask/tell interface, all seeded.

A :class:`Space` is a list of named dimensions, each a tuple of choices; a candidate is a mapping
``{dimension: choice}``. Methods:

* :class:`RandomSearch` — independent uniform draws (or draws from an initial distribution);
* :class:`GridSearch` — every combination of the ``over`` dimensions (e.g. width x depth), the
  others at their most likely choice;
* :class:`Reinforce` — REINFORCE with a moving-average baseline over independent softmax logits
  per dimension (sample, score, ``logits += lr * (score - baseline) * grad log p``);
* :class:`AgentProposer` (``ttclab.search.agent``) — an LLM turns a textual summary of the results
  into the next distribution or concrete candidates (validated JSON).

``ask()`` returns candidates; ``tell(candidates, scores)`` reports their scores (higher is better;
``None`` for a candidate that was rejected without an evaluation, e.g. over the budget). A
``constrain`` hook can re-draw some dimensions of a sample given the others (the budget coupling
of width and depth).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ttclab.errors import ConfigError

Candidate = dict[str, Any]


@dataclass(frozen=True)
class Dim:
    name: str
    choices: tuple[Any, ...]


@dataclass
class Space:
    dims: list[Dim]

    def __post_init__(self) -> None:
        names = [d.name for d in self.dims]
        if len(set(names)) != len(names):
            raise ConfigError("search space: dimension names must be unique")
        for d in self.dims:
            if not d.choices:
                raise ConfigError(f"search space: dimension {d.name!r} has no choices")

    def dim(self, name: str) -> Dim:
        for d in self.dims:
            if d.name == name:
                return d
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dims]

    def size(self) -> int:
        return int(np.prod([len(d.choices) for d in self.dims], dtype=float))

    def key(self, cand: Mapping[str, Any]) -> str:
        return json.dumps([cand[d.name] for d in self.dims], default=str)

    def validate(self, cand: Any) -> Candidate:
        """A complete candidate or ValueError naming the problem (used on proposals from outside)."""
        if not isinstance(cand, Mapping):
            raise ValueError(f"a candidate must be an object of dimension: choice (got {type(cand).__name__})")
        unknown = set(cand) - set(self.names)
        if unknown:
            raise ValueError(f"unknown dimension(s) {', '.join(sorted(map(str, unknown)))}")
        out = {}
        for d in self.dims:
            if d.name not in cand:
                raise ValueError(f"dimension {d.name!r} is missing")
            value = cand[d.name]
            if value not in d.choices:
                raise ValueError(f"{d.name}: {value!r} is not one of {list(d.choices)}")
            out[d.name] = value
        return out


class Distribution:
    """Independent categoricals, one per dimension, as logits."""

    def __init__(self, space: Space, logits: Mapping[str, Sequence[float]] | None = None) -> None:
        self.space = space
        self.logits = {d.name: np.zeros(len(d.choices)) for d in space.dims}
        for name, values in (logits or {}).items():
            self.logits[name] = np.asarray(values, dtype=float).copy()

    def probs(self, name: str) -> np.ndarray:
        z = self.logits[name] - self.logits[name].max()
        p = np.exp(z)
        return p / p.sum()

    def sample(self, rng: np.random.Generator) -> Candidate:
        return {d.name: d.choices[int(rng.choice(len(d.choices), p=self.probs(d.name)))] for d in self.space.dims}

    def mode(self) -> Candidate:
        return {d.name: d.choices[int(np.argmax(self.logits[d.name]))] for d in self.space.dims}

    def log_prob(self, cand: Mapping[str, Any]) -> float:
        return float(sum(np.log(self.probs(d.name)[d.choices.index(cand[d.name])]) for d in self.space.dims))

    def set_probs(self, name: str, probs: Sequence[float], floor: float = 1e-3) -> None:
        p = np.maximum(np.asarray(probs, dtype=float), 0.0)
        p = p / p.sum() if p.sum() > 0 else np.full(len(p), 1.0 / len(p))
        self.logits[name] = np.log(np.maximum(p, floor))

    def describe(self, top: int = 3) -> dict[str, dict[str, float]]:
        out = {}
        for d in self.space.dims:
            p = self.probs(d.name)
            order = np.argsort(-p)[:top]
            out[d.name] = {str(d.choices[i]): round(float(p[i]), 3) for i in order}
        return out


Constrain = Callable[[Candidate, Distribution, np.random.Generator], Candidate | None]


class Method:
    """The ask/tell interface every method implements."""

    name = "method"

    def __init__(self, space: Space, *, seed: int = 0, batch: int = 4, init: Distribution | None = None,
                 constrain: Constrain | None = None) -> None:
        self.space = space
        self.rng = np.random.default_rng(seed)
        self.batch = batch
        self.dist = init or Distribution(space)
        self.constrain = constrain
        self.rejected: list[tuple[str, str]] = []  # (what, why) of proposals refused

    def _draw(self, tries: int = 50) -> Candidate:
        for _ in range(tries):
            cand = self.dist.sample(self.rng)
            if self.constrain is None:
                return cand
            fixed = self.constrain(cand, self.dist, self.rng)
            if fixed is not None:
                return fixed
        return cand

    def ask(self) -> list[Candidate]:
        raise NotImplementedError

    def tell(self, cands: Sequence[Candidate], scores: Sequence[float | None]) -> None:
        pass

    def done(self) -> bool:
        return False


class RandomSearch(Method):
    name = "random"

    def ask(self) -> list[Candidate]:
        return [self._draw() for _ in range(self.batch)]


class GridSearch(Method):
    """Every combination of ``over`` (in order), the other dimensions at the distribution's mode."""

    name = "grid"

    def __init__(self, space: Space, *, over: Sequence[str] = ("width", "depth"), **kw: Any) -> None:
        super().__init__(space, **kw)
        for name in over:
            space.dim(name)
        base = self.dist.mode()
        self._todo = [{**base, **dict(zip(over, combo))}
                      for combo in itertools.product(*(space.dim(n).choices for n in over))]

    def ask(self) -> list[Candidate]:
        out, self._todo = self._todo[: self.batch], self._todo[self.batch:]
        return out

    def done(self) -> bool:
        return not self._todo


class Reinforce(Method):
    """REINFORCE with a baseline over the factorised categorical (score-function gradient per dimension).

    ``lr`` the step size, ``baseline_decay`` the moving average's weight on the past; rejected
    candidates (score None) get ``reject_score``. Scores are standardised within a batch when it
    has spread (so ``lr`` is scale-free)."""

    name = "reinforce"

    def __init__(self, space: Space, *, lr: float = 0.5, baseline_decay: float = 0.8, reject_score: float = 0.0,
                 **kw: Any) -> None:
        super().__init__(space, **kw)
        self.lr = lr
        self.decay = baseline_decay
        self.reject_score = reject_score
        self.baseline: float | None = None

    def ask(self) -> list[Candidate]:
        return [self._draw() for _ in range(self.batch)]

    def tell(self, cands: Sequence[Candidate], scores: Sequence[float | None]) -> None:
        if not cands:
            return
        r = np.array([self.reject_score if s is None else float(s) for s in scores])
        base = float(r.mean()) if self.baseline is None else self.baseline
        adv = r - base
        spread = float(r.std())
        if spread > 1e-12:
            adv = adv / max(spread, 1e-12)
        for d in self.space.dims:
            p = self.dist.probs(d.name)
            grad = np.zeros_like(p)
            for cand, a in zip(cands, adv):
                onehot = np.zeros_like(p)
                onehot[d.choices.index(cand[d.name])] = 1.0
                grad += a * (onehot - p)
            self.dist.logits[d.name] = self.dist.logits[d.name] + self.lr * grad / len(cands)
        mean = float(r.mean())
        self.baseline = mean if self.baseline is None else self.decay * self.baseline + (1 - self.decay) * mean


@dataclass
class Trial:
    """One evaluated (or rejected) candidate."""

    index: int
    candidate: Candidate
    score: float | None
    info: dict[str, Any] = field(default_factory=dict)


def run_search(method: Method, evaluate: Callable[[Candidate], tuple[float | None, dict[str, Any]]], *,
               evaluations: int, max_rounds: int | None = None,
               on_trial: Callable[[Trial], None] | None = None,
               stop: Callable[[Trial], bool] | None = None) -> list[Trial]:
    """Ask, evaluate, tell until ``evaluations`` distinct candidates were evaluated (repeats of an
    evaluated candidate reuse its score and do not count; nor do those ``evaluate`` marks
    ``rejected`` or ``duplicate`` in its info, e.g. another candidate of the same graph), or until
    ``stop(trial)`` holds for a new trial."""
    seen: dict[str, tuple[float | None, dict[str, Any]]] = {}
    trials: list[Trial] = []
    rounds = 0
    evaluated = 0
    limit = max_rounds if max_rounds is not None else max(10, 20 * evaluations)
    while evaluated < evaluations and not method.done() and rounds < limit:
        rounds += 1
        cands = method.ask()
        if not cands:
            break
        scores: list[float | None] = []
        for cand in cands:
            key = method.space.key(cand)
            if key not in seen:
                if evaluated >= evaluations:
                    break
                seen[key] = evaluate(cand)
                info = seen[key][1]
                if not info.get("rejected") and not info.get("duplicate"):  # a new evaluation
                    evaluated += 1
                trial = Trial(len(trials), cand, seen[key][0], seen[key][1])
                trials.append(trial)
                if on_trial is not None:
                    on_trial(trial)
                if stop is not None and stop(trial):
                    return trials
            scores.append(seen[key][0])
        method.tell(cands[: len(scores)], scores)
    return trials


def make_method(name: str, space: Space, *, seed: int = 0, batch: int = 4, init: Distribution | None = None,
                constrain: Constrain | None = None, options: Mapping[str, Any] | None = None) -> Method:
    """A method by name: random, grid, reinforce (the agent is built by ``ttclab.search.agent``)."""
    options = dict(options or {})
    if name == "random":
        return RandomSearch(space, seed=seed, batch=batch, init=init, constrain=constrain)
    if name == "grid":
        return GridSearch(space, over=options.pop("over", ("width", "depth")), seed=seed, batch=batch, init=init,
                          constrain=constrain)
    if name == "reinforce":
        return Reinforce(space, lr=float(options.get("lr", 0.5)), baseline_decay=float(options.get("baseline_decay", 0.8)),
                         seed=seed, batch=batch, init=init, constrain=constrain)
    raise ConfigError(f"method.name: unknown search method {name!r}; choose random, grid, reinforce or agent")
