"""Every kind of bad input: one line naming the file / field / line and the fix, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

GOOD = {
    "model": {"backend": "llamacpp", "name": "smollm2-135m"},
    "task": {"source": "gym", "name": "syllogism", "size": 2, "seed": 0},
    "samples": 2,
    "sampling": {"max_tokens": 8},
}


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ttclab", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def _write(tmp_path: Path, data, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


def _assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("ttclab: error: ")
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.mark.parametrize(
    "change, needles",
    [
        ({"samples": 0}, ["cfg.yaml", "samples", "greater than or equal to 1"]),
        ({"sampling": {"temperature": 0.5}}, ["cfg.yaml", "sampling.max_tokens", "missing"]),
        ({"sampling": {"max_tokens": 8, "top_p": 3}}, ["sampling.top_p", "3"]),
        ({"sampling": {"max_tokens": 8, "n": 4}}, ["sampling", "samples"]),
        ({"modle": "x"}, ["modle", "unknown setting"]),
        ({"model": {"backend": "vllm", "name": "x"}}, ["model", "backend"]),
        ({"model": "gpt-4o"}, ["model", "not a built-in model", "backend: openai"]),
        ({"task": 7}, ["cfg.yaml: task:", "should be a mapping of settings", "(got 7)"]),  # no "instance of XSpec"
    ],
)
def test_bad_config_fields(tmp_path, change, needles):
    data = {**GOOD, **change}
    _assert_one_line_error(_run("sample", str(_write(tmp_path, data))), *needles)


@pytest.mark.parametrize(
    "config, verb, needles",
    [
        # a misspelt required key is reported as the typo, not as the key that is now missing
        ({**{k: v for k, v in GOOD.items() if k != "samples"}, "smaples": 2}, "sample",
         ["cfg.yaml: smaples: unknown setting; did you mean 'samples'?"]),
        ({**GOOD, "promt": {"style": "chat"}}, "sample", ["cfg.yaml: promt: unknown setting; did you mean 'prompt'?"]),
        ({**GOOD, "task": {"source": "gym", "name": "syllogism", "sze": 2}}, "sample", ["task.sze", "'size'"]),
        ({**GOOD, "sampling": {"max_token": 8}}, "sample", ["sampling.max_token", "did you mean 'max_tokens'?"]),
        ({**GOOD, "xyzzy": 1}, "sample", ["xyzzy: unknown setting; remove it or check its spelling"]),
        ({"models": [GOOD["model"]], "defualt": "none"}, "serve", ["defualt", "did you mean 'default'?"]),
        ({"name": "p", "model": GOOD["model"], "task": GOOD["task"], "sampling": {"max_tokens": 8},
          "steps": [{"op": "generate", "nn": 2}]}, "run", ["steps[0]", "nn: unknown setting; did you mean 'n'?"]),
    ],
)
def test_unknown_key_leads_with_did_you_mean(tmp_path, config, verb, needles):
    result = _run(verb, str(_write(tmp_path, config)))
    _assert_one_line_error(result, *needles)
    assert "[+" not in result.stderr and "required setting is missing" not in result.stderr


def test_missing_config_file(tmp_path):
    _assert_one_line_error(_run("sample", str(tmp_path / "nope.yaml")), "nope.yaml", "no such file")


def test_invalid_yaml_names_the_line(tmp_path):
    path = _write(tmp_path, "samples: 2\nmodel: {backend: llamacpp\n  name: x\nsampling: [\n")
    _assert_one_line_error(_run("sample", str(path)), "cfg.yaml:", "invalid YAML")


def test_missing_dataset_file(tmp_path):
    data = {**GOOD, "task": {"source": "file", "path": str(tmp_path / "data.jsonl"), "preset": "gsm8k"}}
    _assert_one_line_error(_run("sample", str(_write(tmp_path, data))), "data.jsonl")


def test_malformed_dataset_line_names_file_and_line(tmp_path):
    good = '{"question": "1+1?", "answer": "#### 2"}'
    (tmp_path / "data.jsonl").write_text(good + "\n" + good + "\n{not json\n")
    data = {**GOOD, "task": {"source": "file", "path": str(tmp_path / "data.jsonl"), "preset": "gsm8k"}}
    _assert_one_line_error(_run("sample", str(_write(tmp_path, data))), "data.jsonl:3")


def test_unknown_gym_task(tmp_path):
    data = {**GOOD, "task": {"source": "gym", "name": "sylogism", "size": 2}}
    _assert_one_line_error(_run("sample", str(_write(tmp_path, data))), "sylogism", "syllogism")


def test_unknown_run_and_bad_import_file(tmp_path):
    _assert_one_line_error(_run("show", "nope", "--store", str(tmp_path)), "nope")
    (tmp_path / "x.jsonl").write_text('{"qid": 1, "answers": ["a"], "correct": [true]}\n{"qid": 2}\n')
    _assert_one_line_error(_run("import", "strategic-ttc", str(tmp_path / "x.jsonl"), "--store", str(tmp_path)),
                           "x.jsonl:2", "answers")


@pytest.mark.parametrize(
    "argv, line",
    [
        (["evalute"], "unknown command 'evalute'; did you mean 'evaluate'? (ttclab --help lists the commands)"),
        (["--store", "runs", "--format", "json", "shwo", "x"], "unknown command 'shwo'; did you mean 'show'?"),
        (["xyzzy"], "unknown command 'xyzzy' (ttclab --help lists the commands)"),
    ],
)
def test_mistyped_command_is_one_line(tmp_path, argv, line):
    result = _run(*argv, cwd=tmp_path)
    _assert_one_line_error(result, line)
    assert "usage:" not in result.stderr and "choose from" not in result.stderr


@pytest.mark.parametrize("argv", [["--bogus"], ["--store", "runs", "--bogus=1"]])
def test_an_unknown_option_without_a_command_is_named(tmp_path, argv):
    result = _run(*argv, cwd=tmp_path)
    _assert_one_line_error(result, "ttclab: error: unknown option '--bogus' and no command")
    assert "required" not in result.stderr


@pytest.mark.parametrize("argv", [[], ["--store", "runs"], ["--store=runs", "--format", "json"]])
def test_no_command_prints_the_commands(tmp_path, argv):
    result = _run(*argv, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "usage: ttclab" in result.stderr and "sample" in result.stderr and "evaluate" in result.stderr
    assert "the following arguments are required" not in result.stderr


@pytest.mark.parametrize(
    "argv, line",
    [
        (["search", "grph"], "ttclab: error: search: argument ACTION: invalid choice: 'grph' (choose from 'graph', "
                             "'controller'); did you mean 'graph'?"),
        (["evaluate", "--ks"], "ttclab: error: evaluate: argument --ks: expected one argument"),
        (["runs", "--bogus"], "ttclab: error: unrecognized arguments: --bogus (`ttclab runs --help` shows"),
        (["--bogus", "runs"], "ttclab: error: unrecognized arguments: --bogus (`ttclab runs --help` shows"),
        (["serve", "--bogus"], "unrecognized arguments: --bogus (`ttclab serve --help` shows the usage)"),
        (["search", "graph", "x.yaml", "--bogus"],
         "unrecognized arguments: --bogus (`ttclab search graph --help` shows the usage)"),  # where its options are
    ],
)
def test_usage_errors_are_one_line(tmp_path, argv, line):
    result = _run(*argv, cwd=tmp_path)
    _assert_one_line_error(result, line)
    assert "usage:" not in result.stderr and "--help` shows the usage" in result.stderr
