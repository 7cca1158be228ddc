"""The compute ledger: what every (strategy, k) costs, in tokens, FLOPs, memory traffic, latency and USD.

All quantities are expectations over the same uniformly random k-subsets the strategy estimators use,
per question (``(Q, K)`` arrays), and then averaged over the questions where the accuracy is defined
(:func:`ttclab.ledger.summary.summarize`, one row per (model, strategy, k)).

Layout: per-sample physics in :mod:`ttclab.ledger.work`, order statistics in
:mod:`ttclab.strategies.orderstats`; here the per-run sample quantities (:class:`RunWork`), one function
per unit (tokens, FLOPs, memory, USD, latency) and :func:`build_ledger`, which composes them.

Model of the work (documented choices)
--------------------------------------
Let a sample have ``p`` prompt and ``d`` completion tokens, ``S = p + d``, and let the strategy use ``m``
samples of the question (``StrategyResult.samples_used``; ``m = k`` for fixed strategies).

* **Tokens** -- linear, hence exact: ``m x mean_j(p_j)`` prompt and ``m x mean_j(d_j)`` completion tokens.
  A strategy that uses a reward model (``uses_reward_model``) scores each of its ``m`` full sequences:
  ``rm_tokens = m x mean_j(S_j)``, processed as prefill on ``rm_model``.
* **FLOPs** (Kaplan et al. 2020 / Hoffmann et al. 2022 App. F, forward pass only):
  ``2 x P_mm`` per token for the matmuls (``P_mm`` = parameters minus an untied input embedding) plus
  the attention scores and the attention-weighted values, ``4 x n_heads x head_dim`` per token, layer and
  attended position. A token at position ``t`` attends to ``t`` positions (causal, incl. itself; local
  layers at most ``sliding_window``). Prefill of ``p`` tokens:
  ``2 P_mm p + 4 d_attn sum_layers sum_{t<=p} min(t, w_l)``; decode of ``d`` tokens after it:
  ``2 P_mm d + 4 d_attn sum_layers sum_{p<t<=p+d} min(t, w_l)``. Per sample exact, then linear.
* **Memory traffic** (Kinetics, Sadhukhan et al. 2025): each decode step reads the weights
  (``P_mm x bytes_per_param``) and the KV cache of the attended context
  (``2 x n_kv_heads x head_dim x bytes_per_kv`` per position and layer), and writes one token's K/V.
  ``batch_parallel=True`` (default): the m samples decode as one batch, so each step reads the weights
  once for the whole batch: ``weights x E[max_j d_j]`` over the m samples (exact by order statistics);
  otherwise ``weights x m x mean(d)``. Prefill reads the weights once per sample and writes its K/V.
* **Latency**: parallel = E[max of the m latencies] (exact via order statistics: the i-th largest of n
  is the maximum of a random k-subset with probability C(n-i, k-1)/C(n, k)); sequential = m x mean.
  Measured ``latency_s`` where stored, else ``p / prefill_tokens_per_s + d / decode_tokens_per_s``.
  A non-integer m (adaptive stopping) interpolates E[max of m] linearly between floor(m) and ceil(m).
* **USD**: ``Price.cost`` of the generator's prompt and completion tokens plus the reward model's
  tokens at its *input* price (scoring is prefill), from a versioned price file (never a table here).
* ``share_prompt=True``: the m samples share one prefill (prefix caching): prefill FLOPs, prefill
  memory and the prompt's KV are counted once per question, and m-1 prompts are billed as cached input.
* Strategies in ``cancel_strategies`` (first-finish) run the m samples in parallel and cancel the rest
  when the first finishes: every sample then generates ``min_j d_j`` tokens (exact via order
  statistics when a question's samples share the prompt), latency = E[min latency].

Adaptive strategies: using ``m x per-sample mean`` assumes the stopping time is independent of the
samples' lengths (stated, not exact).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ttclab.errors import ConfigError, DataError
from ttclab.ledger.models import ArchTable, ModelArch, load_architectures
from ttclab.ledger.prices import PriceTable, builtin_price_files, load_prices
from ttclab.ledger.work import context_sum, decode_flops, decode_kv_read_bytes, kv_bytes_per_token, prefill_flops
from ttclab.strategies.arrays import SampleArrays
from ttclab.strategies.base import StrategyResult
from ttclab.strategies.orderstats import SortedSamples, expected_max, expected_min, order_stat_weights, sort_samples

UNITS: tuple[str, ...] = ("tokens", "flops", "usd", "latency", "memory")
"""Groups of costs a :class:`CostSpec` can compute (``tokens`` covers every token column)."""

UNIT_COLUMNS: Mapping[str, str] = {
    "total_tokens": "total_tokens",  # prompt + completion + reward-model tokens
    "completion_tokens": "completion_tokens",
    "prompt_tokens": "prompt_tokens",
    "flops": "flops",
    "usd": "usd",
    "latency": "latency_parallel_s",
    "latency_parallel": "latency_parallel_s",
    "latency_sequential": "latency_sequential_s",
    "memory": "memory_bytes",
    "tokens": "total_tokens",  # alias of total_tokens (older name)
}
"""Budget units by name -> the ledger column they read. Columns are named by what they count."""

COST_FIELDS: tuple[str, ...] = (
    "samples_used",
    "prompt_tokens",
    "completion_tokens",
    "rm_tokens",
    "total_tokens",
    "flops_prefill",
    "flops_decode",
    "rm_flops",
    "flops",
    "memory_bytes",
    "latency_parallel_s",
    "latency_sequential_s",
    "usd",
)


def unit_column(unit: str) -> str:
    """The ledger column of a budget unit (``total_tokens | completion_tokens | flops | usd | latency | memory``)."""
    try:
        return UNIT_COLUMNS[unit]
    except KeyError:
        names = [u for u in UNIT_COLUMNS if u != "tokens"]
        raise ConfigError(f"unknown cost unit {unit!r}; use one of: {', '.join(names)}") from None


def unit_name(unit: str) -> str:
    """The canonical name of a unit (its column for token units: ``tokens`` -> ``total_tokens``)."""
    column = unit_column(unit)
    return column if column.endswith("_tokens") else unit


def require_prices(prices: Any) -> PriceTable:
    """The price table for a USD budget; one-line ConfigError naming the price files that exist."""
    if prices is None:
        raise ConfigError(f"unit usd needs a price file: add --prices NAME (built-in: {', '.join(builtin_price_files())}) "
                          "or --prices PATH to a YAML price file")
    if isinstance(prices, PriceTable):
        return prices
    try:
        return load_prices(prices)
    except DataError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class CostSpec:
    """How to price a run.

    ``units=None`` (default) computes every unit whose data is at hand -- FLOPs and memory when the
    model is in the architecture file, USD when a price file with the model is given -- and notes
    why the others are NaN. Units named explicitly are strict: missing data is a one-line error.

    ``model`` defaults to ``SampleArrays.model``; ``rm_model`` is the reward model / verifier that
    scores samples for strategies with ``uses_reward_model`` (its FLOPs, memory and USD are NaN with a
    note when it is not given). ``prices`` is a :class:`PriceTable` or the name/path of a price file;
    ``price_overrides`` (``{"model": {"output": 0.5}}``) replace single prices for this run.
    """

    model: str | None = None
    rm_model: str | None = None
    prices: PriceTable | str | None = None
    price_overrides: Mapping[str, Mapping[str, float]] | None = None
    architectures: ArchTable | str | None = None
    units: Collection[str] | None = None
    bytes_per_param: float = 2.0
    bytes_per_kv: float = 2.0
    batch_parallel: bool = True
    share_prompt: bool = False
    decode_tokens_per_s: float | None = None
    prefill_tokens_per_s: float | None = None
    cancel_strategies: Collection[str] = ("first_finish",)

    def __post_init__(self) -> None:
        for unit in self.units or ():
            if unit not in UNITS:
                raise ConfigError(f"unknown cost unit {unit!r}; use one of: {', '.join(UNITS)}")
        for name in ("bytes_per_param", "bytes_per_kv"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("decode_tokens_per_s", "prefill_tokens_per_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be > 0 tokens/s, got {value!r}")

    def price_table(self) -> PriceTable:
        table = require_prices(self.prices)
        return table.with_overrides(self.price_overrides) if self.price_overrides else table

    def arch_table(self) -> ArchTable:
        if isinstance(self.architectures, ArchTable):
            return self.architectures
        return load_architectures(self.architectures or "models")


@dataclass(frozen=True)
class StrategyLedger:
    """Accuracy and expected costs of one strategy for one model, per question and budget k.

    Every cost array is ``(Q, K)`` aligned with ``accuracy`` (NaN where undefined; ``notes`` says why).
    ``same_as[i]`` names the exact strategy this one equals at ``k[i]`` ("" where it does not).
    """

    model: str
    run_id: str
    strategy: str
    k: np.ndarray  # (K,)
    exact: bool
    accuracy: np.ndarray  # (Q, K)
    accuracy_se: np.ndarray  # (Q, K)
    costs: Mapping[str, np.ndarray]  # COST_FIELDS -> (Q, K)
    notes: tuple[str, ...] = ()
    question_ids: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))
    same_as: tuple[str, ...] = ()

    def cost(self, unit: str) -> np.ndarray:
        """(Q, K) expected cost per question in a unit (``total_tokens``, ``flops``, ``usd``, ...)."""
        return self.costs[unit_column(unit)]

    @property
    def exact_at(self) -> np.ndarray:
        """(K,) whether each budget's accuracy is exact."""
        same = np.array([bool(s) for s in self.same_as] or [False] * len(self.k), dtype=bool)[: len(self.k)]
        return np.asarray(np.full(len(self.k), bool(self.exact)) | same)

    def subset(self, mask: np.ndarray) -> StrategyLedger:
        """The same ledger restricted to the questions where ``mask`` (Q,) is True."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.accuracy.shape[0],):
            raise DataError(f"question mask has shape {mask.shape}, expected ({self.accuracy.shape[0]},)")
        ids = self.question_ids[mask] if self.question_ids.size else self.question_ids
        return StrategyLedger(
            self.model, self.run_id, self.strategy, self.k, self.exact, self.accuracy[mask],
            self.accuracy_se[mask], {n: a[mask] for n, a in self.costs.items()}, self.notes, ids, self.same_as,
        )


# --------------------------------------------------------------------------------------------------
# per-sample quantities of a run, shared by every strategy priced on it


class Quantity:
    """One per-sample quantity (Q, N) and the expectations over random m-subsets the ledger needs."""

    def __init__(self, values: np.ndarray, present: np.ndarray) -> None:
        self.present = present
        self.values = np.where(present, np.asarray(values, dtype=np.float64), 0.0)

    @cached_property
    def mean(self) -> np.ndarray:
        """(Q,) mean over present samples (NaN if a present value is NaN or there is none)."""
        n = self.present.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(self.values.sum(axis=1) / np.where(n > 0, n, np.nan))

    @cached_property
    def _desc(self) -> SortedSamples:
        return sort_samples(self.values, self.present)

    @cached_property
    def _asc(self) -> SortedSamples:
        return sort_samples(-self.values, self.present)

    def expected_max(self, m: np.ndarray) -> np.ndarray:
        """(Q, K) E[max of m samples] (see :func:`ttclab.strategies.orderstats.expected_max`)."""
        return expected_max(None, None, m, presorted=self._desc)

    def expected_min(self, m: np.ndarray) -> np.ndarray:
        return -expected_max(None, None, m, presorted=self._asc)


class RunWork:
    """The per-sample quantities of one run (tokens, latency, FLOPs and KV traffic per architecture),
    computed once and shared by every strategy's ledger."""

    def __init__(self, arrays: SampleArrays) -> None:
        self.arrays = arrays
        self.present = arrays.present
        self.p = np.where(self.present, arrays.prompt_tokens, 0.0)
        self.d = np.where(self.present, arrays.completion_tokens, 0.0)
        self.prompt = Quantity(self.p, self.present)
        self.completion = Quantity(self.d, self.present)
        self._memo: dict[tuple[Any, ...], Quantity] = {}

    def _quantity(self, key: tuple[Any, ...], values: Callable[[], np.ndarray]) -> Quantity:
        if key not in self._memo:
            self._memo[key] = Quantity(values(), self.present)
        return self._memo[key]

    def prefill_flops(self, arch: ModelArch) -> Quantity:
        return self._quantity(("prefill_flops", arch.name), lambda: prefill_flops(arch, self.p))

    def decode_flops(self, arch: ModelArch) -> Quantity:
        return self._quantity(("decode_flops", arch.name), lambda: decode_flops(arch, self.p, self.d))

    def scoring_flops(self, rm_arch: ModelArch) -> Quantity:
        """A reward model reading the whole sequence (prompt + completion) as prefill."""
        return self._quantity(("scoring_flops", rm_arch.name), lambda: prefill_flops(rm_arch, self.p + self.d))

    def kv_traffic(self, arch: ModelArch, bytes_per_kv: float) -> Quantity:
        """KV bytes read while decoding plus the completion's own K/V written."""
        return self._quantity(("kv_traffic", arch.name, bytes_per_kv), lambda: (
            decode_kv_read_bytes(arch, self.p, self.d, bytes_per_kv) + kv_bytes_per_token(arch, bytes_per_kv) * self.d))

    def latency(self, decode_tokens_per_s: float | None, prefill_tokens_per_s: float | None) -> tuple[Quantity, list[str]]:
        """Measured latency where stored, else estimated from tokens when speeds are given (with notes)."""
        lat = np.asarray(self.arrays.latency_s, dtype=np.float64)
        measured = np.isfinite(lat) | ~self.present
        notes: list[str] = []
        if decode_tokens_per_s:
            estimate = self.d / decode_tokens_per_s
            if prefill_tokens_per_s:
                estimate = estimate + self.p / prefill_tokens_per_s
            lat = np.where(np.isfinite(lat), lat, estimate)
            if not measured.all():
                notes.append("latency: estimated from tokens and decode speed where not measured")
        elif not measured.all():
            notes.append("latency: not measured for some samples and no decode_tokens_per_s given; their questions are NaN")
        return self._quantity(("latency", decode_tokens_per_s, prefill_tokens_per_s), lambda: lat), notes


@dataclass(frozen=True)
class Usage:
    """How a strategy uses a question's samples: ``m`` (Q, K) expected samples per question and budget,
    whether it cancels the others when the first finishes, whether a reward model scores them."""

    m: np.ndarray
    cancel: bool
    uses_rm: bool

    def total(self, q: Quantity) -> np.ndarray:
        """m x E[x]; for a cancelling strategy m x E[x of the sample that finishes first]."""
        return np.asarray(self.m * q.expected_min(self.m) if self.cancel else self.m * q.mean[:, None])

    def completion_per_sample(self, work: RunWork) -> np.ndarray:
        """(Q, K) completion tokens each used sample generates (the shortest one's when cancelling)."""
        if self.cancel:
            return work.completion.expected_min(self.m)
        return np.asarray(work.completion.mean[:, None] * np.ones_like(self.m))


# --------------------------------------------------------------------------------------------------
# one function per unit


def token_costs(work: RunWork, use: Usage) -> dict[str, np.ndarray]:
    """Prompt, completion, reward-model and total tokens (linear in the samples used: exact)."""
    prompt_mean = work.prompt.mean[:, None]
    d_used = use.completion_per_sample(work)
    out = {
        "samples_used": use.m,
        "prompt_tokens": use.m * prompt_mean,
        "completion_tokens": use.m * d_used,
        "rm_tokens": use.m * (prompt_mean + d_used) if use.uses_rm else np.zeros_like(use.m),
    }
    out["total_tokens"] = out["prompt_tokens"] + out["completion_tokens"] + out["rm_tokens"]
    return out


def flops_costs(work: RunWork, use: Usage, arch: ModelArch, rm_arch: ModelArch | None,
                share_prompt: bool) -> dict[str, np.ndarray]:
    """Prefill (once per question with a shared prompt), decode and reward-model FLOPs."""
    prefills = np.where(np.isfinite(use.m), 1.0, np.nan) if share_prompt else use.m
    out = {
        "flops_prefill": prefills * work.prefill_flops(arch).mean[:, None],
        "flops_decode": use.total(work.decode_flops(arch)),
    }
    if not use.uses_rm:
        out["rm_flops"] = np.zeros_like(use.m)
    elif rm_arch is not None:
        out["rm_flops"] = use.total(work.scoring_flops(rm_arch))
    else:
        out["rm_flops"] = np.full_like(use.m, np.nan)
    out["flops"] = out["flops_prefill"] + out["flops_decode"] + out["rm_flops"]
    return out


def memory_costs(work: RunWork, use: Usage, spec: CostSpec, arch: ModelArch, rm_arch: ModelArch | None,
                 rm_tokens: np.ndarray) -> dict[str, np.ndarray]:
    """Memory traffic (Kinetics): weights and KV written at prefill, KV read and weights per decode step."""
    weights = arch.matmul_params * spec.bytes_per_param
    kv_tok = kv_bytes_per_token(arch, spec.bytes_per_kv)
    prefills = np.where(np.isfinite(use.m), 1.0, np.nan) if spec.share_prompt else use.m
    prefill = prefills * (weights + kv_tok * work.prompt.mean[:, None])  # read the weights, write the prompt's K/V
    kv = use.total(work.kv_traffic(arch, spec.bytes_per_kv))
    if spec.batch_parallel:  # one weight read per decode step of the batch: the longest sample's steps
        steps = use.completion_per_sample(work) if use.cancel else work.completion.expected_max(use.m)
        weight_reads = weights * steps
    else:
        weight_reads = weights * use.m * use.completion_per_sample(work)
    memory = prefill + kv + weight_reads
    if use.uses_rm:
        if rm_arch is None:
            memory = np.full_like(use.m, np.nan)
        else:
            rm_weights = rm_arch.matmul_params * spec.bytes_per_param
            memory = memory + use.m * rm_weights + kv_bytes_per_token(rm_arch, spec.bytes_per_kv) * rm_tokens
    return {"memory_bytes": memory}


def usd_costs(work: RunWork, use: Usage, spec: CostSpec, model: str, tokens: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Dollars at the price file's rates; reward-model scoring billed at its input price."""
    table = spec.price_table()
    price = table.get(model)
    if spec.share_prompt:  # one prompt billed in full, the other m - 1 as cached input
        prompt_mean = work.prompt.mean[:, None]
        usd = price.cost(np.where(np.isfinite(use.m), prompt_mean, np.nan), tokens["completion_tokens"],
                         (use.m - 1) * prompt_mean)
    else:
        usd = price.cost(tokens["prompt_tokens"], tokens["completion_tokens"])
    if use.uses_rm and spec.rm_model:
        usd = usd + table.get(spec.rm_model).cost(tokens["rm_tokens"], 0.0)
    elif use.uses_rm:
        usd = np.full_like(use.m, np.nan)
    return {"usd": np.where(np.isfinite(use.m), usd, np.nan)}


def latency_costs(work: RunWork, use: Usage, spec: CostSpec) -> tuple[dict[str, np.ndarray], list[str]]:
    """Parallel (E[max], or E[min] when cancelling) and sequential (m x mean) latency."""
    lat, notes = work.latency(spec.decode_tokens_per_s, spec.prefill_tokens_per_s)
    if use.cancel:
        first = lat.expected_min(use.m)
        return {"latency_parallel_s": first, "latency_sequential_s": use.m * first}, notes
    return {"latency_parallel_s": lat.expected_max(use.m), "latency_sequential_s": use.m * lat.mean[:, None]}, notes


# --------------------------------------------------------------------------------------------------
# the ledger


def build_ledger(
    arrays: SampleArrays,
    result: StrategyResult,
    spec: CostSpec | None = None,
    *,
    work: RunWork | None = None,
) -> StrategyLedger:
    """Expected costs of every k of one strategy result on its samples (see the module docstring)."""
    spec = spec or CostSpec()
    _check_result(arrays, result)
    work = work or RunWork(arrays)
    model = spec.model or arrays.model  # the model priced; the ledger is labelled like the arrays
    notes: list[str] = []
    units = _resolve_units(spec, model, bool(result.uses_reward_model), notes)
    if result.nan_reason:
        notes.append(f"accuracy: {result.nan_reason}")
    m = np.asarray(result.samples_used, dtype=np.float64).copy()
    m[~np.isfinite(result.accuracy)] = np.nan
    use = Usage(m, _normal(result.strategy) in {_normal(s) for s in spec.cancel_strategies}, bool(result.uses_reward_model))
    if np.isnan(work.p).any() or np.isnan(work.d).any():
        missing = [name for name, x in (("prompt", work.p), ("completion", work.d)) if np.isnan(x).any()]
        notes.append(f"tokens: some samples have no {' or '.join(missing)} token counts; those columns are NaN")
    if use.uses_rm and not spec.rm_model:
        notes.append("reward model: the strategy scores samples with a reward model but no rm_model was given; "
                     "RM FLOPs, memory and USD are NaN")
    for unit in ("flops", "memory", "usd", "latency"):
        if unit not in units and spec.units is not None:
            notes.append(f"{unit}: not requested")

    costs: dict[str, np.ndarray] = {name: np.full_like(m, np.nan) for name in COST_FIELDS}
    costs |= token_costs(work, use)
    if "flops" in units or "memory" in units:
        archs = spec.arch_table()
        arch = archs.get(model)
        rm_arch = archs.get(spec.rm_model) if use.uses_rm and spec.rm_model else None
        if "flops" in units:
            costs |= flops_costs(work, use, arch, rm_arch, spec.share_prompt)
        if "memory" in units:
            costs |= memory_costs(work, use, spec, arch, rm_arch, costs["rm_tokens"])
    if "usd" in units:
        costs |= usd_costs(work, use, spec, model, costs)
    if "latency" in units:
        latency, latency_notes = latency_costs(work, use, spec)
        costs |= latency
        notes += latency_notes
    return StrategyLedger(
        model=arrays.model or model,
        run_id=arrays.run_id,
        strategy=result.strategy,
        k=np.asarray(result.k),
        exact=bool(result.exact),
        accuracy=np.asarray(result.accuracy, dtype=np.float64),
        accuracy_se=np.asarray(result.accuracy_se, dtype=np.float64),
        costs=costs,
        notes=tuple(notes),
        question_ids=np.asarray(arrays.question_ids),
        same_as=tuple(getattr(result, "same_as", ()) or ()),
    )


def build_ledgers(
    arrays: SampleArrays, results: Iterable[StrategyResult], spec: CostSpec | None = None
) -> list[StrategyLedger]:
    """:func:`build_ledger` for several strategy results on the same samples (per-sample work shared)."""
    work = RunWork(arrays)
    return [build_ledger(arrays, r, spec, work=work) for r in results]


def _check_result(arrays: SampleArrays, result: StrategyResult) -> None:
    q_count = arrays.n_questions
    if result.accuracy.ndim != 2 or result.accuracy.shape[0] != q_count:
        raise DataError(
            f"strategy {result.strategy!r}: accuracy has shape {result.accuracy.shape}, expected ({q_count}, K) "
            "for the questions of the run"
        )
    shape = (q_count, result.accuracy.shape[1])
    for name in ("accuracy_se", "samples_used"):
        if getattr(result, name).shape != shape:
            raise DataError(
                f"strategy {result.strategy!r}: {name} has shape {getattr(result, name).shape}, expected {shape}"
            )


def _resolve_units(spec: CostSpec, model: str, uses_rm: bool, notes: list[str]) -> set[str]:
    """The units to compute: the requested ones, or (``units=None``) those whose data is available."""
    if spec.units is not None:
        return set(spec.units)
    units = {"tokens", "latency"}
    try:
        archs = spec.arch_table()
        archs.get(model)
        if uses_rm and spec.rm_model:
            archs.get(spec.rm_model)
        units |= {"flops", "memory"}
    except DataError as exc:
        notes.append(f"flops, memory: {exc}")
    if spec.prices is None:
        notes.append("usd: no price file given")
    else:
        try:
            table = spec.price_table()
            table.get(model)
            if uses_rm and spec.rm_model:
                table.get(spec.rm_model)
            units.add("usd")
        except (DataError, ConfigError) as exc:
            notes.append(f"usd: {exc}")
    return units


def _normal(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def __getattr__(name: str) -> Any:  # the summary moved to ttclab.ledger.summary; old imports keep working
    if name in ("SUMMARY_COLUMNS", "summarize", "to_arrow", "to_pandas", "ledger_table"):
        from ttclab.ledger import summary

        return getattr(summary, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "UNITS",
    "UNIT_COLUMNS",
    "COST_FIELDS",
    "CostSpec",
    "StrategyLedger",
    "Quantity",
    "RunWork",
    "Usage",
    "build_ledger",
    "build_ledgers",
    "unit_column",
    "unit_name",
    "require_prices",
    "token_costs",
    "flops_costs",
    "memory_costs",
    "usd_costs",
    "latency_costs",
    # re-exported from ledger.work / strategies.orderstats
    "SortedSamples",
    "sort_samples",
    "order_stat_weights",
    "expected_max",
    "expected_min",
    "context_sum",
    "prefill_flops",
    "decode_flops",
    "kv_bytes_per_token",
    "decode_kv_read_bytes",
]
