"""Backends: a registry from names to factories that import their SDK lazily."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ttclab.backends.base import Backend, Completion, ModelInfo, Request, SamplingParams
from ttclab.errors import ConfigError


def _llamacpp(**options: Any) -> Backend:
    from ttclab.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(**options)


def _openai(**options: Any) -> Backend:
    from ttclab.backends.openai import OpenAIBackend

    return OpenAIBackend(**options)


BACKENDS: dict[str, Callable[..., Backend]] = {"llamacpp": _llamacpp, "openai": _openai}


def create_backend(name: str, **options: Any) -> Backend:
    """Build a backend by registry name (``llamacpp`` or ``openai``) with its options."""
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise ConfigError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}") from None
    try:
        return factory(**options)
    except TypeError as exc:  # an option the backend does not take
        raise ConfigError(f"backend {name}: {exc}") from None


__all__ = ["BACKENDS", "Backend", "Completion", "ModelInfo", "Request", "SamplingParams", "create_backend"]
