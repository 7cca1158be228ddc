"""The OpenAI wire format: validated requests, response bodies, stream chunks and error bodies.

Requests are validated strictly (a string where a number belongs is a 400 naming the field) while
unknown fields are tolerated (clients send ``user``, ``metadata``, ``logit_bias``...). The gateway's
own field is ``ttc`` (the OpenAI client sends it with ``extra_body={"ttc": {...}}``).
"""

from __future__ import annotations

import difflib
import re
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


#: Union members and validator wrappers pydantic adds to an error's location (not field names).
_TAG = re.compile(r"^(str|int|float|bool|none|(list|dict|literal|function|constrained)\W.*|[A-Z]\w*)$")
#: What a field takes, for a value of none of the types a union field accepts.
_UNION_TYPES = {"stop": "a string or a list of up to 4 strings", "prompt": "a string or a list of strings",
                "content": 'a string or a list of text parts [{"type": "text", "text": "..."}]'}
#: An example of an object field, for a value that is not an object.
_OBJECTS = {"ttc": '{"strategy": "majority", "k": 4}', "stream_options": '{"include_usage": true}',
            "messages": '{"role": "user", "content": "..."}'}
#: The fix named when a required field is missing.
_MISSING = {"model": "name a served model or alias (GET /v1/models lists them)",
            "messages": 'send "messages": [{"role": "user", "content": "..."}]',
            "prompt": 'send "prompt": "..." (a string or a list of strings)',
            "role": "give each message a role: system, developer, user, assistant or tool"}
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
               float: "a number", type(None): "null"}


def parse_request(cls: type[BaseModel], data: Any) -> Any:
    """Validate a request body; the first problem is a 400 naming the field and what it takes."""
    if not isinstance(data, dict):
        example = ('{"model": "...", "prompt": "..."}' if "prompt" in cls.model_fields
                   else '{"model": "...", "messages": [{"role": "user", "content": "..."}]}')
        raise APIError(400, f"the request body must be a JSON object (got {_JSON_TYPES.get(type(data), 'a value')}), "
                            f"e.g. {example}")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise _field_error(exc.errors()[0]) from None


def _field_error(err: Any) -> APIError:
    """The APIError of pydantic's first error: ``field: what is wrong (got value)``, one line."""
    parts: list[Any] = []
    union = False
    for p in err["loc"]:
        if isinstance(p, str) and _TAG.match(p):
            union = True
            break  # what follows a union member is inside that member's reading of the value
        parts.append(p)
    field = ".".join(str(p) for p in parts) or None
    last = next((p for p in reversed(parts) if isinstance(p, str)), "")
    kind = err["type"]
    got = err.get("input")
    msg = err["msg"].removeprefix("Value error, ").replace("Input should be", "should be")
    if union and last in _UNION_TYPES:
        msg = f"should be {_UNION_TYPES[last]}"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        example = _OBJECTS.get(last)
        msg = "should be a JSON object" + (f" such as {example}" if example else "")
    elif kind == "missing":
        msg = "required field is missing" + (f"; {_MISSING[last]}" if last in _MISSING else "")
    elif kind == "extra_forbidden":
        allowed = ", ".join(TTCSpec.model_fields) if parts[:1] == ["ttc"] else ""
        close = difflib.get_close_matches(str(last), list(TTCSpec.model_fields), n=1) if allowed else []
        msg = "unknown field; " + (f"did you mean {close[0]}? " if close else "") + (
            f"ttc takes {allowed}" if allowed else "remove it or check its spelling")
    elif kind in ("too_short", "string_too_short") and not got:
        msg = "should not be empty" + (f"; send at least one, e.g. {_OBJECTS[last]}" if last in _OBJECTS else "")
    shown = "" if kind in ("missing", "extra_forbidden") or isinstance(got, (dict, list)) else f" (got {got!r})"
    return APIError(400, f"{field or 'body'}: {msg}{shown}", param=field)


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
