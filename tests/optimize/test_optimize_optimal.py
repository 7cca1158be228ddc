"""Compute-optimal choice per budget, cost to reach an accuracy, efficiency ratio."""

from __future__ import annotations

import numpy as np
import pytest

from ttclab.errors import ConfigError, DataError
from ttclab.ledger.costs import summarize, to_arrow
from ttclab.optimize.curves import Curves
from ttclab.optimize.optimal import compute_optimal, cost_to_reach, default_budgets, efficiency_ratio


def two_strategies() -> Curves:
    # majority: cheap and saturating; best_of_n: pricier per k, higher ceiling; "tie" equals maj@2 but costs more
    return Curves(
        model=np.array(["m"] * 9, dtype=object),
        strategy=np.array(["majority"] * 4 + ["best_of_n"] * 4 + ["tie"], dtype=object),
        k=np.array([1, 2, 4, 8, 1, 2, 4, 8, 2]),
        accuracy=np.array([0.40, 0.50, 0.55, 0.57, 0.40, 0.52, 0.62, 0.70, 0.50]),
        cost=np.array([1.0, 2.0, 4.0, 8.0, 1.5, 3.0, 6.0, 12.0, 2.5]),
        unit="tokens",
    )


def test_picks_the_most_accurate_affordable_and_cheapest_among_equals():
    table = compute_optimal(two_strategies(), [1.0, 2.6, 3.0, 5.0, 7.0, 100.0])
    assert list(zip(table["strategy"], table["k"])) == [
        ("majority", 1), ("majority", 2), ("best_of_n", 2), ("majority", 4), ("best_of_n", 4), ("best_of_n", 8)]
    np.testing.assert_allclose(table["accuracy"], [0.40, 0.50, 0.52, 0.55, 0.62, 0.70])
    assert all(c <= b for c, b in zip(table["cost"], table["budget"]))
    # equal accuracy 0.40 at k=1: majority costs 1.0 < 1.5
    assert compute_optimal(two_strategies(), [2.0])["strategy"][0] == "majority"


def test_budget_below_every_point_is_nan_with_reason():
    table = compute_optimal(two_strategies(), [0.5, np.nan, np.inf])
    assert np.isnan(table["accuracy"][0]) and "below the cheapest point (1 tokens)" in table["reason"][0]
    assert np.isnan(table["accuracy"][1]) and "not a number" in table["reason"][1]
    assert table["accuracy"][2] == 0.70  # an unlimited budget buys the best point


def test_nan_points_are_never_chosen():
    c = two_strategies()
    acc = c.accuracy.copy()
    acc[7] = np.nan
    table = compute_optimal(Curves(c.model, c.strategy, c.k, acc, c.cost, c.unit), [100.0])
    assert (table["strategy"][0], table["k"][0]) == ("best_of_n", 4)


def test_default_budgets_span_the_points():
    b = default_budgets(two_strategies(), n=5)
    assert b[0] == pytest.approx(1.0) and b[-1] == pytest.approx(12.0) and b.size == 5


def test_cost_to_reach_interpolates_in_log_cost():
    cost = np.array([1.0, 100.0, 50.0])
    acc = np.array([0.5, 0.7, 0.4])
    got = cost_to_reach(cost, acc, [0.3, 0.5, 0.6, 0.7, 0.8])
    np.testing.assert_allclose(got[:4], [1.0, 1.0, 10.0, 100.0])
    assert np.isnan(got[4])


def test_efficiency_ratio_on_constructed_curves():
    base_cost = np.array([1.0, 2.0, 4.0, 8.0])
    acc = np.array([0.5, 0.6, 0.7, 0.8])
    curves = Curves(
        model=np.array(["m"] * 8, dtype=object),
        strategy=np.array(["majority"] * 4 + ["smart"] * 4, dtype=object),
        k=np.array([1, 2, 4, 8] * 2), accuracy=np.concatenate([acc, acc]), cost=np.concatenate([base_cost, base_cost / 4]),
    )
    table = efficiency_ratio(curves, "majority")
    np.testing.assert_allclose(table["target_accuracy"], acc)
    np.testing.assert_allclose(table["ratio"], 4.0)
    assert set(table["optimal_strategy"]) == {"smart"}
    # between points both curves are interpolated in log cost: still 4x
    mid = efficiency_ratio(curves, "majority", targets=[0.65, 0.9])
    assert mid["ratio"][0] == pytest.approx(4.0)
    assert np.isnan(mid["ratio"][1]) and "never reaches" in mid["reason"][1]


def test_efficiency_ratio_against_itself_is_one_and_errors():
    c = two_strategies()
    assert np.all(efficiency_ratio(c.where(strategy="majority"), "majority")["ratio"] == 1.0)
    with pytest.raises(ConfigError, match="baseline strategy 'beam'"):
        efficiency_ratio(c, "beam")
    nan = Curves(c.model, c.strategy, c.k, np.full(9, np.nan), c.cost)
    with pytest.raises(DataError):
        efficiency_ratio(nan, "majority")


def test_curves_from_summary_table(ledger_factory):
    acc = np.array([[0.0, 1.0], [1.0, 1.0]])
    led = ledger_factory("majority", [1, 2], acc, np.array([[10.0, 20.0], [30.0, 60.0]]))
    for table in (summarize([led]), to_arrow(summarize([led]))):
        curves = Curves.from_summary(table, "tokens")
        np.testing.assert_allclose(curves.accuracy, [0.5, 1.0])
        np.testing.assert_allclose(curves.cost, [20.0, 40.0])
        assert list(curves.strategy) == ["majority", "majority"]
    with pytest.raises(ConfigError):
        Curves.from_summary(summarize([led]), "joules")


def test_rounding_noise_is_neither_a_cheaper_strategy_nor_an_unaffordable_budget():
    # majority@1 computed by the vote DP as 0.24999999999999994, majority@2 and first_finish@1 as exactly 0.25
    curves = Curves(
        model=np.array(["m"] * 4, dtype=object),
        strategy=np.array(["majority", "majority", "first_finish", "first_finish"], dtype=object),
        k=np.array([1, 2, 1, 2]),
        accuracy=np.array([0.24999999999999994, 0.25, 0.25, 0.2]),
        cost=np.array([192.4, 384.8, 192.39999999999998, 384.0]),
    )
    table = efficiency_ratio(curves, "majority")
    assert list(table["target_accuracy"]) == [0.25]  # one target, not 0.2499... and 0.25
    assert table["ratio"][0] == pytest.approx(1.0)  # majority@1 reaches it at the same cost: not "2x"
    # a budget at the cheapest point's cost, summed in another order, affords that point
    chosen = compute_optimal(curves, [192.39999999999995])
    assert chosen["reason"][0] == "" and chosen["accuracy"][0] == pytest.approx(0.25)
