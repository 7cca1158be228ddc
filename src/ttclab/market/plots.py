"""Figures of the market (matplotlib, Agg): each saved as PNG and SVG.

- ``inefficiency_vs_beta``: (PoA − 1) × 100 % against β, one panel per varied parameter,
- ``welfare_vs_beta``: optimal, equilibrium and auction welfare against β,
- ``value_curves``: V(θ) = q − p per provider,
- ``dynamics``: Φ and welfare along the path of the dynamics at each configured β,
- ``market_shares``: equilibrium shares (and the outside option) against β.

Money is drawn in the unit of the market's tables (``money``: a factor on USD per query and its name,
:meth:`ttclab.market.api.MarketReport.money_scale`, e.g. ``(1000, "USD per 1,000 queries")``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

PER_QUERY = (1.0, "USD per query")


def beta_label(b: float) -> str:
    """β as the tables title it: 100,000, never 1e+05; a swept β of 1,000 or more to the unit (112,468),
    a smaller one to 4 significant digits (533.7, 0.5)."""
    b = float(b)
    if abs(b) < 1e12 and (abs(b) >= 1e3 or b.is_integer()):
        return f"{b:,.0f}"
    return f"{b:.4g}"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain(x: float) -> str:
    """A config number as written there: 0.00002, not 2e-05."""
    return np.format_float_positional(x, trim="-")


def _save(fig: Any, out: Path, stem: str) -> list[Path]:
    paths = [out / f"{stem}.png", out / f"{stem}.svg"]
    fig.tight_layout()
    fig.savefig(paths[0], dpi=130, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    _plt().close(fig)
    return paths


def inefficiency_vs_beta(rows: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    plt = _plt()
    groups = ["base"] + sorted({r["varied"] for r in rows} - {"base"})
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.4), squeeze=False)
    for ax, g in zip(axes[0], groups):
        sel = [r for r in rows if r["varied"] == g]
        key = {"base": None, "margin": "margin", "alpha": "alpha", "value_curve": "value_curve"}[g]
        labels = sorted({r[key] for r in sel}, key=str) if key else [None]
        for lab in labels:
            pts = [r for r in sel if key is None or r[key] == lab]
            ax.plot([r["beta"] for r in pts], [r["inefficiency_pct"] for r in pts], marker=".", ms=3,
                    label="base" if lab is None else f"{key}={lab}")
        undefined = sum(not math.isfinite(float(r["inefficiency_pct"])) for r in sel)
        why = "equilibrium welfare ≤ 0 or not enumerated; see the welfare table's notes"
        if undefined == len(sel):  # an empty panel says why in its middle
            ax.text(0.5, 0.5, "PoA undefined at every β\n(" + why.replace("; ", ";\n") + ")", transform=ax.transAxes,
                    ha="center", va="center", fontsize=7, color="0.35")
        ax.set_xscale("log")
        betas = [float(r["beta"]) for r in sel]
        if betas and min(betas) > 0:  # every β swept, where the PoA is undefined too (a gap, not a shorter axis)
            ax.set_xlim(min(betas) / 1.5, max(betas) * 1.5)
        if undefined == len(sel):
            ax.set_yticks([])
        ax.set_xlabel("user rationality β" + (f"\n(PoA undefined at {undefined} of {len(sel)} β: "
                                              + why.replace("; ", ";\n") + ")" if 0 < undefined < len(sel) else ""))
        ax.set_ylabel("inefficiency (PoA − 1) %")
        ax.set_title("base parameters" if g == "base" else f"varying {g}")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return _save(fig, out, "inefficiency_vs_beta")


def welfare_vs_beta(rows: Sequence[dict[str, Any]], out: Path, money: tuple[float, str] = PER_QUERY) -> list[Path]:
    plt = _plt()
    base = [r for r in rows if r["varied"] == "base"]
    b = [r["beta"] for r in base]
    f, unit = money
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(b, [r["opt_sw"] * f for r in base], label="optimum SW*")
    ax.plot(b, [r["eq_sw"] * f for r in base], label="equilibrium SW")
    ax.plot(b, [r["auction_sw"] * f for r in base], ls="--", label="auction SW")
    ax.plot(b, [r["wV"] * f for r in base], ls=":", label="user surplus wV (market)")
    ax.set_xscale("log")
    ax.set_xlabel("user rationality β")
    ax.set_ylabel(f"welfare ({unit})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, out, "welfare_vs_beta")


def value_curves(game: Any, out: Path, money: tuple[float, str] = PER_QUERY) -> list[Path]:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    lv = np.asarray(game.levels, dtype=float)
    f, unit = money
    for i, name in enumerate(game.names):
        ax.plot(lv, np.asarray(game.eco.V[i], dtype=float) * f, marker="o", ms=3, label=name)
    if lv.min() > 0 and lv.max() / lv.min() >= 16:
        ax.set_xscale("log", base=2)
    ax.set_xlabel("compute level θ")
    ax.set_ylabel(f"net value V = q − p\n({unit})")
    ax.set_title(f"value curve: {game.params.value_curve}, α = {_plain(game.params.alpha)}")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.grid(alpha=0.3)
    return _save(fig, out, "value_curves")


def dynamics(report: Any, out: Path, money: tuple[float, str] = PER_QUERY) -> list[Path]:
    from matplotlib.ticker import MaxNLocator


    plt = _plt()
    f, unit = money
    k = len(report.analyses)
    fig, axes = plt.subplots(1, k, figsize=(4.2 * k, 3.4), squeeze=False)
    for ax, a in zip(axes[0], report.analyses):
        d = a.dynamics
        x = np.arange(len(d.phi))
        ax.plot(x, d.phi, color="C0", marker=".", ms=3)
        ax.set_xlabel("move")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # moves are counted: no tick at 0.5
        ax.set_ylabel("potential Φ", color="C0")
        ax2 = ax.twinx()
        ax2.plot(x, np.asarray(d.welfare, dtype=float) * f, color="C1")
        ax2.axhline(a.optimum.welfare * f, color="C1", ls="--", lw=0.8)
        ax2.set_ylabel(f"SW, dashed: SW* ({unit})", color="C1")
        ax.set_title(f"β = {beta_label(a.beta)}: {len(d.moves)} moves, {d.rounds} rounds")
    return _save(fig, out, "dynamics")


def market_shares(game: Any, rows: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    plt = _plt()
    base = [r for r in rows if r["varied"] == "base"]
    b = np.array([r["beta"] for r in base])
    S = np.array([r["_shares"] for r in base]).T
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.stackplot(b, *S, np.array([r["outside_share"] for r in base]), labels=[*game.names, "outside option"])
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel("user rationality β")
    ax.set_ylabel("market share at equilibrium")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _save(fig, out, "market_shares")


def all_figures(game: Any, rows: Sequence[dict[str, Any]], report: Any, out: Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    money = report.money_scale()  # the tables' unit
    return [*inefficiency_vs_beta(rows, out), *welfare_vs_beta(rows, out, money), *value_curves(game, out, money),
            *dynamics(report, out, money), *market_shares(game, rows, out)]
