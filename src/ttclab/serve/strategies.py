"""Which strategy answers a request, and the program of online steps that runs it.

Priority: the request's ``ttc`` field, then a model alias (``smollm2-135m:majority@8``,
``MODEL:pipeline/NAME``), then the config's ``default``. Live strategies (the offline ones that can
run online, same names as ``ttclab strategies``) are small programs over the online primitives:

| strategy | program | final answer |
|---|---|---|
| ``none`` | generate 1 (pass-through) | that one |
| ``majority@k`` | generate k, select by vote | the plurality answer |
| ``best_of_n@k`` | generate k, score by the config's reward endpoint, select by score | highest reward |
| ``first_finish@k`` | generate k, keep the first to finish | the first one |
| ``adaptive_consistency@k`` | rounds of ``batch`` samples until the Beta rule stops (at most k), vote | plurality |
| ``esc@k`` | rounds of ``window`` samples until one round agrees (at most k), vote | plurality |

A pipeline (``pipeline/NAME``) is any file from the online issue listed in the config.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ttclab.online.program import Pipeline, bind_steps, compile_pipeline, parse_step
from ttclab.online.steps.base import StepSpec
from ttclab.serve.protocol import APIError, TTCSpec

STRATEGIES = ("none", "majority", "best_of_n", "first_finish", "adaptive_consistency", "esc")
DEFAULT_K = 4
_ALIAS = re.compile(r"^(?P<name>[a-z_]+)(?:@(?P<k>\d+))?$")


@dataclass(frozen=True)
class Plan:
    """A resolved strategy: its name, its number of samples and options (or a pipeline's name)."""

    strategy: str  # a name from STRATEGIES, or "pipeline"
    k: int = 1
    pipeline: str | None = None
    batch: int | None = None
    threshold: float = 0.95
    window: int = 5

    @property
    def label(self) -> str:
        if self.strategy == "pipeline":
            return f"pipeline/{self.pipeline}"
        return "none" if self.strategy == "none" else f"{self.strategy}@{self.k}"

    @property
    def final(self) -> str:
        return {"none": "first", "first_finish": "first", "best_of_n": "score"}.get(self.strategy, "vote")


def _unknown(name: str, param: str) -> APIError:
    close = difflib.get_close_matches(name, STRATEGIES, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    return APIError(400, f"{param}: unknown strategy {name!r}; {hint}choose one of: {', '.join(STRATEGIES)} "
                         "(or pipeline/NAME)", param=param, code="unknown_strategy")


def parse_alias(text: str, param: str = "model") -> Plan:
    """``majority@8``, ``first_finish@4``, ``none``, ``pipeline/NAME`` → a plan (400 when unknown)."""
    if text.startswith("pipeline/"):
        name = text.removeprefix("pipeline/")
        if not name:
            raise APIError(400, f"{param}: pipeline/ needs the pipeline's name, e.g. pipeline/reflect-then-aggregate",
                           param=param)
        return Plan("pipeline", pipeline=name)
    m = _ALIAS.match(text)
    if not m or m.group("name") not in STRATEGIES:
        raise _unknown(m.group("name") if m else text, param)
    name = m.group("name")
    if name == "none":
        return Plan("none")
    k = int(m.group("k")) if m.group("k") else DEFAULT_K
    if k < 1:
        raise APIError(400, f"{param}: {text}: the number of samples must be at least 1", param=param)
    return Plan(name, k)


def plan_from_ttc(spec: TTCSpec, fallback: Plan) -> Plan:
    """The plan a request's ``ttc`` field asks for (missing fields from ``fallback``'s strategy)."""
    if spec.pipeline is not None:
        if spec.strategy not in (None, "pipeline"):
            raise APIError(400, "ttc: give strategy or pipeline, not both", param="ttc")
        return Plan("pipeline", pipeline=spec.pipeline)
    if spec.strategy is None:
        if all(v is None for v in (spec.k, spec.batch, spec.threshold, spec.window)):
            return fallback
        base = fallback if fallback.strategy != "pipeline" else Plan("majority", DEFAULT_K)
    else:
        if spec.strategy == "pipeline":
            raise APIError(400, 'ttc.pipeline: required with strategy pipeline; send "ttc": {"pipeline": "NAME"} '
                                "(GET /v1/models lists them as MODEL:pipeline/NAME)", param="ttc.pipeline")
        base = parse_alias(spec.strategy, "ttc.strategy")
    k = spec.k if spec.k is not None else base.k
    if base.strategy == "none" and spec.k not in (None, 1):
        if spec.strategy is None:
            raise APIError(400, "ttc.k: this model answers with strategy none (one call), so k does not apply; "
                                "also set ttc.strategy, e.g. majority", param="ttc.k")
        raise APIError(400, "ttc.k: strategy none makes one call, so k does not apply; use majority or another "
                            "strategy", param="ttc.k")
    return Plan(base.strategy, k, None, spec.batch or base.batch, spec.threshold or base.threshold,
                spec.window or base.window)


def strategy_steps(plan: Plan, reward: Any) -> list[dict[str, Any]]:
    """The program of a live strategy, as pipeline steps."""
    gen = {"id": "generate", "op": "generate"}
    k = plan.k
    if plan.strategy == "none":
        return [{**gen, "n": 1}]
    if plan.strategy == "majority":
        return [{**gen, "n": k}, {"id": "vote", "op": "select", "by": "vote"}]
    if plan.strategy == "first_finish":
        return [{**gen, "n": k, "first": 1}] if k > 1 else [{**gen, "n": 1}]
    if plan.strategy == "best_of_n":
        if reward is None:
            raise APIError(400, "best_of_n needs a reward model: set reward: {url, model} in the serve config",
                           param="ttc.strategy", code="unknown_strategy")
        return [{**gen, "n": k}, {"id": "reward", "op": "score", "by": "reward_model",
                                  "reward": reward.model_dump(mode="json")},
                {"id": "best", "op": "select", "by": "score"}]
    if plan.strategy in ("adaptive_consistency", "esc"):
        batch = plan.batch or (2 if plan.strategy == "adaptive_consistency" else plan.window)
        batch = min(batch, k)
        rule = ({"rule": "beta", "threshold": plan.threshold} if plan.strategy == "adaptive_consistency"
                else {"rule": "window", "size": min(plan.window, k) if k >= 2 else 2})
        return [{"id": "rounds", "op": "repeat", "times": math.ceil(k / batch), "until": {"consensus": rule},
                 "steps": [{"id": "draw", "op": "generate", "n": batch, "accumulate": True}]},
                {"id": "vote", "op": "select", "by": "vote"}]
    raise _unknown(plan.strategy, "ttc.strategy")


def plan_samples(plan: Plan) -> int:
    """The most generator samples a live strategy draws (checked against ``limits.max_k``)."""
    if plan.strategy in ("adaptive_consistency", "esc"):
        batch = min(plan.batch or (2 if plan.strategy == "adaptive_consistency" else plan.window), plan.k)
        return math.ceil(plan.k / batch) * batch
    return plan.k


def compile_steps(items: list[dict[str, Any]], sampling: dict[str, Any], where: str) -> list[StepSpec]:
    """Validate and bind steps given as mappings (the online compiler, without a pipeline file)."""
    steps = [parse_step(s, f"steps[{i}]", where) for i, s in enumerate(items)]
    bind_steps(steps, SimpleNamespace(sampling=sampling, templates={}), None, where)  # type: ignore[arg-type]
    return steps


class PipelineSource:
    """A pipeline file the config lists: read once, compiled per request with the request's sampling."""

    def __init__(self, name: str, path: Path) -> None:
        from ttclab.config import read_yaml_mapping

        self.name = name
        self.path = path
        self.data = read_yaml_mapping(path, "pipeline", "name, model, task, steps")
        self.check = self.compile({})
        if self.check.uses_oracle():
            from ttclab.errors import ConfigError

            raise ConfigError(f"pipelines.{name}: {path} uses the ground truth (an oracle step); a server has "
                              "no gold answers: list a pipeline without oracle steps")

    def compile(self, sampling: dict[str, Any]) -> Pipeline:
        data = dict(self.data)
        data["sampling"] = {**(data.get("sampling") or {"max_tokens": 128}), **sampling}
        return compile_pipeline(data, str(self.path), self.path.parent)
