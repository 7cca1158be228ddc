"""Report figures stay readable when a store holds many runs (one per pipeline, long labels)."""

from __future__ import annotations

import io
import warnings

import numpy as np

from ttclab.report import plots


def _table(models: list[str], strategies: list[str]) -> dict[str, list]:
    rng = np.random.default_rng(0)
    cols: dict[str, list] = {"model": [], "strategy": [], "k": [], "total_tokens": [], "accuracy": [],
                             "ci_low": [], "ci_high": []}
    for m in models:
        for s in strategies:
            for k in (1, 2, 4):
                acc = float(rng.uniform(0.2, 0.8))
                cols["model"].append(m)
                cols["strategy"].append(s)
                cols["k"].append(k)
                cols["total_tokens"].append(100.0 * k * (1 + rng.uniform()))
                cols["accuracy"].append(acc)
                cols["ci_low"].append(acc - 0.1)
                cols["ci_high"].append(acc + 0.1)
    return cols


def test_overview_with_many_long_labels_grows_instead_of_collapsing():
    """19 pipeline runs + 20 strategies: matplotlib warned 'constrained_layout not applied because axes sizes
    collapsed to zero' and drew the chart as a sliver; the legend now takes fewer columns and the figure
    grows by its extra rows, keeping the axes as tall as with a short legend."""
    few = plots.overview(_table(["smollm2-135m"], ["majority", "pass_at_k"]), "total_tokens", "total_tokens")
    names = [f"pipeline-number-{i} (smollm2-135m)" for i in range(19)]
    many = plots.overview(_table(names, [f"strategy-{i}" for i in range(20)]), "total_tokens", "total_tokens")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the collapse is a UserWarning
        for fig in (few, many):
            fig.savefig(io.BytesIO(), format="png", dpi=50)
    axes_in = [fig.axes[0].get_position().height * fig.get_figheight() for fig in (few, many)]
    assert many.get_figheight() > few.get_figheight()
    assert axes_in[1] > 0.8 * axes_in[0] > 0, axes_in
    legend = many.axes[0].get_legend()
    assert legend.get_window_extent().width <= many.get_figwidth() * many.dpi  # within the figure's width
