"""Fixtures for the gateway tests (helpers live in serve_support.py: several test folders have a conftest)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from upstream import Upstream  # noqa: E402


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up
