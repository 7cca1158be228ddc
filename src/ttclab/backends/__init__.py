"""Backends: a registry (:class:`ttclab.registry.Registry`) from names to backend classes, imported lazily (their SDKs
load on first use).

Each backend class declares which constructor options are operational (``OPERATIONAL_OPTIONS``: how
fast samples come, not which samples -- not part of a run's id) and which determine the samples
(``SAMPLE_OPTIONS``); every constructor argument is one or the other (tested).
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from ttclab.backends.base import Backend, Capabilities, Completion, ModelInfo, Request, SamplingParams
from ttclab.errors import ConfigError
from ttclab.registry import Registry

#: name -> backend class, registered as "module:Class" (imported when first needed).
BACKENDS: Registry[type[Backend]] = Registry("backend")
BACKENDS.register("llamacpp", "ttclab.backends.llamacpp:LlamaCppBackend")
BACKENDS.register("openai", "ttclab.backends.openai:OpenAIBackend")
BACKEND_CLASSES = BACKENDS  # old name (a dict of names -> "module:Class"); the registry reads the same way


def backend_class(name: str) -> type[Backend]:
    """The class of a registered backend (unknown name: one ConfigError line listing the choices)."""
    return BACKENDS.get(name)


def backend_options(name: str) -> list[str]:
    """The keyword options a backend's constructor takes (``model`` included)."""
    params = inspect.signature(backend_class(name)).parameters
    return [p for p, v in params.items() if p != "self" and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)]


def operational_options(name: str) -> frozenset[str]:
    """Options of backend ``name`` that do not change which samples it gives."""
    return frozenset(getattr(backend_class(name), "OPERATIONAL_OPTIONS", frozenset()))


def create_backend(name: str, **options: Any) -> Backend:
    """Build a backend by registry name (``BACKENDS.names()``: ``llamacpp``, ``openai``) with its options.

    An option the backend does not take is one ConfigError line naming it and the valid ones.
    """
    cls = backend_class(name)
    valid = backend_options(name)
    unknown = [k for k in options if k not in valid]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listed = ", ".join(v for v in valid if v != "model")
        raise ConfigError(f"backend {name}: unknown option {key!r}{hint}; valid options: {listed}")
    try:
        return cls(**options)
    except TypeError as exc:  # a wrong value type that the constructor rejects
        raise ConfigError(f"backend {name}: {exc}") from None


__all__ = [
    "BACKENDS", "BACKEND_CLASSES", "Backend", "Capabilities", "Completion", "ModelInfo", "Request", "SamplingParams",
    "backend_class", "backend_options", "create_backend", "operational_options",
]
