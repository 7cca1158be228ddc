"""The ``openai`` backend against real HTTP servers on 127.0.0.1.

- ``FlakyServer`` (tests/support/flaky_server.py): a real local server that fails on purpose
  (500 / 429 with Retry-After / 400 / resets / hangs / ignores ``n``) and counts requests.
- ``llama_server`` (conftest): llama-cpp-python's OpenAI-compatible server with SmolLM2-135M.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.flaky_server import FlakyServer

from ttclab.backends import create_backend
from ttclab.backends.base import Request, SamplingParams
from ttclab.backends.openai import OpenAIBackend, normalize_base_url, parse_retry_after, split_completion_tokens
from ttclab.errors import BackendError, ConfigError

pytest.importorskip("httpx")

CHAT = Request(prompt=({"role": "user", "content": "What is 2 + 3? Reply with a number."},), seed=11)
PLAIN = Request(prompt="Question: 1 + 1?\nAnswer: 2\nQuestion: 2 + 2?\nAnswer:", seed=3)
FAST = dict(backoff_base_s=0.01, backoff_cap_s=0.05, timeout_s=10.0)


def backend_for(*servers: FlakyServer, **options) -> OpenAIBackend:
    kwargs = {**FAST, "rng": random.Random(0), **options}
    return OpenAIBackend("flaky", base_urls=[s.base_url for s in servers], **kwargs)


def run(backend: OpenAIBackend, request: Request, params: SamplingParams):
    async def go():
        try:
            return await backend.generate(request, params)
        finally:
            await backend.aclose()

    return asyncio.run(go())


# -- retries ---------------------------------------------------------------------------------------
def test_retries_500_then_succeeds():
    with FlakyServer(script=[500, 500]) as srv:
        out = run(backend_for(srv, max_retries=3), CHAT, SamplingParams(max_tokens=8))
    assert srv.requests == 3
    assert len(out) == 1 and out[0].ok and out[0].text and out[0].finish_reason in ("stop", "length")


def test_429_waits_at_least_retry_after():
    with FlakyServer(script=[429], retry_after="1") as srv:
        t0 = time.monotonic()
        out = run(backend_for(srv, max_retries=2), CHAT, SamplingParams(max_tokens=8))
        waited = time.monotonic() - t0
    assert out[0].ok and srv.requests == 2
    # backoff alone would be <= 0.05 s; Retry-After: 1 makes the second request come >= 1 s later
    assert srv.arrivals[1] - srv.arrivals[0] >= 0.95
    assert waited >= 1.0


@pytest.mark.parametrize("n", [1, 3])
def test_keeps_failing_ends_as_error_completions_after_the_cap(n):
    with FlakyServer(script=[500], default=503) as srv:
        out = run(backend_for(srv, max_retries=2, supports_n=True), CHAT, SamplingParams(max_tokens=8, n=n))
    assert srv.requests == 1 + 2
    assert len(out) == n
    for c in out:
        assert not c.ok and "503" in c.error and "3 attempts" in c.error
        assert c.text == "" and c.finish_reason == "error" and c.completion_tokens == 0
        assert c.latency_s > 0
        assert "\n" not in c.error


def test_400_is_not_retried_and_carries_the_message():
    with FlakyServer(default=400, error_message="prompt is too long for this model") as srv:
        out = run(backend_for(srv, max_retries=5), PLAIN, SamplingParams(max_tokens=8))
    assert srv.requests == 1
    assert out[0].error and "HTTP 400" in out[0].error and "prompt is too long" in out[0].error
    assert out[0].finish_reason == "error" and out[0].text == ""


@pytest.mark.parametrize("status, words", [
    (401, ["401", "api_key_env"]), (403, ["403", "permission"]), (404, ["404", "unknown model 'flaky'", "/models"]),
])
def test_auth_and_unknown_model_are_permanent(status, words):
    message = "model 'flaky' does not exist" if status == 404 else "invalid api key"
    with FlakyServer(default=status, error_message=message) as srv:
        backend = backend_for(srv, max_retries=5)

        async def go():
            try:
                # many concurrent requests at the start: only the first is sent
                return await asyncio.gather(*(backend.generate(CHAT, SamplingParams(max_tokens=8, n=2))
                                              for _ in range(8)), return_exceptions=True)
            finally:
                await backend.aclose()

        outs = asyncio.run(go())
    assert srv.requests == 1
    assert all(isinstance(o, BackendError) for o in outs), outs
    text = str(outs[0])
    assert srv.base_url in text and "\n" not in text and message in text
    for word in words:
        assert word in text, text


def test_401_names_the_key_variable(monkeypatch):
    monkeypatch.setenv("TTCLAB_TEST_KEY", "sk-wrong")
    with FlakyServer(default=401, error_message="invalid api key") as srv:
        with pytest.raises(BackendError, match="TTCLAB_TEST_KEY"):
            run(backend_for(srv, api_key_env="TTCLAB_TEST_KEY"), CHAT, SamplingParams(max_tokens=8))
    assert srv.requests == 1


def test_404_on_a_route_says_to_check_the_base_url():
    with FlakyServer(default=404, error_message="no route /api/chat/completions") as srv:
        with pytest.raises(BackendError, match="404.*check base_url"):
            run(OpenAIBackend("flaky", base_url=srv.base_url, **FAST), CHAT, SamplingParams(max_tokens=8))


def test_content_null_is_a_failed_call_not_an_empty_answer():
    with FlakyServer(script=["null"]) as srv:
        out = run(backend_for(srv, supports_n=True), CHAT, SamplingParams(max_tokens=8, n=2))
        assert len(out) == 2 and all(not c.ok and "content" in c.error and "null" in c.error for c in out), out
        assert all(c.text == "" and c.finish_reason == "error" for c in out)
        plain = FlakyServer(script=["null"])
        with plain:
            out = run(backend_for(plain), PLAIN, SamplingParams(max_tokens=8))
        assert not out[0].ok and "text" in out[0].error and "null" in out[0].error


def test_base_url_is_the_one_endpoint_form():
    with FlakyServer() as srv:
        out = run(OpenAIBackend("flaky", base_url=srv.base_url, **FAST), CHAT, SamplingParams(max_tokens=4))
        assert out[0].ok and srv.requests == 1
        backend = create_backend("openai", model="flaky", base_url=srv.base_url)
        assert backend.info().extra["base_urls"] == [srv.base_url]
    with pytest.raises(ConfigError, match="base_url.*base_urls"):
        OpenAIBackend("flaky", base_url="http://127.0.0.1:1/v1", base_urls=["http://127.0.0.1:2/v1"])


def test_connection_reset_is_retried():
    with FlakyServer(script=["reset", "reset"]) as srv:
        out = run(backend_for(srv, max_retries=3), CHAT, SamplingParams(max_tokens=8))
    assert out[0].ok and srv.requests == 3


def test_timeout_is_retried_then_reported():
    with FlakyServer(script=["hang"], hang_s=5.0) as srv:
        out = run(backend_for(srv, max_retries=2, timeout_s=0.3), CHAT, SamplingParams(max_tokens=8))
    assert out[0].ok and srv.requests == 2
    with FlakyServer(default="hang", hang_s=5.0) as srv:
        out = run(backend_for(srv, max_retries=1, timeout_s=0.2), CHAT, SamplingParams(max_tokens=8))
    assert srv.requests == 2
    assert out[0].error and "timeout" in out[0].error and out[0].latency_s >= 0.4


def test_connection_refused_before_any_success_is_permanent():
    with FlakyServer() as srv:
        url = srv.base_url
    t0 = time.monotonic()
    with pytest.raises(BackendError) as info:
        run(OpenAIBackend("m", base_urls=url, max_retries=5, backoff_base_s=5.0), CHAT, SamplingParams(max_tokens=4))
    assert time.monotonic() - t0 < 5.0  # not retried with backoff
    text = str(info.value)
    assert url in text and "connection refused" in text.lower() and "base_url" in text and "\n" not in text


def test_connection_refused_after_a_success_is_transient():
    srv = FlakyServer().start()
    backend = OpenAIBackend("m", base_urls=srv.base_url, max_retries=1, **FAST)

    async def go():
        try:
            first = await backend.generate(CHAT, SamplingParams(max_tokens=4))
            srv.stop()  # the server goes away mid-run: an outage, not a wrong URL
            await backend.aclose()  # drop the kept-alive connection: the next call must connect again
            second = await backend.generate(CHAT, SamplingParams(max_tokens=4))
            return first, second
        finally:
            await backend.aclose()

    first, second = asyncio.run(go())
    assert first[0].ok
    assert second[0].error and "connection error" in second[0].error and "2 attempts" in second[0].error


def test_without_fail_fast_nothing_is_remembered_and_a_late_upstream_works():
    """ttclab serve's setting: the gateway may start before its upstream; a 401 is that request's error."""
    import socket

    with socket.socket() as sock:  # a free port, with nothing listening on it yet
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}/v1", fail_fast=False, max_retries=5,
                            backoff_base_s=5.0, timeout_s=10.0)

    async def go():
        try:
            with pytest.raises(BackendError) as before:
                await backend.generate(CHAT, SamplingParams(max_tokens=4))
            with FlakyServer(script=[401], port=port) as srv:
                with pytest.raises(BackendError) as refused_key:
                    await backend.generate(CHAT, SamplingParams(max_tokens=4))
                after = await backend.generate(CHAT, SamplingParams(max_tokens=4))
            return str(before.value), str(refused_key.value), after, srv.requests

        finally:
            await backend.aclose()

    t0 = time.monotonic()
    before, refused_key, after, requests = asyncio.run(go())
    assert time.monotonic() - t0 < 5.0  # the refusal is not retried with the 5 s backoff
    assert "connection refused" in before.lower() and "the next request tries again" in before and "\n" not in before
    assert "401" in refused_key and "the next request tries again" in refused_key
    assert after[0].ok and requests == 2  # both calls reached the server once it was up


@pytest.mark.parametrize("fail_fast", [True, False])  # dropped for good / cooled down and tried again later
def test_a_refusing_endpoint_among_several_is_dropped(fail_fast):
    with FlakyServer() as gone:
        url = gone.base_url
    with FlakyServer() as good:
        backend = OpenAIBackend("m", base_urls=[url, good.base_url], max_retries=2, fail_fast=fail_fast,
                                endpoint_failures=1, **FAST)

        async def go():
            try:
                return [await backend.generate(CHAT, SamplingParams(max_tokens=4)) for _ in range(4)]
            finally:
                await backend.aclose()

        outs = asyncio.run(go())
    assert all(o[0].ok for o in outs) and good.requests == 4


# -- n ---------------------------------------------------------------------------------------------
def test_n_in_one_request_when_the_server_supports_it():
    with FlakyServer() as srv:
        backend = backend_for(srv)
        out = run(backend, CHAT, SamplingParams(max_tokens=8, n=3))
    assert srv.requests == 1 and srv.bodies[0]["n"] == 3 and srv.bodies[0]["seed"] == 11
    assert len(out) == 3 and all(c.ok for c in out)
    assert len({c.text for c in out}) == 3
    # usage is per request: the split sums to the server's total (words are tokens on this server)
    assert sum(c.completion_tokens for c in out) == sum(len(c.text.split()) for c in out)
    assert backend.endpoint_stats()[0]["supports_n"] is True


def test_server_ignoring_n_triggers_the_fallback_and_is_remembered():
    with FlakyServer(ignore_n=True) as srv:
        backend = backend_for(srv)
        params = SamplingParams(max_tokens=8, n=4, logprobs=True)
        out = run(backend, CHAT, params)
        assert srv.requests == 1 + 3  # one request asking for 4, then the 3 missing ones
        assert srv.bodies[0]["n"] == 4 and srv.bodies[0]["seed"] == 11
        assert all("n" not in b for b in srv.bodies[1:])
        assert sorted(b["seed"] for b in srv.bodies[1:]) == [12, 13, 14]  # sample j gets seed + j
        assert len(out) == 4 and all(c.ok for c in out)
        assert [c.completion_tokens for c in out] == [len(c.token_logprobs) for c in out]
        assert backend.endpoint_stats()[0]["supports_n"] is False
        out = run(backend, CHAT, params)  # remembered: 4 single requests now (new event loop too)
    assert srv.requests == 4 + 4 and all("n" not in b for b in srv.bodies[4:])
    assert len(out) == 4 and all(c.ok for c in out)


def test_400_mentioning_n_triggers_the_fallback():
    with FlakyServer(reject_n=True) as srv:
        backend = backend_for(srv, max_retries=3)
        out = run(backend, PLAIN, SamplingParams(max_tokens=8, n=3))
    assert srv.requests == 1 + 3
    assert len(out) == 3 and all(c.ok for c in out)
    assert backend.endpoint_stats()[0]["supports_n"] is False


def test_supports_n_false_sends_single_requests():
    with FlakyServer() as srv:
        out = run(backend_for(srv, supports_n=False), PLAIN, SamplingParams(max_tokens=8, n=3, seed=5))
    assert srv.requests == 3 and all("n" not in b for b in srv.bodies)
    assert sorted(b["seed"] for b in srv.bodies) == [3, 4, 5]  # Request.seed (3) wins over params.seed
    assert len(out) == 3 and all(c.ok for c in out)


# -- load: concurrency and several endpoints ------------------------------------------------------
def test_in_flight_requests_are_bounded_by_max_concurrency():
    # the server holds answers until 3 requests are in flight at once: reaching exactly 3 (never 4)
    # shows the bound is both used and respected, without any timing assumption
    with FlakyServer(hold_until=3, hold_timeout_s=5.0) as srv:
        backend = backend_for(srv, max_concurrency=3)

        async def go():
            try:
                return await asyncio.gather(*(backend.generate(CHAT, SamplingParams(max_tokens=4)) for _ in range(9)))
            finally:
                await backend.aclose()

        outs = asyncio.run(go())
    assert srv.requests == 9 and srv.max_in_flight == 3
    assert all(o[0].ok for o in outs)


def test_several_base_urls_share_the_load():
    with FlakyServer(delay_s=0.05) as a, FlakyServer(delay_s=0.05) as b:
        backend = backend_for(a, b, max_concurrency=4)

        async def go():
            try:
                return await asyncio.gather(*(backend.generate(CHAT, SamplingParams(max_tokens=4)) for _ in range(8)))
            finally:
                await backend.aclose()

        outs = asyncio.run(go())
    assert all(o[0].ok for o in outs)
    assert a.requests > 0 and b.requests > 0 and a.requests + b.requests == 8


def test_an_endpoint_that_keeps_failing_is_skipped():
    with FlakyServer(default=500) as bad, FlakyServer() as good:
        backend = backend_for(bad, good, max_retries=3, endpoint_failures=2, endpoint_cooldown_s=60.0)

        async def go():
            try:
                return [await backend.generate(CHAT, SamplingParams(max_tokens=4)) for _ in range(6)]
            finally:
                await backend.aclose()

        outs = asyncio.run(go())
    assert all(o[0].ok for o in outs)
    assert bad.requests == 2  # then cooling down: every later request went to the good one
    assert good.requests == 6


# -- request mapping ---------------------------------------------------------------------------------
def test_sampling_params_map_to_openai_fields():
    params = SamplingParams(
        max_tokens=7, temperature=0.5, top_p=0.9, top_k=20, min_p=0.1, presence_penalty=0.25,
        frequency_penalty=-0.5, seed=1, stop=["\n", "###"], logprobs=True,
        extra_body={"repeat_penalty": 1.0, "top_p": 0.8},
    )
    with FlakyServer() as srv:
        chat = run(backend_for(srv), CHAT, params)
        plain = run(backend_for(srv), PLAIN, params.with_(top_k=None, min_p=0.0))
    assert srv.paths == ["/v1/chat/completions", "/v1/completions"]
    body = srv.bodies[0]
    assert body["messages"] == [dict(m) for m in CHAT.prompt] and body["model"] == "flaky"
    assert body["max_tokens"] == 7 and body["temperature"] == 0.5 and body["top_k"] == 20 and body["min_p"] == 0.1
    assert body["presence_penalty"] == 0.25 and body["frequency_penalty"] == -0.5
    assert body["seed"] == 11 and body["stop"] == ["\n", "###"] and body["logprobs"] is True
    assert body["repeat_penalty"] == 1.0 and body["top_p"] == 0.8  # extra_body is merged last
    assert "n" not in body
    body = srv.bodies[1]
    assert body["prompt"] == PLAIN.prompt and body["logprobs"] == 1 and "top_k" not in body and "min_p" not in body
    for out in (chat, plain):
        c = out[0]
        assert c.ok and c.token_logprobs is not None and len(c.token_logprobs) == c.completion_tokens > 0
        assert c.prompt_tokens > 0 and c.latency_s > 0


def test_chat_option_decides_the_endpoint():
    with FlakyServer() as srv:
        out = run(backend_for(srv, chat=True), PLAIN, SamplingParams(max_tokens=4))
        assert out[0].ok and srv.paths == ["/v1/chat/completions"]
        assert srv.bodies[0]["messages"] == [{"role": "user", "content": PLAIN.prompt}]
        with pytest.raises(ConfigError, match="chat is false"):
            run(backend_for(srv, chat=False), CHAT, SamplingParams(max_tokens=4))
    assert srv.requests == 1


def test_api_key_from_the_named_environment_variable(monkeypatch):
    monkeypatch.delenv("TTCLAB_TEST_KEY", raising=False)
    with FlakyServer() as srv:
        backend = backend_for(srv, api_key_env="TTCLAB_TEST_KEY")
        with pytest.raises(BackendError) as info:
            run(backend, CHAT, SamplingParams(max_tokens=4))
        assert "TTCLAB_TEST_KEY" in str(info.value) and "\n" not in str(info.value)
        assert srv.requests == 0
        monkeypatch.setenv("TTCLAB_TEST_KEY", "sk-test-123")
        out = run(backend, CHAT, SamplingParams(max_tokens=4))
    assert out[0].ok and srv.auth == ["Bearer sk-test-123"]


def test_constructor_only_stores_and_info_names_the_urls():
    backend = OpenAIBackend("some-model", base_urls=["http://10.0.0.1:8000", "http://10.0.0.2:8000/v1/"],
                            api_key_env="NOT_SET_ANYWHERE_42")
    info = backend.info()
    assert info.name == "some-model" and info.backend == "openai"
    assert info.extra["base_urls"] == ["http://10.0.0.1:8000", "http://10.0.0.2:8000/v1/"]
    via_registry = create_backend("openai", model="m", base_urls="http://127.0.0.1:1", max_concurrency=2)
    assert isinstance(via_registry, OpenAIBackend) and via_registry.max_concurrency == 2


# -- pure helpers ---------------------------------------------------------------------------------------
def test_normalize_base_url():
    assert normalize_base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert normalize_base_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1"
    assert normalize_base_url("https://host/v1beta/openai") == "https://host/v1beta/openai"
    with pytest.raises(ConfigError, match="base_urls"):
        normalize_base_url("127.0.0.1:8000")


def test_parse_retry_after():
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after({"Retry-After": date}, now=now) == pytest.approx(7.0)
    assert parse_retry_after({"Retry-After": email.utils.formatdate(now - 60, usegmt=True)}, now=now) == 0.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after({"Retry-After": "100000"}) == 300.0


@given(
    total=st.integers(min_value=0, max_value=10_000),
    texts=st.lists(st.text(max_size=40), min_size=2, max_size=8),
)
def test_split_completion_tokens_sums_to_the_reported_total(total, texts):
    counts = split_completion_tokens(total, texts, [None] * len(texts))
    assert sum(counts) == total and all(c >= 0 for c in counts)
    longest = max(range(len(texts)), key=lambda i: len(texts[i]))
    shortest = min(range(len(texts)), key=lambda i: len(texts[i]))
    assert counts[longest] >= counts[shortest] - 1


def test_split_completion_tokens_prefers_logprob_lengths():
    assert split_completion_tokens(10, ["a b", "c"], [(-1.0, -2.0), (-3.0,)]) == [2, 1]
    assert split_completion_tokens(9, ["only"], [None]) == [9]
    assert split_completion_tokens(None, ["x", "y"], [(-1.0,), None]) == [1, 0]


# -- the real llama.cpp server ---------------------------------------------------------------------------
@pytest.fixture
def smol(llama_server):
    return OpenAIBackend("smollm2-135m", base_urls=llama_server, max_concurrency=2, max_retries=2, **FAST)


@pytest.mark.slow
def test_llama_server_chat_and_completions(smol):
    chat = run(smol, CHAT, SamplingParams(max_tokens=8, temperature=0.0))
    plain = run(smol, PLAIN, SamplingParams(max_tokens=8, temperature=0.0, stop=["\n"]))
    for out in (chat, plain):
        assert len(out) == 1
        c = out[0]
        assert c.ok and c.text.strip() and c.finish_reason in ("stop", "length")
        assert c.prompt_tokens > 0 and 0 < c.completion_tokens <= 8 and c.latency_s > 0
    assert "\n" not in plain[0].text


@pytest.mark.slow
def test_llama_server_n_falls_back_to_parallel_requests(smol):
    out = run(smol, CHAT, SamplingParams(max_tokens=8, temperature=1.0, n=3))
    assert len(out) == 3 and all(c.ok and c.completion_tokens > 0 for c in out)
    stats = smol.endpoint_stats()[0]
    # llama-cpp-python's server drops `n` and answers with one choice: 1 request + 2 fallback requests
    assert stats["supports_n"] is False and stats["requests"] == 3


@pytest.mark.slow
def test_llama_server_logprobs(smol):
    for request in (CHAT, PLAIN):
        c = run(smol, request, SamplingParams(max_tokens=6, temperature=0.0, logprobs=True))[0]
        assert c.ok and c.token_logprobs is not None
        assert len(c.token_logprobs) == c.completion_tokens and all(lp <= 0 for lp in c.token_logprobs)


@pytest.mark.slow
def test_llama_server_is_deterministic_greedy_and_with_a_seed(smol):
    greedy = SamplingParams(max_tokens=8, temperature=0.0)
    assert run(smol, PLAIN, greedy)[0].text == run(smol, PLAIN, greedy)[0].text
    # With a seed at temperature 1. llama.cpp's first evaluation of a new prompt can differ from
    # later ones served from its prompt cache (batch vs single-token numerics), so warm it up first.
    seeded = SamplingParams(max_tokens=8, temperature=1.0)
    request = Request(prompt=({"role": "user", "content": "Tell me a very short story."},), seed=1234)
    run(smol, request, seeded)
    texts = [run(smol, request, seeded)[0].text for _ in range(2)]
    assert texts[0] == texts[1] and texts[0]


@pytest.mark.slow
def test_llama_server_concurrent_requests_all_complete(smol):
    async def go():
        try:
            return await asyncio.gather(*(smol.generate(Request(CHAT.prompt, seed=s), SamplingParams(max_tokens=6))
                                          for s in range(4)))
        finally:
            await smol.aclose()

    outs = asyncio.run(go())
    assert len(outs) == 4 and all(len(o) == 1 and o[0].ok and o[0].text for o in outs)
    assert smol.endpoint_stats()[0]["requests"] == 4


# -- the sampling run stops at a permanent failure ----------------------------------------------------
def _sample_cli(tmp_path, srv_url: str, **options):
    import subprocess
    import sys

    import yaml

    cfg = {
        "store": str(tmp_path / "runs"),
        "model": {"backend": "openai", "name": "flaky", "options": {"base_url": srv_url, **FAST, **options}},
        "task": {"source": "gym", "name": "syllogism", "size": 6, "seed": 3},
        "prompt": {"style": "chat"}, "samples": 4, "sampling": {"temperature": 0.8, "max_tokens": 8, "seed": 5},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "ttclab", "sample", str(path), "--no-progress"],
                          capture_output=True, text=True, timeout=300)


def _stored_rows(tmp_path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(f).num_rows for f in (tmp_path / "runs").glob("*/samples/*.parquet"))


@pytest.mark.parametrize("status", [401, 403, 404])
def test_sample_stops_at_the_first_permanent_failure(tmp_path, monkeypatch, status):
    monkeypatch.setenv("TTCLAB_TEST_KEY", "sk-test")
    with FlakyServer(default=status, error_message="nope: invalid key or model") as srv:
        proc = _sample_cli(tmp_path, srv.base_url, api_key_env="TTCLAB_TEST_KEY", max_concurrency=8)
        requests = srv.requests
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("ttclab: error:"), proc.stderr
    assert srv.base_url in lines[0] and str(status) in lines[0] and "Traceback" not in proc.stderr
    assert requests == 1  # 24 samples were due; one request was sent
    assert _stored_rows(tmp_path) == 0  # no error rows for requests never sent


def test_sample_stops_when_nothing_listens(tmp_path):
    with FlakyServer() as srv:
        url = srv.base_url
    proc = _sample_cli(tmp_path, url, max_retries=5)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert url in lines[0] and "connection refused" in lines[0] and "base_url" in lines[0]
    assert _stored_rows(tmp_path) == 0


def test_sample_keeps_finished_samples_when_the_key_is_revoked_mid_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TTCLAB_TEST_KEY", "sk-test")
    with FlakyServer(script=["ok"] * 8, default=401, error_message="key revoked") as srv:
        proc = _sample_cli(tmp_path, srv.base_url, api_key_env="TTCLAB_TEST_KEY", max_concurrency=1, supports_n=False)
    assert proc.returncode == 2 and "401" in proc.stderr and "TTCLAB_TEST_KEY" in proc.stderr, proc.stderr
    assert _stored_rows(tmp_path) == 8  # two questions' answered samples are kept; nothing else is stored
