"""The backend contract: one flat, validated ``SamplingParams``, a ``Request``, a ``Completion``.

Backends are async: ``await backend.generate(request, params)`` returns exactly ``params.n``
completions. A failed call (a transient HTTP error after its retries, a prompt that does not fit the
context, a reply without content) is a ``Completion`` with ``error`` set (and empty text): it is stored
as an error row and never graded. A *permanent* failure -- one that every later call would hit too: a
refused key (401/403), an unknown model, a model file that does not exist or does not load, nothing
listening before any request succeeded -- raises :class:`ttclab.errors.BackendError` (one line naming
the endpoint or file and the fix) instead, so the run stops at once and writes nothing for requests
never sent. ``generate`` raises nothing else. ``tests/backends/test_backend_contract.py`` checks both
on every registered backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator

# the seed rule lives in ttclab.seeds; re-exported here for the engines and older imports
from ttclab.seeds import SEED_MODULUS as SEED_MODULUS
from ttclab.seeds import sample_seed as sample_seed

ChatMessage = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


class SamplingParams(BaseModel):
    """Sampling parameters with OpenAI / vLLM names. ``max_tokens`` is always explicit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(ge=1, description="Maximum completion tokens per sample (required).")
    n: int = Field(default=1, ge=1, le=4096, description="Completions per request.")
    temperature: float = Field(default=1.0, ge=0.0, le=10.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=1, description="None disables top-k.")
    min_p: float = Field(default=0.0, ge=0.0, le=1.0)
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    seed: int | None = Field(default=None, ge=0, description="Base seed; each sample derives its own.")
    stop: tuple[str, ...] = Field(default=(), description="Stop strings (not included in the text).")
    logprobs: bool = Field(default=False, description="Record the log-probability of each sampled token.")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="Passed through to the backend.")

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_tuple(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        return tuple(value)

    def with_(self, **changes: Any) -> SamplingParams:
        """A copy with some fields changed (validated again)."""
        return SamplingParams.model_validate({**self.model_dump(), **changes})


@dataclass(frozen=True, slots=True)
class Request:
    """One prompt: either chat messages or a plain completion string (few-shot prompting)."""

    prompt: str | tuple[ChatMessage, ...]
    # Seed for this request (the runner derives it from the run seed, question and sample index).
    seed: int | None = None

    @property
    def is_chat(self) -> bool:
        return not isinstance(self.prompt, str)


FinishReason = Literal["stop", "length", "error"]


@dataclass(frozen=True, slots=True)
class Completion:
    """One sampled completion, or one failed attempt (``error`` set)."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    token_logprobs: tuple[float, ...] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, error: str, latency_s: float = 0.0, prompt_tokens: int = 0) -> Completion:
        return cls(text="", finish_reason="error", prompt_tokens=prompt_tokens, completion_tokens=0,
                   latency_s=latency_s, token_logprobs=None, error=error)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a backend knows about its model (used in run metadata and the compute ledger)."""

    name: str
    backend: str
    path: str | None = None
    n_params: int | None = None
    n_layers: int | None = None
    hidden_size: int | None = None
    n_kv_heads: int | None = None
    head_dim: int | None = None
    context_length: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """How a backend is best driven by the sampling runner.

    ``batched_samples``: one request for ``n`` samples costs less than ``n`` requests, so the runner
    asks for all of a question's missing samples at once. ``concurrency``: requests worth having in
    flight at once (None: the backend's own ``max_concurrency``).
    """

    batched_samples: bool = True
    concurrency: int | None = None


def backend_capabilities(backend: Any) -> Capabilities:
    """A backend's declared ``capabilities``; undeclared: a server (all samples per request, its own limit)."""
    caps = getattr(backend, "capabilities", None)
    if isinstance(caps, Capabilities):
        return caps
    return Capabilities(batched_samples=True, concurrency=int(getattr(backend, "max_concurrency", 16)))


@runtime_checkable
class Backend(Protocol):
    """An inference engine. Construction stores parameters; the model loads on first use."""

    name: str

    async def generate(self, request: Request, params: SamplingParams) -> list[Completion]:
        """Exactly ``params.n`` completions for one request (failed calls carry ``error``).

        Raises :class:`ttclab.errors.BackendError` only for a permanent failure (see the module doc).
        """
        ...

    def info(self) -> ModelInfo:
        ...

    async def aclose(self) -> None:
        ...
