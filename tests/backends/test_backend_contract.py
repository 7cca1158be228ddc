"""The backend contract, checked on EVERY registered backend (scikit-learn's estimator checks, for engines).

For each name in ``BACKENDS``: a real instance (the embedded SmolLM2 through llama.cpp; llama.cpp's own
OpenAI-compatible server for ``openai``) must

- give exactly ``params.n`` completions, each with text and token counts;
- give the same completions for the same seed, and follow the seed rule (n samples seeded s are the
  samples seeded s, s + 1, ... one at a time);
- turn a failed call (a prompt longer than the context) into ``n`` error completions, never an exception;
- raise only :class:`BackendError` for a permanent failure (a model or endpoint that does not exist).

A backend registered without an entry in ``CONTRACT`` fails :func:`test_every_registered_backend_is_checked`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ttclab.backends import BACKENDS, create_backend
from ttclab.backends.base import Backend, Request, SamplingParams
from ttclab.errors import BackendError

pytest.importorskip("llama_cpp")

PROMPT = Request(prompt=({"role": "user", "content": "Name a colour."},), seed=5)
LONG = Request(prompt=({"role": "user", "content": "word " * 3000},), seed=0)  # > n_ctx 2048 tokens
FAST = {"max_retries": 1, "backoff_base_s": 0.05, "backoff_cap_s": 0.1, "timeout_s": 60.0}


def _closed_port() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


#: name -> (working backend from the fixtures, a backend whose failure is permanent)
CONTRACT: dict[str, tuple[Callable[[pytest.FixtureRequest], Backend], Callable[[], Backend]]] = {
    "llamacpp": (
        lambda req: create_backend("llamacpp", model="smollm2-135m", n_ctx=2048, n_threads=2),
        lambda: create_backend("llamacpp", model="/nonexistent/model.gguf"),
    ),
    "openai": (
        lambda req: create_backend("openai", model="smollm2-135m", base_url=req.getfixturevalue("llama_server"),
                                   max_concurrency=2, **FAST),
        lambda: create_backend("openai", model="smollm2-135m", base_url=_closed_port(), **FAST),
    ),
}


def test_every_registered_backend_is_checked():
    assert set(BACKENDS.names()) <= set(CONTRACT), "add the new backend to CONTRACT in this file"


@pytest.fixture(scope="module", params=sorted(BACKENDS.names()))
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param not in CONTRACT:
        pytest.fail(f"backend {request.param!r} has no contract entry")
    b = CONTRACT[request.param][0](request)
    yield b
    asyncio.run(b.aclose())


def _gen(backend: Backend, request: Request, **params: Any) -> list[Any]:
    return asyncio.run(backend.generate(request, SamplingParams(**{"max_tokens": 6, "temperature": 0.9, **params})))


@pytest.mark.slow
@pytest.mark.parametrize("n", [1, 3])
def test_exactly_n_completions(backend: Backend, n: int) -> None:
    out = _gen(backend, PROMPT, n=n, seed=1)
    assert len(out) == n
    for c in out:
        assert c.error is None and c.ok, c.error
        assert isinstance(c.text, str) and c.finish_reason in ("stop", "length")
        assert c.prompt_tokens > 0 and 0 < c.completion_tokens <= 6


@pytest.mark.slow
def test_same_seed_same_completions_and_the_seed_rule(backend: Backend) -> None:
    batch = _gen(backend, Request(PROMPT.prompt, seed=40), n=2)
    again = _gen(backend, Request(PROMPT.prompt, seed=40), n=2)
    assert [c.text for c in batch] == [c.text for c in again]
    singles = [_gen(backend, Request(PROMPT.prompt, seed=s))[0].text for s in (40, 41)]
    assert [c.text for c in batch] == singles


@pytest.mark.slow
def test_a_failed_call_is_n_error_completions(backend: Backend) -> None:
    out = _gen(backend, LONG, n=2)
    assert len(out) == 2
    for c in out:
        assert c.error and not c.ok and c.text == "" and c.finish_reason == "error"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BACKENDS.names()))
def test_permanent_failure_is_one_backend_error(name: str) -> None:
    if name not in CONTRACT:
        pytest.fail(f"backend {name!r} has no contract entry")
    broken = CONTRACT[name][1]()
    try:
        with pytest.raises(BackendError) as exc:
            _gen(broken, PROMPT, n=2)
        assert "\n" not in str(exc.value)
    finally:
        asyncio.run(broken.aclose())
