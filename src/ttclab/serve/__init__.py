"""``ttclab serve``: an OpenAI-compatible gateway that answers with any test-time strategy.

:func:`serve` runs the server (uvicorn); :func:`create_app` builds the ASGI app for tests and
embedding. The package uses ``online`` (the strategy programs and the call store), ``backends``,
``store`` and ``ledger``; nothing imports it.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any


def create_app(config: Any = None, *, record: str | Path | None = None) -> Any:
    """The ASGI app for a :class:`~ttclab.serve.config.ServeConfig` or a config path (None: defaults)."""
    from ttclab.errors import ConfigError
    from ttclab.serve.app import create_app as build
    from ttclab.serve.config import ServeConfig, load_serve_config

    cfg = config if isinstance(config, ServeConfig) else load_serve_config(config)
    try:
        return build(cfg, record=record)
    except ConfigError as exc:  # a setting checked as the gateway is built: named with its file, as schema errors
        if config is None or isinstance(config, ServeConfig) or str(exc).startswith(str(config)):
            raise
        raise ConfigError(f"{config}: {exc}") from None


def serve(config: str | Path | None = None, *, host: str = "127.0.0.1", port: int = 8000,
          record: str | Path | None = None, log_level: str = "info", access_log: bool = False) -> None:
    """Run the gateway until interrupted (the config, backends and pipelines are checked before the port
    opens; a model loads on its first request). A strategy request logs a line as it starts and one as
    it ends (``log_level`` info); ``access_log``: uvicorn's line for every request, pass-through too."""
    try:
        import uvicorn
    except ModuleNotFoundError:
        from ttclab.errors import missing_extra

        raise missing_extra("uvicorn", "serve") from None
    import logging

    _check_port(host, port)
    app = create_app(config, record=record)
    app.url, app.remote_url = client_urls(host, port)
    log = logging.getLogger("ttclab.serve")
    if not log.handlers:  # the gateway's lines beside uvicorn's, in its format
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(log_level.upper())
    uvicorn.run(app, host=host, port=port, log_level=log_level, lifespan="on", access_log=access_log,
                timeout_graceful_shutdown=10)


def client_urls(host: str, port: int) -> tuple[str, str | None]:
    """The base_url a client gives for a server listening on ``host:port``, and the one for other machines
    when it listens on all addresses (None otherwise): 127.0.0.1 here, this machine's name there."""
    import socket

    if host in ("0.0.0.0", "::", ""):
        return f"http://127.0.0.1:{port}/v1", f"http://{socket.gethostname()}:{port}/v1"
    return (f"http://[{host}]:{port}/v1" if ":" in host else f"http://{host}:{port}/v1"), None


def _check_port(host: str, port: int) -> None:
    """A ConfigError naming the fix when ``host:port`` cannot be listened on (before any model work)."""
    import socket

    from ttclab.errors import ConfigError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if exc.errno == errno.EADDRINUSE:
                where, fix = f"--port {port}", "another server is listening there: stop it or pick another --port"
            else:
                where, fix = f"--host {host}", "give an address of this machine (127.0.0.1, or 0.0.0.0 for all)"
            raise ConfigError(f"{where}: cannot listen on {host}:{port} ({reason}); {fix}") from None


__all__ = ["create_app", "serve"]
