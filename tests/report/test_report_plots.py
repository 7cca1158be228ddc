"""Report figures stay readable when a store holds many runs (one per pipeline, long labels)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from ttclab.report import plots

TESTS = Path(__file__).resolve().parents[1]


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


def _pipelines_table(offline: list[str], pipelines: list[tuple[str, str]]) -> dict[str, list]:
    """Offline curves (majority, pass@k) of ``offline`` models and one k = 1 point per (pipeline, base
    model) run, labelled as ``ttclab run`` labels them; an oracle pipeline's strategy says so."""
    cols = _table(offline, ["majority", "pass_at_k"])
    rng = np.random.default_rng(1)
    for name, base in pipelines:
        acc = float(rng.uniform(0.2, 0.8))
        row = {"model": f"{name} ({base})", "strategy": name + (" (oracle)" if "oracle" in name else ""), "k": 1,
               "total_tokens": float(rng.uniform(200, 3000)), "accuracy": acc, "ci_low": acc - 0.2,
               "ci_high": acc + 0.2}
        for key, value in row.items():
            cols[key].append(value)
    return cols


def _point(fig, x: float, y: float):
    """The one drawn line whose data is the single point (x, y)."""
    [line] = [ln for ln in fig.axes[0].lines if ln.get_xydata().tolist() == [[x, y]]]
    return line


def _curve_color(fig, cols: dict[str, list], model: str) -> str:
    """The colour of ``model``'s majority curve (matched by its points; another strategy may have the same)."""
    xy = sorted((c, a) for m, s, c, a in zip(cols["model"], cols["strategy"], cols["total_tokens"], cols["accuracy"])
                if m == model and s == "majority")
    [color] = {ln.get_color() for ln in fig.axes[0].lines if ln.get_xydata().tolist() == [list(p) for p in xy]}
    return color


def test_pipeline_runs_take_their_base_models_colour_and_appear_once_in_the_legend():
    """A pipeline run is drawn in its base model's colour (that of the model's offline curves), told apart
    by its own marker, and named once in the legend (was: once as a 'model' with a colour of its own,
    colours repeating across unrelated runs, and again as a strategy). An oracle pipeline stays faint and
    labelled '(oracle)' on the overview, and off the Pareto figure. Readable with 20 pipelines on one model."""
    runs = [(f"pipeline-{i}", "smollm2-135m") for i in range(20)] + [("aggregate-vote", "gemma3-270m"),
                                                                     ("reflect-oracle", "gemma3-270m")]
    cols = _pipelines_table(["smollm2-135m", "gemma3-270m"], runs)
    bases = {f"{name} ({base})": base for name, base in runs}
    overview = plots.overview(cols, "total_tokens", "total_tokens", oracle=("pass_at_k", "reflect-oracle (oracle)"),
                              bases=bases)
    pareto = plots.pareto_plot(cols, "total_tokens", "total_tokens", [], ("pass_at_k", "reflect-oracle (oracle)"),
                               bases)
    base_color = {m: _curve_color(overview, cols, m) for m in ("smollm2-135m", "gemma3-270m")}
    assert base_color["smollm2-135m"] != base_color["gemma3-270m"]
    looks = set()
    for fig in (overview, pareto):
        for m, s, c, a in zip(cols["model"], cols["strategy"], cols["total_tokens"], cols["accuracy"]):
            if m not in bases or (fig is pareto and "oracle" in s):
                continue
            point = _point(fig, c, a)
            assert point.get_color() == base_color[bases[m]], (m, point.get_color())
            if bases[m] == "smollm2-135m" and fig is overview:
                looks.add((point.get_marker(), point.get_markerfacecolor() == "white"))
        labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        names = [s for m, s in zip(cols["model"], cols["strategy"]) if m in bases and not (fig is pareto and "oracle" in s)]
        assert sorted(labels[:2]) == ["gemma3-270m", "smollm2-135m"]  # the models (colours): the base models only
        assert all(labels.count(n) == 1 for n in names), labels  # each pipeline once, by its name
        assert not any(label in bases for label in labels)  # never 'pipeline-3 (smollm2-135m)' as a model
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fig.savefig(io.BytesIO(), format="png", dpi=50)
        assert fig.axes[0].get_legend().get_window_extent().width <= fig.get_figwidth() * fig.dpi
    assert len(looks) == 20  # 20 pipelines on one model: 20 markers
    oracle = _point(overview, *next((c, a) for s, c, a in zip(cols["strategy"], cols["total_tokens"], cols["accuracy"])
                                    if s == "reflect-oracle (oracle)"))
    assert oracle.get_alpha() < 0.5 < _point(overview, cols["total_tokens"][-2], cols["accuracy"][-2]).get_alpha()
    assert "reflect-oracle (oracle)" in [t.get_text() for t in overview.axes[0].get_legend().get_texts()]


def test_a_real_pipeline_run_is_drawn_as_a_strategy_of_its_model(tmp_path):
    """`ttclab sample` and `ttclab run` on the same (scripted) server model: the report's bases map each
    pipeline run to that model, whose colour its point takes; one pipeline adds no 'model' to the legend."""
    import sys

    import yaml

    sys.path.insert(0, str(TESTS / "online"))
    from online_support import load_yaml, scripted_model, write_pipeline
    from scripted_server import ScriptedServer

    from ttclab.analysis import evaluate_runs
    from ttclab.experiment import sample
    from ttclab.online.runner import run_pipeline
    from ttclab.report.build import pipeline_bases

    store = tmp_path / "store"
    with ScriptedServer() as srv:
        pipe = load_yaml("aggregate-vote")
        config = {"name": "arith", "model": scripted_model(srv.base_url), "task": pipe["task"],
                  "prompt": {"style": "chat"}, "samples": 4, "verifier": "numeric",
                  "sampling": {"temperature": 0.7, "max_tokens": 24, "seed": 0}}
        (tmp_path / "offline.yaml").write_text(yaml.safe_dump(config))
        sample(tmp_path / "offline.yaml", store=store, progress=False, limit=4)
        for name in ("aggregate-vote", "aggregate-oracle-score"):
            data = {**load_yaml(name), "model": scripted_model(srv.base_url)}
            run_pipeline(write_pipeline(tmp_path, data, f"{name}.yaml"), limit=2, store=store, progress=False)
    ev = evaluate_runs(store=store, n_bootstrap=0)
    bases = pipeline_bases(ev)
    assert bases == {"aggregate-vote (scripted)": "scripted", "aggregate-oracle-score (scripted)": "scripted"}
    table = ev.table()
    cols = {k: list(v) for k, v in table.to_pydict().items()}
    fig = plots.overview(table, "total_tokens", "total_tokens", (), ("pass_at_k", "aggregate-oracle-score (oracle)"),
                         bases)
    color = _curve_color(fig, cols, "scripted")
    for m, c, a in zip(cols["model"], cols["total_tokens"], cols["accuracy"]):
        if m in bases:
            assert _point(fig, c, a).get_color() == color, m
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels.count("aggregate-vote") == 1 and labels.count("aggregate-oracle-score (oracle)") == 1
    assert "scripted" not in labels and not any(label in bases for label in labels)  # one model: no colour legend


def _looks(fig, x: float, y: float) -> set[tuple[str, str, bool]]:
    """(colour, marker, hollow) of every line drawn as the single point (x, y)."""
    return {(ln.get_color(), ln.get_marker(), ln.get_markerfacecolor() == "white") for ln in fig.axes[0].lines
            if ln.get_xydata().tolist() == [[x, y]]}


def test_a_pipeline_run_has_one_look_in_every_figure(tmp_path):
    """The report's figures of runs share one colour / marker assignment: a pipeline run chosen at some
    budget is drawn in the compute-optimal figure as on the overview and the Pareto figure, in its base
    model's colour with its own marker (was: the choice figure's own tab10 palette and a marker hashed from
    the pipeline's name, a diamond there for the overview's triangle)."""
    import sys

    import yaml

    sys.path.insert(0, str(TESTS / "online"))
    from online_support import load_yaml, scripted_model, write_pipeline
    from scripted_server import ScriptedServer

    from ttclab.analysis import evaluate_runs, optimize
    from ttclab.experiment import sample
    from ttclab.online.runner import run_pipeline
    from ttclab.report.build import run_figures

    store = tmp_path / "store"
    with ScriptedServer() as srv:
        task = load_yaml("aggregate-vote")["task"]
        for seed, name in ((101, "model-b"), (102, "model-c")):  # offline runs no better than aggregate-vote on b
            config = {"name": name, "model": {**scripted_model(srv.base_url), "name": name}, "task": task,
                      "prompt": {"style": "chat"}, "samples": 8, "verifier": "numeric",
                      "sampling": {"temperature": 0.7, "max_tokens": 24, "seed": seed}}
            (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
            sample(tmp_path / f"{name}.yaml", store=store, progress=False, limit=12)
        for pipe, base in (("aggregate-oracle-score", "model-b"), ("aggregate-vote", "model-b"),
                           ("reflect-self", "model-c")):
            data = {**load_yaml(pipe), "model": {**scripted_model(srv.base_url), "name": base}}
            run_pipeline(write_pipeline(tmp_path, data, f"{pipe}-{base}.yaml"), limit=12, store=store, progress=False)
    ev = evaluate_runs(store=store, seed=0, strategies=["majority", "pass_at_k"])
    opt = optimize(ev)
    figures = run_figures(ev, opt)
    rows = ev.rows()
    chosen = {r["model"]: r for r in opt.best if not r.get("reason") and "(" in str(r["model"])}
    assert list(chosen) == ["aggregate-vote (model-b)"], [r["model"] for r in opt.best]
    for r in rows:
        if "(" not in str(r["model"]) or "oracle" in r["strategy"]:
            continue
        [look] = _looks(figures["overview"], r["total_tokens"], r["accuracy"])
        assert _looks(figures["pareto"], r["total_tokens"], r["accuracy"]) == {look}, r["model"]
        if r["model"] in chosen:
            best = chosen[r["model"]]
            assert _looks(figures["compute_optimal"], best["budget"], best["accuracy"]) == {look}
            chosen_look = look
        offline = next(x for x in rows if x["model"] == r["model"].split(" (")[1].rstrip(")") and x["k"] == 1
                       and x["strategy"] == "majority")
        assert look[0] == _curve_color(figures["overview"], {k: [x[k] for x in rows] for k in rows[0]},
                                       offline["model"])
    legend = figures["compute_optimal"].axes[0].get_legend()
    handle = dict(zip((t.get_text() for t in legend.get_texts()), legend.legend_handles))["aggregate-vote (model-b)"]
    assert (handle.get_color(), handle.get_marker(), handle.get_markerfacecolor() == "white") == chosen_look


def test_models_beyond_eight_have_colours_of_their_own():
    """Colours repeated from the ninth model on (model 9 in model 1's blue): every model has its own
    colour, the first eight as before, and the overview draws them so."""
    first = ("#1f5fa8", "#d2581e", "#2e8b3a", "#8e44ad", "#b8860b", "#c0392b", "#16a085", "#555555")
    models = [f"model-{i}" for i in range(40)]
    styles = plots.run_styles(models, ["majority"] * len(models))
    colors = [styles.model_colors[m] for m in models]
    assert tuple(colors[:8]) == first and len(set(colors)) == len(models)
    assert all(plots.model_color(i) == c for i, c in enumerate(colors))
    cols = _table(models[:14], ["majority"])
    fig = plots.overview(cols, "total_tokens", "total_tokens")
    assert len({_curve_color(fig, cols, m) for m in models[:14]}) == 14
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[:14] == models[:14]
