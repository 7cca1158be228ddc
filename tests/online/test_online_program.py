"""Pipeline files: malformed input gives one line naming the file, the step and the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from online_support import PIPELINES, load_yaml, write_pipeline

from ttclab.errors import ConfigError
from ttclab.online.program import compile_pipeline, load_pipeline
from ttclab.online.templates import builtin_template, builtin_template_names, resolve_template

BASE: dict[str, Any] = {
    "name": "t", "model": {"backend": "llamacpp", "name": "smollm2-135m"},
    "task": {"source": "gym", "name": "basic_arithmetic", "size": 2},
    "sampling": {"max_tokens": 8}, "steps": [{"op": "generate", "n": 2}],
}


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as exc:
        compile_pipeline(data, "p.yaml")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("p.yaml")
    return msg


@pytest.mark.parametrize("steps, expected", [
    ([{"op": "generat", "n": 2}], "steps[0] (generat): op: unknown op 'generat'; did you mean generate?"),
    ([{"n": 2}], "steps[0]: op: required"),
    ([{"op": "generate", "n": 0}], "steps[0] (generate): n: Input should be greater than or equal to 1"),
    ([{"op": "generate", "n": 2, "colour": 1}], "steps[0] (generate): colour: unknown setting"),
    ([{"op": "generate"}, {"op": "repeat", "times": 2, "steps": [{"op": "critique", "kind": "slef"}]}],
     "steps[1].steps[0] (critique): kind: Input should be 'self', 'none', 'oracle' or 'execution'"),
    ([{"op": "generate", "id": "g"}, {"op": "select", "by": "llm_pick", "k": 2}],
     "steps[1] (select): by: llm_pick keeps one candidate"),
    ([{"op": "generate", "id": "g"}, {"op": "generate", "id": "g"}], "steps[1] (generate 'g'): id: 'g' is used by another step"),
    ([{"op": "repeat", "times": 2, "steps": []}], "steps[0] (repeat): steps: a repeat needs a non-empty list of steps"),
    ([{"op": "generate", "sampling": {"temperature": -1}}], "steps[0] (generate): sampling.temperature:"),
    ([{"op": "revise", "template": {"user": "Fix {solutoin}"}}], "unknown placeholder {solutoin}; did you mean {solution}?"),
    ([{"op": "generate", "template": "nope"}], "unknown prompt template 'nope'"),
    # a custom prompt that drops what the call works on: the model would answer blind
    ([{"op": "generate", "template": {"user": "Solve it"}}],
     "steps[0] (generate): template.user: no {question}: the model would not see it; add {question}"),
    ([{"op": "generate"}, {"op": "critique", "kind": "self"}, {"op": "revise", "template": {"user": "{question} again"}}],
     "steps[2] (revise): template.user: no {solution}: the model would not see it"),
    ([{"op": "generate"}, {"op": "select", "by": "pairwise", "template": {"user": "{question}: {solution_a}?"}}],
     "template.user: no {solution_b}"),
    ([{"op": "generate", "sampling": {"temprature": 0.5}}],
     "steps[0] (generate): sampling.temprature: unknown setting; did you mean 'temperature'?"),
    ([{"op": "dvts", "n": 3, "beam_width": 2}], "steps[0] (dvts): n (3) must be a multiple of beam_width (2)"),
    ([{"op": "score", "by": "reward_model"}], "steps[0] (score): by: reward_model needs reward"),
])
def test_bad_step_names_step_and_field(steps: list[dict[str, Any]], expected: str) -> None:
    assert expected in _error({**BASE, "steps": steps})


def test_bad_top_level() -> None:
    assert "p.yaml: sampling: set n on a step" in _error({**BASE, "sampling": {"max_tokens": 8, "n": 2}})
    assert "p.yaml: steps: " in _error({**BASE, "steps": []})
    assert "p.yaml: colour: unknown setting" in _error({**BASE, "colour": 1})
    assert "sampling.max_tokens: required" in _error({**BASE, "sampling": {}})
    # a typo in the top-level sampling is named there (not at the first step, which only inherits it)
    assert _error({**BASE, "sampling": {"max_tokens": 8, "temprature": 0.3}}) == \
        "p.yaml: sampling.temprature: unknown setting; did you mean 'temperature'?"
    assert "budget.usd: a dollar budget needs prices" in _error({**BASE, "budget": {"usd": 1.0}})


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_pipeline(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: invalid YAML"):
        load_pipeline(bad)


def test_every_shipped_pipeline_compiles_with_a_default_model_and_task() -> None:
    files = sorted(PIPELINES.glob("*.yaml"))
    assert len(files) >= 18
    for f in files:
        data = load_yaml(f.stem)
        assert data["name"] == f.stem and data["model"] and data["task"], f
        if f.stem == "reflect-execution":
            assert data["task"]["source"] == "humaneval"
            continue
        pipe = load_pipeline(f)
        ids = [s.sid for s in pipe.steps]
        assert len(ids) == len(set(ids))
        assert pipe.identity_hash() == load_pipeline(f).identity_hash()


def test_templates_are_versioned_data() -> None:
    names = builtin_template_names()
    for name in ("solve", "critique_self", "revise", "pick", "pairwise", "score_rubric", "self_eval", "step_eval", "fuse"):
        assert name in names
        t = builtin_template(name)
        assert t.version >= 1 and len(t.hash) == 12
    base = builtin_template("revise")
    custom = resolve_template({"user": "Problem: {question}\n{solution}\n{feedback}\nAgain."}, "revise", "w")
    assert custom.name == "revise+custom" and custom.hash != base.hash and custom.system == base.system
    assert "Again." in custom.messages(question="q", solution="s", feedback="f")[-1]["content"]
    # a built-in name or a template that keeps the inputs is fine, feedback may be left out
    assert resolve_template("solve_code", "solve", "w").name == "solve_code"
    assert resolve_template({"user": "{question}\n{solution}\nAgain."}, "revise", "w").name == "revise+custom"
    # only known placeholders are replaced: braces such as \boxed{} stay
    t = resolve_template({"user": "{question} \\boxed{} {unknown_thing}"}, "solve", "w")
    assert t.messages(question="Q")[-1]["content"] == "Q \\boxed{} {unknown_thing}"


def test_template_override_changes_the_run_identity(tmp_path: Path) -> None:
    a = compile_pipeline(dict(BASE), "a")
    b = compile_pipeline({**BASE, "templates": {"solve": {"user": "Q: {question}"}}}, "b")
    assert a.identity_hash() != b.identity_hash()


def test_cli_bad_pipeline_is_one_line_exit_2(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, {**BASE, "steps": [{"op": "select", "by": "pik"}]})
    proc = subprocess.run([sys.executable, "-m", "ttclab", "run", str(path), "--store", str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "steps[0] (select): by: Input should be 'vote', 'score', 'llm_pick' or 'pairwise'" in lines[0]
    proc = subprocess.run([sys.executable, "-m", "ttclab", "run", str(path), "--limit", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--limit must be at least 1" in proc.stderr
    # YAML flow style needs a space after a colon: '{backend:openai}' is one key, said so (not 'unknown setting')
    proc = subprocess.run([sys.executable, "-m", "ttclab", "run", str(path), "--store", str(tmp_path / "s"),
                           "--model", "{backend:openai, name: M}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "--model: 'backend:openai' is read as one key; put a space after each colon (backend: openai)" in proc.stderr
