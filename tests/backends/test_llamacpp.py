"""The embedded llama.cpp backend with the real SmolLM2-135M model."""

from __future__ import annotations

import asyncio

import pytest

from ttclab.backends import create_backend
from ttclab.backends.base import Request, SamplingParams
from ttclab.errors import BackendError, ConfigError

pytest.importorskip("llama_cpp")

CHAT = Request(prompt=({"role": "user", "content": "What is 2 + 3? Reply with a number."},), seed=11)


@pytest.fixture(scope="module")
def smol():
    backend = create_backend("llamacpp", model="smollm2-135m", n_ctx=512, n_threads=2)
    yield backend
    asyncio.run(backend.aclose())


def test_chat_generation_records_tokens_latency_and_logprobs(smol):
    params = SamplingParams(max_tokens=12, temperature=0.8, seed=0, n=2, logprobs=True)
    out = asyncio.run(smol.generate(CHAT, params))
    assert len(out) == 2
    for c in out:
        assert c.ok and c.text
        assert c.finish_reason in ("stop", "length")
        assert c.prompt_tokens > 5 and 0 < c.completion_tokens <= 12
        assert c.latency_s > 0
        assert c.token_logprobs is not None and len(c.token_logprobs) == c.completion_tokens
        assert all(lp <= 0 for lp in c.token_logprobs)


def test_same_seed_same_text_and_n_matches_single_requests(smol):
    params = SamplingParams(max_tokens=10, temperature=1.0, seed=0)
    both = asyncio.run(smol.generate(CHAT, params.with_(n=2)))
    first = asyncio.run(smol.generate(Request(CHAT.prompt, seed=11), params))
    second = asyncio.run(smol.generate(Request(CHAT.prompt, seed=12), params))
    assert [c.text for c in both] == [first[0].text, second[0].text]


def test_plain_completion_prompt_and_stop_strings(smol):
    req = Request(prompt="Question: 1 + 1?\nAnswer: 2\nQuestion: 2 + 2?\nAnswer:", seed=1)
    out = asyncio.run(smol.generate(req, SamplingParams(max_tokens=16, temperature=0.0, stop=["\n"])))
    assert out[0].ok and "\n" not in out[0].text
    assert out[0].finish_reason in ("stop", "length")


def test_prompt_longer_than_context_is_an_error_completion_not_an_exception(smol):
    long_prompt = "word " * 2000
    out = asyncio.run(smol.generate(Request(long_prompt, seed=0), SamplingParams(max_tokens=4)))
    assert out[0].error and out[0].text == "" and out[0].finish_reason == "error"


def test_model_info_from_gguf(smol):
    info = smol.info()
    assert info.backend == "llamacpp" and info.n_layers == 30 and info.hidden_size == 576
    assert 100e6 < info.n_params < 200e6


def test_unknown_model_and_backend_errors():
    with pytest.raises(BackendError, match="unknown model 'nope'"):
        asyncio.run(create_backend("llamacpp", model="nope").generate(CHAT, SamplingParams(max_tokens=1)))
    with pytest.raises(ConfigError, match="unknown backend 'vllm'"):
        create_backend("vllm")
    with pytest.raises(ConfigError, match="backend llamacpp"):
        create_backend("llamacpp", model="smollm2-135m", bogus_option=1)


QUIET_LOAD = """
from ttclab.backends import create_backend
from ttclab.backends.base import Request, SamplingParams
backend = create_backend("llamacpp", model="gemma3-270m", n_ctx=256, n_threads=2, verbose={verbose})
backend.generate_sync(Request(prompt="Say hi", seed=1), SamplingParams(max_tokens=2, n=2))
print("done")
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_llama_cpp_log_lines_reach_stderr_only_when_verbose(verbose):
    # llama-cpp-python 0.3.36 maps ggml's older log-level enum, so without ttclab's callback every
    # llama.cpp warning (Gemma: "using full-size SWA cache", once per context) reaches stderr.
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", QUIET_LOAD.format(verbose=verbose)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "done"
    if verbose:
        assert "SWA cache" in out.stderr and "llama_model_loader" in out.stderr
    else:
        assert out.stderr == ""
