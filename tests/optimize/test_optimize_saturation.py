"""Saturating-curve fits recover known parameters; degenerate curves say why."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ttclab.errors import ConfigError, DataError
from ttclab.optimize.curves import Curves
from ttclab.optimize.saturation import fit_saturation, saturation_points, saturation_table

COST = 1e9 * 2.0 ** np.arange(10)  # FLOPs-like magnitudes


def test_power_fit_recovers_parameters_and_saturation_budget():
    a, b, c = 0.8, 0.4, 0.7
    acc = a - b * (COST / COST[0]) ** -c
    fit = fit_saturation(COST, acc, form="power", epsilon=0.005)
    assert fit.reason == "" and fit.form == "power"
    assert fit.params["a"] == pytest.approx(a, abs=1e-4)
    assert fit.params["b"] == pytest.approx(b, abs=1e-4)
    assert fit.params["c"] == pytest.approx(c, abs=1e-4)
    assert fit.rmse < 1e-6
    want = COST[0] * (b * (1 - 2 ** -c) / 0.005) ** (1 / c)
    assert fit.saturation_cost == pytest.approx(want, rel=1e-3)
    # at C*, doubling gains exactly epsilon
    gain = fit.predict(2 * fit.saturation_cost) - fit.predict(fit.saturation_cost)
    assert gain == pytest.approx(0.005, rel=1e-3)
    assert fit.extrapolated == (want > COST[-1])


def test_power_fit_with_noise_reports_its_error():
    rng = np.random.default_rng(7)
    acc = 0.9 - 0.5 * (COST / COST[0]) ** -0.5 + rng.normal(0, 0.005, COST.size)
    fit = fit_saturation(COST, acc)
    assert fit.params["a"] == pytest.approx(0.9, abs=0.03)
    assert 0.001 < fit.rmse < 0.01
    assert all(np.isfinite(v) for v in fit.param_se.values())


def test_logistic_fit_recovers_parameters():
    a, s, m = 0.75, 1.3, math.log(COST[3])
    acc = a / (1 + np.exp(-s * (np.log(COST) - m)))
    fit = fit_saturation(COST, acc, form="logistic", epsilon=0.01)
    assert fit.params["a"] == pytest.approx(a, abs=1e-4)
    assert fit.params["s"] == pytest.approx(s, abs=1e-3)
    assert fit.params["m"] == pytest.approx(m, abs=1e-3)
    c_star = fit.saturation_cost
    gain = fit.predict(2 * c_star) - fit.predict(c_star)
    assert gain == pytest.approx(0.01, rel=1e-4)
    assert fit.predict(4 * c_star) - fit.predict(2 * c_star) < 0.01  # and it keeps falling


def test_flat_curve_is_saturated_at_the_cheapest_point():
    fit = fit_saturation(COST, np.full(COST.size, 0.3))
    assert fit.form == "flat" and fit.params["b"] == 0 and fit.saturation_cost == COST[0]
    assert any("flat" in n for n in fit.notes)


def test_curve_that_never_gains_epsilon():
    acc = 0.5 - 0.001 * (COST / COST[0]) ** -0.5
    fit = fit_saturation(COST, acc, epsilon=0.01)
    assert fit.saturation_cost == COST[0] and any("already" in n for n in fit.notes)


@pytest.mark.parametrize("cost, acc, words", [
    ([1.0], [0.5], "at least 4"),
    ([1.0, 2.0, 4.0, 8.0], [0.5, np.nan, 0.6, 0.7], "at least 4"),
    ([], [], "at least 4"),
])
def test_too_few_points_is_nan_with_reason(cost, acc, words):
    fit = fit_saturation(cost, acc)
    assert np.isnan(fit.saturation_cost) and np.isnan(fit.params["a"]) and words in fit.reason


def test_nan_points_are_dropped_and_said_so():
    acc = 0.8 - 0.4 * (COST / COST[0]) ** -0.7
    acc[2] = np.nan
    fit = fit_saturation(COST, acc)
    assert fit.n_points == COST.size - 1 and fit.params["c"] == pytest.approx(0.7, abs=1e-3)
    assert any("dropped 1 point" in n for n in fit.notes)


def test_bad_arguments():
    with pytest.raises(ConfigError):
        fit_saturation(COST, COST, form="cubic")
    with pytest.raises(ConfigError):
        fit_saturation(COST, COST, epsilon=0)
    with pytest.raises(DataError):
        fit_saturation(COST, COST[:3])


def test_saturation_points_per_curve_and_table():
    acc1 = 0.8 - 0.4 * (COST / COST[0]) ** -0.7
    curves = Curves.from_points(np.concatenate([acc1, [0.2, 0.2]]), np.concatenate([COST, COST[:2]]),
                                strategy=np.array(["maj"] * COST.size + ["flat", "flat"], dtype=object))
    fits = saturation_points(curves, epsilon=0.01)
    assert [f.strategy for f in fits] == ["maj", "flat"]
    table = saturation_table(fits)
    assert table["form"].tolist() == ["power", "flat"]
    assert table["c_or_m"][0] == pytest.approx(0.7, abs=1e-4) and "flat" in table["reason"][1]
