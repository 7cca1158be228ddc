"""The ``ttclab serve`` configuration (YAML), validated with pydantic.

Example (``configs/serve_embedded.yaml``)::

    models:
      - {backend: llamacpp, name: smollm2-135m, options: {n_ctx: 2048}}
    default: none                 # strategy when a request names none (none = pass-through)
    aliases: [majority@4, majority@8, first_finish@4, adaptive_consistency@8]
    pipelines: {reflect-then-aggregate: pipelines/reflect-then-aggregate.yaml}
    verifier: exact               # how answers are read so equal answers vote together
    sampling: {max_tokens: 256}   # defaults for fields a request leaves out
    limits: {max_concurrency: 8, max_queue: 32, max_n: 8, max_tokens: 1024, max_k: 16}
    auth: {keys_env: TTCLAB_SERVE_KEYS}

Relative pipeline paths are read from the config file's folder.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ttclab.backends.base import SamplingParams
from ttclab.config import ModelSpec, VerifierSpec, read_yaml_mapping
from ttclab.errors import ConfigError
from ttclab.online.steps.score import RewardModelSpec


class Limits(BaseModel):
    """Per-server and per-request caps (a request over a cap is a 400 naming it)."""

    model_config = ConfigDict(extra="forbid")

    max_concurrency: int = Field(default=16, ge=1, description="requests worked on at once")
    max_queue: int = Field(default=64, ge=0, description="requests waiting for a slot; beyond: 429")
    retry_after_s: int = Field(default=1, ge=0, description="Retry-After of a 429")
    max_n: int = Field(default=8, ge=1)
    max_tokens: int = Field(default=2048, ge=1, description="cap on a request's max_tokens")
    max_k: int = Field(default=32, ge=1, description="cap on a strategy's samples")
    max_calls: int = Field(default=256, ge=1, description="model calls per strategy run (the strategy budget)")
    max_total_tokens: int | None = Field(default=None, ge=1, description="prompt + completion tokens per strategy run")
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    max_prompts: int = Field(default=16, ge=1, description="prompts in one /v1/completions request")
    timeout_s: float = Field(default=600.0, gt=0, description="a request still working after this is a 504")
    keepalive_s: float = Field(default=5.0, gt=0, description="seconds between keep-alive comments while streaming")


class Auth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys_env: str | None = Field(default=None, description="environment variable with comma-separated keys")
    keys_file: str | None = Field(default=None, description="file with one key per line")


class ServeConfig(BaseModel):
    """Top level of a serve config."""

    model_config = ConfigDict(extra="forbid")

    models: list[ModelSpec] = Field(default_factory=lambda: [ModelSpec(backend="llamacpp", name="smollm2-135m"),
                                                             ModelSpec(backend="llamacpp", name="gemma3-270m")],
                                    min_length=1)  # the embedded models (each loads on its first request)
    default: str = "none"
    aliases: list[str] = Field(default_factory=lambda: ["majority@4", "majority@8", "first_finish@4",
                                                        "adaptive_consistency@8"])
    pipelines: dict[str, str] = Field(default_factory=dict)
    verifier: VerifierSpec = Field(default_factory=lambda: VerifierSpec(name="exact"))
    reward: RewardModelSpec | None = None
    sampling: dict[str, Any] = Field(default_factory=lambda: {"max_tokens": 256})
    limits: Limits = Field(default_factory=Limits)
    auth: Auth = Field(default_factory=Auth)
    prices: str | None = None
    seed: int = Field(default=0, ge=0)
    record: str | None = None
    base_dir: str | None = None  # set by load_serve_config (the config file's folder)

    @field_validator("sampling")
    @classmethod
    def _sampling(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "n" in value:
            raise ValueError("n is per request (or per strategy: majority@8), not a sampling default")
        try:  # checked now: a bad default would make every request a 400 blaming the client
            SamplingParams.model_validate({"max_tokens": 256, **value})
        except ValidationError as exc:
            err = exc.errors()[0]
            name = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(name, list(SamplingParams.model_fields), n=1)
                raise ValueError(f"{name}: unknown sampling setting" + (f"; did you mean {close[0]!r}?" if close
                                                                         else "")) from None
            raise ValueError(f"{name}: {err['msg']} (got {err.get('input')!r})") from None
        return value

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() or self.base_dir is None else Path(self.base_dir) / p


def load_serve_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ServeConfig:
    """Read and validate a serve config (the defaults when ``path`` is None); ConfigError names the field."""
    from ttclab.tasks.config import format_validation_error

    data: dict[str, Any] = {}
    source = "serve config"
    if path is not None:
        data = read_yaml_mapping(path, "serve", "models, default, aliases, limits")
        source = str(path)
        data["base_dir"] = str(Path(path).resolve().parent)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return ServeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
