"""`ttclab serve` on the embedded SmolLM2-135M engine, driven by the official openai client."""

from __future__ import annotations

import pytest
from serve_support import serving

pytest.importorskip("llama_cpp")
MSG = [{"role": "user", "content": "Explain step by step: what is 3 + 4?"}]
SMOL = {"backend": "llamacpp", "name": "smollm2-135m", "options": {"n_ctx": 1024}}


@pytest.fixture(scope="module")
def srv():
    from ttclab.backends.models import resolve_model_path
    from ttclab.errors import BackendError

    try:
        resolve_model_path("smollm2-135m")
    except BackendError as exc:
        pytest.skip(str(exc))
    with serving({"models": [SMOL], "verifier": "numeric", "sampling": {"max_tokens": 24, "temperature": 0.7},
                  "prices": "local"}) as s:
        yield s


def test_embedded_chat_stream_equals_non_stream(srv) -> None:
    client = srv.client()
    r = client.chat.completions.create(model="smollm2-135m", messages=MSG, max_tokens=24, seed=3)
    text = r.choices[0].message.content
    assert text and r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0
    ttc = r.model_extra["ttc_usage"]
    assert ttc["flops"] > 0  # the model's architecture is in the ledger's data
    from ttclab.ledger.prices import load_prices

    price = load_prices("local").get("smollm2-135m")
    assert ttc["usd"] == pytest.approx(price.cost(r.usage.prompt_tokens, r.usage.completion_tokens))
    events = list(client.chat.completions.create(model="smollm2-135m", messages=MSG, max_tokens=24, seed=3,
                                                 stream=True, stream_options={"include_usage": True}))
    deltas = [e.choices[0].delta.content for e in events if e.choices and e.choices[0].delta.content]
    assert len(deltas) > 1 and "".join(deltas) == text  # token by token, the same sample
    assert events[-1].usage.completion_tokens == r.usage.completion_tokens


def test_embedded_strategy_n_and_completions(srv) -> None:
    client = srv.client()
    r = client.chat.completions.create(model="smollm2-135m:majority@3", messages=MSG, max_tokens=24, n=2, seed=1)
    ttc = r.model_extra["ttc_usage"]
    assert len(r.choices) == 2 and ttc["calls"] == 6 and ttc["by_role"]["generate"]["calls"] == 6
    for info in ttc["choices"]:
        assert sum(info["answers"].values()) <= 3
        if info["answers"]:
            assert info["answers"][info["answer"]] == max(info["answers"].values())  # the plurality answer
    assert r.usage.completion_tokens == ttc["by_role"]["generate"]["completion_tokens"]
    c = client.completions.create(model="smollm2-135m", prompt="The capital of France is", max_tokens=8, seed=2)
    assert c.choices[0].text and c.usage.completion_tokens <= 8
    streamed = "".join(e.choices[0].text for e in client.completions.create(
        model="smollm2-135m", prompt="The capital of France is", max_tokens=8, seed=2, stream=True))
    assert streamed == c.choices[0].text
