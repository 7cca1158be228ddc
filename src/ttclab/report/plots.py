"""Figures of the offline evaluation, from the ledger summary table (one row per model, strategy, k)."""

from __future__ import annotations

from typing import Any

import numpy as np

UNIT_LABELS = {
    "tokens": "tokens per question", "completion_tokens": "completion tokens per question",
    "flops": "FLOPs per question", "usd": "USD per question", "latency": "latency per question (s, parallel)",
    "latency_sequential": "latency per question (s, sequential)", "memory": "memory traffic per question (bytes)",
}


def _figure(width: float = 7.5, height: float = 4.4) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), constrained_layout=True)
    ax.grid(True, alpha=0.25)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _columns(table: Any) -> dict[str, np.ndarray]:
    d = table.to_pydict() if hasattr(table, "to_pydict") else dict(table)
    return {k: np.asarray(v) for k, v in d.items()}


STRATEGY_COLORS = {
    "majority": "#1f77b4", "best_of_n": "#d62728", "weighted_reward": "#ff7f0e", "weighted_confidence": "#9467bd",
    "pass_at_k": "#7f7f7f", "shortest_of_k": "#8c564b", "first_finish": "#e377c2", "esc": "#2ca02c",
    "adaptive_consistency": "#17becf",
}


def scaling_curves(table: Any, cost_column: str, unit: str, model: str | None = None) -> Any:
    """Accuracy vs compute per strategy of one model (all models if None), with the confidence band."""
    cols = _columns(table)
    fig, ax = _figure(8.2, 4.4)
    keys = sorted({(m, s) for m, s in zip(cols["model"], cols["strategy"]) if model is None or m == model})
    many_models = len({m for m, _ in keys}) > 1
    for m, s in keys:
        sel = (cols["model"] == m) & (cols["strategy"] == s)
        x = cols[cost_column][sel].astype(float)
        order = np.argsort(x)
        y = cols["accuracy"][sel].astype(float)[order]
        lo, hi = cols["ci_low"][sel].astype(float)[order], cols["ci_high"][sel].astype(float)[order]
        x = x[order]
        ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
        if not ok.any():
            continue
        oracle = s == "pass_at_k"
        (line,) = ax.plot(x[ok], y[ok], marker="o", ms=3.5, lw=1.6, color=STRATEGY_COLORS.get(s),
                          ls=":" if oracle else "-", label=(f"{m} · {s}" if many_models else s) + (" (oracle)" if oracle else ""))
        band = ok & np.isfinite(lo) & np.isfinite(hi)
        if band.any() and not oracle:
            ax.fill_between(x[band], lo[band], hi[band], color=line.get_color(), alpha=0.08, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel(UNIT_LABELS.get(unit, unit))
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy vs compute" + (f" — {model}" if model else ""))
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


def pareto_plot(table: Any, cost_column: str, unit: str, frontier_mask: np.ndarray) -> Any:
    """Every (model, strategy, k) point, with the accuracy-vs-cost Pareto frontier drawn through."""
    cols = _columns(table)
    fig, ax = _figure()
    x = cols[cost_column].astype(float)
    y = cols["accuracy"].astype(float)
    labels = np.array([f"{m} · {s}" for m, s in zip(cols["model"], cols["strategy"])])
    models = sorted(set(cols["model"]))
    markers = "osD^vP*X"
    for lab in sorted(set(labels)):
        sel = (labels == lab) & np.isfinite(x) & np.isfinite(y) & (x > 0)
        m, s = lab.split(" · ", 1)
        ax.scatter(x[sel], y[sel], s=18, alpha=0.7, label=lab, color=STRATEGY_COLORS.get(s),
                   marker=markers[models.index(m) % len(markers)])
    f = frontier_mask & np.isfinite(x) & (x > 0)
    order = np.argsort(x[f])
    ax.step(x[f][order], y[f][order], where="post", color="black", lw=1.4, label="Pareto frontier")
    ax.set_xscale("log")
    ax.set_xlabel(UNIT_LABELS.get(unit, unit))
    ax.set_ylabel("accuracy")
    ax.set_title("Pareto frontier across models × strategies × k")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


def difficulty_plot(rows: list[dict[str, Any]]) -> Any:
    """Accuracy of the compute-optimal choice per difficulty bin at each budget."""
    fig, ax = _figure()
    bins = sorted({r["bin"] for r in rows if r["bin"] >= 0})
    for b in bins:
        pts = sorted((r["budget"], r["accuracy"]) for r in rows if r["bin"] == b and np.isfinite(r["accuracy"]))
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, label=f"bin {b}")
    ax.set_xscale("log")
    ax.set_xlabel("budget per question")
    ax.set_ylabel("accuracy of the compute-optimal choice")
    ax.set_title("Compute-optimal accuracy per difficulty bin (0 = hardest)")
    ax.legend(fontsize=8)
    return fig
