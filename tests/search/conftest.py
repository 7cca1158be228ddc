"""Fixtures for search tests: the fixed-length server, the scripted server, the embedded SmolLM2."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent
for p in (str(HERE), str(HERE.parent), str(HERE.parent / "online")):
    if p not in sys.path:
        sys.path.insert(0, p)

from fixed_server import FixedLengthServer, server_model  # noqa: E402


@pytest.fixture
def fixed() -> Iterator[FixedLengthServer]:
    with FixedLengthServer(length=6) as srv:
        yield srv


@pytest.fixture
def pool(fixed: FixedLengthServer) -> dict[str, Any]:
    """Two server models (two names on one server: their calls are told apart by the model)."""
    return {"a": server_model(fixed.base_url), "b": {**server_model(fixed.base_url), "name": "fixed-b"}}


@pytest.fixture(scope="session")
def probed_run(tmp_path_factory):
    """A small probe collection with SmolLM2 (stored traces with probe answers), shared by the tests."""
    from ttclab.backends.models import resolve_model_path
    from ttclab.errors import BackendError

    try:
        resolve_model_path("smollm2-135m")
    except BackendError as exc:
        pytest.skip(str(exc))
    from ttclab.experiment import sample

    tmp = tmp_path_factory.mktemp("probes")
    cfg = {"name": "probes", "models": [{"backend": "llamacpp", "name": "smollm2-135m", "options": {"n_ctx": 1024}}],
           "task": {"source": "gym", "name": "basic_arithmetic", "size": 6, "seed": 1}, "samples": 4,
           "sampling": {"temperature": 0.8, "max_tokens": 40, "seed": 0}}
    path = tmp / "sample.yaml"
    path.write_text(yaml.safe_dump(cfg))
    [r] = sample(path, progress=False, store=tmp / "store", probe={"every": 12, "max_tokens": 4})
    return tmp, path, r
