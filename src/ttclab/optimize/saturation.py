"""Saturation of a scaling curve: fit a saturating curve, find where doubling compute stops paying.

Forms (C = cost, c0 = the cheapest observed cost, used as the reference so parameters are unit-free):

* ``power``:    acc(C) = a - b (C / c0)^(-c),  c > 0; a in [0, 1] is the asymptote.
* ``logistic``: acc(C) = a / (1 + exp(-s (ln C - m))), a logistic in log compute with ceiling a.

The saturation budget C* is the smallest budget beyond which doubling compute gains less than
``epsilon`` accuracy: acc(2C) - acc(C) < epsilon for every C >= C*. For the power form
C* = c0 (b (1 - 2^-c) / epsilon)^(1/c); for the logistic it is solved numerically past the inflection.
A curve that never gains epsilon from doubling is saturated at its cheapest point. ``extrapolated``
flags a C* beyond the most expensive observed point.

Degenerate input never yields a silent number: NaN points are dropped (and said so), fewer than
four usable points or a failed fit give NaN parameters with the reason, and a flat curve is reported
as such (b = 0, saturated at the cheapest point).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import OptimizeWarning, brentq, curve_fit

from ttclab.errors import ConfigError, DataError
from ttclab.optimize.curves import Curves

FORMS = ("power", "logistic")
MIN_POINTS = 4


@dataclass(frozen=True)
class SaturationFit:
    """A fitted scaling curve and its saturation budget (NaN with ``reason`` when undefined)."""

    model: str
    strategy: str
    form: str
    params: dict[str, float]
    param_se: dict[str, float]
    rmse: float
    n_points: int
    epsilon: float
    saturation_cost: float
    extrapolated: bool
    cost_range: tuple[float, float]
    reason: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def predict(self, cost: Any) -> np.ndarray:
        """Fitted accuracy at the given cost(s) (NaN when there is no fit)."""
        return _predict(self.form, self.params, np.asarray(cost, dtype=np.float64))


def _power(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.power(x, -c)


def _logistic(log_c: np.ndarray, a: float, s: float, m: float) -> np.ndarray:
    return a / (1.0 + np.exp(-s * (log_c - m)))


def _predict(form: str, params: dict[str, float], cost: np.ndarray) -> np.ndarray:
    if not params or any(not np.isfinite(v) for v in params.values()):
        return np.full(cost.shape, np.nan)
    if form == "power":
        return _power(cost / params["c0"], params["a"], params["b"], params["c"])
    if form == "logistic":
        return _logistic(np.log(cost), params["a"], params["s"], params["m"])
    if form == "flat":
        return np.full(cost.shape, params["a"])
    return np.full(cost.shape, np.nan)


def fit_saturation(
    cost: Any,
    accuracy: Any,
    *,
    form: str = "power",
    epsilon: float = 0.01,
    model: str = "",
    strategy: str = "",
) -> SaturationFit:
    """Fit one scaling curve (points of one model x strategy over k) and find its saturation budget."""
    if form not in FORMS:
        raise ConfigError(f"saturation form must be one of {', '.join(FORMS)}, got {form!r}")
    if not epsilon > 0:
        raise ConfigError(f"epsilon must be > 0 accuracy, got {epsilon!r}")
    cost = np.asarray(cost, dtype=np.float64).ravel()
    acc = np.asarray(accuracy, dtype=np.float64).ravel()
    if cost.shape != acc.shape:
        raise DataError(f"saturation: cost {cost.shape} and accuracy {acc.shape} differ in shape")
    notes: list[str] = []
    usable = np.isfinite(cost) & np.isfinite(acc) & (cost > 0)
    if (~usable).any():
        notes.append(f"dropped {int((~usable).sum())} point(s) with NaN accuracy or a non-positive / NaN cost")
    cost, acc = cost[usable], acc[usable]
    order = np.argsort(cost, kind="stable")
    cost, acc = cost[order], acc[order]
    names = ("a", "b", "c") if form == "power" else ("a", "s", "m")
    cost_range = (float(cost[0]), float(cost[-1])) if cost.size else (math.nan, math.nan)

    def failed(reason: str) -> SaturationFit:
        nan = {n: math.nan for n in names}
        return SaturationFit(model, strategy, form, nan, dict(nan), math.nan, int(cost.size), epsilon, math.nan,
                             False, cost_range, reason, tuple(notes))

    if np.unique(cost).size >= 2 and np.ptp(acc) == 0:
        params = {"a": float(acc[0]), "b": 0.0}
        return SaturationFit(model, strategy, "flat", params, {"a": 0.0, "b": 0.0}, 0.0, int(cost.size), epsilon,
                             float(cost[0]), False, cost_range, "", (*notes, "flat curve: accuracy does not change with compute"))
    if np.unique(cost).size < MIN_POINTS:
        return failed(
            f"need at least {MIN_POINTS} points with distinct positive costs and finite accuracy "
            f"to fit 3 parameters, got {np.unique(cost).size}"
        )

    c0 = float(cost[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OptimizeWarning)
        try:
            if form == "power":
                x = cost / c0
                p0 = (min(float(acc.max()) + 0.01, 1.0), max(float(acc.max() - acc[0]), 1e-3), 0.5)
                popt, pcov = curve_fit(
                    _power, x, acc, p0=p0, bounds=([0.0, -np.inf, 1e-6], [1.0, np.inf, 10.0]), maxfev=20000
                )
            else:
                lc = np.log(cost)
                p0 = (min(float(acc.max()) + 0.01, 1.0), 1.0, float(np.median(lc)))
                popt, pcov = curve_fit(
                    _logistic, lc, acc, p0=p0, bounds=([0.0, 1e-6, -np.inf], [1.0, 100.0, np.inf]), maxfev=20000
                )
        except (RuntimeError, ValueError) as exc:
            return failed(f"curve_fit did not converge ({exc.__class__.__name__}: {str(exc).splitlines()[0][:80]})")
    params = dict(zip(names, map(float, popt)))
    if any(issubclass(w.category, OptimizeWarning) for w in caught) or not np.all(np.isfinite(pcov)):
        notes.append("parameter covariance could not be estimated: standard errors are NaN")
        pcov = np.full((3, 3), np.nan)
    se = np.sqrt(np.clip(np.diag(pcov), 0, None)) if np.all(np.isfinite(pcov)) else np.full(3, np.nan)
    param_se = dict(zip(names, map(float, se)))
    if form == "power":
        params["c0"], param_se["c0"] = c0, 0.0
    rmse = float(np.sqrt(np.mean((_predict(form, params, cost) - acc) ** 2)))
    c_star, why = _saturation_cost(form, params, epsilon, float(cost[0]))
    if why:
        notes.append(why)
    return SaturationFit(
        model,
        strategy,
        form,
        params,
        param_se,
        rmse,
        int(cost.size),
        epsilon,
        c_star,
        bool(c_star > cost[-1]),
        cost_range,
        "",
        tuple(notes),
    )


def _saturation_cost(form: str, params: dict[str, float], epsilon: float, lowest: float) -> tuple[float, str]:
    if form == "power":
        a, b, c, c0 = params["a"], params["b"], params["c"], params["c0"]
        gain_at_c0 = b * (1 - 2.0 ** (-c))  # gain of doubling at C = c0; decreasing in C
        if gain_at_c0 < epsilon:
            return lowest, "doubling gains less than epsilon already at the cheapest point"
        return float(c0 * (gain_at_c0 / epsilon) ** (1.0 / c)), ""
    a, s, m = params["a"], params["s"], params["m"]
    ln2 = math.log(2.0)

    def gain(lc: float) -> float:
        return float(_logistic(np.array(lc + ln2), a, s, m) - _logistic(np.array(lc), a, s, m)) - epsilon

    # the doubling gain peaks at ln C = m - ln2/2 and decreases beyond; search from there (or from the data)
    start = max(m - ln2 / 2, math.log(lowest))
    if gain(start) < 0:
        return lowest, "doubling gains less than epsilon already at the cheapest point"
    hi = start + 1.0
    while gain(hi) >= 0:
        hi = start + 2 * (hi - start)
        if hi - start > 1e4:
            return math.inf, "the fitted curve never saturates within 1e4 e-folds"
    return float(math.exp(brentq(gain, start, hi, xtol=1e-10))), ""


def saturation_points(curves: Curves, *, form: str = "power", epsilon: float = 0.01) -> list[SaturationFit]:
    """:func:`fit_saturation` for every (model, strategy) curve."""
    fits = []
    for model, strategy in curves.groups():
        c = curves.where(model=model, strategy=strategy)
        fits.append(fit_saturation(c.cost, c.accuracy, form=form, epsilon=epsilon, model=model, strategy=strategy))
    return fits


def saturation_table(fits: list[SaturationFit]) -> dict[str, np.ndarray]:
    """One row per fit: model, strategy, form, parameters and their standard errors, rmse, C*, reason."""
    names = (
        "model",
        "strategy",
        "form",
        "a",
        "b_or_s",
        "c_or_m",
        "a_se",
        "b_or_s_se",
        "c_or_m_se",
        "c0",
        "rmse",
        "n_points",
        "epsilon",
        "saturation_cost",
        "extrapolated",
        "reason",
    )
    cols: dict[str, list[Any]] = {n: [] for n in names}
    for f in fits:
        second, third = ("b", "c") if f.form in ("power", "flat") else ("s", "m")
        values = (
            f.model,
            f.strategy,
            f.form,
            f.params.get("a", math.nan),
            f.params.get(second, math.nan),
            f.params.get(third, math.nan),
            f.param_se.get("a", math.nan),
            f.param_se.get(second, math.nan),
            f.param_se.get(third, math.nan),
            f.params.get("c0", math.nan),
            f.rmse,
            f.n_points,
            f.epsilon,
            f.saturation_cost,
            f.extrapolated,
            "; ".join(filter(None, (f.reason, *f.notes))),
        )
        for n, v in zip(names, values):
            cols[n].append(v)
    text = {"model", "strategy", "form", "reason"}
    return {n: np.asarray(v, dtype=object if n in text else None) for n, v in cols.items()}


def saturation_findings(fits: list[SaturationFit]) -> tuple[list[dict[str, Any]], list[str]]:
    """What the fits say, for people: one row per successful fit and one note per model for the rest.

    A row's ``finding`` is the saturation budget only when it lies within the measured budgets;
    a budget beyond them is flagged as an extrapolation (with how far), never stated as a finding.
    Failed fits are summarised in one line per model.
    """
    rows: list[dict[str, Any]] = []
    failed: dict[str, list[tuple[str, str]]] = {}
    for f in fits:
        if f.reason:
            failed.setdefault(f.model, []).append((f.strategy, f.reason))
            continue
        lo, hi = f.cost_range
        if f.form == "flat":
            finding = "flat: accuracy does not change with compute"
        elif not np.isfinite(f.saturation_cost):
            finding = "extrapolated: the fitted curve never saturates"
        elif f.extrapolated:
            ratio = f.saturation_cost / hi
            finding = (
                f"extrapolated: the fit would saturate {ratio:,.0f}x beyond the largest budget measured "
                f"({_num(hi)}); not a finding"
            )
        else:
            finding = f"saturates at {_num(f.saturation_cost)} (measured {_num(lo)}–{_num(hi)})"
        rows.append(
            {
                "model": f.model,
                "strategy": f.strategy,
                "form": f.form,
                "asymptote": f.params.get("a", math.nan),
                "rmse": f.rmse,
                "n_points": f.n_points,
                "saturation_cost": f.saturation_cost if not f.extrapolated else math.nan,
                "within_data": bool(np.isfinite(f.saturation_cost) and not f.extrapolated),
                "finding": finding,
            }
        )
    notes = []
    for model, items in failed.items():
        reasons = list(dict.fromkeys(r for _, r in items))
        notes.append(f"{model}: no saturation fit for {', '.join(s for s, _ in items)} ({'; '.join(reasons)})")
    return rows, notes


def _num(x: float) -> str:
    return f"{x:,.0f}" if 10 <= abs(x) < 1e7 else f"{x:.3g}"
