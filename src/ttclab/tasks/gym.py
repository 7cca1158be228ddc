"""reasoning-gym generators as tasks: the offline default.

A task is a dataset name, its parameters and a seed; the same triple always gives the same
questions, in the same order, with the same ids (``f"{name}-{seed}-{index}"``). Each question keeps
what reasoning-gym's own scorer needs in ``metadata``::

    {"source": "reasoning_gym", "dataset": name, "config": {...params, "seed": seed, "size": size},
     "entry": {"question": ..., "answer": ..., "metadata": {...}}}

so a verifier can rebuild the dataset with ``reasoning_gym.create_dataset(dataset, **config)`` and
call ``score_answer(answer, entry)``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from ttclab.errors import ConfigError
from ttclab.tasks.base import Question

#: A few reasoning-gym datasets that suit small models and short answers.
SUGGESTED = ("gsm_symbolic", "basic_arithmetic", "chain_sum", "syllogism", "letter_counting")


def gym_dataset_names() -> list[str]:
    """Names of every registered reasoning-gym dataset (imports reasoning_gym)."""
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


def check_gym_name(name: str) -> None:
    """Raise ConfigError naming close matches when ``name`` is not a reasoning-gym dataset."""
    names = gym_dataset_names()
    if name in names:
        return
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}?" if close else f"e.g. {', '.join(SUGGESTED)}"
    raise ConfigError(f"task.name: unknown reasoning-gym dataset {name!r}; {hint} "
                      f"(all {len(names)} names: python -c 'import reasoning_gym.factory as f; print(sorted(f.DATASETS))')")


def gym_parameters(name: str) -> dict[str, Any]:
    """Default parameters of a reasoning-gym dataset's config (without seed and size)."""
    check_gym_name(name)
    from reasoning_gym.factory import DATASETS

    config_cls = DATASETS[name][1]
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config_cls):
        if f.name in ("seed", "size"):
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = to_jsonable(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = to_jsonable(f.default_factory())
        else:
            out[f.name] = None
    return out


def to_jsonable(value: Any) -> Any:
    """A JSON-serialisable copy: tuples and sets become lists, numpy scalars plain numbers, other objects str."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((to_jsonable(v) for v in value), key=repr)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item) and getattr(value, "shape", None) == ():
        return to_jsonable(item())
    tolist = getattr(value, "tolist", None)  # numpy array
    if callable(tolist):
        return to_jsonable(tolist())
    return str(value)


class GymTask:
    """``size`` questions from the reasoning-gym dataset ``name`` with ``params`` and ``seed``."""

    def __init__(self, name: str, *, size: int = 20, seed: int = 0, params: Mapping[str, Any] | None = None) -> None:
        if size < 1:
            raise ConfigError(f"task.size: must be at least 1 (got {size})")
        self.dataset = name
        self.name = name
        self.size = int(size)
        self.seed = int(seed)
        self.params = dict(params or {})
        for reserved in ("seed", "size"):
            if reserved in self.params:
                raise ConfigError(f"task.params.{reserved}: set task.{reserved} instead of task.params.{reserved}")

    @property
    def config(self) -> dict[str, Any]:
        """The keyword arguments of ``reasoning_gym.create_dataset`` (JSON-serialisable)."""
        return {**to_jsonable(self.params), "seed": self.seed, "size": self.size}

    def _create(self) -> Any:
        check_gym_name(self.dataset)
        import reasoning_gym
        from reasoning_gym.factory import DATASETS

        config_cls = DATASETS[self.dataset][1]
        known = [f.name for f in dataclasses.fields(config_cls) if f.name not in ("seed", "size")]
        unknown = [k for k in self.params if k not in known]
        if unknown:
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(f"task.params.{unknown[0]}: {self.dataset} has no such parameter; {hint}"
                              f"known: {', '.join(known) or '(none)'}")
        try:
            return reasoning_gym.create_dataset(self.dataset, size=self.size, seed=self.seed, **self.params)
        except (AssertionError, ValueError, TypeError) as exc:
            raise ConfigError(f"task.params: invalid parameters for {self.dataset}: {exc or exc.__class__.__name__}") from None

    @cached_property
    def _questions(self) -> tuple[Question, ...]:
        ds = self._create()
        config = self.config
        out = []
        for i in range(self.size):
            entry = to_jsonable(ds[i])
            meta = entry.get("metadata") or {}
            diff = meta.get("difficulty") if isinstance(meta, dict) else None
            answer = entry.get("answer")
            out.append(Question(
                id=f"{self.dataset}-{self.seed}-{i}",
                question=str(entry["question"]),
                gold="" if answer is None else str(answer),
                difficulty=float(diff) if isinstance(diff, (int, float)) and not isinstance(diff, bool) else None,
                metadata={"source": "reasoning_gym", "dataset": self.dataset, "config": config, "index": i,
                          "entry": entry},
            ))
        return tuple(out)

    def questions(self) -> Sequence[Question]:
        """The questions, generated once (deterministic in name, params, seed and size)."""
        return self._questions

    def default_verifier(self) -> str:
        return "gym"

    def describe(self) -> dict[str, Any]:
        return {"source": "gym", "dataset": self.dataset, "params": to_jsonable(self.params), "seed": self.seed,
                "size": self.size, "count": self.size}

    def __repr__(self) -> str:
        return f"GymTask({self.dataset!r}, size={self.size}, seed={self.seed}, params={self.params!r})"
