"""Pareto frontier properties."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ttclab.optimize.curves import Curves
from ttclab.optimize.pareto import pareto_frontier, pareto_mask


def dominates(cj, aj, ci, ai) -> bool:
    return cj <= ci and aj >= ai and (cj < ci or aj > ai)


points = st.lists(
    st.tuples(st.sampled_from([0.0, 1.0, 2.0, 3.0, 5.0, np.nan]) | st.floats(0, 10),
              st.sampled_from([0.0, 0.5, 1.0, np.nan]) | st.floats(0, 1)),
    min_size=0, max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(points)
def test_frontier_keeps_exactly_the_undominated(pts):
    cost = np.array([p[0] for p in pts], dtype=float)
    acc = np.array([p[1] for p in pts], dtype=float)
    keep = pareto_mask(cost, acc)
    valid = np.isfinite(cost) & np.isfinite(acc)
    assert not keep[~valid].any()  # NaN points are never on the frontier
    for i in np.flatnonzero(keep):  # no kept point is dominated by any point
        assert not any(dominates(cost[j], acc[j], cost[i], acc[i]) for j in np.flatnonzero(valid))
    for i in np.flatnonzero(valid & ~keep):  # every dropped point is dominated by a kept one
        assert any(dominates(cost[j], acc[j], cost[i], acc[i]) for j in np.flatnonzero(keep))


def test_frontier_across_models_and_strategies_sorted_by_cost():
    curves = Curves(
        model=np.array(["a", "a", "b", "b", "b"], dtype=object),
        strategy=np.array(["maj", "maj", "bon", "bon", "bon"], dtype=object),
        k=np.array([1, 2, 1, 2, 4]),
        accuracy=np.array([0.5, 0.6, 0.55, 0.58, 0.7]),
        cost=np.array([1.0, 2.0, 1.5, 3.0, 4.0]),
    )
    front = pareto_frontier(curves)
    assert list(zip(front.model, front.k)) == [("a", 1), ("b", 1), ("a", 2), ("b", 4)]
    assert np.all(np.diff(front.cost) > 0) and np.all(np.diff(front.accuracy) > 0)


def test_duplicates_of_a_frontier_point_are_both_kept():
    keep = pareto_mask(np.array([1.0, 1.0, 2.0]), np.array([0.5, 0.5, 0.4]))
    assert keep.tolist() == [True, True, False]
