"""Providers of the test-time compute game: per compute level, accuracy and output tokens, plus a list price.

Sources:

- :func:`providers_from_curves`: scaling curves (e.g. from the offline evaluation of stored runs),
- :func:`load_provider_table`: a YAML / JSON / CSV table of per-level accuracy and tokens,
- :func:`providers_from_ttc_games_spec`: the ``ttc_games_gsm8k.json`` layout of the published curves,
- :func:`providers_from_pricing_reversal`: the real per-query logs of ``traj_pricing_reversal``
  (budget-truncation construction, see there).

Prices always come from a versioned price file (:func:`ttclab.ledger.prices.load_prices`) or are
passed explicitly; nothing here holds a price table.
"""

from __future__ import annotations

import csv
import json
import lzma
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np

from ttclab.errors import ConfigError, DataError
from ttclab.io import parse_json, read_text, read_yaml
from ttclab.ledger.prices import PriceTable, load_prices


@dataclass(frozen=True)
class Provider:
    """One provider = one model offering one test-time compute method.

    ``levels`` (L,) strictly increasing; ``accuracy`` (L,) in [0, 1]; ``tokens`` (L,) expected output
    tokens per query; ``output_price`` USD per 1M output tokens; ``input_usd`` a per-query fixed price
    (e.g. the prompt at the input list price; 0 in the published model).
    """

    name: str
    levels: np.ndarray
    accuracy: np.ndarray
    tokens: np.ndarray
    output_price: float
    input_usd: float = 0.0
    model: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    def price_per_query(self) -> np.ndarray:
        """p(θ) = input_usd + T(θ) · π / 10⁶ (USD)."""
        return self.input_usd + self.tokens * self.output_price / 1e6


def make_provider(
    name: str,
    levels: Sequence[float] | np.ndarray,
    accuracy: Sequence[float] | np.ndarray,
    tokens: Sequence[float] | np.ndarray,
    output_price: float,
    *,
    input_usd: float = 0.0,
    model: str = "",
    where: str = "",
    meta: Mapping[str, Any] | None = None,
) -> Provider:
    """Build and validate one provider; ``where`` prefixes error messages (file / field)."""
    at = f"{where}: " if where else ""
    lv = _array(levels, f"{at}provider {name!r} levels")
    acc = _array(accuracy, f"{at}provider {name!r} accuracy")
    tok = _array(tokens, f"{at}provider {name!r} tokens")
    if lv.size == 0:
        raise DataError(f"{at}provider {name!r} has no levels; give at least one compute level")
    if not (acc.size == tok.size == lv.size):
        raise DataError(
            f"{at}provider {name!r}: {lv.size} levels but {acc.size} accuracies and {tok.size} token counts; "
            "give one accuracy and one token count per level"
        )
    if not np.all(np.isfinite(lv)):
        raise DataError(f"{at}provider {name!r} levels: {lv.tolist()} has a missing/NaN level; fill it in")
    if lv.size > 1 and not np.all(np.diff(lv) > 0):
        raise DataError(
            f"{at}provider {name!r} levels: {lv.tolist()} are not strictly increasing; list each level once, in order"
        )
    if np.any(np.isnan(acc)):
        bad = lv[np.isnan(acc)].tolist()
        raise DataError(f"{at}provider {name!r} accuracy is NaN at level(s) {bad}; give a number in [0, 1]")
    if np.any((acc < 0) | (acc > 1)):
        raise DataError(
            f"{at}provider {name!r} accuracy {acc.tolist()} is outside [0, 1]; give fractions (divide percentages by 100)"
        )
    if np.any(~np.isfinite(tok)) or np.any(tok < 0):
        raise DataError(f"{at}provider {name!r} tokens {tok.tolist()} must be finite and >= 0")
    price = _number(output_price, f"{at}provider {name!r} output price")
    if not math.isfinite(price):
        raise DataError(f"{at}provider {name!r} output price {price} is not finite; give USD per 1M output tokens "
                        "as a number >= 0")
    if price < 0:
        raise DataError(f"{at}provider {name!r} output price {price} is negative; prices must be >= 0 USD per 1M tokens")
    fixed = _number(input_usd, f"{at}provider {name!r} input_usd")
    if not math.isfinite(fixed):
        raise DataError(f"{at}provider {name!r} input_usd {fixed} is not finite; give USD per query as a number >= 0")
    if fixed < 0:
        raise DataError(f"{at}provider {name!r} input_usd {fixed} is negative; prices must be >= 0")
    return Provider(str(name), lv, acc, tok, price, fixed, model or str(name), dict(meta or {}))


def check_providers(providers: Sequence[Provider], where: str = "providers") -> None:
    """A market needs >= 1 provider, unique names and one common level set Θ."""
    if not providers:
        raise DataError(f"{where}: no providers; give at least one")
    names = [p.name for p in providers]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"{where}: duplicate provider name(s) {dup}; give each provider a unique name")
    ref = providers[0]
    for p in providers[1:]:
        if p.levels.shape != ref.levels.shape or not np.array_equal(p.levels, ref.levels):
            missing = sorted(set(ref.levels.tolist()) ^ set(p.levels.tolist()))
            raise DataError(
                f"{where}: provider {p.name!r} has levels {p.levels.tolist()} but {ref.name!r} has "
                f"{ref.levels.tolist()} (missing/extra: {missing}); every provider needs the same levels"
            )


# ---------------------------------------------------------------------------------------------------
# (a) scaling curves
# ---------------------------------------------------------------------------------------------------


def providers_from_curves(
    curves: Mapping[str, Mapping[str, Any]],
    prices: PriceTable | str | Path | None = None,
) -> list[Provider]:
    """Providers from scaling curves: ``{name: {levels, accuracy, tokens_per_query, price | model}}``.

    ``accuracy`` is a fraction in [0, 1]; ``tokens_per_query`` the expected output tokens at each level;
    ``price`` USD per 1M output tokens, or else the price of ``model`` (default: the name) in ``prices``.
    """
    if not isinstance(curves, Mapping) or not curves:
        raise DataError("curves: expected a non-empty mapping of provider name -> {levels, accuracy, tokens_per_query}")
    table = _price_table(prices) if prices is not None else None
    out = []
    for name, cur in curves.items():
        if not isinstance(cur, Mapping):
            raise DataError(f"curves.{name}: expected a mapping with levels, accuracy, tokens_per_query")
        for key in ("levels", "accuracy", "tokens_per_query"):
            if key not in cur:
                raise DataError(f"curves.{name}: missing {key!r}; give levels, accuracy and tokens_per_query")
        model = str(cur.get("model") or name)
        price = cur.get("price")
        if price is None:
            if table is None:
                raise DataError(f"curves.{name}: no 'price' and no price file; give price (USD per 1M output tokens)")
            price = table.get(model).output
        out.append(
            make_provider(name, cur["levels"], cur["accuracy"], cur["tokens_per_query"], price, model=model,
                          where="curves")
        )
    check_providers(out, "curves")
    return out


# ---------------------------------------------------------------------------------------------------
# (b) a table file
# ---------------------------------------------------------------------------------------------------


def load_provider_table(path: str | Path, prices: PriceTable | str | Path | None = None) -> list[Provider]:
    """Providers from a YAML / JSON / CSV table.

    YAML / JSON: ``{providers: {name: {model?, price?, input_usd?, levels, accuracy | accuracy_pct, tokens}}}``
    or a list of rows. CSV (and row lists): columns ``provider, level, accuracy, tokens`` and optionally
    ``model``, ``price``. The output price is ``price`` if given, else ``model``'s (default: the provider
    name) in the price file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: provider table not found; give the path of a .yaml, .json or .csv table")
    suffix = path.suffix.lower()
    data: Any
    if suffix == ".csv":
        try:
            data = list(csv.DictReader(StringIO(read_text(path, error=DataError), newline="")))
        except csv.Error as exc:
            raise DataError(f"{path}: cannot parse the CSV table ({exc}); fix the file") from None
    elif suffix == ".json":
        data = parse_json(read_text(path, error=DataError), str(path))
    elif suffix in (".yaml", ".yml"):
        data = read_yaml(path, error=DataError)
    else:
        raise DataError(f"{path}: unknown table format {suffix!r}; use .yaml, .json or .csv")
    if isinstance(data, Mapping) and "providers" in data:
        data = data["providers"]
    if isinstance(data, list):
        curves = _rows_to_curves(data, str(path))
    elif isinstance(data, Mapping):
        curves = {str(k): v for k, v in data.items()}
    else:
        raise DataError(f"{path}: expected 'providers' (a mapping of name -> curves, or a list of rows)")
    table = _price_table(prices) if prices is not None else None
    out = []
    for name, cur in curves.items():
        where = f"{path}: providers.{name}"
        if not isinstance(cur, Mapping):
            raise DataError(f"{where}: expected a mapping with levels, accuracy, tokens")
        acc = cur.get("accuracy")
        if acc is None and "accuracy_pct" in cur:
            acc = np.asarray(_array(cur["accuracy_pct"], f"{where}.accuracy_pct")) / 100.0
        for key, val in (("levels", cur.get("levels")), ("accuracy", acc), ("tokens", cur.get("tokens"))):
            if val is None:
                raise DataError(f"{where}: missing {key!r}; give levels, accuracy (fractions) and tokens per level")
        assert acc is not None  # checked just above
        model = str(cur.get("model") or name)
        price = cur.get("price")
        if price is None or (isinstance(price, str) and not price.strip()):
            if table is None:
                raise DataError(f"{where}: no price and no price file; set 'prices' in the config or a 'price' column")
            price = table.get(model).output
        out.append(
            make_provider(name, cur["levels"], acc, cur["tokens"], price, input_usd=cur.get("input_usd", 0.0) or 0.0,
                          model=model, where=str(path))
        )
    check_providers(out, str(path))
    return out


def _rows_to_curves(rows: list[Any], where: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[tuple[float, float, float]]] = {}
    extra: dict[str, dict[str, Any]] = {}
    for line, row in enumerate(rows, start=2):
        if not isinstance(row, Mapping):
            raise DataError(f"{where}: row {line}: expected provider, level, accuracy, tokens")
        for key in ("provider", "level", "tokens"):
            if row.get(key) in (None, ""):
                raise DataError(f"{where}: row {line}: missing {key!r}; every row needs provider, level, accuracy, tokens")
        name = str(row["provider"])
        if row.get("accuracy") not in (None, ""):
            acc = _number(row["accuracy"], f"{where}: row {line}: accuracy", allow_nan=True)
        elif row.get("accuracy_pct") not in (None, ""):
            acc = _number(row["accuracy_pct"], f"{where}: row {line}: accuracy_pct", allow_nan=True) / 100.0
        else:
            raise DataError(f"{where}: row {line}: missing 'accuracy'; give a fraction in [0, 1]")
        level = _number(row["level"], f"{where}: row {line}: level")
        tokens = _number(row["tokens"], f"{where}: row {line}: tokens")
        if any(lv == level for lv, _, _ in groups.get(name, [])):
            raise DataError(f"{where}: row {line}: provider {name!r} has level {level:g} twice; keep one row per level")
        groups.setdefault(name, []).append((level, acc, tokens))
        info = extra.setdefault(name, {})
        for key in ("model", "price"):
            if row.get(key) not in (None, ""):
                info[key] = row[key]
    out = {}
    for name, items in groups.items():
        items.sort()
        out[name] = {"levels": [i[0] for i in items], "accuracy": [i[1] for i in items],
                     "tokens": [i[2] for i in items], **extra[name]}
    return out


# ---------------------------------------------------------------------------------------------------
# The published GSM8K curves (ttc_games_gsm8k.json layout)
# ---------------------------------------------------------------------------------------------------

TTC_STRATEGIES = ("majority", "best-of-n", "relative_efforts")


def builtin_specs() -> list[str]:
    """Names of the provider-curve files shipped in ``ttclab/market/data`` (e.g. ``ttc_games_gsm8k``)."""
    folder = resources.files("ttclab.market") / "data"
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))


def spec_text(path: str | Path) -> tuple[str, str]:
    """The text of a ``ttc_games_*.json`` file and how to name it: a path, or a shipped file by name."""
    p = Path(path)
    if p.is_file() or len(p.parts) != 1:
        return read_text(p, error=DataError, missing="give the path of a ttc_games_*.json file or the name of a "
                         f"shipped one ({', '.join(builtin_specs())})"), str(p)
    name = p.name.removesuffix(".json")
    if name not in builtin_specs():
        raise DataError(f"{p}: no such file and no shipped provider curves of that name; "
                        f"use one of: {', '.join(builtin_specs())}")
    return (resources.files("ttclab.market") / "data" / f"{name}.json").read_text(encoding="utf-8"), f"ttclab:{name}"


def providers_from_ttc_games_spec(
    path: str | Path,
    strategy: str,
    prices: PriceTable | str | Path,
    tokens: str = "tokens_at_theta",
) -> list[Provider]:
    """Providers from a ``ttc_games_*.json`` file (curves digitized from the published notebooks).

    ``strategy``: ``majority`` / ``best-of-n`` (θ = samples; accuracy ``*_acc_pct`` / 100) or
    ``relative_efforts`` (reasoning models, θ = effort bin; tokens ``mean_total_tokens``).
    ``tokens`` for the non-reasoning strategies: ``tokens_at_theta`` (the published per-level totals)
    or ``per_sample`` (θ × ``mean_output_tokens_per_sample``); both reproduce the published numbers.
    Output prices come from the price file (``ttc_games_gsm8k`` ships the published ones).
    """
    text, where = spec_text(path)
    data = parse_json(text, where)
    if strategy not in TTC_STRATEGIES:
        raise ConfigError(f"providers.strategy: {strategy!r} is unknown; use one of {', '.join(TTC_STRATEGIES)}")
    if tokens not in ("tokens_at_theta", "per_sample"):
        raise ConfigError(f"providers.tokens: {tokens!r} is unknown; use tokens_at_theta or per_sample")
    table = _price_table(prices)
    section = data.get("reasoning" if strategy == "relative_efforts" else "nonreasoning")
    if not isinstance(section, Mapping) or "providers" not in section or "thetas" not in section:
        raise DataError(f"{path}: missing the {'reasoning' if strategy == 'relative_efforts' else 'nonreasoning'} "
                        "section with thetas and providers")
    thetas = section["thetas"]
    out = []
    for name, cur in section["providers"].items():
        where = f"{path}: {name}"
        try:
            if strategy == "relative_efforts":
                acc = np.asarray(cur["acc_pct"], dtype=float) / 100.0
                tok = cur["mean_total_tokens"]
            else:
                acc = np.asarray(cur["majority_acc_pct" if strategy == "majority" else "best_of_n_acc_pct"],
                                 dtype=float) / 100.0
                if tokens == "tokens_at_theta":
                    tok = cur["tokens_at_theta"]
                else:
                    tok = float(cur["mean_output_tokens_per_sample"]) * np.asarray(thetas, dtype=float)
        except KeyError as exc:
            raise DataError(f"{where}: missing field {exc.args[0]!r}") from None
        out.append(make_provider(name, thetas, acc, tok, table.get(name).output, model=name, where=str(path)))
    check_providers(out, str(path))
    return out


# ---------------------------------------------------------------------------------------------------
# The real-world market: traj_pricing_reversal (8 API models, one sample per question)
# ---------------------------------------------------------------------------------------------------

PRICING_REVERSAL_PREFIX = {"aime": "aime-hybrid", "gpqa": "gpqa-test", "livemathbench": "livemathbench-test",
                           "simpleqa": "simpleqa-test"}


def providers_from_pricing_reversal(
    root: str | Path,
    dataset: str,
    budgets: Sequence[float],
    prices: PriceTable | str | Path,
    models: Sequence[str] | None = None,
    include_input: bool = True,
) -> list[Provider]:
    """A market of API models from ``traj_pricing_reversal`` by **budget truncation**.

    The logs hold ONE sample per (model, question), so compute levels are caps B on completion tokens
    (thinking included): a provider at level B answers with at most B completion tokens. Assumption
    (pessimistic): an answer that needed more than B tokens is truncated and counts as wrong. Then

    - accuracy(B) = mean over questions of score · [completion_tokens ≤ B],
    - tokens(B)   = mean over questions of min(completion_tokens, B),
    - input_usd   = mean prompt_tokens × input list price / 10⁶ (if ``include_input``; no caching),

    so accuracy and tokens are non-decreasing in B and the last level (B ≥ every record) is the
    model as logged. Prices (input / output USD per 1M tokens) come from the price file.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: traj_pricing_reversal folder not found; "
                        "set providers.path to ../shared/data/traj_pricing_reversal")
    if dataset not in PRICING_REVERSAL_PREFIX:
        raise ConfigError(f"providers.dataset: {dataset!r} is unknown; use one of {', '.join(PRICING_REVERSAL_PREFIX)}")
    caps = _array(budgets, "providers.budgets")
    if caps.size == 0 or np.any(caps <= 0) or (caps.size > 1 and not np.all(np.diff(caps) > 0)):
        raise ConfigError(f"providers.budgets: {caps.tolist()} must be positive and strictly increasing token caps")
    table = _price_table(prices)
    prefix = PRICING_REVERSAL_PREFIX[dataset]
    files = sorted((root / "consolidated").glob(f"{prefix}-*.json.xz"))
    available = {f.name[len(prefix) + 1 : -len(".json.xz")]: f for f in files}
    if not available:
        raise DataError(f"{root / 'consolidated'}: no {prefix}-*.json.xz files; check providers.path")
    names = list(models) if models else sorted(available)
    out = []
    for name in names:
        if name not in available:
            raise ConfigError(
                f"providers.models: {name!r} has no {dataset} file; available: {', '.join(sorted(available))}"
            )
        try:
            with lzma.open(available[name], "rt") as fh:
                records = json.load(fh)["records"]
        except (OSError, lzma.LZMAError, json.JSONDecodeError, KeyError) as exc:
            raise DataError(
                f"{available[name]}: cannot read records ({exc.__class__.__name__}); the file is corrupt"
            ) from None
        score = np.array([_record_number(r, "score", available[name]) for r in records])
        comp = np.array([_record_number(r, "completion_tokens", available[name]) for r in records])
        prompt = np.array([_record_number(r, "prompt_tokens", available[name]) for r in records])
        correct = score[None, :] * (comp[None, :] <= caps[:, None])
        acc = correct.mean(axis=1)
        tok = np.minimum(comp[None, :], caps[:, None]).mean(axis=1)
        price = table.get(name)
        fixed = float(prompt.mean() * price.input / 1e6) if include_input else 0.0
        meta = {
            "questions": int(score.size),
            "logged_accuracy": float(score.mean()),
            "logged_completion_tokens": float(comp.mean()),
        }
        out.append(
            make_provider(
                name, caps, acc, tok, price.output, input_usd=fixed, model=name, where=str(available[name]), meta=meta
            )
        )
    check_providers(out, str(root))
    return out


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------


def _price_table(prices: PriceTable | str | Path) -> PriceTable:
    return prices if isinstance(prices, PriceTable) else load_prices(prices)


def _array(values: Any, where: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {values!r} is not a list of numbers") from None
    if arr.ndim != 1:
        raise DataError(f"{where}: expected a flat list of numbers, got shape {arr.shape}")
    return arr


def _number(value: Any, where: str, allow_nan: bool = False) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {value!r} is not a number") from None
    if math.isnan(out) and not allow_nan:
        raise DataError(f"{where}: is NaN; give a number")
    return out


def _record_number(record: Mapping[str, Any], key: str, where: Path) -> float:
    value = record.get(key)
    if value is None:
        raise DataError(f"{where}: record {record.get('index', '?')} has no {key!r}")
    return float(value)
