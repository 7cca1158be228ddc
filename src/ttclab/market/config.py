"""The ``ttclab market`` configuration (YAML), validated with pydantic.

Example (``configs/market_gsm8k_majority.yaml``)::

    name: gsm8k-majority
    providers: {source: ttc_games_spec, path: ttc_games_gsm8k, strategy: majority}  # a shipped file, or a path
    prices: ttc_games_gsm8k          # a built-in price file name, or a path
    alpha: 0.008
    value_curve: linear
    betas: [200, 1000, 100000]
    seed: 0
    sweep: {betas: {min: 1, max: 1.0e6, points: 100}, margins: [0.1, 0.25, 0.5], value_curves: [linear, power, exp]}

Provider sources: ``ttc_games_spec`` (path, strategy, tokens), ``table`` (path of a YAML / JSON / CSV
table), ``curves`` (inline ``{name: {levels, accuracy, tokens_per_query, price | model}}``),
``pricing_reversal`` (path, dataset, budgets, models, include_input), ``runs`` (stored runs evaluated offline:
runs, store, run_strategy, levels). Relative paths are resolved from the
current directory, then from the config's folder and its parent (so ``../shared/...`` works from the
repository root and from ``configs/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ttclab.errors import ConfigError


class ProvidersSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Literal["ttc_games_spec", "table", "curves", "pricing_reversal", "runs"]
    path: str | None = None
    strategy: Literal["majority", "best-of-n", "relative_efforts"] | None = None
    tokens: Literal["tokens_at_theta", "per_sample"] = "tokens_at_theta"
    curves: dict[str, dict[str, Any]] | None = None
    dataset: str | None = None
    budgets: list[float] | None = None
    models: list[str] | None = None
    include_input: bool = True
    # source "runs": providers from the offline evaluation of stored runs (one provider per run).
    runs: list[str] | None = None  # run ids / prefixes / folders; empty = every run in the store
    store: str | None = None
    run_strategy: str = "majority"  # the TTC method each provider sells, levels = its k
    levels: list[int] | None = None  # default: powers of two up to N

    @model_validator(mode="after")
    def _needs(self) -> ProvidersSpec:
        need = {"ttc_games_spec": ("path", "strategy"), "table": ("path",), "curves": ("curves",),
                "pricing_reversal": ("path", "dataset", "budgets"), "runs": ()}[self.source]
        for key in need:
            if getattr(self, key) in (None, [], {}):
                raise ValueError(f"source {self.source!r} needs '{key}'")
        return self


class BetaRange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: float = Field(gt=0)
    max: float = Field(gt=0)
    points: int = Field(ge=2, le=100_000)

    @model_validator(mode="after")
    def _order(self) -> BetaRange:
        if self.max <= self.min:
            raise ValueError("max must be greater than min")
        return self

    def values(self) -> list[float]:
        return [float(v) for v in np.logspace(np.log10(self.min), np.log10(self.max), self.points)]


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    betas: BetaRange | list[float] = Field(default_factory=lambda: BetaRange(min=1, max=1e6, points=100))
    margins: list[float] | None = None
    alphas: list[float] | None = None
    value_curves: list[Literal["linear", "power", "exp"]] | None = None
    out: str | None = None

    @field_validator("betas")
    @classmethod
    def _pos(cls, v: Any) -> Any:
        if isinstance(v, list) and (not v or any(not b > 0 for b in v)):
            raise ValueError("betas must be a non-empty list of positive numbers")
        return v

    def beta_values(self) -> list[float]:
        return self.betas.values() if isinstance(self.betas, BetaRange) else [float(b) for b in self.betas]


class MarketConfig(BaseModel):
    """Top-level configuration of ``ttclab market``."""

    model_config = ConfigDict(extra="forbid")

    name: str = "market"
    providers: ProvidersSpec
    prices: str | None = None
    alpha: float = Field(default=0.008, gt=0)
    baseline: float = Field(default=0.1, ge=0, le=1)
    margin: float = Field(default=0.25, gt=-1)
    value_curve: Literal["linear", "power", "exp"] = "linear"
    gamma: float = Field(default=3.5, gt=0)
    kappa: float = 6.0
    v0: float = 0.0
    betas: list[float] = Field(default_factory=lambda: [200.0, 1000.0, 100000.0], min_length=1)
    seed: int = 0
    dynamics: Literal["nearest", "best_response"] = "nearest"
    enumerate_limit: int = Field(default=200_000, ge=0)
    sweep: SweepSpec = Field(default_factory=SweepSpec)
    base_dir: str | None = Field(default=None, exclude=True)
    source_file: str | None = Field(default=None, exclude=True)  # the YAML file it was read from (for errors)

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: list[float]) -> list[float]:
        if any(not (b > 0 and np.isfinite(b)) for b in v):
            raise ValueError("every beta must be a positive finite number")
        return v

    def provider_path(self) -> Path:
        """``providers.path`` resolved (:meth:`resolve`), checked to be the readable file or folder its source
        reads; a shipped ``ttc_games_spec`` name stays a name. Else one line naming the config and the field."""
        from ttclab.market.providers import builtin_specs

        source, given = self.providers.source, self.providers.path or ""
        shipped = builtin_specs()
        if source == "ttc_games_spec" and len(Path(given).parts) == 1 and given.removesuffix(".json") in shipped \
                and not Path(given).exists():
            return Path(given)
        folder = source == "pricing_reversal"
        fix = {"ttc_games_spec": f"give the path of a ttc_games_*.json file, or use one of: {', '.join(shipped)}",
               "table": "give the path of a .yaml, .json or .csv provider table",
               "pricing_reversal": "give the traj_pricing_reversal folder (../shared/data/traj_pricing_reversal)"}
        path = self.resolve(given)
        problem = ""
        if not path.exists():
            problem = "no such " + ("folder" if folder else "file")
        elif folder != path.is_dir():
            problem = "is a file, not a folder" if folder else "is a folder, not a file"
        elif folder and not (path / "consolidated").is_dir():
            problem = "has no consolidated/ folder of logs"
        else:
            try:
                if folder:
                    next(path.iterdir(), None)
                else:
                    path.open("rb").close()
            except OSError as exc:
                problem = f"cannot be read ({exc.strerror or exc.__class__.__name__})"
        if problem:
            where = "" if path.exists() or Path(given).is_absolute() else (
                " (looked up from the current folder, beside the config and one folder up)")
            raise ConfigError(f"{self.source_file or 'market config'}: providers.path: {given}: {problem}{where}; "
                              f"{fix.get(source, 'check the path')}")
        return path

    def resolve(self, path: str) -> Path:
        """A path from the config: as given (cwd), else beside the config file, else one folder up."""
        p = Path(path).expanduser()
        if p.is_absolute() or p.exists() or self.base_dir is None:
            return p
        for base in (Path(self.base_dir), Path(self.base_dir).parent):
            if (base / p).exists():
                return base / p
        return p


def load_market_config(path: str | Path) -> MarketConfig:
    """Read and validate a market config; every problem is one line naming the file and field."""
    from ttclab.io import read_yaml_mapping
    from ttclab.tasks.config import format_validation_error

    path = Path(path)
    data = read_yaml_mapping(path, "market", "providers, prices, betas")
    try:
        cfg = MarketConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None
    return cfg.model_copy(update={"base_dir": str(path.resolve().parent), "source_file": str(path)})
