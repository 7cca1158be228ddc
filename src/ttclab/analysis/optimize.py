"""The compute-optimal choice over an :class:`~ttclab.analysis.evaluate.Evaluation`.

Reads top to bottom: the budget unit -> deployable points (oracles excluded) -> the choice per budget
under the noise rules of :func:`ttclab.optimize.optimal.compute_optimal`, with paired standard
errors from the evaluation's shared bootstrap -> budgets that buy nothing better collapsed -> paired
differences a reader wants (the choice minus one sample, minus the runner-up) -> efficiency ratios,
the Pareto frontier, saturation, and the choice per difficulty bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ttclab.analysis.evaluate import Evaluation, is_oracle, run_model_name
from ttclab.errors import ConfigError, DataError
from ttclab.ledger.costs import CostSpec, StrategyLedger, build_ledgers, unit_column, unit_name
from ttclab.optimize.curves import Curves
from ttclab.optimize.difficulty import ByDifficulty, bin_labels, difficulty_bins, heldout_split, optimal_by_bin, pass_rate
from ttclab.optimize.optimal import DiffSE, Pick, collapse_budgets, compute_optimal, efficiency_ratio, point_name
from ttclab.optimize.pareto import pareto_mask
from ttclab.optimize.saturation import saturation_findings, saturation_points
from ttclab.strategies import evaluate
from ttclab.tables import Table

DIFFICULTY_METHODS = ("oracle", "heldout")


@dataclass
class Optimization:
    """The answers of ``ttclab optimize``: every list is rows of plain values (ready for a table)."""

    unit: str
    unit_note: str
    best: list[dict[str, Any]]  # per budget
    choices: list[dict[str, Any]]  # budgets that choose the same collapsed into one row, with paired gains
    efficiency: list[dict[str, Any]]  # per baseline strategy and target accuracy
    difficulty: ByDifficulty | None
    difficulty_note: str
    frontier: list[dict[str, Any]]
    saturation: list[dict[str, Any]]
    saturation_notes: list[str] = field(default_factory=list)

    @property
    def by_difficulty(self) -> list[dict[str, Any]]:
        """Per-bin rows (bin, difficulty, budget, choice, gain over one sample, ...)."""
        return _rows(self.difficulty.bins) if self.difficulty is not None else []

    @property
    def by_difficulty_collapsed(self) -> list[dict[str, Any]]:
        """Per-bin rows with budgets that choose the same collapsed (``budget_from``, ``budget_to``)."""
        rows = self.by_difficulty
        out: list[dict[str, Any]] = []
        for b in sorted({r["bin"] for r in rows}):
            out += collapse_budgets([r for r in rows if r["bin"] == b])
        return out

    @property
    def policy(self) -> list[dict[str, Any]]:
        """Per budget: each bin's choice applied to its questions vs one choice for all."""
        return _rows(self.difficulty.policy) if self.difficulty is not None else []


def _rows(columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    keys = list(columns)
    n = len(columns[keys[0]]) if keys else 0
    return [{k: _py(columns[k][i]) for k in keys} for i in range(n)]


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def deployable(ev: Evaluation, unit: str) -> Curves:
    """Every (model, strategy, k) one could deploy (oracles excluded), in ``unit``."""
    curves = Curves.from_summary(ev.summary, unit)
    return curves.select(np.array([not is_oracle(s) for s in curves.strategy], dtype=bool))


def paired_se(ev: Evaluation, mask: np.ndarray | None = None) -> DiffSE:
    """Standard errors of paired differences on the evaluation's shared bootstrap (memoised)."""
    cache: dict[tuple[Pick, Pick], float] = {}

    def se(a: Pick, b: Pick) -> float:
        if (a, b) not in cache:
            cache[(a, b)] = cache[(b, a)] = ev.paired(a, b, mask).se
        return cache[(a, b)]

    return se


def _runner_up(curves: Curves, row: dict[str, Any]) -> Pick | None:
    """The most accurate affordable point of another strategy (or model) at the row's budget."""
    ok = (curves.candidates & (curves.cost <= row["budget_to"])
          & ~((curves.model == row["model"]) & (curves.strategy == row["strategy"])))
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return None
    i = idx[np.lexsort((curves.cost[idx], -curves.accuracy[idx]))[0]]
    return (str(curves.model[i]), str(curves.strategy[i]), int(curves.k[i]))


def _one_sample(curves: Curves, model: str) -> Pick | None:
    hit = np.flatnonzero((curves.model == model) & (curves.k == 1) & curves.exact & np.isfinite(curves.accuracy))
    return (model, str(curves.strategy[hit[0]]), 1) if hit.size else None


def _diff(value: float) -> float:
    """A paired difference of accuracies with its floating-point noise (8e-17 for two equal means) as 0."""
    return float(np.round(value, 12)) + 0.0  # + 0.0: no -0.0


def with_gains(ev: Evaluation, curves: Curves, choices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each collapsed choice with paired differences: minus one sample, minus the runner-up (named like
    the choice: with its model when the curves hold several)."""
    many = len(set(map(str, curves.model))) > 1
    out = []
    for row in choices:
        row = dict(row)
        row.update({"gain_vs_one_sample": np.nan, "gain_ci_low": np.nan, "gain_ci_high": np.nan, "runner_up": "",
                    "vs_runner_up": np.nan, "vs_runner_up_ci_low": np.nan, "vs_runner_up_ci_high": np.nan})
        if not row["reason"]:
            me = (row["model"], row["strategy"], int(row["k"]))
            one = _one_sample(curves, row["model"])
            if one is not None and one != me:
                d = ev.paired(me, one)
                row.update(gain_vs_one_sample=_diff(d.difference), gain_ci_low=_diff(d.ci_low),
                           gain_ci_high=_diff(d.ci_high))
            elif one == me:  # the choice is one sample: no gain, nothing to bootstrap
                row.update(gain_vs_one_sample=0.0)
            other = _runner_up(curves, row)
            if other is not None:
                d = ev.paired(me, other)
                row.update(runner_up=point_name(*other, with_model=many),
                           vs_runner_up=_diff(d.difference), vs_runner_up_ci_low=_diff(d.ci_low),
                           vs_runner_up_ci_high=_diff(d.ci_high))
        out.append(row)
    return out


def choice_label(row: dict[str, Any], shown: int = 2) -> str:
    """``majority@8``, or ``majority@8 ≈ esc@8`` when other strategies are within error (at most
    ``shown`` named, then how many more); every point names its model when the choice is made across
    models (``gemma3-270m majority@1 ≈ smollm2-135m majority@1``)."""
    if row.get("reason"):
        return "—"
    label = row.get("choice") or f"{row['strategy']}@{row['k']}"
    ties = [t for t in str(row.get("ties") or "").split(", ") if t]
    if not ties:
        return label
    more = f" (+{len(ties) - shown} more)" if len(ties) > shown else ""
    return f"{label} ≈ {' ≈ '.join(ties[:shown])}{more}"


def names_models(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether the choices name their model (made across models): a ``model`` column beside them would
    repeat it."""
    return any(r.get("choice") and r["choice"] != f"{r['strategy']}@{r['k']}" for r in rows)


def without_model(table: Table) -> Table:
    """The table without its ``model`` column, for choices that name their model (:func:`names_models`)."""
    i = table.headers.index("model")
    return replace(table, headers=table.headers[:i] + table.headers[i + 1:], rows=[r[:i] + r[i + 1:] for r in table.rows])


def single_label(row: dict[str, Any], model: bool) -> str:
    """A policy row's one choice for all questions, named like the per-difficulty choices."""
    name = f"{row['single_strategy']}@{row['single_k']}"
    return f"{row['single_model']} {name}" if model else name


def affordable_policy(opt: Optimization) -> tuple[list[dict[str, Any]], list[str]]:
    """The policy rows where every difficulty affords a choice, and a note for the budgets left out."""
    shown = [r for r in opt.policy if not r["reason"]]
    left = len(opt.policy) - len(shown)
    return shown, [f"{left} budget(s) left out of the policy: some difficulty affords nothing there"] if left else []


def unaffordable_notes(rows: list[dict[str, Any]], unit: str) -> list[str]:
    """One line per budget range where some difficulties afford nothing (their rows are left out): the
    cheapest point of a difficulty is a mean over its own questions, so it can cost more than the budget
    that the cheapest point over all questions fits."""
    by_range: dict[tuple[float, float], list[dict[str, Any]]] = {}
    for r in rows:
        by_range.setdefault((r["budget_from"], r["budget_to"]), []).append(r)
    out = []
    for (lo, hi), group in by_range.items():
        where = " or ".join(f"{str(r['difficulty']).split(' (')[0]} (cheapest point {r['cheapest']:.4g})" for r in group)
        budget = f"{lo:.4g}" if lo == hi else f"{lo:.4g}–{hi:.4g}"
        out.append(f"budget {budget} {unit}: nothing fits in {where}; a difficulty's costs are means over its own "
                   "questions; rows left out")
    return out


def optimize(
    ev: Evaluation,
    *,
    unit: str | None = None,
    budgets: Sequence[float] | None = None,
    n_bins: int = 3,
    difficulty: str = "oracle",
    baselines: Sequence[str] = ("majority", "best_of_n"),
    epsilon: float = 0.01,
    seed: int = 0,
) -> Optimization:
    """Compute-optimal strategy and k per budget, overall and per difficulty bin; efficiency ratios;
    Pareto frontier; saturation. ``unit=None`` uses total_tokens, or completion_tokens when a run has
    no prompt-token counts. ``difficulty``: ``oracle`` (bins from the pass rate of all samples) or
    ``heldout`` (Snell-style: bins and choices from one half of each question's samples, accuracy
    measured on the other half)."""
    if difficulty not in DIFFICULTY_METHODS:
        raise ConfigError(f"--difficulty must be one of {', '.join(DIFFICULTY_METHODS)}, got {difficulty!r}")
    if unit is None:
        unit, unit_note = ev.default_unit()
    else:
        unit_column(unit)  # one-line error for an unknown unit
        unit = unit_name(unit)
        unit_note = f"budget axis: {unit} per question"
    deploy = deployable(ev, unit)
    if not deploy.valid.any():
        raise DataError(f"no strategy has a finite accuracy and {unit} cost; try --unit completion_tokens, "
                        "or --prices for usd")
    best = _rows(compute_optimal(deploy, budgets, diff_se=paired_se(ev)))
    choices = with_gains(ev, deploy, collapse_budgets(best))
    efficiency = _efficiency(deploy, baselines)
    own = deploy.same_as == ""  # a point equal to an exact strategy's is that strategy's point
    mask = pareto_mask(np.where(own, deploy.cost, np.nan), deploy.accuracy)
    frontier = sorted(({"model": deploy.model[i], "strategy": deploy.strategy[i], "k": int(deploy.k[i]),
                        "accuracy": float(deploy.accuracy[i]), "ci_low": float(deploy.ci_low[i]),
                        "ci_high": float(deploy.ci_high[i]), "cost": float(deploy.cost[i])}
                       for i in np.flatnonzero(mask)), key=lambda r: r["cost"])
    saturation, saturation_notes = saturation_findings(saturation_points(deploy, epsilon=epsilon))
    by_bin, note = _by_difficulty(ev, unit, budgets, n_bins, difficulty, seed)
    return Optimization(unit, unit_note, best, choices, efficiency, by_bin, note, frontier, saturation,
                        saturation_notes)


def _efficiency(deploy: Curves, baselines: Sequence[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for base in baselines:
        if base not in set(deploy.strategy):
            continue
        for model in sorted(set(deploy.model)):
            try:
                r = efficiency_ratio(deploy, base, model=model)
            except (DataError, ConfigError) as exc:  # e.g. no cost for the baseline in this unit
                rows.append({"baseline": base, "model": model, "ratio": float("nan"), "reason": str(exc)})
                continue
            rows += [{"baseline": base, "model": model, **row} for row in _rows(r)]
    return rows


def _bins_word(result: Any) -> str:
    return f"{len(result.labels)} bin{'s' if len(result.labels) != 1 else ''}"


def _by_difficulty(ev: Evaluation, unit: str, budgets: Sequence[float] | None, n_bins: int, method: str,
                   seed: int) -> tuple[ByDifficulty | None, str]:
    parts = ev.sample_parts
    if not parts:
        return None, "per-difficulty choice needs runs with samples"
    ids = [tuple(p.arrays.question_ids) for p in parts if p.arrays is not None]
    if len(set(ids)) != 1:
        return None, "per-difficulty choice needs runs on the same questions; these runs differ"
    deploy = [led for p in parts for led in p.ledgers if not is_oracle(led.strategy)]
    if method == "oracle":
        score = np.nanmean(np.stack([pass_rate(p.arrays) for p in parts if p.arrays is not None]), axis=0)
        bins = difficulty_bins(score, n_bins)
        result = optimal_by_bin(deploy, unit, bins, budgets, labels=bin_labels(score, bins),
                                diff_se_for=lambda m: paired_se(ev, m))
        return result, (f"{_bins_word(result)} by the pass rate of all samples (easy = highest); choices and "
                        "accuracies on the same samples (optimistic: see --difficulty heldout)")
    select, held, scores = _heldout_ledgers(ev, deploy, seed)
    bins = difficulty_bins(np.nanmean(np.stack(scores), axis=0), n_bins)
    result = optimal_by_bin(select, unit, bins, budgets, evaluate=held,
                            labels=bin_labels(np.nanmean(np.stack(scores), axis=0), bins))
    return result, (f"{_bins_word(result)} predicted from a held-out half of each question's samples; choices "
                    "made on that half, accuracy measured on the other half (k up to half of N)")


def _heldout_ledgers(ev: Evaluation, deploy: list[StrategyLedger],
                     seed: int) -> tuple[list[StrategyLedger], list[StrategyLedger], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    select: list[StrategyLedger] = []
    held: list[StrategyLedger] = []
    scores = []
    for part in ev.sample_parts:
        arrays = part.arrays
        assert arrays is not None
        sel, evl = heldout_split(arrays, rng)
        spec = CostSpec(model=run_model_name(part.run), rm_model=ev.options.rm_model, prices=ev.options.prices,
                        price_overrides=ev.options.price_overrides)
        mine = [led for led in deploy if led.run_id == arrays.run_id]
        strategies = list(dict.fromkeys(led.strategy for led in mine))
        ks = sorted({int(k) for led in mine for k in led.k})
        n_half = int(min(sel.n_per_question.min(), evl.n_per_question.min()))
        ks = [k for k in ks if k <= n_half] or [1]
        select += build_ledgers(sel, evaluate(sel, strategies, ks, rng=ev.options.seed), spec)
        held += build_ledgers(evl, evaluate(evl, strategies, ks, rng=ev.options.seed), spec)
        scores.append(pass_rate(sel))
    return select, held, scores


__all__ = ["DIFFICULTY_METHODS", "Optimization", "affordable_policy", "choice_label", "deployable", "names_models",
           "optimize", "paired_se", "single_label", "unaffordable_notes", "with_gains", "without_model"]
