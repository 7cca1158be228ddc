"""The task: and prompt: config sections: validation messages, source inference, building."""

from __future__ import annotations

import json

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ttclab.errors import ConfigError
from ttclab.tasks import (
    FileTask,
    FileTaskConfig,
    GymTask,
    GymTaskConfig,
    HubTask,
    PromptConfig,
    TaskConfig,
    build_prompt_template,
    format_validation_error,
    load_task,
    task_config,
)


class Sections(BaseModel):
    """The two sections as the top-level config embeds them."""

    model_config = ConfigDict(extra="forbid")
    task: TaskConfig
    prompt: PromptConfig | None = None


def _error(text: str) -> str:
    with pytest.raises(ValidationError) as exc:
        Sections.model_validate(yaml.safe_load(text))
    line = format_validation_error(exc.value, "config.yaml")
    assert "\n" not in line
    return line


@pytest.mark.parametrize("text, expected", [
    ("task: {source: gym, name: syllogism, size: 0}", "config.yaml: task.size: Input should be greater than 0 (got 0)"),
    ("task: {name: syllogism, size: 0}", "config.yaml: task.size: Input should be greater than 0 (got 0)"),
    ("task: {source: gym, size: 3}", "config.yaml: task.name: required setting is missing"),
    ("task: {source: gym, name: x, sise: 3}", "config.yaml: task.sise: unknown setting; did you mean 'size'?"),
    ("task: {source: web, name: x}", "config.yaml: task: source must be gym, file, hub or humaneval (got 'web')"),
    ("task: {size: 3}", "config.yaml: task: say where the questions come from: source: gym, file, hub or humaneval"),
    ("task: {path: a.jsonl, preset: gsm8}",
     "config.yaml: task.preset: unknown preset 'gsm8'; did you mean gsm8k? use one of gsm8k, math500, math, aime, amc, "
     "gpqa, generic"),
    ("task: {path: a.jsonl, fields: {questoin: q}}",
     "config.yaml: task.fields.questoin: unknown setting; did you mean 'question'?"),
    ("task: {path: a.jsonl, limit: 0}", "config.yaml: task.limit: Input should be greater than 0 (got 0)"),
    ("task: {name: x, params: {seed: 1}}", "config.yaml: task.params: set task.seed, not task.params.seed"),
    ("task: {name: x}\nprompt: {style: chat, template: qa}",
     "config.yaml: prompt: template 'qa' is a fewshot template but style is chat; change one of them"),
    ("task: {name: x}\nprompt: {style: talk}",
     "config.yaml: prompt.style: Input should be 'auto', 'chat' or 'fewshot' (got 'talk')"),
    ("task: {name: x}\nprompt: {query: 'Q: {questoin}'}",
     "config.yaml: prompt.query: unknown placeholder {questoin}; did you mean {question}? "
     "(placeholders: {question}, {answer}, {solution}, {id}) (got 'Q: {questoin}')"),
    ("task: {name: x}\nprompt: {shots: 2, examples: {name: y, size: -1}}",
     "config.yaml: prompt.examples.size: Input should be greater than 0 (got -1)"),
])
def test_one_line_messages_name_the_field(text, expected):
    assert _error(text) == expected


def test_source_is_inferred_and_defaults_apply():
    s = Sections.model_validate(yaml.safe_load(
        "task: {path: data.csv, preset: gpqa}\nprompt: cot"))
    assert isinstance(s.task, FileTaskConfig) and s.task.source == "file" and s.task.preset == "gpqa"
    assert s.prompt.template == "cot" and s.prompt.style == "auto"
    gym = task_config({"name": "syllogism"})
    assert isinstance(gym, GymTaskConfig) and (gym.size, gym.seed, gym.params) == (20, 0, {})
    # the dump is stable JSON (the run id hashes it)
    assert json.dumps(gym.model_dump(mode="json"), sort_keys=True) == \
        '{"name": "syllogism", "params": {}, "seed": 0, "size": 20, "source": "gym"}'


def test_load_task_builds_each_source(tmp_path):
    assert isinstance(load_task({"source": "gym", "name": "syllogism", "size": 2}), GymTask)
    (tmp_path / "d.jsonl").write_text('{"q": "1+1", "a": 2}\n')
    t = load_task(FileTaskConfig(path=str(tmp_path / "d.jsonl"), fields={"question": "q", "gold": "a"}, name="mine"))
    assert isinstance(t, FileTask) and t.name == "mine" and t.questions()[0].gold == "2"
    assert isinstance(load_task({"source": "hub", "dataset": "a/b"}), HubTask)
    with pytest.raises(ConfigError, match=r"^task.size: Input should be greater than 0 \(got 0\)$"):
        load_task({"name": "syllogism", "size": 0})


def test_build_prompt_template_from_mapping_and_model():
    task = {"source": "gym", "name": "syllogism", "size": 3, "seed": 1}
    q = load_task(task).questions()[0]
    a = build_prompt_template({"style": "fewshot", "shots": 2}, task)
    b = build_prompt_template(PromptConfig(style="fewshot", shots=2), GymTaskConfig(**task))
    assert a.render(q) == b.render(q) and isinstance(a.render(q), str)
    # a Task object works too; its own questions are the examples (never the question itself)
    c = build_prompt_template(PromptConfig(style="fewshot", shots=2), load_task(task))
    assert c.render(q).count(q.question) == 1
    assert json.dumps(a.describe())
    with pytest.raises(ConfigError, match=r"^prompt.shots: Input should be greater than or equal to 0"):
        build_prompt_template({"shots": -1}, task)


def test_shorthands():
    s = Sections.model_validate(yaml.safe_load("task: syllogism\nprompt: {style: fewshot, stop: '###'}"))
    assert isinstance(s.task, GymTaskConfig) and s.task.name == "syllogism" and s.task.size == 20
    assert build_prompt_template(s.prompt, s.task).stop == ("###",)
    with pytest.raises(ConfigError, match=r"^prompt: should be a mapping of settings"):
        build_prompt_template(5, s.task)  # type: ignore[arg-type]
