"""SIGTERM stops a command the way Ctrl-C does, wherever it lands (between tasks or inside one)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# SIGTERM arrives while a task is running Python code (os.kill to itself: the handler runs at once, inside
# the task); the program's coroutine must see a cancellation (its cleanup runs: journals closed, run.json
# marked) and asyncio.run must end with KeyboardInterrupt and nothing on stderr.
_PROGRAM = textwrap.dedent("""
    import asyncio, os, signal, sys
    signal.signal(signal.SIGINT, signal.SIG_IGN if sys.argv[1] == "ignored" else signal.default_int_handler)
    from ttclab.cli import _stop_on_sigterm
    seen = []
    _stop_on_sigterm(seen)

    async def worker():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10**5):
            pass

    async def main():
        try:
            await asyncio.gather(worker(), asyncio.sleep(30))
        except asyncio.CancelledError:
            print("cleanup ran")
            raise

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("interrupted", seen)
""")


@pytest.mark.parametrize("sigint", ["ignored", "default"])
def test_sigterm_inside_a_running_task_cancels_cleanly(sigint: str) -> None:
    """With SIGINT ignored (a script's background job) the handler used to raise KeyboardInterrupt inside the
    running task: 'Task exception was never retrieved' and a traceback on stderr, and no cancellation."""
    proc = subprocess.run([sys.executable, "-c", _PROGRAM, sigint], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["cleanup ran", "interrupted [15]"], proc.stdout
    assert proc.stderr == ""
