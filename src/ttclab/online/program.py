"""Pipeline files: YAML → a validated program of steps (see docs/pipelines.md for the format).

Every problem is one line naming the file, the step (its position and op, and id when given) and
the field, e.g. ``p.yaml: steps[1].steps[0] (critique): kind: must be one of self, none, oracle,
execution (got 'slef')``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ttclab.config import ModelSpec, VerifierSpec, read_yaml_mapping
from ttclab.errors import ConfigError
from ttclab.online.candidates import Candidate
from ttclab.online.state import QuestionState
from ttclab.online.steps.base import BindContext, StepSpec, check_sampling_keys
from ttclab.online.steps.budget_forcing import BudgetForcingSpec
from ttclab.online.steps.control import BudgetSpec, RepeatSpec
from ttclab.online.steps.deepconf import DeepConfSpec
from ttclab.online.steps.generate import CopySpec, ExtendSpec, GenerateSpec, InjectSpec
from ttclab.online.steps.reflect import CritiqueSpec, ReviseSpec
from ttclab.online.steps.score import ScoreSpec
from ttclab.online.steps.search import BeamSearchSpec, DVTSSpec
from ttclab.online.steps.select import FuseSpec, SelectSpec
from ttclab.registry import Registry
from ttclab.tasks.config import TaskConfig, format_validation_error

#: op name -> step spec class: the primitives and the compositions built on them.
OPS: Registry[type[StepSpec]] = Registry("op")
_BUILTIN_OPS: dict[str, type[StepSpec]] = {
    "generate": GenerateSpec, "extend": ExtendSpec, "inject": InjectSpec, "copy": CopySpec,
    "critique": CritiqueSpec, "revise": ReviseSpec, "score": ScoreSpec, "select": SelectSpec, "fuse": FuseSpec,
    "repeat": RepeatSpec, "beam_search": BeamSearchSpec, "dvts": DVTSSpec, "budget_force": BudgetForcingSpec,
    "deepconf": DeepConfSpec,
}
for _op, _spec in _BUILTIN_OPS.items():
    OPS.register(_op, _spec)


class PipelineSpec(BaseModel):
    """The top level of a pipeline file (``steps`` are compiled separately, see :func:`compile_steps`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str | None = None
    model: ModelSpec
    models: dict[str, ModelSpec] = Field(default_factory=dict, description="more models, by name, for steps' model:")
    task: TaskConfig
    verifier: VerifierSpec | None = None
    sampling: dict[str, Any] = Field(default_factory=lambda: {"max_tokens": 128})
    seed: int = Field(default=0, ge=0)
    format: str = Field(default="auto", description="auto | chat | chatml | gemma | llama3 | plain")
    continuation_format: str = Field(default="auto", description="auto | chatml | gemma | llama3 | plain")
    templates: dict[str, Any] = Field(default_factory=dict)
    budget: BudgetSpec | None = None
    final: Literal["vote", "first", "score"] = "vote"
    concurrency: int | None = Field(default=None, ge=1, le=4096)
    limit: int | None = Field(default=None, ge=1)
    prices: str | None = None
    steps: list[Any] = Field(min_length=1)

    @field_validator("sampling")
    @classmethod
    def _sampling(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "n" in value:
            raise ValueError("set n on a step (generate: {n: 8}), not in sampling")
        return value


class Pipeline:
    """A compiled pipeline: its spec, the bound steps and where it came from."""

    def __init__(self, spec: PipelineSpec, steps: list[StepSpec], source: str) -> None:
        self.spec = spec
        self.steps = steps
        self.source = source

    @property
    def name(self) -> str:
        return self.spec.name

    def uses_oracle(self) -> bool:
        return any(s.uses_oracle() for s in self.steps)

    def needs_continuation(self) -> bool:
        return any(s.needs_continuation() for s in self.steps)

    def describe_steps(self) -> list[dict[str, Any]]:
        """The steps as data with resolved ids and template hashes (part of the run identity)."""
        def one(s: StepSpec) -> dict[str, Any]:
            d = s.model_dump(mode="json", exclude={"steps", "scorer"}, exclude_none=True)
            d["id"] = s.sid
            template = s.template_or_none
            if template is not None:
                d["template"] = {"name": template.label, "hash": template.hash}
            d["params"] = s.params.model_dump(mode="json", exclude={"n"})
            if isinstance(s, RepeatSpec):
                d["steps"] = [one(c) for c in s.steps]
            for c in s.children():
                if not isinstance(s, RepeatSpec):
                    d["scorer"] = one(c)
            return d
        return [one(s) for s in self.steps]

    def identity_hash(self) -> str:
        data = {"steps": self.describe_steps(), "seed": self.spec.seed, "final": self.spec.final,
                "budget": self.spec.budget.model_dump(mode="json") if self.spec.budget else None,
                "format": self.spec.format, "continuation_format": self.spec.continuation_format}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def _label(index_path: str, data: Any) -> str:
    op = data.get("op") if isinstance(data, dict) else None
    sid = data.get("id") if isinstance(data, dict) else None
    inner = " ".join(str(x) for x in (op, repr(sid) if sid else None) if x)
    return f"{index_path} ({inner})" if inner else index_path


def parse_step(data: Any, index_path: str, source: str) -> StepSpec:
    """One step from its mapping (recursively for ``repeat``), ConfigError naming step and field."""
    where = f"{source}: {_label(index_path, data)}"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a step must be a mapping with an 'op' (got {data!r})")
    op = data.get("op")
    if op is None:
        raise ConfigError(f"{where}: op: required; choose one of: {', '.join(OPS)}")
    if op not in OPS:
        raise OPS.unknown(op, f"{where}: op")
    body = dict(data)
    children = body.pop("steps", None) if op == "repeat" else None
    if op == "repeat":
        if not isinstance(children, list) or not children:
            raise ConfigError(f"{where}: steps: a repeat needs a non-empty list of steps")
        body["steps"] = [parse_step(c, f"{index_path}.steps[{i}]", source) for i, c in enumerate(children)]
    try:
        return OPS.get(op).model_validate(body)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where).replace(": (top level): ", ": ", 1)) from None


def bind_steps(steps: Sequence[StepSpec], spec: PipelineSpec, base_dir: Path | None, source: str) -> None:
    seen: set[str] = set()

    def walk(items: Sequence[StepSpec], path: str, index_path: str) -> None:
        for i, step in enumerate(items):
            ip = f"{index_path}[{i}]"
            where = f"{source}: {ip} ({step.op}{' ' + repr(step.id) if step.id else ''})"
            step.bind(f"{path}{i}", BindContext(spec.sampling, spec.templates, base_dir, where))
            if step.sid in seen:
                raise ConfigError(f"{where}: id: {step.sid!r} is used by another step; step ids must be unique")
            seen.add(step.sid)
            if isinstance(step, RepeatSpec):
                walk(step.steps, f"{step.sid}.", f"{ip}.steps")

    walk(steps, "", "steps")


def compile_pipeline(data: dict[str, Any], source: str = "pipeline", base_dir: Path | None = None) -> Pipeline:
    """Validate a pipeline mapping and compile its steps."""
    raw_steps = data.get("steps")
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    assert isinstance(raw_steps, list)
    check_sampling_keys(spec.sampling, f"{source}: ")
    steps = [parse_step(s, f"steps[{i}]", source) for i, s in enumerate(raw_steps)]
    bind_steps(steps, spec, base_dir, source)
    check_routing(steps, spec, source)
    if spec.budget is not None and spec.budget.usd is not None and spec.prices is None:
        raise ConfigError(f"{source}: budget.usd: a dollar budget needs prices (a price file name or path)")
    return Pipeline(spec, steps, source)


def load_pipeline(path: str | Path, overrides: dict[str, Any] | None = None) -> Pipeline:
    """Read, override (``task``, ``model``, ``limit``...) and compile a pipeline file."""
    path = Path(path)
    data = read_yaml_mapping(path, "pipeline", "name, model, task, steps")
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return compile_pipeline(data, str(path), path.parent)


def check_routing(steps: Sequence[StepSpec], spec: PipelineSpec, source: str) -> None:
    """``inputs`` name earlier top-level steps; ``model`` names one of the pipeline's ``models``."""
    earlier: set[str] = set()

    def walk(items: Sequence[StepSpec], index_path: str, top: bool) -> None:
        for i, step in enumerate(items):
            where = f"{source}: {index_path}[{i}] ({step.op} {step.sid!r})"
            if step.model is not None and step.model not in spec.models:
                known = ", ".join(spec.models) or "none defined"
                raise ConfigError(f"{where}: model: {step.model!r} is not in the pipeline's models ({known}); "
                                  "add it under models: or remove the step's model")
            if step.inputs is not None:
                if not top:
                    raise ConfigError(f"{where}: inputs: only top-level steps can name their inputs")
                missing = [s for s in step.inputs if s not in earlier]
                if missing or not step.inputs:
                    raise ConfigError(f"{where}: inputs: {missing or step.inputs!r} must name earlier steps' ids")
            if isinstance(step, RepeatSpec):
                walk(step.steps, f"{index_path}[{i}].steps", False)
            if top:
                earlier.add(step.sid)

    walk(steps, "steps", True)


async def run_steps(steps: Sequence[StepSpec], q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
    """Run steps in order on one question's population (a step with ``inputs`` takes those steps'
    outputs; a step with ``model`` makes its calls through that model)."""
    for step in steps:
        source = pop if step.inputs is None else [c for sid in step.inputs for c in q.outputs.get(sid, [])]
        ctx = q.ctx
        if step.model is not None:
            q.ctx = ctx.models[step.model]
        try:
            pop = await step.run(q, source)
        finally:
            q.ctx = ctx
        q.outputs[step.sid] = pop
        q.population = pop
    return pop
