"""Collaboration graphs: a typed spec (nodes with a role and a model, edges, one output node),
validation with one-line errors, and compilation to an online pipeline (and back).

A node is one model call that writes one candidate:

* ``generator`` — a fresh solution (no inputs; pipeline op ``generate n: 1``);
* ``refiner`` — improves its one input (``critique kind: none`` + ``revise``: one call);
* ``fuser`` — writes one answer from its inputs (``fuse n: 1``);
* ``judge`` — chooses one of its (two or more) inputs (``select by: llm_pick``).

Edges are the nodes' ``inputs`` (or a top-level ``edges: [[from, to], ...]`` list). The graph
compiles to a pipeline whose steps carry ``inputs`` and ``model`` (``docs/pipelines.md``), in a
topological order with the output node last, so ``ttclab run`` runs it. Node ids become step ids,
so the calls of two graphs that share nodes (same model, prompt and seed) come from the call cache.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttclab.config import ModelSpec
from ttclab.errors import ConfigError

ROLES = ("generator", "refiner", "fuser", "judge")
#: The calls table's role of each node role (what the pipeline steps record).
CALL_ROLE = {"generator": "generate", "refiner": "reviser", "fuser": "fuser", "judge": "judge"}
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_NODE_KEYS = {"id", "role", "model", "inputs", "sampling", "template"}


@dataclass(frozen=True)
class Node:
    id: str
    role: str
    model: str  # a name in the graph's model pool
    inputs: tuple[str, ...] = ()
    sampling: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)
    template: Any = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "role": self.role, "model": self.model}
        if self.inputs:
            d["inputs"] = list(self.inputs)
        if self.sampling:
            d["sampling"] = dict(self.sampling)
        if self.template is not None:
            d["template"] = self.template
        return d


@dataclass(frozen=True)
class Graph:
    """A validated collaboration graph (build it with :func:`parse_graph` or :func:`make_graph`)."""

    nodes: tuple[Node, ...]  # in a topological order, the output node last
    output: str
    models: dict[str, ModelSpec] = field(hash=False, compare=False, default_factory=dict)

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)

    @property
    def width(self) -> int:
        layers = self.layers()
        return max(len(ids) for ids in layers)

    @property
    def depth(self) -> int:
        return len(self.layers())

    def layers(self) -> list[list[str]]:
        """Node ids by longest distance from a generator (layer 0: the generators)."""
        level: dict[str, int] = {}
        for n in self.nodes:
            level[n.id] = 0 if not n.inputs else 1 + max(level[i] for i in n.inputs)
        out: list[list[str]] = [[] for _ in range(max(level.values()) + 1)]
        for n in self.nodes:
            out[level[n.id]].append(n.id)
        return out

    def as_dict(self) -> dict[str, Any]:
        """The graph spec as data (the YAML format; models as given)."""
        return {"models": {k: m.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {"name": m.name}
                           for k, m in self.models.items()},
                "nodes": [n.as_dict() for n in self.nodes], "output": self.output}

    def key(self) -> str:
        """A hash of the structure (roles, models by identity, inputs, settings): equal graphs, equal keys."""
        from ttclab.online.runner import model_identity

        data = {"nodes": [{**n.as_dict(), "model": model_identity(self.models[n.model])} for n in self.nodes],
                "output": self.output}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def describe(self) -> str:
        """One line: ``gen(smol) x2 -> fuser(gemma)``-style summary of the layers."""
        parts = []
        for ids in self.layers():
            roles: dict[str, int] = {}
            for i in ids:
                n = self.node(i)
                label = f"{n.role}({n.model})"
                roles[label] = roles.get(label, 0) + 1
            parts.append(" + ".join(f"{k} x{v}" if v > 1 else k for k, v in roles.items()))
        return " -> ".join(parts)


def parse_graph(data: Any, source: str = "graph") -> Graph:
    """Validate a graph mapping (``models``, ``nodes``, optional ``edges``, ``output``); one-line ConfigErrors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a graph must be a mapping with models, nodes and output")
    unknown = set(data) - {"models", "nodes", "edges", "output", "name", "description"}
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}; a graph has models, nodes, edges, output")
    models = _models(data.get("models"), source)
    raw = data.get("nodes")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{source}: nodes: give a non-empty list of nodes ({{id, role, model, inputs}})")
    nodes: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(raw):
        where = f"{source}: nodes[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: a node must be a mapping with id, role and model (got {item!r})")
        extra = set(item) - _NODE_KEYS
        if extra:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(extra))}; a node has {', '.join(sorted(_NODE_KEYS))}")
        nid = item.get("id")
        if not isinstance(nid, str) or not _ID.match(nid):
            raise ConfigError(f"{where}: id: give a name of letters, digits, _ or - starting with a letter (got {nid!r})")
        if nid in nodes:
            raise ConfigError(f"{where}: id: {nid!r} is used by another node; node ids must be unique")
        role = item.get("role")
        if role not in ROLES:
            close = difflib.get_close_matches(str(role), ROLES, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(f"{where} ({nid}): role: unknown role {role!r}; {hint}choose one of: {', '.join(ROLES)}")
        model = item.get("model")
        if model is None and len(models) == 1:
            model = next(iter(models))
        if model not in models:
            raise ConfigError(f"{where} ({nid}): model: {model!r} is not in the graph's models "
                              f"({', '.join(models)}); add it under models:")
        inputs = item.get("inputs") or []
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
            raise ConfigError(f"{where} ({nid}): inputs: give a list of node ids")
        sampling = item.get("sampling") or {}
        if not isinstance(sampling, dict):
            raise ConfigError(f"{where} ({nid}): sampling: give a mapping such as {{temperature: 0.7}}")
        nodes[nid] = {"role": role, "model": model, "inputs": list(inputs), "sampling": sampling,
                      "template": item.get("template"), "index": i}
    for j, edge in enumerate(data.get("edges") or []):
        if not (isinstance(edge, (list, tuple)) and len(edge) == 2 and all(isinstance(x, str) for x in edge)):
            raise ConfigError(f"{source}: edges[{j}]: give [from, to] node ids (got {edge!r})")
        src, dst = edge
        if dst not in nodes:
            raise ConfigError(f"{source}: edges[{j}]: node {dst!r} is not defined")
        if src not in nodes[dst]["inputs"]:
            nodes[dst]["inputs"].append(src)
    for nid, n in nodes.items():
        where = f"{source}: nodes[{n['index']}] ({nid})"
        for src in n["inputs"]:
            if src not in nodes:
                close = difflib.get_close_matches(src, list(nodes), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ConfigError(f"{where}: inputs: node {src!r} is not defined{hint}; define it or remove the edge")
        if len(set(n["inputs"])) != len(n["inputs"]):
            raise ConfigError(f"{where}: inputs: a node is listed twice")
        _check_arity(where, n["role"], len(n["inputs"]))
    order = _topological(nodes, source)
    output = data.get("output")
    if output is None:
        sinks = [nid for nid in order if not any(nid in m["inputs"] for m in nodes.values())]
        if len(sinks) != 1:
            raise ConfigError(f"{source}: output: the graph has {len(sinks)} end nodes ({', '.join(sinks)}); "
                              "name the output node")
        output = sinks[0]
    if output not in nodes:
        raise ConfigError(f"{source}: output: node {output!r} is not defined")
    used = _ancestors(nodes, output) | {output}
    dead = [nid for nid in order if nid not in used]
    if dead:
        raise ConfigError(f"{source}: nodes {', '.join(dead)} do not feed the output node {output!r}; "
                          "connect them or remove them")
    order = [nid for nid in order if nid != output] + [output]
    built = tuple(Node(nid, nodes[nid]["role"], nodes[nid]["model"], tuple(nodes[nid]["inputs"]),
                       dict(nodes[nid]["sampling"]), nodes[nid]["template"]) for nid in order)
    return Graph(built, output, models)


def make_graph(nodes: list[Node], models: dict[str, ModelSpec], output: str | None = None) -> Graph:
    """A graph from nodes (validated like a file)."""
    return parse_graph({"models": {k: m.model_dump(mode="json") for k, m in models.items()},
                        "nodes": [n.as_dict() for n in nodes], "output": output}, "graph")


def load_graph(path: str | Path) -> Graph:
    from ttclab.config import read_yaml_mapping

    data = read_yaml_mapping(path, "graph", "models, nodes, output")
    return parse_graph(data, str(path))


def _models(raw: Any, source: str) -> dict[str, ModelSpec]:
    from pydantic import ValidationError

    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{source}: models: give the model pool by name, e.g. "
                          "{small: {backend: llamacpp, name: smollm2-135m}}")
    out = {}
    for name, spec in raw.items():
        if isinstance(spec, str):
            spec = {"name": spec}
        try:
            out[str(name)] = ModelSpec.model_validate(spec)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{source}: models.{name}.{loc}: {err['msg']}") from None
    return out


def _check_arity(where: str, role: str, k: int) -> None:
    if role == "generator" and k:
        raise ConfigError(f"{where}: inputs: a generator writes a fresh solution and takes no inputs; "
                          "use a refiner or fuser to build on other nodes")
    if role == "refiner" and k != 1:
        raise ConfigError(f"{where}: inputs: a refiner improves exactly one input (got {k}); use a fuser for several")
    if role == "fuser" and k < 1:
        raise ConfigError(f"{where}: inputs: a fuser needs at least one input")
    if role == "judge" and k < 2:
        raise ConfigError(f"{where}: inputs: a judge chooses among at least two inputs (got {k})")


def _topological(nodes: dict[str, dict[str, Any]], source: str) -> list[str]:
    state: dict[str, int] = {}
    order: list[str] = []

    def visit(nid: str, path: list[str]) -> None:
        if state.get(nid) == 2:
            return
        if state.get(nid) == 1:
            cycle = path[path.index(nid):]
            raise ConfigError(f"{source}: the graph has a cycle: {' -> '.join(cycle)}; a graph must be acyclic")
        state[nid] = 1
        for src in nodes[nid]["inputs"]:
            visit(src, path + [src])
        state[nid] = 2
        order.append(nid)

    for nid in nodes:
        visit(nid, [nid])
    return order


def _ancestors(nodes: dict[str, dict[str, Any]], nid: str) -> set[str]:
    seen: set[str] = set()
    stack = list(nodes[nid]["inputs"])
    while stack:
        x = stack.pop()
        if x not in seen:
            seen.add(x)
            stack.extend(nodes[x]["inputs"])
    return seen


# -- graph <-> pipeline ------------------------------------------------------------------------------
def main_model(graph: Graph) -> str:
    """The pool model used by most nodes (ties: the first in node order): the pipeline's ``model``."""
    counts: dict[str, int] = {}
    for n in graph.nodes:
        counts[n.model] = counts.get(n.model, 0) + 1
    return max(counts, key=lambda k: (counts[k], -[n.model for n in graph.nodes].index(k)))


def node_steps(n: Node, main: str) -> list[dict[str, Any]]:
    """The pipeline steps of one node (the last one's id is the node's id)."""
    common: dict[str, Any] = {}
    if n.model != main:
        common["model"] = n.model
    if n.sampling:
        common["sampling"] = dict(n.sampling)
    if n.template is not None:
        common["template"] = n.template
    if n.role == "generator":
        return [{"id": n.id, "op": "generate", "n": 1, **common}]
    if n.role == "refiner":
        return [{"id": f"{n.id}.feedback", "op": "critique", "kind": "none", "inputs": list(n.inputs)},
                {"id": n.id, "op": "revise", "inputs": [f"{n.id}.feedback"], **common}]
    if n.role == "fuser":
        return [{"id": n.id, "op": "fuse", "n": 1, "inputs": list(n.inputs), **common}]
    return [{"id": n.id, "op": "select", "by": "llm_pick", "inputs": list(n.inputs), **common}]


def to_pipeline(graph: Graph, *, name: str, task: Any, verifier: Any = None, sampling: dict[str, Any] | None = None,
                seed: int = 0, limit: int | None = None, description: str | None = None,
                concurrency: int | None = None) -> dict[str, Any]:
    """The pipeline mapping of a graph (``ttclab run`` accepts it written as YAML)."""
    main = main_model(graph)
    steps = [s for n in graph.nodes for s in node_steps(n, main)]

    def dump(m: ModelSpec) -> dict[str, Any]:
        return m.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {"name": m.name}

    data: dict[str, Any] = {"name": name, "description": description or f"collaboration graph: {graph.describe()}",
                            "model": {"label": main, **dump(graph.models[main])}, "task": task, "seed": seed, "final": "first",
                            "steps": steps}
    others = {k: dump(m) for k, m in graph.models.items() if k != main and any(n.model == k for n in graph.nodes)}
    if others:
        data["models"] = others
    if verifier is not None:
        data["verifier"] = verifier
    if sampling is not None:
        data["sampling"] = dict(sampling)
    if limit is not None:
        data["limit"] = limit
    if concurrency is not None:
        data["concurrency"] = concurrency
    return data


def compile_graph(graph: Graph, **kwargs: Any) -> Any:
    """The compiled :class:`~ttclab.online.program.Pipeline` of a graph."""
    from ttclab.online.program import compile_pipeline

    return compile_pipeline(to_pipeline(graph, **kwargs), f"graph {kwargs.get('name', '')}".strip())


def graph_from_pipeline(data: dict[str, Any], source: str = "pipeline") -> Graph:
    """The graph a pipeline mapping written by :func:`to_pipeline` encodes (the main model's pool name is its label)."""
    main_name = str(data["model"].get("label") or "main")
    main = {k: v for k, v in data["model"].items() if k != "label" or v != main_name}
    models = {main_name: main, **(data.get("models") or {})}
    nodes: list[dict[str, Any]] = []
    feedback: dict[str, list[str]] = {}
    for i, step in enumerate(data.get("steps") or []):
        op = step.get("op")
        base: dict[str, Any] = {"id": step.get("id"), "model": step.get("model", main_name)}
        for key in ("sampling", "template"):
            if key in step:
                base[key] = step[key]
        if op == "generate" and step.get("n", 1) == 1 and not step.get("inputs"):
            nodes.append({**base, "role": "generator"})
        elif op == "critique" and step.get("kind") == "none":
            feedback[step["id"]] = list(step.get("inputs") or [])
        elif op == "revise" and len(step.get("inputs") or []) == 1 and step["inputs"][0] in feedback:
            nodes.append({**base, "role": "refiner", "inputs": feedback[step["inputs"][0]]})
        elif op == "fuse" and step.get("n", 1) == 1:
            nodes.append({**base, "role": "fuser", "inputs": list(step.get("inputs") or [])})
        elif op == "select" and step.get("by") == "llm_pick":
            nodes.append({**base, "role": "judge", "inputs": list(step.get("inputs") or [])})
        else:
            raise ConfigError(f"{source}: steps[{i}] ({op}): not a step a collaboration graph compiles to")
    return parse_graph({"models": models, "nodes": nodes, "output": nodes[-1]["id"] if nodes else None}, source)


def write_pipeline(path: str | Path, data: dict[str, Any]) -> Path:
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    tmp.replace(path)
    return path
