"""Scaling curves as flat points: one (model, strategy, k) with its accuracy and cost in one unit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ttclab.errors import DataError
from ttclab.ledger.costs import StrategyLedger, unit_column
from ttclab.ledger.summary import summarize


@dataclass(frozen=True)
class Curves:
    """Aligned (n,) arrays of candidate points: what each (model, strategy, k) buys and costs.

    ``cost`` is the expected cost per question in ``unit``. Points with NaN accuracy or cost are kept
    (they carry a reason elsewhere) but never chosen, never on a frontier.
    """

    model: np.ndarray
    strategy: np.ndarray
    k: np.ndarray
    accuracy: np.ndarray
    cost: np.ndarray
    unit: str = ""
    # Optional on construction (None: the default below), always arrays afterwards (__post_init__ fills them):
    # se: standard error of each accuracy (0 when unknown); mc_se: its Monte-Carlo part (resampled estimators,
    # 0 for exact ones); exact: each accuracy is an exact expectation (True when unknown); same_as: the exact
    # strategy a point equals ("" when none); ci_low / ci_high: the confidence interval (NaN when unknown).
    se: np.ndarray = None  # type: ignore[assignment]
    mc_se: np.ndarray = None  # type: ignore[assignment]
    exact: np.ndarray = None  # type: ignore[assignment]
    same_as: np.ndarray = None  # type: ignore[assignment]
    ci_low: np.ndarray = None  # type: ignore[assignment]
    ci_high: np.ndarray = None  # type: ignore[assignment]

    _OPTIONAL = ("se", "mc_se", "exact", "same_as", "ci_low", "ci_high")

    def __post_init__(self) -> None:
        n = np.shape(self.accuracy)
        fill = {"se": 0.0, "mc_se": 0.0, "exact": True, "same_as": "", "ci_low": np.nan, "ci_high": np.nan}
        for name in self._OPTIONAL:
            if getattr(self, name) is None:
                dtype = bool if name == "exact" else (object if name == "same_as" else np.float64)
                object.__setattr__(self, name, np.full(n, fill[name], dtype=dtype))
        for name in ("model", "strategy", "k", "cost", *self._OPTIONAL):
            if np.shape(getattr(self, name)) != n or len(n) != 1:
                raise DataError(f"curves: {name} has shape {np.shape(getattr(self, name))}, expected {n} like accuracy")

    @classmethod
    def from_points(
        cls,
        accuracy: Any,
        cost: Any,
        *,
        strategy: Any = "",
        model: Any = "",
        k: Any = None,
        unit: str = "",
    ) -> Curves:
        """Build from plain arrays; scalar ``strategy``/``model`` apply to every point, ``k`` defaults to 1..n."""
        acc = np.asarray(accuracy, dtype=np.float64).ravel()
        n = acc.size
        cst = np.asarray(cost, dtype=np.float64).ravel()

        def col(v: Any, dtype: Any) -> np.ndarray:
            a = np.asarray(v, dtype=dtype)
            return np.full(n, a.item(), dtype=dtype) if a.ndim == 0 else a.ravel()

        kk = np.arange(1, n + 1) if k is None else col(k, np.int64)
        return cls(col(model, object), col(strategy, object), kk, acc, cst, unit)

    @classmethod
    def from_summary(cls, summary: Any, unit: str) -> Curves:
        """From :func:`ttclab.ledger.costs.summarize` output, a pyarrow Table or a pandas DataFrame."""
        column = unit_column(unit)

        def get(name: str) -> np.ndarray:
            try:
                values = summary[name]
            except (KeyError, IndexError):
                raise DataError(f"summary table has no column {name!r}; build it with ttclab.ledger.costs.summarize") from None
            if hasattr(values, "to_numpy"):
                try:
                    return np.asarray(values.to_numpy(zero_copy_only=False))
                except TypeError:
                    return np.asarray(values.to_numpy())
            return np.asarray(values)

        def optional(name: str, dtype: Any) -> Any:  # None: the default fill
            try:
                return get(name).astype(dtype)
            except DataError:
                return None

        return cls(
            get("model").astype(object), get("strategy").astype(object), get("k").astype(np.int64),
            get("accuracy").astype(np.float64), get(column).astype(np.float64), unit,
            se=optional("accuracy_se", np.float64), mc_se=optional("mc_se", np.float64), exact=optional("exact", bool),
            same_as=optional("same_as", object), ci_low=optional("ci_low", np.float64),
            ci_high=optional("ci_high", np.float64),
        )

    @classmethod
    def from_ledgers(cls, ledgers: Iterable[StrategyLedger], unit: str, mask: np.ndarray | None = None) -> Curves:
        """Average the ledgers over the questions in ``mask`` (all if None) and keep one unit."""
        return cls.from_summary(summarize(list(ledgers), mask=mask), unit)

    def __len__(self) -> int:
        return int(self.accuracy.size)

    @property
    def valid(self) -> np.ndarray:
        """(n,) points with a finite accuracy and a finite, non-negative cost."""
        return np.isfinite(self.accuracy) & np.isfinite(self.cost) & (self.cost >= 0)

    @property
    def candidates(self) -> np.ndarray:
        """(n,) points a choice can pick: valid, and not a copy of an exact strategy's point (``same_as``)."""
        return self.valid & (self.same_as == "")

    def cheapest(self) -> float:
        """The cost of the cheapest candidate (NaN when there is none): a lower budget affords nothing."""
        ok = self.candidates
        return float(self.cost[ok].min()) if ok.any() else float("nan")

    def select(self, mask: np.ndarray) -> Curves:
        mask = np.asarray(mask)
        extra = {name: getattr(self, name)[mask] for name in self._OPTIONAL}
        return Curves(self.model[mask], self.strategy[mask], self.k[mask], self.accuracy[mask], self.cost[mask],
                      self.unit, **extra)

    def where(self, *, model: str | None = None, strategy: str | None = None) -> Curves:
        """The points of one model and/or one strategy."""
        keep = np.ones(len(self), dtype=bool)
        if model is not None:
            keep &= self.model == model
        if strategy is not None:
            keep &= self.strategy == strategy
        return self.select(keep)

    def groups(self) -> list[tuple[str, str]]:
        """The distinct (model, strategy) curves, in first-seen order."""
        seen: dict[tuple[str, str], None] = {}
        for m, s in zip(self.model, self.strategy):
            seen.setdefault((str(m), str(s)), None)
        return list(seen)

    def to_dict(self) -> Mapping[str, np.ndarray]:
        return {"model": self.model, "strategy": self.strategy, "k": self.k, "accuracy": self.accuracy, "cost": self.cost,
                **{name: getattr(self, name) for name in self._OPTIONAL}}
