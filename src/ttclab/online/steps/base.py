"""The step contract: a validated spec (from the pipeline file) that maps a population to a population.

Every step has an ``id`` (default: its position, e.g. ``2.1.critique``), optional ``sampling``
overrides and, when it makes model calls, a ``template``. :meth:`StepSpec.bind` resolves those once
at compile time; :meth:`StepSpec.run` runs the step on one question's population.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from ttclab.backends.base import SamplingParams
from ttclab.errors import ConfigError
from ttclab.online.budget import BudgetExhausted
from ttclab.online.calls import CallResult, PreparedCall
from ttclab.online.candidates import Candidate
from ttclab.online.state import QuestionState
from ttclab.online.templates import Prompt, Template, resolve_template


def check_sampling_keys(sampling: dict[str, Any], where: str) -> None:
    """ConfigError naming the first key of a ``sampling`` mapping that is not a sampling parameter."""
    known = [k for k in SamplingParams.model_fields if k != "n"]
    for key in sampling:
        if key not in SamplingParams.model_fields:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"use {', '.join(known)}"
            raise ConfigError(f"{where}sampling.{key}: unknown setting; {hint}")


class QuestionFailed(Exception):
    """A model call failed: the question is stored as an error (retried by the next run), never graded."""


@dataclass
class BindContext:
    """What compiling a step needs from the pipeline file."""

    sampling: dict[str, Any]  # pipeline-level sampling
    templates: dict[str, Any]  # pipeline-level template overrides by template name
    base_dir: Path | None
    where: str  # e.g. "pipeline.yaml: steps[2] (select)"


class StepSpec(BaseModel):
    """Base of every step spec."""

    model_config = ConfigDict(extra="forbid")

    op: str
    id: str | None = None
    sampling: dict[str, Any] | None = None
    #: Graph pipelines: the step works on the outputs of these earlier (top-level) steps instead of
    #: the previous step's population (None: the previous step's).
    inputs: list[str] | None = None
    #: Graph pipelines: a name from the pipeline's ``models`` that makes this step's calls (None: ``model``).
    model: str | None = None

    #: The template a step uses unless the file names another (None: the step makes no LLM call).
    default_template: ClassVar[str | None] = None
    #: Sampling defaults of this kind of step, over the pipeline's and under the step's own.
    default_sampling: ClassVar[dict[str, Any]] = {}
    #: Uses the ground truth at inference time (labelled oracle, never compute-optimal).
    oracle: ClassVar[bool] = False
    #: Continues partial answers through the completions API (needs the model's chat format).
    continues: ClassVar[bool] = False

    _sid: str = PrivateAttr(default="")
    _template: Template | None = PrivateAttr(default=None)
    _params: SamplingParams | None = PrivateAttr(default=None)

    # The bound values are read from pydantic's private-attribute dict directly: ``self._sid`` goes
    # through BaseModel.__getattr__ (~2 us), and these are read several times per model call.
    @property
    def sid(self) -> str:
        return self._private["_sid"]

    @property
    def tpl(self) -> Template:
        template = self._private["_template"]
        assert template is not None, f"step {self.sid} has no template"
        return template

    @property
    def template_or_none(self) -> Template | None:
        return self._private["_template"]

    @property
    def params(self) -> SamplingParams:
        params = self._private["_params"]
        assert params is not None
        return params

    @property
    def _private(self) -> dict[str, Any]:
        private = self.__pydantic_private__
        assert private is not None
        return private

    def template_spec(self) -> Any:
        return getattr(self, "template", None)

    def template_default(self) -> str | None:
        return self.default_template

    def bind(self, path: str, ctx: BindContext) -> None:
        """Resolve the id, template and sampling (ConfigError naming the step and field)."""
        self._sid = self.id or f"{path}.{self.op}"
        default = self.template_default()
        spec = self.template_spec()
        if default is not None or spec is not None:
            name = spec if isinstance(spec, str) and not spec.endswith((".yaml", ".yml")) else default
            if spec is None and name in ctx.templates:
                spec = ctx.templates[name]
            self._template = resolve_template(spec, default or "solve", f"{ctx.where}: template", ctx.base_dir)
        check_sampling_keys(self.sampling or {}, f"{ctx.where}: ")
        merged = {**ctx.sampling, **self.default_sampling, **(self.sampling or {})}
        merged.pop("n", None)
        try:
            self._params = SamplingParams.model_validate(merged)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "required (set it under the pipeline's sampling or the step's)"
            raise ConfigError(f"{ctx.where}: sampling.{field}: {msg}") from None

    def children(self) -> Sequence[StepSpec]:
        return ()

    def uses_oracle(self) -> bool:
        return self.oracle or any(c.uses_oracle() for c in self.children())

    def needs_continuation(self) -> bool:
        return self.continues or any(c.needs_continuation() for c in self.children())

    async def run(self, q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
        raise NotImplementedError

    def params_with(self, **changes: Any) -> SamplingParams:
        return self.params.with_(**changes) if changes else self.params


def prepare_all(q: QuestionState, items: Sequence[dict[str, Any]]) -> list[PreparedCall]:
    """Prepare several calls in order; on an exhausted budget release what was reserved and re-raise."""
    prepared: list[PreparedCall] = []
    try:
        for item in items:
            prepared.append(q.caller.prepare(q, **item))
    except BudgetExhausted:
        for p in prepared:
            q.budget.settle(p.reserve, 0, 0, 0)
        raise
    return prepared


async def run_all(q: QuestionState, prepared: Sequence[PreparedCall],
                  grade: Callable[[str], Awaitable[str | None]] | None = None) -> list[list[CallResult]]:
    """Run prepared calls concurrently (in order, without tasks, when all are replayed from the cache);
    a failed call fails the question."""
    if all(q.caller.is_cached(p) for p in prepared):
        results = [await q.caller.run(p, grade) for p in prepared]
    else:
        results = await asyncio.gather(*(q.caller.run(p, grade) for p in prepared))
    for group in results:
        for r in group:
            if not r.ok:
                raise QuestionFailed(r.error or "call failed")
    return list(results)


async def call_each(q: QuestionState, items: Sequence[dict[str, Any]],
                    grade: Callable[[str], Awaitable[str | None]] | None = None) -> list[list[CallResult]]:
    """:func:`prepare_all` then :func:`run_all`."""
    return await run_all(q, prepare_all(q, items), grade)


def call_item(step: StepSpec, prompt: Prompt, *, role: str, parents: Sequence[str] = (), n: int = 1,
              params: SamplingParams | None = None, template: Template | None = None) -> dict[str, Any]:
    return {"prompt": prompt, "params": params or step.params, "n": n, "step_id": step.sid, "role": role,
            "parents": tuple(parents), "template": template or step.template_or_none}


def numbered(cands: Sequence[Candidate], max_chars: int) -> str:
    """``Solution 1:\\n...`` blocks for judge and fuse prompts (each truncated to ``max_chars``)."""
    return "\n\n".join(f"Solution {i + 1}:\n{truncate(c.text, max_chars)}" for i, c in enumerate(cands))


def truncate(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 15] + " …[truncated]"
