"""The package layering: every import of ttclab code (top-level or inside a function) goes to the same
or a lower layer, and the import graph between packages has no cycle.

Layers, low to high (DEVELOPING.md): neutral modules; the parts (backends, tasks, verify, store, sandbox);
the runner (config, sampling, experiment); strategies; ledger; optimize and the market maths; analysis;
report and the market verb; online/search/serve (never imported below them); the CLI on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ttclab

SRC = Path(ttclab.__file__).parent

LAYERS: list[tuple[str, ...]] = [
    ("ttclab", "ttclab.errors", "ttclab.io", "ttclab.extract", "ttclab.seeds", "ttclab.registry", "ttclab.tables"),
    ("ttclab.backends", "ttclab.tasks", "ttclab.verify", "ttclab.store", "ttclab.sandbox"),
    ("ttclab.config", "ttclab.sampling", "ttclab.experiment", "ttclab.repair", "ttclab.probes"),
    ("ttclab.strategies",),
    ("ttclab.ledger",),
    ("ttclab.optimize", "ttclab.market"),
    ("ttclab.analysis",),
    ("ttclab.report", "ttclab.market.__init__", "ttclab.market.api", "ttclab.market.config", "ttclab.market.plots"),
    ("ttclab.online", "ttclab.search", "ttclab.serve"),
    ("ttclab.cli", "ttclab.__main__"),
]

#: Upward imports that are deliberate, each inside a function: (importing module, imported module).
ALLOWED_UPWARD = {
    ("ttclab.analysis", "ttclab.report"),  # analysis.write_report: a kept alias of report.write_report
}
#: The package facade (ttclab/__init__.py) names the verbs of every layer (lazily, under TYPE_CHECKING).
FACADE = "ttclab"


def _unit(module: str) -> tuple[str, int]:
    """The most specific LAYERS entry that ``module`` is (or is inside), and its layer."""
    best, layer = "", -1
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best):
                best, layer = name, i
    assert layer >= 0, f"{module} is in no layer; add it to LAYERS"
    return best, layer


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = ("ttclab", *path.relative_to(SRC).with_suffix("").parts)
        name = ".".join(parts)
        if name.endswith(".__init__"):
            name = name.removesuffix(".__init__")
            if name == "ttclab.market":
                name = "ttclab.market.__init__"  # the package facade re-exports the market verb
        out[name] = path
    return out


def _imports(path: Path) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
            # ``from ttclab import x`` / ``from ttclab.pkg import sub``: the submodule if it is one
            found += [(f"{node.module}.{a.name}", node.lineno) for a in node.names
                      if (SRC.parent / f"{node.module}.{a.name}".replace(".", "/")).exists()
                      or (SRC.parent / (f"{node.module}.{a.name}".replace(".", "/") + ".py")).exists()]
    return [(m, line) for m, line in found if m == "ttclab" or m.startswith("ttclab.")]


def _edges() -> list[tuple[str, str, str, int]]:
    edges = []
    for name, path in _modules().items():
        for target, line in _imports(path):
            edges.append((name, target, path.relative_to(SRC).as_posix(), line))
    return edges


def test_every_module_is_in_a_layer():
    for name in _modules():
        _unit(name)


def test_no_import_goes_up_a_layer():
    bad = []
    for src, dst, file, line in _edges():
        (su, sl), (du, dl) = _unit(src), _unit(dst)
        if src == FACADE:
            continue
        if dl > sl and (su, du) not in ALLOWED_UPWARD and (src, dst) not in ALLOWED_UPWARD:
            bad.append(f"{file}:{line}: {src} imports {dst} (layer {dl} > {sl})")
    assert bad == []


def test_no_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for src, dst, _, _ in _edges():
        (su, _), (du, _) = _unit(src), _unit(dst)
        if su != du and (su, du) not in ALLOWED_UPWARD and src != FACADE:
            graph.setdefault(su, set()).add(du)
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path[path.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_tasks_and_verify_do_not_import_each_other_both_ways():
    pairs = {(_unit(s)[0], _unit(d)[0]) for s, d, _, _ in _edges()}
    assert ("ttclab.tasks", "ttclab.verify") not in pairs
    assert ("ttclab.verify", "ttclab.tasks") in pairs  # verifiers take a Question
