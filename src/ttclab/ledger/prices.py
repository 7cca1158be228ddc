"""Versioned price files (USD per 1M tokens). Prices are data, applied at analysis time.

A price file is YAML::

    version: "2026-02-28"        # when the prices were read
    source: "provider pricing pages via ..."
    currency: USD
    unit: per_1m_tokens
    models:
      gpt-5-mini: {input: 0.25, output: 2.0, cached_input: 0.025}

Built-in files live in ``ttclab/ledger/data/prices/`` and are named by their stem; any other file by
path. A run can override single prices (``{"model": {"output": 0.5}}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ttclab.errors import DataError
from ttclab.io import parse_yaml, read_text


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, prompt_tokens: Any, completion_tokens: Any, cached_tokens: Any = 0) -> Any:
        """USD for the given token counts (scalars or numpy arrays)."""
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return (prompt_tokens * self.input + completion_tokens * self.output + cached_tokens * cached_rate) / 1e6


@dataclass(frozen=True)
class PriceTable:
    version: str
    source: str
    prices: Mapping[str, Price]
    path: str = ""

    def get(self, model: str) -> Price:
        try:
            return self.prices[model]
        except KeyError:
            known = ", ".join(sorted(self.prices)) or "none"
            files = builtin_price_files()
            has = [f for f in files if f"ttclab:{f}" != self.path and model in load_prices(f).prices]
            elsewhere = f"{' and '.join(has)} {'has' if len(has) == 1 else 'have'} it; " if has else ""
            raise DataError(
                f"no price for model {model!r} in price file {self.path or self.version} (it prices {known}); "
                f"{elsewhere}give a price file that has it: the path of your own YAML, or one of {', '.join(files)} "
                "(ttclab prices lists them)"
            ) from None

    def with_overrides(self, overrides: Mapping[str, Mapping[str, float]]) -> PriceTable:
        prices = dict(self.prices)
        for model, fields in overrides.items():
            base = prices.get(model)
            merged = {"input": 0.0, "output": 0.0, "cached_input": None}
            if base is not None:
                merged.update(input=base.input, output=base.output, cached_input=base.cached_input)
            merged.update(dict(fields))
            prices[model] = _price(merged, f"override for {model}")
        return PriceTable(self.version + "+overrides", self.source, prices, self.path)


def builtin_price_files() -> list[str]:
    """Names of the price files shipped with ttclab."""
    folder = resources.files("ttclab.ledger") / "data" / "prices"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_prices(name_or_path: str | Path) -> PriceTable:
    """Load a built-in price file by name, or any price file by path."""
    path = Path(name_or_path)
    if not path.exists():
        candidate = resources.files("ttclab.ledger") / "data" / "prices" / f"{name_or_path}.yaml"
        if not candidate.is_file():
            raise DataError(
                f"price file {name_or_path!r} not found; give a path or one of: {', '.join(builtin_price_files())}"
            )
        text, where = candidate.read_text(), f"ttclab:{name_or_path}"
    else:
        text, where = read_text(path, error=DataError), str(path)
    data = parse_yaml(text, where, error=DataError)
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise DataError(f"{where}: expected a mapping with a 'models' mapping of model -> {{input, output}}")
    prices = {str(m): _price(v, f"{where}: models.{m}") for m, v in data["models"].items()}
    return PriceTable(str(data.get("version", "unversioned")), str(data.get("source", "")), prices, where)


def _price(value: Any, where: str) -> Price:
    if not isinstance(value, Mapping) or "output" not in value:
        raise DataError(f"{where}: expected {{input: USD, output: USD}} per 1M tokens")
    out: dict[str, float | None] = {}
    for key in ("input", "output", "cached_input"):
        v = value.get(key, 0.0 if key == "input" else None)
        if v is None:
            out[key] = None
            continue
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise DataError(f"{where}.{key}: {v!r} is not a number") from None
        if not v >= 0:
            raise DataError(f"{where}.{key}: price must be >= 0, got {v}")
        out[key] = v
    inp, outp = out["input"], out["output"]
    if inp is None or outp is None:  # input defaults to 0; output is required (checked above)
        raise DataError(f"{where}: expected {{input: USD, output: USD}} per 1M tokens")
    return Price(inp, outp, out["cached_input"])
