"""The OpenAI wire format: validated requests, response bodies, stream chunks and error bodies.

Requests are validated strictly (a string where a number belongs is a 400 naming the field) while
unknown fields are tolerated (clients send ``user``, ``metadata``, ``logit_bias``...). The gateway's
own field is ``ttc`` (the OpenAI client sends it with ``extra_body={"ttc": {...}}``).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class APIError(Exception):
    """An error answered with an OpenAI-style body ``{"error": {message, type, param, code}}``."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = " ".join(str(message).split())
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class TTCSpec(BaseModel):
    """``ttc``: which test-time strategy answers this request (overrides the model alias and the default)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    strategy: str | None = None  # none, majority, best_of_n, first_finish, adaptive_consistency, esc
    pipeline: str | None = None  # a pipeline the server config lists
    k: int | None = Field(default=None, ge=1, description="samples (the maximum for adaptive strategies)")
    batch: int | None = Field(default=None, ge=1, description="adaptive: samples drawn per round")
    threshold: float | None = Field(default=None, gt=0.5, lt=1.0, description="adaptive_consistency: Beta rule")
    window: int | None = Field(default=None, ge=2, description="esc: equal answers in a row that stop")
    reference: str | None = Field(default=None, description="the correct answer, when known (recorded, graded)")


class Message(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for i, part in enumerate(self.content):
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(400, f"messages: content part {i} has type {part.get('type')!r}; only text parts are "
                                    "supported", param="messages")
            parts.append(part["text"])
        return "".join(parts)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    include_usage: bool = False


class _Common(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(min_length=1)
    n: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    seed: int | None = Field(default=None, ge=0)
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    ttc: TTCSpec | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ChatRequest(_Common):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def prompt(self) -> tuple[dict[str, str], ...]:
        out = []
        for m in self.messages:
            role = "system" if m.role == "developer" else m.role
            out.append({"role": role, "content": m.text()})
        return tuple(out)


class CompletionRequest(_Common):
    prompt: str | list[str]
    best_of: int | None = None
    echo: bool | None = None

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


def parse_request(cls: type[BaseModel], data: Any) -> Any:
    """Validate a request body; the first problem is a 400 naming the field."""
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "list[", "str", "int"))]
        field = ".".join(loc) or None
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field; remove it or check its spelling"
        got = err.get("input")
        shown = "" if err["type"] in ("missing", "extra_forbidden") or isinstance(got, (dict, list)) else f" (got {got!r})"
        raise APIError(400, f"{field or 'body'}: {msg}{shown}", param=field) from None


# -- responses --------------------------------------------------------------------------------------
def now() -> int:
    return int(time.time())


def chat_response(rid: str, model: str, created: int, choices: list[dict[str, Any]], usage: dict[str, Any],
                  fingerprint: str | None = None) -> dict[str, Any]:
    return {"id": rid, "object": "chat.completion", "created": created, "model": model,
            "system_fingerprint": fingerprint,
            "choices": [{"index": c["index"], "message": {"role": "assistant", "content": c["text"]},
                         "logprobs": None, "finish_reason": c["finish_reason"]} for c in choices],
            "usage": usage}


def completion_response(rid: str, model: str, created: int, choices: list[dict[str, Any]],
                        usage: dict[str, Any]) -> dict[str, Any]:
    return {"id": rid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": c["index"], "text": c["text"], "logprobs": None,
                         "finish_reason": c["finish_reason"]} for c in choices],
            "usage": usage}


def chunk(rid: str, model: str, created: int, chat: bool, index: int, *, text: str | None = None,
          role: bool = False, finish_reason: str | None = None) -> dict[str, Any]:
    """One stream event for one choice (a role announcement, a text delta or the finish)."""
    if chat:
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
            delta["content"] = ""
        if text is not None:
            delta["content"] = text
        choice: dict[str, Any] = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [choice]}
    return {"id": rid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": index, "text": text or "", "logprobs": None, "finish_reason": finish_reason}]}


def usage_chunk(rid: str, model: str, created: int, chat: bool, usage: dict[str, Any]) -> dict[str, Any]:
    """The last event when ``stream_options.include_usage``: no choices, the request's usage."""
    return {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion", "created": created,
            "model": model, "choices": [], "usage": usage}
