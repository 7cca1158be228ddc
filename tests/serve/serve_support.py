"""Helpers for the gateway tests: a real `ttclab serve` app under uvicorn on 127.0.0.1 (in a thread),
the upstream's model entry and the official OpenAI client. Imported as `serve_support` (never from
`conftest`: several test folders have one, and a whole-suite run sees only the first)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from upstream import Upstream, free_port  # noqa: E402

openai = pytest.importorskip("openai")
pytest.importorskip("uvicorn")


class Served:
    """A running gateway: its URL, the app (for counters) and clients."""

    def __init__(self, app: Any, port: int) -> None:
        self.app = app
        self.port = port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def client(self, api_key: str = "none", **kw: Any) -> Any:
        return openai.OpenAI(base_url=self.base_url, api_key=api_key, max_retries=0, **kw)


@contextmanager
def serving(config: dict[str, Any], record: Any = None) -> Iterator[Served]:
    """`ttclab serve` with this config (a mapping) under uvicorn in a thread; stopped (and recordings flushed) after."""
    import uvicorn

    from ttclab.serve import create_app
    from ttclab.serve.config import load_serve_config

    app = create_app(load_serve_config(None, config), record=record)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("ttclab serve did not start")
        time.sleep(0.01)
    try:
        yield Served(app, port)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def upstream_model(up: Upstream, **options: Any) -> dict[str, Any]:
    return {"backend": "openai", "name": "up-model", "options": {"base_url": up.base_url, "max_concurrency": 64,
                                                                 "max_retries": 0, **options}}
