"""The compute ledger: what every (strategy, k) costs, in tokens, FLOPs, memory traffic, latency and USD.

All quantities are expectations over the same uniformly random k-subsets the strategy estimators use,
per question (``(Q, K)`` arrays), and then averaged over the questions where the accuracy is defined
(:func:`summarize`, one row per (model, strategy, k)).

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

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import gammaln, ndtri

from ttclab.errors import ConfigError, DataError
from ttclab.ledger.models import ArchTable, ModelArch, load_architectures
from ttclab.ledger.prices import PriceTable, load_prices
from ttclab.strategies.arrays import SampleArrays
from ttclab.strategies.base import StrategyResult

UNITS: tuple[str, ...] = ("tokens", "flops", "usd", "latency", "memory")
"""Budget units selectable by name (extra aliases: see :data:`UNIT_COLUMNS`)."""

UNIT_COLUMNS: Mapping[str, str] = {
    "tokens": "total_tokens",  # prompt + completion + reward-model tokens
    "completion_tokens": "completion_tokens",
    "flops": "flops",
    "usd": "usd",
    "latency": "latency_parallel_s",
    "latency_parallel": "latency_parallel_s",
    "latency_sequential": "latency_sequential_s",
    "memory": "memory_bytes",
}

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
    """The ledger column of a budget unit name (``tokens | flops | usd | latency | memory``)."""
    try:
        return UNIT_COLUMNS[unit]
    except KeyError:
        raise ConfigError(f"unknown cost unit {unit!r}; use one of: {', '.join(UNIT_COLUMNS)}") from None


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
        if self.prices is None:
            raise ConfigError("unit 'usd' needs a price file: set prices (a built-in name such as 'local' or a path)")
        table = self.prices if isinstance(self.prices, PriceTable) else load_prices(self.prices)
        return table.with_overrides(self.price_overrides) if self.price_overrides else table

    def arch_table(self) -> ArchTable:
        if isinstance(self.architectures, ArchTable):
            return self.architectures
        return load_architectures(self.architectures or "models")


@dataclass(frozen=True)
class StrategyLedger:
    """Accuracy and expected costs of one strategy for one model, per question and budget k.

    Every cost array is ``(Q, K)`` aligned with ``accuracy`` (NaN where undefined; ``notes`` says why).
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

    def cost(self, unit: str) -> np.ndarray:
        """(Q, K) expected cost per question in a unit (``tokens``, ``flops``, ``usd``, ...)."""
        return self.costs[unit_column(unit)]

    def subset(self, mask: np.ndarray) -> "StrategyLedger":
        """The same ledger restricted to the questions where ``mask`` (Q,) is True."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.accuracy.shape[0],):
            raise DataError(f"question mask has shape {mask.shape}, expected ({self.accuracy.shape[0]},)")
        ids = self.question_ids[mask] if self.question_ids.size else self.question_ids
        return StrategyLedger(
            self.model, self.run_id, self.strategy, self.k, self.exact, self.accuracy[mask],
            self.accuracy_se[mask], {n: a[mask] for n, a in self.costs.items()}, self.notes, ids,
        )


# --------------------------------------------------------------------------------------------------
# order statistics over random k-subsets


def order_stat_weights(n: int, ks: Sequence[int] | np.ndarray) -> np.ndarray:
    """(n, K) weights: the i-th largest of n values (row i-1) is the max of a random k-subset with
    probability C(n-i, k-1) / C(n, k). Columns for k outside 1..n are NaN."""
    ks = np.asarray(ks, dtype=np.int64)
    i = np.arange(1, n + 1, dtype=np.float64)[:, None]
    kk = ks.astype(np.float64)[None, :]
    ok = (n - i) >= (kk - 1)
    with np.errstate(invalid="ignore"):
        log_num = gammaln(n - i + 1) - gammaln(kk) - gammaln(np.where(ok, n - i - kk + 2, 1.0))
        log_den = gammaln(n + 1.0) - gammaln(kk + 1) - gammaln(np.maximum(n - kk + 1, 1.0))
        w = np.where(ok, np.exp(log_num - log_den), 0.0)
    bad = (ks < 1) | (ks > n)
    w[:, bad] = np.nan
    return w


@dataclass(frozen=True)
class SortedSamples:
    """Each question's present values sorted descending (absent ones last, as 0), for order statistics."""

    values: np.ndarray  # (Q, N)
    n_q: np.ndarray  # (Q,)
    has_nan: np.ndarray  # (Q,) a present value is NaN


def sort_samples(values: np.ndarray, present: np.ndarray) -> SortedSamples:
    """Sort once, then take :func:`expected_max` for any number of budgets / strategies."""
    values = np.asarray(values, dtype=np.float64)
    present = np.asarray(present, dtype=bool)
    keyed = np.where(present, values, -np.inf)
    keyed = np.where(np.isnan(keyed), np.inf, keyed)  # NaN rows are dropped anyway; keep the sort total
    sorted_vals = -np.sort(-keyed, axis=1)
    sorted_vals[~np.isfinite(sorted_vals)] = 0.0
    return SortedSamples(sorted_vals, present.sum(axis=1), np.isnan(np.where(present, values, 0.0)).any(axis=1))


def expected_max(
    values: np.ndarray | None,
    present: np.ndarray | None,
    m: np.ndarray,
    *,
    presorted: SortedSamples | None = None,
) -> np.ndarray:
    """E[max of m samples drawn without replacement from each question's present values].

    ``values``/``present`` are (Q, N) (or give ``presorted`` from :func:`sort_samples`), ``m`` is
    (Q, K) (float: a non-integer m interpolates linearly between floor and ceil). NaN where m is NaN,
    m < 1, m > n_q, or a present value is NaN.
    """
    srt = presorted if presorted is not None else sort_samples(values, present)
    m = np.asarray(m, dtype=np.float64)
    out = np.full(m.shape, np.nan)
    finite_m = np.isfinite(m)
    lo = np.where(finite_m, np.floor(m), 0).astype(np.int64)
    hi = np.where(finite_m, np.ceil(m), 0).astype(np.int64)
    frac = np.where(finite_m, m - lo, 0.0)
    for n in np.unique(srt.n_q):
        rows = np.flatnonzero((srt.n_q == n) & ~srt.has_nan)
        if n == 0 or rows.size == 0:
            continue
        needed = np.unique(np.concatenate([lo[rows].ravel(), hi[rows].ravel()]))
        needed = needed[(needed >= 1) & (needed <= n)]
        if needed.size == 0:
            continue
        table = srt.values[rows, :n] @ order_stat_weights(int(n), needed)  # (rows, len(needed))
        lo_r, hi_r, fr = lo[rows], hi[rows], frac[rows]
        valid = finite_m[rows] & (lo_r >= 1) & (hi_r <= n)
        col_lo = np.minimum(np.searchsorted(needed, lo_r), needed.size - 1)
        col_hi = np.minimum(np.searchsorted(needed, hi_r), needed.size - 1)
        r_idx = np.arange(rows.size)[:, None]
        val = (1 - fr) * table[r_idx, col_lo] + fr * table[r_idx, col_hi]
        out[rows] = np.where(valid, val, np.nan)
    return out


def expected_min(values: np.ndarray, present: np.ndarray, m: np.ndarray) -> np.ndarray:
    """E[min of m samples drawn without replacement]; see :func:`expected_max`."""
    return -expected_max(-np.asarray(values, dtype=np.float64), present, m)


# --------------------------------------------------------------------------------------------------
# per-sample work


def context_sum(positions: np.ndarray, window: float | None = None) -> np.ndarray:
    """sum_{t=1}^{S} min(t, window): attended positions over a causal sequence of length S."""
    s = np.asarray(positions, dtype=np.float64)
    if window is None:
        return s * (s + 1) / 2
    w = float(window)
    return np.where(s <= w, s * (s + 1) / 2, w * (w + 1) / 2 + (s - w) * w)


def _attended(arch: ModelArch, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Sum over layers of the attended positions of tokens start+1..end."""
    total = arch.n_global_layers * (context_sum(end) - context_sum(start))
    if arch.n_local_layers:
        w = arch.sliding_window
        total = total + arch.n_local_layers * (context_sum(end, w) - context_sum(start, w))
    return total


def prefill_flops(arch: ModelArch, prompt_tokens: Any) -> np.ndarray:
    """Forward FLOPs to process a prompt of p tokens: 2 P_mm p + 4 d_attn x attended positions."""
    p = np.asarray(prompt_tokens, dtype=np.float64)
    return 2.0 * arch.matmul_params * p + 4.0 * arch.attn_width * _attended(arch, np.zeros_like(p), p)


def decode_flops(arch: ModelArch, prompt_tokens: Any, completion_tokens: Any) -> np.ndarray:
    """Forward FLOPs to generate d tokens after a p-token prompt."""
    p = np.asarray(prompt_tokens, dtype=np.float64)
    d = np.asarray(completion_tokens, dtype=np.float64)
    return 2.0 * arch.matmul_params * d + 4.0 * arch.attn_width * _attended(arch, p, p + d)


def kv_bytes_per_token(arch: ModelArch, bytes_per_kv: float = 2.0) -> float:
    """Bytes of K and V cached per token over all layers."""
    return arch.kv_bytes_per_token_layer_element * arch.n_layers * bytes_per_kv


def decode_kv_read_bytes(arch: ModelArch, prompt_tokens: Any, completion_tokens: Any, bytes_per_kv: float = 2.0) -> np.ndarray:
    """KV-cache bytes read while generating d tokens after a p-token prompt (each token reads its context)."""
    p = np.asarray(prompt_tokens, dtype=np.float64)
    d = np.asarray(completion_tokens, dtype=np.float64)
    return arch.kv_bytes_per_token_layer_element * bytes_per_kv * _attended(arch, p, p + d)


# --------------------------------------------------------------------------------------------------
# the ledger


class _SampleWork:
    """Per-sample quantities of one run, shared by every strategy priced with the same spec (lazy, memoised)."""

    def __init__(self, arrays: SampleArrays) -> None:
        self.present = arrays.present
        self.n_q = arrays.present.sum(axis=1).astype(np.float64)
        self.p = np.where(self.present, arrays.prompt_tokens, 0.0)
        self.d = np.where(self.present, arrays.completion_tokens, 0.0)
        self._cache: dict[tuple[str, str], Any] = {}

    def values(self, name: str, fn: Any) -> np.ndarray:
        key = ("values", name)
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def qmean(self, name: str, fn: Any) -> np.ndarray:
        """(Q,) mean over present samples (NaN if a present value is NaN or there is none)."""
        key = ("qmean", name)
        if key not in self._cache:
            x = self.values(name, fn)
            with np.errstate(invalid="ignore", divide="ignore"):
                self._cache[key] = np.where(self.present, x, 0.0).sum(axis=1) / np.where(self.n_q > 0, self.n_q, np.nan)
        return self._cache[key]

    def emax(self, name: str, fn: Any, m: np.ndarray) -> np.ndarray:
        key = ("desc", name)
        if key not in self._cache:
            self._cache[key] = sort_samples(self.values(name, fn), self.present)
        return expected_max(None, None, m, presorted=self._cache[key])

    def emin(self, name: str, fn: Any, m: np.ndarray) -> np.ndarray:
        key = ("asc", name)
        if key not in self._cache:
            self._cache[key] = sort_samples(-self.values(name, fn), self.present)
        return -expected_max(None, None, m, presorted=self._cache[key])


def build_ledger(
    arrays: SampleArrays,
    result: StrategyResult,
    spec: CostSpec | None = None,
    *,
    _work: _SampleWork | None = None,
) -> StrategyLedger:
    """Expected costs of every k of one strategy result on its samples (see the module docstring)."""
    spec = spec or CostSpec()
    q_count = arrays.n_questions
    if result.accuracy.ndim != 2 or result.accuracy.shape[0] != q_count:
        raise DataError(
            f"strategy {result.strategy!r}: accuracy has shape {result.accuracy.shape}, expected ({q_count}, K) "
            "for the questions of the run"
        )
    k_count = result.accuracy.shape[1]
    for name in ("accuracy_se", "samples_used"):
        if getattr(result, name).shape != (q_count, k_count):
            raise DataError(f"strategy {result.strategy!r}: {name} has shape {getattr(result, name).shape}, expected {(q_count, k_count)}")
    work = _work or _SampleWork(arrays)
    model = spec.model or arrays.model
    notes: list[str] = []
    units = _resolve_units(spec, model, bool(result.uses_reward_model), notes)
    if result.nan_reason:
        notes.append(f"accuracy: {result.nan_reason}")

    m = np.asarray(result.samples_used, dtype=np.float64).copy()
    m[~np.isfinite(result.accuracy)] = np.nan
    cancel = _normal(result.strategy) in {_normal(s) for s in spec.cancel_strategies}
    p, d = work.p, work.d
    if np.isnan(p).any() or np.isnan(d).any():
        notes.append("tokens: some samples have no token counts; their questions' costs are NaN")

    def per_question(name: str, fn: Any) -> np.ndarray:
        """m x E[x] for plain strategies, m x E[x of the sample that finishes first] for cancelling ones."""
        if cancel:
            return m * work.emin(name, fn, m)
        return m * work.qmean(name, fn)[:, None]

    p_mean = work.qmean("p", lambda: p)[:, None]
    d_used = work.emin("d", lambda: d, m) if cancel else work.qmean("d", lambda: d)[:, None] * np.ones_like(m)
    costs: dict[str, np.ndarray] = {name: np.full((q_count, k_count), np.nan) for name in COST_FIELDS}
    costs["samples_used"] = m
    costs["prompt_tokens"] = m * p_mean
    costs["completion_tokens"] = m * d_used
    uses_rm = bool(result.uses_reward_model)
    costs["rm_tokens"] = m * (p_mean + d_used) if uses_rm else np.zeros_like(m)
    costs["total_tokens"] = costs["prompt_tokens"] + costs["completion_tokens"] + costs["rm_tokens"]
    if uses_rm and not spec.rm_model:
        notes.append("reward model: the strategy scores samples with a reward model but no rm_model was given; "
                     "RM FLOPs, memory and USD are NaN")
    for unit in ("flops", "memory", "usd", "latency"):
        if unit not in units and spec.units is not None:
            notes.append(f"{unit}: not requested")

    if "flops" in units or "memory" in units:
        archs = spec.arch_table()
        arch = archs.get(model)
        rm_arch = archs.get(spec.rm_model) if uses_rm and spec.rm_model else None
        shared = np.where(np.isfinite(m), 1.0, np.nan) if spec.share_prompt else m
        a, r = arch.name, rm_arch.name if rm_arch else ""
        if "flops" in units:
            # prefill depends on p only, decode on (p, d): exact per sample, then linear in the samples used
            costs["flops_prefill"] = shared * work.qmean(f"pre:{a}", lambda: prefill_flops(arch, p))[:, None]
            costs["flops_decode"] = per_question(f"dec:{a}", lambda: decode_flops(arch, p, d))
            if not uses_rm:
                costs["rm_flops"] = np.zeros_like(m)
            elif rm_arch is not None:
                costs["rm_flops"] = per_question(f"rm:{r}", lambda: prefill_flops(rm_arch, p + d))
            costs["flops"] = costs["flops_prefill"] + costs["flops_decode"] + costs["rm_flops"]
        if "memory" in units:
            weights = arch.matmul_params * spec.bytes_per_param
            kv_tok = kv_bytes_per_token(arch, spec.bytes_per_kv)
            prefill_mem = shared * (weights + kv_tok * p_mean)  # read the weights once, write the prompt's K/V
            kv_traffic = per_question(f"kv:{a}:{spec.bytes_per_kv}",
                                      lambda: decode_kv_read_bytes(arch, p, d, spec.bytes_per_kv) + kv_tok * d)
            if spec.batch_parallel:  # one weight read per decode step of the batch: the longest sample's steps
                steps = d_used if cancel else work.emax("d", lambda: d, m)
                weight_reads = weights * steps
            else:
                weight_reads = weights * m * d_used
            memory = prefill_mem + kv_traffic + weight_reads
            if uses_rm:
                if rm_arch is not None:
                    rm_w = rm_arch.matmul_params * spec.bytes_per_param
                    memory = memory + m * rm_w + kv_bytes_per_token(rm_arch, spec.bytes_per_kv) * costs["rm_tokens"]
                else:
                    memory = np.full_like(m, np.nan)
            costs["memory_bytes"] = memory

    if "usd" in units:
        table = spec.price_table()
        price = table.get(model)
        if spec.share_prompt:  # one prompt billed in full, the other m - 1 as cached input
            usd = price.cost(np.where(np.isfinite(m), p_mean, np.nan), costs["completion_tokens"], (m - 1) * p_mean)
        else:
            usd = price.cost(costs["prompt_tokens"], costs["completion_tokens"])
        if uses_rm and spec.rm_model:  # scoring is prefill: the reward model's input price
            usd = usd + table.get(spec.rm_model).cost(costs["rm_tokens"], 0.0)
        elif uses_rm:
            usd = np.full_like(m, np.nan)
        costs["usd"] = np.where(np.isfinite(m), usd, np.nan)

    if "latency" in units:
        lat = np.asarray(arrays.latency_s, dtype=np.float64)
        measured = np.isfinite(lat) | ~work.present
        if spec.decode_tokens_per_s:
            estimate = d / spec.decode_tokens_per_s
            if spec.prefill_tokens_per_s:
                estimate = estimate + p / spec.prefill_tokens_per_s
            lat = np.where(np.isfinite(lat), lat, estimate)
            if not measured.all():
                notes.append("latency: estimated from tokens and decode speed where not measured")
        elif not measured.all():
            notes.append("latency: not measured for some samples and no decode_tokens_per_s given; their questions are NaN")
        lat = np.where(work.present, lat, 0.0)
        key = f"lat:{spec.decode_tokens_per_s}:{spec.prefill_tokens_per_s}"
        if cancel:
            first = work.emin(key, lambda: lat, m)
            costs["latency_parallel_s"] = first
            costs["latency_sequential_s"] = m * first
        else:
            costs["latency_parallel_s"] = work.emax(key, lambda: lat, m)
            costs["latency_sequential_s"] = m * work.qmean(key, lambda: lat)[:, None]

    return StrategyLedger(
        model=model,
        run_id=arrays.run_id,
        strategy=result.strategy,
        k=np.asarray(result.k),
        exact=bool(result.exact),
        accuracy=np.asarray(result.accuracy, dtype=np.float64),
        accuracy_se=np.asarray(result.accuracy_se, dtype=np.float64),
        costs=costs,
        notes=tuple(notes),
        question_ids=np.asarray(arrays.question_ids),
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
        except DataError as exc:
            notes.append(f"usd: {exc}")
    return units


def build_ledgers(arrays: SampleArrays, results: Iterable[StrategyResult], spec: CostSpec | None = None) -> list[StrategyLedger]:
    """:func:`build_ledger` for several strategy results on the same samples (per-sample work shared)."""
    work = _SampleWork(arrays)
    return [build_ledger(arrays, r, spec, _work=work) for r in results]


def _normal(name: str) -> str:
    return name.strip().lower().replace("-", "_")


# --------------------------------------------------------------------------------------------------
# aggregation over questions


SUMMARY_COLUMNS: tuple[str, ...] = (
    "model", "run_id", "strategy", "k", "n_questions", "accuracy", "accuracy_se", "ci_low", "ci_high",
    *COST_FIELDS, "exact", "notes",
)


def summarize(
    ledgers: Iterable[StrategyLedger],
    *,
    mask: np.ndarray | None = None,
    confidence: float = 0.95,
    n_bootstrap: int = 0,
    rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """One row per (model, strategy, k): accuracy with its standard error and confidence interval,
    and every expected cost per question, averaged over the questions where the accuracy is defined.

    The standard error combines the spread over questions (``std / sqrt(n)``) with the estimators'
    Monte-Carlo error (``sqrt(sum se_q^2) / n``). The interval is normal (``n_bootstrap=0``) or a
    percentile bootstrap over questions (needs ``rng``). Returns columns as arrays (see
    :func:`to_arrow` / :func:`to_pandas`); NaN rows keep their reason in ``notes``.
    """
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    if n_bootstrap and rng is None:
        raise ConfigError("a bootstrap confidence interval needs rng (a numpy Generator)")
    rows: dict[str, list[Any]] = {c: [] for c in SUMMARY_COLUMNS}
    z = float(ndtri(0.5 + confidence / 2))
    for led in ledgers:
        acc = led.accuracy
        keep = np.ones(acc.shape[0], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if keep.shape != (acc.shape[0],):
            raise DataError(f"question mask has shape {keep.shape}, expected ({acc.shape[0]},)")
        defined = np.isfinite(acc) & keep[:, None]
        n = defined.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            a0 = np.where(defined, acc, 0.0)
            mean = a0.sum(axis=0) / np.where(n > 0, n, np.nan)
            var = np.where(defined, (acc - mean) ** 2, 0.0).sum(axis=0) / np.where(n > 1, n - 1, np.nan)
            mc = np.where(defined, np.nan_to_num(led.accuracy_se) ** 2, 0.0).sum(axis=0) / np.where(n > 0, n, np.nan) ** 2
            se = np.sqrt(var / n + mc)
            lo, hi = mean - z * se, mean + z * se
        if n_bootstrap:
            lo, hi = _bootstrap_ci(acc, defined, confidence, n_bootstrap, rng)
        cost_means = {}
        for name in COST_FIELDS:
            with np.errstate(invalid="ignore", divide="ignore"):
                cost_means[name] = np.where(defined, led.costs[name], 0.0).sum(axis=0) / np.where(n > 0, n, np.nan)
                # a NaN cost on a defined question makes the mean NaN (never silently dropped)
                cost_means[name] = np.where(np.isnan(np.where(defined, led.costs[name], 0.0)).any(axis=0), np.nan, cost_means[name])
        base_note = "; ".join(led.notes)
        for i, k in enumerate(led.k):
            note = base_note
            if n[i] == 0:
                note = "; ".join(filter(None, [f"no question has a defined accuracy at k={int(k)}", base_note]))
            rows["model"].append(led.model)
            rows["run_id"].append(led.run_id)
            rows["strategy"].append(led.strategy)
            rows["k"].append(int(k))
            rows["n_questions"].append(int(n[i]))
            rows["accuracy"].append(float(mean[i]))
            rows["accuracy_se"].append(float(se[i]))
            rows["ci_low"].append(float(np.clip(lo[i], 0.0, 1.0)) if np.isfinite(lo[i]) else math.nan)
            rows["ci_high"].append(float(np.clip(hi[i], 0.0, 1.0)) if np.isfinite(hi[i]) else math.nan)
            for name in COST_FIELDS:
                rows[name].append(float(cost_means[name][i]))
            rows["exact"].append(led.exact)
            rows["notes"].append(note)
    return {c: np.asarray(v) if c not in ("notes",) else np.asarray(v, dtype=object) for c, v in rows.items()}


def _bootstrap_ci(acc: np.ndarray, defined: np.ndarray, confidence: float, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    q_count = acc.shape[0]
    counts = rng.multinomial(q_count, np.full(q_count, 1.0 / q_count), size=n_boot).astype(np.float64)  # (B, Q)
    with np.errstate(invalid="ignore", divide="ignore"):
        stats = (counts @ np.where(defined, acc, 0.0)) / (counts @ defined.astype(np.float64))
    alpha = (1 - confidence) / 2
    return np.nanquantile(stats, alpha, axis=0), np.nanquantile(stats, 1 - alpha, axis=0)


def to_arrow(summary: Mapping[str, np.ndarray]) -> Any:
    """The summary as a pyarrow Table (one row per (model, strategy, k))."""
    import pyarrow as pa

    return pa.table({c: pa.array(list(v) if c == "notes" else v) for c, v in summary.items()})


def to_pandas(summary: Mapping[str, np.ndarray]) -> Any:
    """The summary as a pandas DataFrame (needs pandas)."""
    return to_arrow(summary).to_pandas()


def ledger_table(
    arrays: SampleArrays,
    results: Iterable[StrategyResult],
    spec: CostSpec | None = None,
    **summary_options: Any,
) -> Any:
    """Convenience: :func:`build_ledgers` + :func:`summarize` as a pyarrow Table."""
    return to_arrow(summarize(build_ledgers(arrays, results, spec), **summary_options))


__all__ = [
    "UNITS", "UNIT_COLUMNS", "COST_FIELDS", "SUMMARY_COLUMNS", "CostSpec", "StrategyLedger", "SortedSamples",
    "sort_samples",
    "build_ledger", "build_ledgers", "summarize", "to_arrow", "to_pandas", "ledger_table", "unit_column",
    "order_stat_weights", "expected_max", "expected_min", "context_sum", "prefill_flops", "decode_flops",
    "kv_bytes_per_token", "decode_kv_read_bytes",
]
