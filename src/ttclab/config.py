"""The ``ttclab sample`` configuration (YAML), validated with pydantic.

Example::

    store: runs
    models:
      - {backend: llamacpp, name: smollm2-135m}
      - {backend: llamacpp, name: gemma3-270m, prompt: {style: fewshot, shots: 3}}
    task: {source: gym, name: syllogism, size: 20, seed: 0}
    prompt: {style: chat}
    samples: 8
    sampling: {temperature: 0.7, max_tokens: 32, seed: 0}

Relative paths are resolved from the current working directory. A run's id is derived from what
determines its samples (model, task, prompt, samples, sampling, verifier); operational settings
(store, concurrency, threads, server URLs, timeouts) do not change it, so a run resumes across them.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ttclab.backends.base import SamplingParams
from ttclab.errors import ConfigError
from ttclab.io import read_yaml_mapping  # the one YAML reader; re-exported (old imports)
from ttclab.registry import Registry
from ttclab.tasks.config import PromptConfig, TaskConfig, format_validation_error


def _operational_options() -> frozenset[str]:
    from ttclab.backends import BACKEND_CLASSES, operational_options

    return frozenset().union(*(operational_options(name) for name in BACKEND_CLASSES))


#: Backend options that change how fast samples come, not which samples: not part of the run id.
#: Derived from what each backend declares (``OPERATIONAL_OPTIONS`` on its class).
OPERATIONAL_OPTIONS = _operational_options()


class ModelSpec(BaseModel):
    """One model: a backend, the model's name (built-in, GGUF path, or server model), options."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field(default="llamacpp", description="a registered backend (ttclab.backends.BACKENDS)")
    name: str = Field(min_length=1)
    label: str | None = None
    prompt: PromptConfig | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        """``model: smollm2-135m`` (a built-in model or a .gguf path) is short for ``{name: smollm2-135m}``."""
        if not isinstance(value, str):
            return value
        from ttclab.backends.models import EMBEDDED, is_local_model

        if is_local_model(value):
            return {"backend": "llamacpp", "name": value}
        raise ValueError(f"{value!r} is not a built-in model ({', '.join(sorted(EMBEDDED))}) or a .gguf file; for a "
                         "server model write {backend: openai, name: NAME, options: {base_urls: [URL]}}")

    @field_validator("backend")
    @classmethod
    def _registered_backend(cls, value: str) -> str:
        from ttclab.backends import BACKENDS

        return _registered(BACKENDS, value)

    @property
    def display(self) -> str:
        return self.label or Path(self.name).stem if self.name.endswith(".gguf") else (self.label or self.name)


class VerifierSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="a registered verifier (ttclab.verify.registry.VERIFIERS)")
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        """``verifier: math`` is short for ``verifier: {name: math}`` (in every config that has one)."""
        return {"name": value} if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _registered_verifier(cls, value: str) -> str:
        from ttclab.verify.registry import VERIFIERS

        return _registered(VERIFIERS, value)


def _registered(registry: Registry[Any], value: str) -> str:
    """``value`` if it is a registered name; else the registry's one-line message (pydantic names the field)."""
    if value not in registry:
        raise ValueError(str(registry.unknown(value, where="")))
    return value


class SampleConfig(BaseModel):
    """Top-level configuration of ``ttclab sample``."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    store: str | None = None
    models: list[ModelSpec] = Field(min_length=1)
    task: TaskConfig
    prompt: PromptConfig | None = None
    samples: int = Field(ge=1, le=100_000, description="samples per question")
    sampling: SamplingParams
    verifier: VerifierSpec | None = None
    concurrency: int | None = Field(default=None, ge=1, le=4096)
    samples_per_request: int | None = Field(default=None, ge=1)
    flush_seconds: float = Field(default=2.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _one_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and "model" in data:
            if "models" in data:
                raise ValueError("give either 'model' or 'models', not both")
            data = {**data, "models": [data["model"]]}
            del data["model"]
        return data

    @field_validator("sampling")
    @classmethod
    def _no_n(cls, value: SamplingParams) -> SamplingParams:
        if value.n != 1:
            raise ValueError("use the top-level 'samples' for samples per question, not sampling.n")
        return value


def run_identity(cfg: SampleConfig, model: ModelSpec) -> dict[str, Any]:
    """What determines a run's samples; its hash is the run id."""
    from ttclab.backends import operational_options

    operational = operational_options(model.backend)
    return {
        "model": {"backend": model.backend, "name": model.name,
                  "options": {k: v for k, v in sorted(model.options.items()) if k not in operational}},
        "task": cfg.task.model_dump(mode="json"),
        "prompt": prompt.model_dump(mode="json") if (prompt := model.prompt or cfg.prompt) else None,
        "samples": cfg.samples,
        "sampling": cfg.sampling.model_dump(mode="json"),
        "verifier": cfg.verifier.model_dump(mode="json") if cfg.verifier else None,
    }


def config_warnings(cfg: SampleConfig) -> list[str]:
    """Settings that are valid but probably not what was meant (one line each, not errors)."""
    out = []
    if cfg.sampling.temperature == 0 and cfg.samples > 1:
        out.append(f"sampling.temperature is 0 with samples: {cfg.samples}: greedy decoding gives the same "
                   "completion every time; use a temperature > 0 for samples that differ")
    return out


def run_id_for(cfg: SampleConfig, model: ModelSpec, task_name: str) -> str:
    """``<name or task>-<model>-<hash of the identity>``: the config's ``name:`` labels its runs."""
    digest = hashlib.sha256(json.dumps(run_identity(cfg, model), sort_keys=True).encode()).hexdigest()[:12]
    return f"{_slug(cfg.name or task_name)}-{_slug(model.display)}-{digest}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()[:40] or "x"


def load_config(path: str | Path) -> SampleConfig:
    """Read and validate a YAML config; every problem is one line naming the file and field."""
    data = read_yaml_mapping(path, "sampling", "model, task, samples, sampling")
    try:
        return SampleConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None


def override_config(
    cfg: SampleConfig,
    *,
    limit: int | None = None,
    samples: int | None = None,
    model: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    seed: int | None = None,
) -> SampleConfig:
    """A config with quick-study overrides (they change the run identity like any edit of the YAML).

    ``limit`` caps the task's questions (``limit`` of file / hub tasks, ``size`` of generators);
    ``model`` keeps the config's model of that name or label, or renames the only model.
    """
    data = cfg.model_dump(mode="json")
    if limit is not None:
        key = "limit" if "limit" in data["task"] else ("size" if "size" in data["task"] else "limit")
        data["task"][key] = limit
    if samples is not None:
        data["samples"] = samples
    for name, value in (("max_tokens", max_tokens), ("temperature", temperature), ("seed", seed)):
        if value is not None:
            data["sampling"][name] = value
    if model is not None:
        named = [m for m in data["models"] if model in (m["name"], m.get("label"))]
        if named:
            data["models"] = named
        elif len(data["models"]) == 1:
            data["models"][0]["name"] = model
            data["models"][0]["label"] = None
        else:
            known = ", ".join(m.get("label") or m["name"] for m in data["models"])
            raise ConfigError(f"--model {model!r}: the config has several models ({known}); name one of them")
    try:
        return SampleConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "command-line overrides")) from None
