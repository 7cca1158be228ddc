"""A long-lived sandboxed program that answers JSON lines: :class:`SandboxSession`.

:func:`~ttclab.sandbox.run_python` runs a program to its end; a session keeps one sandboxed
process (the same isolation and limits: its own temporary directory, scrubbed environment,
process group, no network, read-only file system outside the directory, CPU / memory / process /
file limits) and exchanges one JSON value per line with it over its standard input and output, with
a wall-time limit per reply. ``limits.wall_s`` bounds the whole session and ``limits.cpu_s`` its
CPU time in total::

    with SandboxSession({"main.py": "import sys, json\\nfor l in sys.stdin: print(json.dumps(len(l)))"}) as s:
        s.request({"x": 1}, timeout_s=1.0)   # -> 9

Anything that goes wrong — no reply in time, the program exits or crashes, a line that is not JSON,
output past ``limits.max_output_kb`` — raises :class:`SessionError` with a ``reason`` (the sandbox's
reasons: ``timeout``, ``error``, ``memory``, ``forbidden``, ``killed``, ``output_limit``... and
``garbage`` for a line that is not JSON) and a one-line ``detail``; the process group is killed by
then and the working directory removed. :meth:`SandboxSession.close` (also on leaving the ``with``)
always ends the process: its standard input is closed, it gets a moment to exit, then the group is
killed; it returns the :class:`~ttclab.sandbox.ExecResult` of the whole session.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from ttclab.sandbox import runner
from ttclab.sandbox.types import ExecResult, SandboxLimits

#: Longest reply line read (bytes); a longer one is garbage.
MAX_LINE = 1 << 20


class SessionError(RuntimeError):
    """The session's program failed to answer; ``reason`` says how, ``result`` is the session's end."""

    def __init__(self, reason: str, detail: str, result: ExecResult | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.result = result


class SandboxSession:
    """One sandboxed process speaking JSON lines on stdin/stdout (see the module doc).

    ``files`` are written into the working directory: ``main.py``, the program run, and optionally
    ``program.py`` (e.g. the code that ``main.py`` loads).
    """

    def __init__(self, files: Mapping[str, str], *, limits: SandboxLimits | None = None,
                 isolation: runner.IsolationMode | None = None) -> None:
        if "main.py" not in files or set(files) - {"main.py", "program.py"}:
            raise ValueError(f"SandboxSession: files are main.py (the program run) and optionally program.py "
                             f"(got {sorted(files)})")
        self.files = dict(files)
        self.limits = limits or SandboxLimits()
        self.isolation = runner._isolation_mode(isolation)
        self.result: ExecResult | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir = ""
        self._fds: list[int] = []
        self._streams: dict[int, bytearray] = {}
        self._caps: dict[int, int] = {}
        self._status_r = -1
        self._start = 0.0
        self._pending = bytearray()  # stdout not yet returned as a line
        self._sel: selectors.BaseSelector | None = None

    # -- life cycle ---------------------------------------------------------------------------
    def __enter__(self) -> SandboxSession:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self.result is None

    def start(self) -> None:
        """Start the process (once)."""
        if self._proc is not None:
            raise RuntimeError("SandboxSession.start: already started")
        runner._check_platform(self.limits)
        self._workdir = runner._new_workdir()
        status_r, status_w = os.pipe()
        self._status_r = status_r
        self._fds = [status_r]
        self._start = time.perf_counter()
        try:
            self._proc = runner._spawn(self._workdir, self.files, "script", self.limits, self.isolation, status_w, -1,
                                       subprocess.PIPE)
        except BaseException:
            os.close(status_w)
            runner._abandon(None, self._fds, self._workdir)
            raise
        os.close(status_w)
        assert self._proc.stdout is not None and self._proc.stderr is not None and self._proc.stdin is not None
        out_fd, err_fd = self._proc.stdout.fileno(), self._proc.stderr.fileno()
        cap = int(self.limits.max_output_kb) * 1024
        self._streams = {out_fd: bytearray(), err_fd: bytearray(), status_r: bytearray()}
        self._caps = {out_fd: cap, err_fd: cap, status_r: 1 << 20}
        self._sel = selectors.DefaultSelector()
        for fd in (err_fd, status_r):
            os.set_blocking(fd, False)
            self._sel.register(fd, selectors.EVENT_READ)
        os.set_blocking(out_fd, False)
        os.set_blocking(self._proc.stdin.fileno(), False)

    def close(self, *, timed_out: bool = False, flooded: str | None = None) -> ExecResult:
        """End the session (idempotent): EOF on stdin, a moment to exit, then the group is killed."""
        if self.result is not None:
            return self.result
        if self._proc is None:
            raise RuntimeError("SandboxSession.close: not started")
        proc = self._proc
        try:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
            if self._sel is not None:
                self._sel.close()
                self._sel = None
            out_fd = proc.stdout.fileno() if proc.stdout is not None else -1
            self._streams[out_fd][:0] = self._pending  # what was not read as a reply is the session's stdout
            self._pending.clear()
            self.result = runner._conclude(proc, self.limits, self._streams, self._caps, self._status_r, timed_out,
                                           [flooded] if flooded else [], self._workdir, self._start)
        finally:
            runner._abandon(proc, self._fds, self._workdir)
        return self.result

    # -- exchange -----------------------------------------------------------------------------
    def request(self, value: Any, timeout_s: float) -> Any:
        """Send ``value`` as one JSON line and return the reply line's value (within ``timeout_s``)."""
        self.send(value, timeout_s)
        return self.receive(timeout_s)

    def send(self, value: Any, timeout_s: float) -> None:
        proc = self._live()
        assert proc.stdin is not None
        data = (json.dumps(value) + "\n").encode()
        deadline = self._deadline(timeout_s)
        fd = proc.stdin.fileno()
        with selectors.DefaultSelector() as wsel:
            wsel.register(fd, selectors.EVENT_WRITE)
            while data:
                now = time.perf_counter()
                if now >= deadline:
                    self._fail("timeout", f"the program did not read its input within {timeout_s:g} s", timed_out=True)
                if not wsel.select(deadline - now):
                    continue
                try:
                    n = os.write(fd, data)
                except BlockingIOError:
                    continue
                except (BrokenPipeError, OSError):
                    self._ended()
                data = data[n:]

    def receive(self, timeout_s: float) -> Any:
        """The next reply line's JSON value (within ``timeout_s``)."""
        proc = self._live()
        assert proc.stdout is not None and self._sel is not None
        out_fd = proc.stdout.fileno()
        deadline = self._deadline(timeout_s)
        why = (f"no reply within {timeout_s:g} s" if deadline < self._start + float(self.limits.wall_s)
               else f"the session's wall time limit of {self.limits.wall_s:g} s")
        self._sel.register(out_fd, selectors.EVENT_READ)
        try:
            while b"\n" not in self._pending:
                now = time.perf_counter()
                if now >= deadline:
                    self._fail("timeout", why, timed_out=True)
                for key, _ in self._sel.select(deadline - now):
                    try:
                        data = os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    if key.fd == out_fd:
                        if not data:
                            self._ended()
                        self._pending += data
                        if len(self._pending) > MAX_LINE and b"\n" not in self._pending:
                            self._fail("garbage", f"a reply line longer than {MAX_LINE} bytes")
                    elif not data:
                        self._sel.unregister(key.fd)
                    else:
                        buf = self._streams[key.fd]
                        buf += data
                        if len(buf) > self._caps[key.fd]:
                            self._fail("output_limit", f"stderr exceeded {self.limits.max_output_kb} KB; the session "
                                       "was stopped", flooded="stderr")
        finally:
            if self._sel is not None and out_fd in self._sel.get_map():
                self._sel.unregister(out_fd)
        line, _, rest = bytes(self._pending).partition(b"\n")
        self._pending = bytearray(rest)
        try:
            return json.loads(line)
        except ValueError:
            text = line.decode("utf-8", "replace")
            self._fail("garbage", f"a reply that is not JSON: {text[:200]!r}")

    # -- internals ----------------------------------------------------------------------------
    def _live(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError("SandboxSession: not started")
        if self.result is not None:
            raise SessionError(self.result.reason, "the session has ended", self.result)
        return self._proc

    def _deadline(self, timeout_s: float) -> float:
        return min(time.perf_counter() + float(timeout_s), self._start + float(self.limits.wall_s))

    def _fail(self, reason: str, detail: str, *, timed_out: bool = False, flooded: str | None = None) -> Any:
        result = self.close(timed_out=timed_out, flooded=flooded)
        raise SessionError(reason, detail, result)

    def _ended(self) -> Any:
        """The program closed its output or input: it exited or crashed; the reason is the sandbox's."""
        result = self.close()
        if result.ok:
            raise SessionError("exited", "the program exited before replying", result)
        raise SessionError(result.reason, result.detail or f"exit code {result.exit_code}", result)
