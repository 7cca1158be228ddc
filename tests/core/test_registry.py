"""One registry mechanism for backends, verifiers, strategies and pipeline ops; config choices derive from it."""

from __future__ import annotations

import pytest

from ttclab.backends import BACKEND_CLASSES, BACKENDS, backend_class
from ttclab.config import ModelSpec, VerifierSpec
from ttclab.errors import ConfigError
from ttclab.online.program import OPS
from ttclab.registry import Registry
from ttclab.strategies.registry import REGISTRY, get_strategy, register
from ttclab.strategies.voting import majority
from ttclab.verify.registry import VERIFIERS, get_verifier


def test_registry_lazy_entries_and_one_line_errors():
    reg: Registry[object] = Registry("widget", where="widget.name")
    reg.register("json", "json:dumps")
    reg.register("plain", len)
    assert not reg.is_loaded("json") and reg.names() == ("json", "plain")
    import json

    assert reg.get("json") is json.dumps and reg.is_loaded("json")
    assert list(reg) == ["json", "plain"] and "plain" in reg and len(reg) == 2
    with pytest.raises(ConfigError) as exc:
        reg.get("jsn")
    assert str(exc.value) == "widget.name: unknown widget 'jsn'; did you mean json? choose one of: json, plain"
    with pytest.raises(ValueError):
        reg.register("plain", str, replace=False)


@pytest.mark.parametrize("registry", [BACKENDS, VERIFIERS, REGISTRY, OPS])
def test_every_component_kind_uses_the_registry(registry):
    assert isinstance(registry, Registry)
    assert len(registry) >= 2
    with pytest.raises(ConfigError, match=rf"unknown {registry.kind} 'no-such'; choose one of: "):
        registry.get("no-such")


def test_old_names_keep_working():
    assert BACKEND_CLASSES is BACKENDS and backend_class("openai").__name__ == "OpenAIBackend"
    assert BACKENDS["openai"] is backend_class("openai")
    assert set(VERIFIERS) == {"numeric", "math", "choice", "gym", "exact", "code"}
    assert get_verifier("exact").name == "exact"
    assert get_strategy("majority").name == "majority" and REGISTRY["majority"].exact


def test_config_choices_come_from_the_registry():
    BACKENDS.register("test-only", "ttclab.backends.openai:OpenAIBackend")
    try:
        assert ModelSpec(backend="test-only", name="m").backend == "test-only"
    finally:
        BACKENDS.unregister("test-only")
    with pytest.raises(Exception) as exc:
        ModelSpec(backend="test-only", name="m")
    assert "unknown backend 'test-only'; choose one of: llamacpp, openai" in str(exc.value)
    with pytest.raises(Exception, match="unknown verifier 'mathh'; did you mean math"):
        VerifierSpec(name="mathh")


def test_strategies_register_through_the_registry():
    register("test_majority_copy", majority, exact=True, needs=("answers",))
    try:
        assert "test_majority_copy" in REGISTRY and get_strategy("test_majority_copy").fn is majority
    finally:
        REGISTRY.unregister("test_majority_copy")
