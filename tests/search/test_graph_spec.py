"""Graph specs: validation (one-line errors), compile to a pipeline and back, run through ttclab run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ttclab.errors import ConfigError
from ttclab.online.program import compile_pipeline
from ttclab.search.graph import graph_from_pipeline, parse_graph, to_pipeline

MODELS = {"small": {"backend": "llamacpp", "name": "smollm2-135m"}, "big": {"backend": "llamacpp", "name": "gemma3-270m"}}


def g(nodes, output=None, **kw):
    return parse_graph({"models": MODELS, "nodes": nodes, **({"output": output} if output else {}), **kw})


@pytest.mark.parametrize("nodes, message", [
    ([{"id": "a", "role": "genrator", "model": "small"}], "role: unknown role 'genrator'; did you mean generator?"),
    ([{"id": "a", "role": "fuser", "model": "small", "inputs": ["b"]},
      {"id": "b", "role": "fuser", "model": "small", "inputs": ["a"]}], "the graph has a cycle: a -> b -> a"),
    ([{"id": "a", "role": "refiner", "model": "small", "inputs": ["ghost"]}], "inputs: node 'ghost' is not defined"),
    ([{"id": "a", "role": "generator", "model": "small"},
      {"id": "b", "role": "judge", "model": "small", "inputs": ["a"]}], "a judge chooses among at least two inputs"),
    ([{"id": "a", "role": "generator", "model": "small"}, {"id": "c", "role": "generator", "model": "small"},
      {"id": "b", "role": "refiner", "model": "small", "inputs": ["a", "c"]}], "a refiner improves exactly one input"),
    ([{"id": "a", "role": "generator", "model": "small"},
      {"id": "b", "role": "fuser", "model": "small", "inputs": ["a", "a"]}], "inputs: a node is listed twice"),
    ([{"id": "a", "role": "generator", "model": "huge"}], "model: 'huge' is not in the graph's models"),
    ([{"id": "a", "role": "generator", "model": "small"}, {"id": "b", "role": "generator", "model": "small"}],
     "the graph has 2 end nodes (a, b); name the output node"),
])
def test_invalid_graphs_are_one_line_errors(nodes, message):
    with pytest.raises(ConfigError) as err:
        g(nodes)
    text = str(err.value)
    assert message in text and "\n" not in text


def test_dead_nodes_and_generator_inputs_are_refused():
    with pytest.raises(ConfigError, match="do not feed the output node"):
        g([{"id": "a", "role": "generator", "model": "small"}, {"id": "b", "role": "generator", "model": "small"}],
          output="a")
    with pytest.raises(ConfigError, match="takes no inputs"):
        g([{"id": "a", "role": "generator", "model": "small"},
           {"id": "b", "role": "generator", "model": "small", "inputs": ["a"]}])


GRAPH = [{"id": "g1", "role": "generator", "model": "small"}, {"id": "g2", "role": "generator", "model": "big"},
         {"id": "g3", "role": "generator", "model": "small", "sampling": {"temperature": 0.9}},
         {"id": "r1", "role": "refiner", "model": "big", "inputs": ["g1"]},
         {"id": "f1", "role": "fuser", "model": "small", "inputs": ["g2", "g3"]},
         {"id": "out", "role": "judge", "model": "small", "inputs": ["r1", "f1", "g1"]}]


def test_edges_list_equals_inputs():
    a = g(GRAPH)
    nodes = [{k: v for k, v in n.items() if k != "inputs"} for n in GRAPH]
    edges = [[src, n["id"]] for n in GRAPH for src in n.get("inputs", [])]
    b = g(nodes, edges=edges)
    assert a.key() == b.key() and a.output == "out" and a.width == 3 and a.depth == 3


def test_compile_round_trip(tmp_path: Path):
    graph = g(GRAPH)
    data = to_pipeline(graph, name="rt", task={"source": "gym", "name": "basic_arithmetic", "size": 4})
    path = tmp_path / "rt.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    again = yaml.safe_load(path.read_text())
    pipe = compile_pipeline(again, str(path))  # what ttclab run compiles
    assert [s.sid for s in pipe.steps] == ["g1", "g2", "g3", "r1.feedback", "r1", "f1", "out"]
    assert pipe.steps[1].model == "big" and pipe.steps[0].model is None and pipe.spec.models["big"].name == "gemma3-270m"
    back = graph_from_pipeline(again)
    assert back.key() == graph.key()
    assert [n.as_dict() for n in back.nodes] == [n.as_dict() for n in graph.nodes]


def test_pipeline_routing_errors_name_the_step():
    data = to_pipeline(g(GRAPH), name="rt", task={"source": "gym", "name": "basic_arithmetic", "size": 4})
    data["steps"][4]["inputs"] = ["nowhere"]
    with pytest.raises(ConfigError, match=r"steps\[4\] \(revise 'r1'\): inputs: \['nowhere'\] must name earlier"):
        compile_pipeline(data, "p.yaml")
    data = to_pipeline(g(GRAPH), name="rt", task={"source": "gym", "name": "basic_arithmetic", "size": 4})
    data["steps"][1]["model"] = "medium"
    with pytest.raises(ConfigError, match="model: 'medium' is not in the pipeline's models"):
        compile_pipeline(data, "p.yaml")
