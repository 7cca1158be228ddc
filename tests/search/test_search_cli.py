"""``ttclab search``: one-line errors for bad configs, a controller search through the CLI."""

from __future__ import annotations

from pathlib import Path

import yaml

from ttclab.cli import main


def test_bad_configs_are_one_line_errors(tmp_path: Path, capsys):
    bad = tmp_path / "g.yaml"
    bad.write_text(yaml.safe_dump({"name": "g", "task": {"source": "gym", "name": "syllogism", "size": 4},
                                   "split": {"search": 2, "heldout": 2}, "models": {"a": {"name": "smollm2-135m"}},
                                   "budget": {"max": 100}, "method": {"name": "anneal"}}))
    assert main(["search", "graph", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "method.name" in err and "anneal" in err
    c = tmp_path / "c.yaml"
    c.write_text(yaml.safe_dump({"name": "c", "data": {"run": "x", "synthetic": {}}}))
    assert main(["search", "controller", str(c)]) == 2
    assert "exactly one of run, collect, synthetic" in capsys.readouterr().err
    assert main(["search", "controller", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["sample", str(c), "--probe-every", "0"]) == 2
    assert "--probe-every must be at least 1" in capsys.readouterr().err


def test_controller_search_cli(tmp_path: Path, capsys):
    c = tmp_path / "c.yaml"
    c.write_text(yaml.safe_dump({"name": "c", "data": {"synthetic": {"n_questions": 12, "n_traces": 8, "every": 200,
                                                                     "mean_tokens": 800}},
                                 "orders": 2, "method": {"name": "random", "evaluations": 3, "batch": 3},
                                 "references": ["sc", "esc"]}))
    assert main(["search", "controller", str(c), "--store", str(tmp_path / "store"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Pareto controller (held-out)" in out and "SC@8" in out
    assert (tmp_path / "store" / "search" / "c" / "report.html").exists()


def test_code_controllers_through_the_cli(tmp_path: Path, capsys):
    here = Path(__file__).resolve().parent
    (tmp_path / "mine.py").write_text((here / "sc_controller.py").read_text())
    cfg = {"name": "k", "data": {"synthetic": {"n_questions": 6, "n_traces": 8, "every": 200, "mean_tokens": 800}},
           "orders": 2, "method": {"name": "random", "evaluations": 2, "batch": 2}, "references": ["sc"],
           "code": [{"name": "mine", "file": "mine.py", "betas": [2, 8]},
                    {"name": "crash", "code": "def decide(obs):\n    return 1 / 0\n"}]}
    c = tmp_path / "k.yaml"
    c.write_text(yaml.safe_dump(cfg))
    assert main(["search", "controller", str(c), "--store", str(tmp_path / "store"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 code controller evaluation(s) failed in the sandbox" in out
    cfg["code"] = [{"name": "bad", "code": "def decide(obs:\n"}]
    c.write_text(yaml.safe_dump(cfg))
    assert main(["search", "controller", str(c), "--store", str(tmp_path / "store"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "code[0]: the controller's code does not parse" in err
