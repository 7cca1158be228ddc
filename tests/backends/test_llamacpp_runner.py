"""The sampling runner drives the embedded backend by its capabilities: one request per question."""

from __future__ import annotations

import pytest

from ttclab.backends.base import Capabilities, backend_capabilities
from ttclab.config import SampleConfig
from ttclab.experiment import sample

pytest.importorskip("llama_cpp")


def _cfg(store, **extra) -> SampleConfig:
    return SampleConfig.model_validate({
        "store": str(store),
        "model": {"backend": "llamacpp", "name": "smollm2-135m", "options": {"n_ctx": 512, "n_threads": 2}},
        "task": {"source": "gym", "name": "syllogism", "size": 3, "seed": 1},
        "prompt": {"style": "chat"},
        "samples": 4,
        "sampling": {"temperature": 0.9, "max_tokens": 12, "seed": 3},
        "flush_seconds": 0.5,
        **extra,
    })


def _rows(result):
    t = result.run.samples()
    return sorted(zip(t["question_index"].to_pylist(), t["sample_index"].to_pylist(), t["text"].to_pylist(),
                      t["completion_tokens"].to_pylist(), t["seed"].to_pylist()))


def test_all_missing_samples_of_a_question_go_in_one_request_and_equal_one_at_a_time(tmp_path, monkeypatch):
    from ttclab.backends.llamacpp import LlamaCppBackend

    assert backend_capabilities(LlamaCppBackend()) == Capabilities(batched_samples=True, concurrency=16)
    requested: list[int] = []
    original = LlamaCppBackend.generate

    async def counting(self, request, params):  # the real engine, with the request sizes recorded
        requested.append(params.n)
        return await original(self, request, params)

    monkeypatch.setattr(LlamaCppBackend, "generate", counting)
    batched = sample(_cfg(tmp_path / "a"), progress=False)[0]
    assert requested == [4, 4, 4]  # three questions, all four samples of each in one request
    requested.clear()
    one_by_one = sample(_cfg(tmp_path / "b", samples_per_request=1), progress=False)[0]
    assert requested == [1] * 12
    assert batched.run.run_id == one_by_one.run.run_id  # samples_per_request does not define the samples
    assert _rows(batched) == _rows(one_by_one) and len(_rows(batched)) == 12


def test_a_backend_without_declared_capabilities_is_driven_like_a_server():
    class Server:
        max_concurrency = 7

    assert backend_capabilities(Server()) == Capabilities(batched_samples=True, concurrency=7)
