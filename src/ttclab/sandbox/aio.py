"""asyncio wrappers: sandboxed runs in a bounded thread pool, so the event loop stays free.

At most ``max_parallel`` runs execute at once in the process (default: the number of CPUs, at
least 2; ``$TTCLAB_SANDBOX_PARALLEL`` or :func:`set_max_parallel` change it); further calls wait
in the pool's queue without blocking the loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from ttclab.errors import ConfigError
from ttclab.sandbox.runner import IsolationMode, run_python, run_tests
from ttclab.sandbox.types import ExecResult, SandboxLimits, TestCase, TestReport

_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None
_MAX: int | None = None


def _default_parallel() -> int:
    env = os.environ.get("TTCLAB_SANDBOX_PARALLEL")
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ConfigError(f"TTCLAB_SANDBOX_PARALLEL: must be a whole number >= 1 (got {env!r})") from None
        if value >= 1:
            return value
        raise ConfigError(f"TTCLAB_SANDBOX_PARALLEL: must be a whole number >= 1 (got {env!r})")
    return max(2, os.cpu_count() or 2)


def set_max_parallel(n: int) -> None:
    """How many sandboxed runs the async wrappers execute at once (runs already started finish)."""
    global _POOL, _MAX
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"sandbox max_parallel: must be a whole number >= 1 (got {n!r})")
    with _LOCK:
        old, _POOL, _MAX = _POOL, None, n
    if old is not None:
        old.shutdown(wait=False)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=_MAX or _default_parallel(), thread_name_prefix="ttclab-sandbox")
        return _POOL


async def arun_python(code: str, *, stdin: str = "", limits: SandboxLimits | None = None,
                      isolation: IsolationMode | None = None) -> ExecResult:
    """:func:`~ttclab.sandbox.run_python` without blocking the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool(), partial(run_python, code, stdin=stdin, limits=limits, isolation=isolation))


async def arun_tests(program: str, tests: Sequence[TestCase], *, entry_point: str | None,
                     limits: SandboxLimits | None = None, isolation: IsolationMode | None = None) -> TestReport:
    """:func:`~ttclab.sandbox.run_tests` without blocking the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        _pool(), partial(run_tests, program, list(tests), entry_point=entry_point, limits=limits, isolation=isolation))
