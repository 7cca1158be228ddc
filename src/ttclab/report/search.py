"""Report sections of ``ttclab search``: Pareto fronts, the search trajectory, the chosen graph drawn.

Reads only a search output folder's ``summary.json`` (graph or controller search), so the report
package never imports the search package. ``ttclab report --search DIR`` adds the sections to the
evaluation report; :func:`write_search_report` writes them as a page of their own.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ttclab.report.html import Report, Section
from ttclab.tables import Table

ROLE_COLOURS = {"generator": "#4C72B0", "refiner": "#55A868", "fuser": "#C44E52", "judge": "#8172B2"}


def load_summary(folder: str | Path) -> dict[str, Any]:
    from ttclab.errors import DataError

    path = Path(folder) / "summary.json"
    if not path.exists():
        raise DataError(f"{folder}: no summary.json; give the output folder of a finished `ttclab search` run")
    return json.loads(path.read_text())


def is_graph_summary(summary: dict[str, Any]) -> bool:
    return "front_latency" in summary


def graph_figure(graph: dict[str, Any], title: str = "") -> Any:
    """The graph drawn by layers: a box per node (colour = role, label = role and model), arrows = edges."""
    import matplotlib.pyplot as plt

    nodes = {n["id"]: n for n in graph["nodes"]}
    level: dict[str, int] = {}
    for n in graph["nodes"]:
        level[n["id"]] = 0 if not n.get("inputs") else 1 + max(level[i] for i in n["inputs"])
    layers: dict[int, list[str]] = {}
    for nid, lv in level.items():
        layers.setdefault(lv, []).append(nid)
    pos = {}
    for lv, ids in layers.items():
        for k, nid in enumerate(ids):
            pos[nid] = (lv * 2.2, (len(ids) - 1) / 2 - k)
    height = max(len(v) for v in layers.values())
    fig, ax = plt.subplots(figsize=(2.2 + 2.0 * len(layers), 1.0 + 1.0 * height))
    for nid, n in nodes.items():
        for src in n.get("inputs", []):
            (x0, y0), (x1, y1) = pos[src], pos[nid]
            ax.annotate("", xy=(x1 - 0.7, y1), xytext=(x0 + 0.7, y0),
                        arrowprops={"arrowstyle": "->", "color": "#555", "lw": 1.2})
    for nid, n in nodes.items():
        x, y = pos[nid]
        edge = "black" if nid == graph.get("output") else "none"
        ax.text(x, y, f"{n['role']}\n{n['model']}", ha="center", va="center", fontsize=8, color="white",
                bbox={"boxstyle": "round,pad=0.4", "fc": ROLE_COLOURS.get(n["role"], "#777"), "ec": edge, "lw": 2})
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 1.2, max(xs) + 1.2)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def _front_figure(points: list[dict[str, Any]], front: list[dict[str, Any]], x: str, xlabel: str, title: str,
                  label: Any = None) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    if label is None:
        ax.scatter([p[x] for p in points], [p["accuracy"] for p in points], s=18, color="#999", label="evaluated")
    else:
        groups: dict[str, list[dict[str, Any]]] = {}
        for p in points:
            groups.setdefault(label(p), []).append(p)
        for name, pts in groups.items():
            pts = sorted(pts, key=lambda p: p[x])
            ax.plot([p[x] for p in pts], [p["accuracy"] for p in pts], marker="o", ms=3, lw=1, label=name)
    fr = sorted(front, key=lambda p: p[x])
    ax.step([p[x] for p in fr], [p["accuracy"] for p in fr], where="post", color="black", lw=1.5, label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return fig


def _trajectory_figure(values: list[float | None], ylabel: str, title: str) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.8))
    best, xs, ys = -math.inf, [], []
    for i, v in enumerate(values):
        if v is not None and math.isfinite(v):
            best = max(best, v)
        xs.append(i + 1)
        ys.append(best if math.isfinite(best) else float("nan"))
    ax.plot(xs, ys, drawstyle="steps-post", color="#4C72B0", label="best so far")
    ax.scatter(xs, [v if v is not None else float("nan") for v in values], s=10, color="#999", label="each evaluation")
    ax.set_xlabel("evaluations")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # evaluations are counted (before: ticks at 1.5, 2.5)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return fig


def graph_section(sec: Section, s: dict[str, Any]) -> None:
    unit = s["unit"]
    evaluated = [dict(r, cost=r["predicted"][unit], latency=r["predicted"]["latency_s"]) for r in s["trials"]
                 if r.get("accuracy") is not None]
    sec.text(f"Method {s['method']}, heuristics {', '.join(s['heuristics']) or 'none'}; budget {s['budget']:g} "
             f"{unit} per question (predicted before running). {len(s['trials'])} candidates, "
             f"{s['rejected_over_budget']} rejected over budget without running, {s['agent_rejected']} agent proposals "
             "rejected. Accuracies on the search split; held-out accuracies (disjoint questions) with 95% Wilson intervals.")
    if evaluated:
        sec.figure(_front_figure(evaluated, s["front"], "cost", f"predicted {unit} per question",
                                 "Graphs: accuracy vs cost (search split)"), f"search-{s['name']}-front")
        lat = [p for p in evaluated if p["latency"] is not None and math.isfinite(p["latency"])]
        if lat and s.get("front_latency"):
            missing = len(evaluated) - len(lat)  # predicted before any call of their models and roles was timed
            caption = (f"{missing} of {len(evaluated)} evaluated graphs have no latency prediction (they were predicted "
                       "before calls of their models and roles had been timed) and are not drawn here"
                       if missing else "")
            sec.figure(_front_figure(lat, [dict(p, latency=p["predicted"]["latency_s"]) for p in s["front_latency"]],
                                     "latency", "predicted critical-path latency (s)", "Graphs: accuracy vs latency"),
                       f"search-{s['name']}-latency", caption)
    sec.figure(_trajectory_figure([r.get("accuracy") for r in s["trials"]], "search accuracy",
                                  "Search trajectory"), f"search-{s['name']}-trajectory")
    rows = []
    for label, b in s["best"].items():
        h = b.get("heldout") or {}
        ci = h.get("ci") or [float("nan"), float("nan")]
        rows.append([label, b["describe"], b["predicted"][unit], (b.get("actual") or {}).get(unit), b["accuracy"],
                     h.get("accuracy"), f"[{ci[0]:.2f}, {ci[1]:.2f}]", b["pipeline_file"]])
    sec.table(Table(["budget", "best graph", f"predicted {unit}", f"actual {unit}", "search acc", "held-out acc",
                     "held-out 95% CI", "pipeline file"], rows))
    if s["best"]:
        top = max(s["best"].values(), key=lambda b: b["predicted"][unit])
        sec.figure(graph_figure(top["graph"], f"chosen graph: {top['describe']}"), f"search-{s['name']}-graph")


def controller_section(sec: Section, s: dict[str, Any]) -> None:
    sec.text(f"Replay of {s['traces_per_question']} stored traces per question (probes every {s['every']} tokens; "
             f"{s['source']}), {s['orders']} seeded trace orders per question; search on {s['questions']['search']} "
             f"questions, curves below on {s['questions']['heldout']} held-out ones (95% bootstrap intervals over "
             "questions). " + " ".join(h[:1].upper() + h[1:] + "." for h in s["headline"]))
    pts = s["heldout_points"]
    sec.figure(_front_figure(pts, s["front"], "tokens", "tokens per question (decode + probes)",
                             "Controllers: accuracy vs tokens (held-out; beta sweeps)", label=lambda p: p["controller"]),
               f"search-{s['name']}-curves")
    sec.figure(_trajectory_figure([t["score"] for t in s["trials"]], "objective (search split)",
                                  "Controller search trajectory"), f"search-{s['name']}-trajectory")
    rows = [[p["controller"], p["beta"], p["accuracy"], f"[{p['ci'][0]:.2f}, {p['ci'][1]:.2f}]", p["tokens"],
             p["sequential_tokens"], p.get("tokens_saved")] for p in s["front"]]
    sec.table(Table(["controller", "beta", "accuracy", "95% CI", "tokens", "sequential tokens",
                     "tokens saved vs SC@k"], rows))
    failures = s.get("code_failures") or []
    if failures:  # code controllers stopped in the sandbox: counted, no point on any curve
        sec.text(f"{len(failures)} code controller evaluation(s) failed and have no point:")
        sec.table(Table(["controller", "beta", "split", "reason", "detail", "question", "decision"],
                        [[f["controller"], f["beta"], f["split"], f["reason"], f["detail"], f["question"],
                          f["decision"]] for f in failures]))


def search_section(rep: Report, folder: str | Path) -> None:
    s = load_summary(folder)
    if is_graph_summary(s):
        graph_section(rep.section(f"Graph search: {s['name']}"), s)
    else:
        controller_section(rep.section(f"Controller search: {s['name']}"), s)


def write_search_report(folder: str | Path) -> Path:
    folder = Path(folder)
    rep = Report("ttclab search", figure_dir=folder / "figures")
    search_section(rep, folder)
    return rep.write(folder / "report.html")
