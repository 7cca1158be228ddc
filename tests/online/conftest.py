"""Fixtures for online pipeline tests: the real SmolLM2 engine (one loaded model for the session),
a scripted OpenAI-compatible server (deterministic replies), llama.cpp's own OpenAI-compatible
server (from tests/backends/conftest.py). The helpers (`shrink`, `write_pipeline` ...) are in
online_support.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
for p in (str(HERE), str(TESTS)):
    if p not in sys.path:
        sys.path.insert(0, p)

from backends.conftest import llama_server  # noqa: E402,F401  (the real llama.cpp server fixture)
from scripted_server import ScriptedServer  # noqa: E402


def _smollm() -> Iterator[Any]:
    from ttclab.backends.llamacpp import LlamaCppBackend
    from ttclab.backends.models import resolve_model_path
    from ttclab.errors import BackendError

    try:
        resolve_model_path("smollm2-135m")
    except BackendError as exc:
        pytest.skip(str(exc))
    backend = LlamaCppBackend("smollm2-135m", n_ctx=2048)
    yield backend
    import asyncio

    asyncio.run(backend.aclose())


@pytest.fixture(scope="session")
def smollm() -> Iterator[Any]:
    """One embedded SmolLM2-135M backend shared by the session's runs without log-probs (skip if not installed)."""
    yield from _smollm()


@pytest.fixture(scope="session")
def smollm_lp() -> Iterator[Any]:
    """A second one for runs that ask for log-probs: llama.cpp then reloads the model with logits for
    every prompt token, which makes every later prompt slower — kept apart from ``smollm``."""
    yield from _smollm()


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer() as srv:
        yield srv
