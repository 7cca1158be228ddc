"""The graph search space: width, depth, a model per node from a pool, edges, skips, output role.

Dimensions (factorised categoricals, :mod:`ttclab.search.methods`):

* ``width`` 1..W, ``depth`` 1..D (layers before the output node; layer 0 are generators);
* ``role_l`` (l >= 1): ``refiner`` (node j refines node j of layer l-1) or ``fuser``;
* ``model_l_j``: the pool model of node j of layer l;
* ``edge_l_j_i`` (fuser layers): whether node i of layer l-1 feeds node j (none: node j);
* ``skip``: the output node also sees the generators; ``output_role`` (``judge`` / ``fuser``)
  and ``output_model``. One node in the last layer and no skip: that node is the output.

The three empirical insights of the graph-optimisation paper are initialisation heuristics,
each switchable for ablation (:func:`initial_distribution`, :func:`budget_constraint`):
``model_prior`` (tasks prefer particular models: model logits from each model's single-call
accuracy), ``moderate_size`` (width and depth help only up to a point: logits peaked in the middle
of their ranges), ``budget_coupling`` (width and depth interact: given the sampled width, depth is
drawn among the depths whose graph fits the budget).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ttclab.config import ModelSpec
from ttclab.search.graph import Graph, parse_graph
from ttclab.search.methods import Candidate, Dim, Distribution, Space

HEURISTICS = ("model_prior", "moderate_size", "budget_coupling")


def graph_space(pool: Sequence[str], *, max_width: int = 3, max_depth: int = 2,
                roles: Sequence[str] = ("refiner", "fuser"), output_roles: Sequence[str] = ("judge", "fuser"),
                skips: bool = True) -> Space:
    dims = [Dim("width", tuple(range(1, max_width + 1))), Dim("depth", tuple(range(1, max_depth + 1)))]
    for layer in range(1, max_depth):
        dims.append(Dim(f"role_{layer}", tuple(roles)))
    for layer in range(max_depth):
        for j in range(max_width):
            dims.append(Dim(f"model_{layer}_{j}", tuple(pool)))
    if "fuser" in roles:
        for layer in range(1, max_depth):
            for j in range(max_width):
                for i in range(max_width):
                    dims.append(Dim(f"edge_{layer}_{j}_{i}", (1, 0) if i == j else (0, 1)))
    dims.append(Dim("skip", (0, 1) if skips and max_depth > 1 else (0,)))
    dims.append(Dim("output_role", tuple(output_roles)))
    dims.append(Dim("output_model", tuple(pool)))
    return Space(dims)


def decode(cand: Mapping[str, Any], models: Mapping[str, ModelSpec]) -> Graph:
    """The graph of a candidate (nodes that would not feed the output are dropped)."""
    w, d = int(cand["width"]), int(cand["depth"])
    nodes: list[dict[str, Any]] = []
    layers: list[list[str]] = []
    for layer in range(d):
        ids = []
        role = "generator" if layer == 0 else cand[f"role_{layer}"]
        for j in range(w):
            nid = f"{'gfr'[('generator', 'fuser', 'refiner').index(role)]}{layer}_{j}"
            if role == "generator":
                inputs: list[str] = []
            elif role == "refiner":
                inputs = [layers[-1][j]]
            else:
                inputs = [layers[-1][i] for i in range(w) if cand.get(f"edge_{layer}_{j}_{i}", int(i == j))] \
                    or [layers[-1][j]]
            nodes.append({"id": nid, "role": role, "model": cand[f"model_{layer}_{j}"], "inputs": inputs})
            ids.append(nid)
        layers.append(ids)
    feeds = list(layers[-1])
    if cand.get("skip") and d > 1:
        feeds += layers[0]
    if len(feeds) == 1:
        output = feeds[0]
    else:
        output = "out"
        nodes.append({"id": output, "role": cand["output_role"], "model": cand["output_model"], "inputs": feeds})
    keep = _ancestors(nodes, output) | {output}
    nodes = [n for n in nodes if n["id"] in keep]
    return parse_graph({"models": {k: m.model_dump(mode="json") for k, m in models.items()}, "nodes": nodes,
                        "output": output}, "candidate graph")


def _ancestors(nodes: list[dict[str, Any]], nid: str) -> set[str]:
    by_id = {n["id"]: n for n in nodes}
    seen: set[str] = set()
    stack = list(by_id[nid]["inputs"])
    while stack:
        x = stack.pop()
        if x not in seen:
            seen.add(x)
            stack.extend(by_id[x]["inputs"])
    return seen


def initial_distribution(space: Space, heuristics: Sequence[str], *, model_accuracy: Mapping[str, float] | None = None,
                         strength: float = 2.0) -> Distribution:
    """The starting distribution with the chosen heuristics switched on (uniform without any)."""
    dist = Distribution(space)
    if "moderate_size" in heuristics:
        for name in ("width", "depth"):
            values = np.array(space.dim(name).choices, dtype=float)
            mid = (values.min() + values.max()) / 2
            spread = max((values.max() - values.min()) / 2, 1.0)
            dist.logits[name] = -strength * ((values - mid) / spread) ** 2
    if "model_prior" in heuristics and model_accuracy:
        for d in space.dims:
            if d.name.startswith("model_") or d.name == "output_model":
                acc = np.array([model_accuracy.get(str(c), 0.0) for c in d.choices], dtype=float)
                dist.logits[d.name] = strength * 4 * (acc - acc.max())
    return dist


def budget_constraint(cost_of: Callable[[Candidate], float], budget: float
                      ) -> Callable[[Candidate, Distribution, np.random.Generator], Candidate | None]:
    """The budget coupling: keep the sampled width, redraw depth among the depths that fit (None: none fits)."""

    def constrain(cand: Candidate, dist: Distribution, rng: np.random.Generator) -> Candidate | None:
        dim = dist.space.dim("depth")
        fits = [i for i, depth in enumerate(dim.choices) if cost_of({**cand, "depth": depth}) <= budget]
        if not fits:
            return None
        p = dist.probs("depth")[fits]
        i = fits[int(rng.choice(len(fits), p=p / p.sum()))]
        return {**cand, "depth": dim.choices[i]}

    return constrain


def single_model_candidates(space: Space, pool: Sequence[str]) -> list[Candidate]:
    """One generator of each pool model (the baselines the model prior is measured with)."""
    out = []
    for m in pool:
        cand: Candidate = {}
        for d in space.dims:
            cand[d.name] = d.choices[0]
        cand.update({"width": 1, "depth": 1, "model_0_0": m, "skip": 0})
        out.append(cand)
    return out
