"""Backend options: every constructor argument is operational or sample-determining; typos are one line."""

from __future__ import annotations

import pytest

from ttclab.backends import BACKEND_CLASSES, backend_class, backend_options, create_backend, operational_options
from ttclab.config import OPERATIONAL_OPTIONS, SampleConfig, config_warnings, run_id_for
from ttclab.errors import ConfigError


@pytest.mark.parametrize("name", sorted(BACKEND_CLASSES))
def test_every_constructor_argument_is_classified_exactly_once(name):
    cls = backend_class(name)
    operational, sample = cls.OPERATIONAL_OPTIONS, cls.SAMPLE_OPTIONS
    args = set(backend_options(name))
    assert not operational & sample, f"{name}: classified both ways: {sorted(operational & sample)}"
    assert args <= operational | sample, f"{name}: unclassified constructor arguments: {sorted(args - operational - sample)}"


def test_operational_options_are_derived_from_the_backends():
    assert OPERATIONAL_OPTIONS == operational_options("llamacpp") | operational_options("openai")
    for option in ("jitter_seed", "endpoint_failures", "endpoint_cooldown_s", "headers", "n_threads", "max_seqs"):
        assert option in OPERATIONAL_OPTIONS
    assert "rng_seed" not in OPERATIONAL_OPTIONS  # no backend takes it
    every_arg = set().union(*(backend_options(n) for n in BACKEND_CLASSES))
    assert OPERATIONAL_OPTIONS - every_arg <= {"base_url"}  # the one-endpoint spelling of base_urls


def _cfg(backend: str, options: dict, **extra) -> SampleConfig:
    return SampleConfig.model_validate({
        "model": {"backend": backend, "name": "smollm2-135m", "options": options},
        "task": {"source": "gym", "name": "syllogism", "size": 2, "seed": 0},
        "samples": 2, "sampling": {"max_tokens": 8, "seed": 0}, **extra,
    })


def _run_id(backend: str, options: dict) -> str:
    cfg = _cfg(backend, options)
    return run_id_for(cfg, cfg.models[0], "syllogism")


def test_operational_options_do_not_change_the_run_id_and_sample_options_do():
    base = _run_id("openai", {"base_urls": ["http://127.0.0.1:1/v1"]})
    assert _run_id("openai", {"base_urls": ["http://127.0.0.1:2/v1"], "jitter_seed": 7, "endpoint_failures": 9,
                              "endpoint_cooldown_s": 1.0, "headers": {"X-Trace": "1"}, "max_retries": 0}) == base
    assert _run_id("openai", {"base_urls": ["http://127.0.0.1:1/v1"], "chat": False}) != base
    local = _run_id("llamacpp", {})
    assert _run_id("llamacpp", {"n_threads": 1, "max_seqs": 4, "kv_budget_mb": 64, "verbose": True}) == local
    assert _run_id("llamacpp", {"n_ctx": 512}) != local
    assert _run_id("llamacpp", {"n_batch": 64}) != local  # chunked prompt evaluation rounds differently


def test_an_option_typo_is_one_line_naming_it_and_listing_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        create_backend("llamacpp", model="smollm2-135m", n_ctxx=512)
    message = str(info.value)
    assert "\n" not in message
    assert "unknown option 'n_ctxx'" in message and "did you mean 'n_ctx'?" in message
    assert "valid options: n_ctx, n_threads, n_batch" in message
    with pytest.raises(ConfigError, match=r"backend openai: unknown option 'max_concurency' \(did you mean "
                                          r"'max_concurrency'\?\)"):
        create_backend("openai", model="m", max_concurency=4)
    with pytest.raises(ConfigError, match="unknown backend 'vllm'; choose one of: llamacpp, openai"):
        create_backend("vllm")


def test_temperature_zero_with_several_samples_is_warned_not_refused():
    warnings = config_warnings(_cfg("llamacpp", {}, sampling={"max_tokens": 8, "temperature": 0.0}))
    assert len(warnings) == 1 and "temperature is 0 with samples: 2" in warnings[0] and "\n" not in warnings[0]
    assert config_warnings(_cfg("llamacpp", {}, sampling={"max_tokens": 8, "temperature": 0.7})) == []
    assert config_warnings(_cfg("llamacpp", {}, samples=1, sampling={"max_tokens": 8, "temperature": 0.0})) == []


def test_a_model_given_by_name_is_the_embedded_model_and_the_same_run():
    # `model: smollm2-135m` (as --model accepts it) is short for the llamacpp mapping: same run id.
    rest = {"task": {"source": "gym", "name": "syllogism", "size": 2}, "samples": 2, "sampling": {"max_tokens": 8}}
    short = SampleConfig.model_validate({"model": "smollm2-135m", **rest})
    full = SampleConfig.model_validate({"model": {"backend": "llamacpp", "name": "smollm2-135m"}, **rest})
    assert short.models[0].backend == "llamacpp" and short.models == full.models
    assert run_id_for(short, short.models[0], "syllogism") == run_id_for(full, full.models[0], "syllogism")
    assert SampleConfig.model_validate({"model": "dir/m.gguf", **rest}).models[0].backend == "llamacpp"
