"""Figures of the offline evaluation (matplotlib, Agg), from the ledger summary and the optimizer's rows.

* :func:`overview` -- every run on one accuracy-vs-compute chart: one colour per model, one marker and
  line style per strategy, light error bars, the compute-optimal frontier drawn over them, k at the points;
  a pipeline run is a point in its base model's colour with a marker of its own (:data:`PIPELINE_MARKERS`);
* :func:`choice_plot` -- the compute-optimal choice per budget with its interval;

Every figure draws a run with the one assignment of :func:`run_styles` (a model's colour, a strategy's or
pipeline's marker), so a run looks the same in all of them.
* :func:`difficulty_heatmap` -- difficulty x budget -> best strategy and its gain over one sample;
* :func:`pareto_plot` -- the Pareto frontier with k labels and error bars.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ttclab.optimize.optimal import is_pipeline_point

UNIT_LABELS = {
    "total_tokens": "total tokens per question (prompt + completion + reward model)",
    "tokens": "total tokens per question (prompt + completion + reward model)",
    "completion_tokens": "completion tokens per question", "prompt_tokens": "prompt tokens per question",
    "flops": "FLOPs per question", "usd": "USD per question", "latency": "latency per question (s, parallel)",
    "latency_parallel": "latency per question (s, parallel)",
    "latency_sequential": "latency per question (s, sequential)", "memory": "memory traffic per question (bytes)",
}

MODEL_COLORS = ("#1f5fa8", "#d2581e", "#2e8b3a", "#8e44ad", "#b8860b", "#c0392b", "#16a085", "#555555",
                # models 9-16: hues and lightnesses apart from the first 8 (pink, cyan, brown, lime, navy,
                # lavender, amber, wine); beyond, :func:`model_color` spreads hues by the golden angle
                "#e377c2", "#17becf", "#8c564b", "#9bbb1f", "#0b2a6f", "#b59bd6", "#f2b134", "#7f0f3f")

STRATEGY_STYLES: dict[str, tuple[str, Any]] = {  # marker, line style (a name or a dash pattern)
    "majority": ("o", "-"), "esc": ("s", "--"), "adaptive_consistency": ("D", "-."),
    "weighted_confidence": ("^", ":"), "weighted_reward": ("v", (0, (5, 1.5, 1, 1.5))),
    "best_of_n": ("P", (0, (3, 1, 1, 1, 1, 1))), "shortest_of_k": ("X", (0, (1, 1))),
    "first_finish": ("*", (0, (4, 2))), "pass_at_k": (".", (0, (1, 2.5))),
}
_EXTRA_MARKERS = "hp<>d8"

#: Markers of pipeline runs (one point each) in order of appearance, (marker, hollow): shapes no offline
#: strategy uses, then hollow, then line markers -- 20 pipelines of one model apart before one repeats.
PIPELINE_MARKERS: tuple[tuple[str, bool], ...] = (
    *((m, False) for m in "<>d+xph"), *((m, True) for m in "<>dph"), *((m, False) for m in "1234"),
    ("8", False), ("8", True), ("H", False), ("H", True))


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
                         "svg.fonttype": "none", "axes.titleweight": "bold"})
    return plt


#: Legend rows below the axes that the figure sizes leave room for; each further row adds LEGEND_ROW_IN inches.
LEGEND_ROWS, LEGEND_ROW_IN = 3, 0.2
#: Width of a legend label's character at the legend's font size, and of its handle and padding (inches).
LEGEND_CHAR_IN, LEGEND_HANDLE_IN = 0.065, 0.75


def _figure(width: float = 8.0, height: float = 4.6) -> tuple[Any, Any]:
    fig, ax = _plt().subplots(figsize=(width, height), constrained_layout=True)
    ax.grid(True, which="major", alpha=0.28)
    ax.grid(True, which="minor", alpha=0.08)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _columns(table: Any) -> dict[str, np.ndarray]:
    d = table.to_pydict() if hasattr(table, "to_pydict") else dict(table)
    return {k: np.asarray(v) for k, v in d.items()}


def style(strategy: str) -> tuple[str, Any]:
    if strategy in STRATEGY_STYLES:
        return STRATEGY_STYLES[strategy]
    return _EXTRA_MARKERS[sum(map(ord, strategy)) % len(_EXTRA_MARKERS)], "-"


def model_color(i: int) -> str:
    """The colour of the ``i``-th model: :data:`MODEL_COLORS`, then hues spread by the golden angle (never
    a colour twice)."""
    if i < len(MODEL_COLORS):
        return MODEL_COLORS[i]
    import colorsys

    hue = (0.11 + (i - len(MODEL_COLORS)) * 0.381966) % 1.0
    light = (0.38, 0.55)[(i - len(MODEL_COLORS)) % 2]
    return "#" + "".join(f"{round(255 * v):02x}" for v in colorsys.hls_to_rgb(hue, light, 0.7))


@dataclass(frozen=True)
class RunStyles:
    """How every figure draws a run: its (base) model's colour, its strategy's marker and line, or its
    pipeline's marker. Made once per report by :func:`run_styles`, so a run looks the same everywhere."""

    model_colors: dict[str, str]  # each model (the colour legend), in order of appearance
    colors: dict[str, str]  # each run label: a pipeline run's is its base model's
    pipelines: dict[str, tuple[str, bool]]  # each pipeline (the strategy of a pipeline run): marker, hollow
    strategies: list[str]  # the offline strategies, in order of appearance
    bases: Mapping[str, str]  # pipeline run label -> its base model

    def color(self, model: Any) -> str:
        return self.colors.get(str(model), "#444444")

    def point(self, model: Any, strategy: Any, ms: float = 6.0) -> dict[str, Any]:
        """Line2D keywords of one point of ``(model, strategy)``: a pipeline run's own marker (filled,
        hollow or a line marker) or the strategy's marker, in the model's colour."""
        color = self.color(model)
        if str(model) in self.bases and str(strategy) in self.pipelines:
            return {"ms": ms, **_marker(*self.pipelines[str(strategy)], color)}
        return {"ms": ms, "marker": style(str(strategy))[0], "ls": "none", "color": color, "mfc": color, "mec": color,
                "mew": 1.3}


def run_styles(models: Any, strategies: Any, bases: Mapping[str, str] | None = None) -> RunStyles:
    """The one colour / marker assignment of a report's runs, from its table's ``model`` and ``strategy``
    columns (a row per point): a colour per model, a pipeline run (a label in ``bases``, mapped to its base
    model) in its base model's colour with a marker of its own, in order of appearance."""
    bases = dict(bases or {})
    labels = list(dict.fromkeys(str(m) for m in models))
    colors = {m: model_color(i) for i, m in enumerate(dict.fromkeys(bases.get(m, m) for m in labels))}
    names = dict.fromkeys(str(s) for m, s in zip(models, strategies) if str(m) in bases)
    offline = dict.fromkeys(str(s) for m, s in zip(models, strategies) if str(m) not in bases)
    return RunStyles(colors, {m: colors[bases.get(m, m)] for m in labels},
                     {s: PIPELINE_MARKERS[i % len(PIPELINE_MARKERS)] for i, s in enumerate(names)}, list(offline), bases)


def _marker(marker: str, hollow: bool, color: Any) -> dict[str, Any]:
    """Line2D keywords of a pipeline's point: filled in ``color``, or white inside, or a line marker."""
    return {"marker": marker, "ls": "none", "color": color, "mfc": "white" if hollow else color, "mec": color,
            "mew": 1.3}


def si(value: float, unit: str = "") -> str:
    """A compact tick label: 1.5k, 20M, 3G; dollars as $0.002; seconds as 0.5 s."""
    if not np.isfinite(value):
        return ""
    if unit == "usd":
        return f"${value:.3g}" if value < 1000 else f"${value / 1000:.3g}k"
    suffix = " s" if unit.startswith("latency") else ""
    for factor, name in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{name}{suffix}"
    return f"{value:.3g}{suffix}"


def budget_axis(ax: Any, unit: str, axis: str = "x") -> None:
    """A log axis with readable ticks at 1, 2, 5 x 10^n and compact labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    lo, hi = (ax.get_xlim() if axis == "x" else ax.get_ylim())
    decades = math.log10(hi / lo) if lo > 0 and hi > lo else 1.0
    subs = (1.0, 2.0, 3.0, 5.0) if decades <= 1.5 else (1.0, 2.0, 5.0) if decades <= 4 else (1.0,)
    target.set_major_locator(LogLocator(base=10, subs=subs))
    target.set_major_formatter(FuncFormatter(lambda v, _: si(v, unit)))
    target.set_minor_formatter(NullFormatter())
    (ax.set_xlabel if axis == "x" else ax.set_ylabel)(UNIT_LABELS.get(unit, unit))


def _legends(ax: Any, models: Sequence[str], colors: dict[str, str], strategies: Sequence[str],
             extra: Sequence[Any] = (), pipelines: Mapping[str, tuple[str, bool]] | None = None) -> None:
    """Legends below the axes: models by colour, strategies by marker and line, pipelines (each once,
    whatever model it ran on) by marker."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[m], lw=3, label=m) for m in models] if len(models) > 1 else []
    handles += [Line2D([], [], color="#444", marker=style(s)[0], ls=style(s)[1], lw=1.3, ms=5, label=s)
                for s in strategies]
    handles += [Line2D([], [], ms=5.5, label=s, **_marker(*look, "#444")) for s, look in (pipelines or {}).items()]
    handles += list(extra)
    # as many columns as the longest label leaves room for (long pipeline labels in 4 columns are wider
    # than the figure), and the figure grows for rows beyond LEGEND_ROWS
    longest = max((len(str(h.get_label())) for h in handles), default=1)
    fits = int(ax.figure.get_figwidth() // (LEGEND_CHAR_IN * longest + LEGEND_HANDLE_IN))
    ncol = min(4, max(1, len(handles)), max(1, fits))
    rows = math.ceil(len(handles) / ncol)
    if rows > LEGEND_ROWS:  # many runs (one per pipeline): the figure grows, not the axes collapse to nothing
        ax.figure.set_figheight(ax.figure.get_figheight() + LEGEND_ROW_IN * (rows - LEGEND_ROWS))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=ncol,
              frameon=False, handlelength=3.2)


def overview(table: Any, cost_column: str, unit: str, frontier: Sequence[dict[str, Any]] = (),
             oracle: Sequence[str] = ("pass_at_k",), bases: Mapping[str, str] | None = None,
             styles: RunStyles | None = None) -> Any:
    """Every (model, strategy) curve on one chart, with the compute-optimal frontier over them; a pipeline
    run (a model label in ``bases``, mapped to its base model) is drawn in its base model's colour
    (``styles``: the report's :func:`run_styles`, by default this table's)."""
    from matplotlib.lines import Line2D

    cols = _columns(table)
    fig, ax = _figure(8.6, 5.4)
    styles = styles or run_styles(cols["model"], cols["strategy"], bases)
    bases = styles.bases
    models = list(dict.fromkeys(str(m) for m in cols["model"]))
    pipelines, strategies, colors = styles.pipelines, styles.strategies, styles.colors
    for m in models:
        for s in (strategies if m not in bases else pipelines):
            sel = (cols["model"] == m) & (cols["strategy"] == s)
            x = cols[cost_column][sel].astype(float)
            y = cols["accuracy"][sel].astype(float)
            ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
            if not ok.any():
                continue
            order = np.argsort(x[ok])
            x, y = x[ok][order], y[ok][order]
            lo = cols["ci_low"][sel].astype(float)[ok][order]
            hi = cols["ci_high"][sel].astype(float)[ok][order]
            k = cols["k"][sel][ok][order]
            marker, ls = style(s)
            faint = s in oracle
            if m in bases:  # a pipeline run: its point, in its base model's colour
                ax.plot(x, y, ms=6, alpha=0.45 if faint else 0.9, zorder=2, **_marker(*pipelines[s], colors[m]))
            else:
                ax.plot(x, y, marker=marker, ls=ls, lw=1.1 if faint else 1.5, ms=4.5, color=colors[m],
                        alpha=0.45 if faint else 0.9, zorder=2)
            if not faint:
                band = np.isfinite(lo) & np.isfinite(hi)
                ax.errorbar(x[band], y[band], yerr=_yerr(y[band], lo[band], hi[band]), fmt="none",
                            ecolor=colors[m], alpha=0.25, lw=0.9, capsize=0, zorder=1)
            if m not in bases and (s == "majority" or (s not in oracle and "majority" not in strategies
                                                       and strategies[:1] == [s])):
                for xi, yi, ki in zip(x, y, k):
                    ax.annotate(f"k={int(ki)}", (xi, yi), textcoords="offset points", xytext=(3, -10), fontsize=6.5,
                                color=colors[m], alpha=0.9)
    extra = []
    if frontier:
        fx = np.array([r["cost"] for r in frontier], dtype=float)
        fy = np.array([r["accuracy"] for r in frontier], dtype=float)
        ax.step(*frontier_steps(fx, fy, _max_cost(cols[cost_column])), where="post", color="black", lw=2.2,
                alpha=0.55, zorder=3)
        ax.scatter(fx, fy, s=46, facecolors="none", edgecolors="black", lw=1.1, zorder=4)
        extra.append(Line2D([], [], color="black", lw=2.2, alpha=0.55, marker="o", mfc="none",
                            label="compute-optimal frontier"))
    budget_axis(ax, unit)
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy vs compute: every model and strategy")
    _legends(ax, list(styles.model_colors), styles.model_colors, strategies, extra, pipelines)
    return fig


def _max_cost(costs: Any) -> float:
    x = np.asarray(costs, dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    return float(x.max()) if x.size else float("nan")


def frontier_steps(cost: np.ndarray, accuracy: np.ndarray, until: float) -> tuple[np.ndarray, np.ndarray]:
    """The compute-optimal frontier as a step line: the best accuracy affordable at each budget, from the
    cheapest frontier point on and flat after the last one up to ``until`` (the largest cost drawn), so a
    frontier of one point -- nothing costlier is more accurate -- is a line too."""
    order = np.argsort(cost, kind="stable")
    x, y = cost[order], accuracy[order]
    if x.size and np.isfinite(until) and until > x[-1]:
        x, y = np.append(x, until), np.append(y, y[-1])
    return x, y


def choice_plot(best: Sequence[dict[str, Any]], unit: str, styles: RunStyles | None = None) -> Any:
    """Budget -> the compute-optimal choice's accuracy with its interval; each choice drawn as every figure
    draws its run (``styles``: the report's :func:`run_styles`; by default one from these rows), k above each
    point, a dashed ring where other strategies are within error."""
    from matplotlib.lines import Line2D

    fig, ax = _figure(8.6, 4.6)
    rows = [r for r in best if not r.get("reason")]
    if not rows:
        ax.text(0.5, 0.5, "no budget affords any strategy", ha="center", transform=ax.transAxes)
        return fig
    styles = styles or run_styles([r["model"] for r in rows], [r["strategy"] for r in rows])
    many = len({r["model"] for r in rows}) > 1
    names = list(dict.fromkeys((r["model"], r["strategy"]) for r in rows))
    x = np.array([r["budget"] for r in rows], dtype=float)
    y = np.array([r["accuracy"] for r in rows], dtype=float)
    lo = np.array([r["ci_low"] for r in rows], dtype=float)
    hi = np.array([r["ci_high"] for r in rows], dtype=float)
    ax.step(x, y, where="post", color="#aaa", lw=1, zorder=1)
    for i, r in enumerate(rows):
        c = styles.color(r["model"])
        if np.isfinite(lo[i]) and np.isfinite(hi[i]):
            ax.errorbar([x[i]], [y[i]], yerr=_yerr(y[i:i + 1], lo[i:i + 1], hi[i:i + 1]), fmt="none", ecolor=c, alpha=0.55,
                        lw=1.2, capsize=3, zorder=2)
        ax.plot([x[i]], [y[i]], zorder=3, **styles.point(r["model"], r["strategy"], ms=7))
        if r.get("ties"):  # a ring, not a hollow marker: a pipeline's own marker may be hollow
            ax.scatter([x[i]], [y[i]], s=200, facecolors="none", edgecolors="#666", linestyles=(0, (2, 1.5)), lw=1,
                       zorder=3)
        ax.annotate(f"k={r['k']}", (x[i], hi[i] if np.isfinite(hi[i]) else y[i]), textcoords="offset points",
                    xytext=(0, 4), ha="center", fontsize=6.5, color="#333")
    budget_axis(ax, unit)
    ax.set_ylabel("accuracy of the choice (95% interval)")
    top = np.nanmax(np.where(np.isfinite(hi), hi, y))
    bottom = np.nanmin(np.where(np.isfinite(lo), lo, y))
    ax.set_ylim(max(0.0, bottom - 0.04), min(1.02, top + 0.06))
    ax.set_title("Compute-optimal choice per budget")
    handles = [Line2D([], [], label=point_label(m, s, many=many), **styles.point(m, s)) for m, s in names]
    if any(r.get("ties") for r in rows):
        handles.append(Line2D([], [], ls="none", marker="o", mfc="none", mec="#666", ms=11,
                              label="ringed: another strategy is within error"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(3, len(handles)), frameon=False)
    return fig


def difficulty_heatmap(rows: Sequence[dict[str, Any]], unit: str) -> Any:
    """Difficulty (rows, easy on top) x budget (columns): the best strategy@k (and its model, in full,
    when several models compete) and its gain over one sample; "—" where nothing fits the budget.

    Sized for the report's page (at most :data:`PAGE_WIDTH_IN` wide, so the SVG is shown at its own size
    and the cell text at :data:`CELL_FONT` points): a name wider than its cell wraps (at hyphens)."""
    import textwrap

    plt = _plt()
    bins = sorted({(r["bin"], r["difficulty"]) for r in rows})
    budgets = sorted({r["budget"] for r in rows})
    many = len({r["model"] for r in rows if r.get("model")}) > 1  # name the model in each cell
    gain = np.full((len(bins), len(budgets)), np.nan)
    cells: list[list[list[str]]] = [[[] for _ in budgets] for _ in bins]
    ylabels = [label.replace(" (", "\n(", 1) for _, label in bins]  # "easy\n(pass rate 0.56–0.88)"
    label_in = max((len(line) for y in ylabels for line in y.split("\n")), default=4) * 0.075 + 0.3
    cell_in = max(0.62, min(1.2, (PAGE_WIDTH_IN - label_in - 1.0) / max(1, len(budgets))))
    chars = max(6, int(cell_in * 72 / (0.6 * CELL_FONT)))  # what fits a cell's width at CELL_FONT
    for r in rows:
        i = [b for b, _ in bins].index(r["bin"])
        j = budgets.index(r["budget"])
        if r.get("reason") or not r.get("strategy"):
            cells[i][j] = ["—"]
            continue
        gain[i, j] = g = r["gain"]
        lines = [f"{_short(r['strategy'])}@{r['k']}"]
        if is_pipeline_point(r["model"], r["strategy"]):  # the pipeline's label names it (and its model)
            lines = textwrap.wrap(str(r["model"]), chars, break_on_hyphens=True) or [str(r["model"])]
        elif many:
            lines += textwrap.wrap(str(r["model"]), chars, break_on_hyphens=True) or [str(r["model"])]
        cells[i][j] = lines + ([f"{'+' if g >= 0 else ''}{g:.2f}"] if np.isfinite(g) else [])
    height_lines = max((len(c) for row in cells for c in row), default=1)
    row_in = max(0.55, 0.2 + height_lines * CELL_FONT * 1.25 / 72)
    fig, ax = plt.subplots(figsize=(label_in + 1.0 + cell_in * len(budgets), 1.5 + row_in * len(bins)),
                           constrained_layout=True)
    lim = max(0.05, float(np.nanmax(np.abs(gain))) if np.isfinite(gain).any() else 0.05)
    im = ax.imshow(gain, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
    for i in range(len(bins)):
        for j in range(len(budgets)):
            dark = np.isfinite(gain[i, j]) and abs(gain[i, j]) > 0.6 * lim  # the ends of RdYlGn are dark
            ax.text(j, i, "\n".join(cells[i][j]), ha="center", va="center", fontsize=CELL_FONT, linespacing=1.15,
                    color="white" if dark else "#111")
    ax.set_yticks(range(len(bins)), ylabels)
    ax.set_xticks(range(len(budgets)), [si(b, unit) for b in budgets], rotation=0)
    ax.set_xlabel(f"budget: {UNIT_LABELS.get(unit, unit)}")
    ax.set_title("Best strategy per difficulty and budget, and its accuracy gain over one sample")
    fig.colorbar(im, ax=ax, shrink=0.9, pad=0.01, label="gain over one sample")
    names = sorted({r["strategy"] for r in rows if r.get("strategy")})
    fig.text(0.01, -0.02, "  ".join(f"{_short(n)} = {n}" for n in names if _short(n) != n), fontsize=8, color="#555",
             ha="left", va="top")
    return fig


PAGE_WIDTH_IN = 11.4
"""Widest figure shown at its own size in the report (its page is 1,120 px wide: 11.67 in at 96 px/in)."""
CELL_FONT = 8.5
"""Points of the heatmap's cell text."""


SHORT_NAMES = {"majority": "maj", "adaptive_consistency": "adapt", "weighted_confidence": "w-conf",
               "weighted_reward": "w-rm", "shortest_of_k": "short", "first_finish": "first", "best_of_n": "BoN",
               "pass_at_k": "pass"}


def _short(strategy: str) -> str:
    return SHORT_NAMES.get(strategy, strategy)


def point_label(model: Any, strategy: Any, k: Any = None, many: bool = True) -> str:
    """'majority@4' or 'majority@4 (model)'; a pipeline run is named by its own label alone ('aggregate-vote
    (smollm2-135m)', not 'aggregate-vote@1 (aggregate-vote (smollm2-135m))')."""
    if is_pipeline_point(model, strategy):
        return str(model) + (" (oracle)" if str(strategy).endswith(" (oracle)") else "")
    name = f"{strategy}@{k}" if k is not None else str(strategy)
    return f"{name} ({model})" if many else name


def pareto_plot(table: Any, cost_column: str, unit: str, frontier: Sequence[dict[str, Any]],
                oracle: Sequence[str] = ("pass_at_k",), bases: Mapping[str, str] | None = None,
                styles: RunStyles | None = None) -> Any:
    """Every deployable (model, strategy, k) point, the Pareto frontier with error bars and k labels; a
    pipeline run in its base model's colour (``bases`` and ``styles`` as for :func:`overview`)."""
    cols = _columns(table)
    fig, ax = _figure(8.6, 5.0)
    styles = styles or run_styles(cols["model"], cols["strategy"], bases)  # as on the overview, oracles included
    bases = styles.bases
    models = list(dict.fromkeys(str(m) for m in cols["model"]))
    pipelines = {s: look for s, look in styles.pipelines.items() if s not in oracle}
    strategies = [s for s in styles.strategies if s not in oracle]
    colors = styles.colors
    x = cols[cost_column].astype(float)
    y = cols["accuracy"].astype(float)
    for m in models:
        for s in (strategies if m not in bases else pipelines):
            sel = (cols["model"] == m) & (cols["strategy"] == s) & np.isfinite(x) & np.isfinite(y) & (x > 0)
            if not sel.any():
                continue
            if m in bases:
                ax.plot(x[sel], y[sel], ms=5, alpha=0.6, **_marker(*pipelines[s], colors[m]))
            else:
                ax.scatter(x[sel], y[sel], s=20, alpha=0.45, color=colors[m], marker=style(s)[0], lw=0)
    if frontier:
        fx = np.array([r["cost"] for r in frontier], dtype=float)
        fy = np.array([r["accuracy"] for r in frontier], dtype=float)
        lo = np.array([r.get("ci_low", np.nan) for r in frontier], dtype=float)
        hi = np.array([r.get("ci_high", np.nan) for r in frontier], dtype=float)
        ax.step(*frontier_steps(fx, fy, _max_cost(x[np.array([s not in oracle for s in cols["strategy"]], dtype=bool)])),
                where="post", color="black", lw=1.5, zorder=3)
        band = np.isfinite(lo) & np.isfinite(hi)
        ax.errorbar(fx[band], fy[band], yerr=_yerr(fy[band], lo[band], hi[band]), fmt="none", ecolor="black",
                    alpha=0.5, lw=1, capsize=3, zorder=3)
        for r in frontier:
            m, s = str(r["model"]), str(r["strategy"])
            if s in pipelines and m in bases:  # its own marker, circled in black
                ax.plot([r["cost"]], [r["accuracy"]], ms=7.5, zorder=4, **_marker(*pipelines[s], colors[m]))
                ax.scatter([r["cost"]], [r["accuracy"]], s=110, facecolors="none", edgecolors="black", lw=0.9, zorder=4)
            else:
                ax.scatter([r["cost"]], [r["accuracy"]], s=44, color=colors[m], marker=style(s)[0],
                           edgecolors="black", lw=0.8, zorder=4)
            label = point_label(r["model"], r["strategy"], r["k"], len(models) > 1)
            ax.annotate(label, (r["cost"], r["accuracy"]), textcoords="offset points", xytext=(4, -11), fontsize=7)
    budget_axis(ax, unit)
    ax.set_ylabel("accuracy")
    ax.set_title("Pareto frontier of deployable strategies (oracles excluded)")
    _legends(ax, list(styles.model_colors), styles.model_colors, strategies, (), pipelines)
    return fig


def _yerr(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Error-bar lengths below and above ``y`` (never negative: an interval's end may sit on ``y`` up to rounding)."""
    return np.clip(np.vstack([np.asarray(y, float) - lo, np.asarray(hi, float) - y]), 0.0, None)


__all__ = ["MODEL_COLORS", "PIPELINE_MARKERS", "UNIT_LABELS", "RunStyles", "budget_axis", "choice_plot",
           "difficulty_heatmap", "model_color", "overview", "pareto_plot", "run_styles", "si", "style"]
