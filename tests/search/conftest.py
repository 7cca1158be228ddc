"""Fixtures for search tests: the fixed-length server, the scripted server, the embedded SmolLM2."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
for p in (str(HERE), str(HERE.parent), str(HERE.parent / "online")):
    if p not in sys.path:
        sys.path.insert(0, p)

from fixed_server import FixedLengthServer, server_model  # noqa: E402

TASK = {"source": "gym", "name": "basic_arithmetic", "size": 8, "seed": 3}


@pytest.fixture
def fixed() -> Iterator[FixedLengthServer]:
    with FixedLengthServer(length=6) as srv:
        yield srv


@pytest.fixture
def pool(fixed: FixedLengthServer) -> dict[str, Any]:
    """Two server models (two names on one server: their calls are told apart by the model)."""
    return {"a": server_model(fixed.base_url), "b": {**server_model(fixed.base_url), "name": "fixed-b"}}
