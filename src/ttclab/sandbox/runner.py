"""Run untrusted Python in a sandboxed subprocess: :func:`run_python` and :func:`run_tests`.

Each run gets a fresh temporary directory (removed afterwards), a scrubbed environment, its own
process group (killed with everything in it when the run ends or times out) and the child-side
isolation of :mod:`ttclab.sandbox._child`. Output is read as it comes and capped; a flood stops the
run. Safe to call from many threads at once.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from ttclab.errors import ConfigError
from ttclab.sandbox import _child
from ttclab.sandbox.types import ExecResult, Reason, SandboxLimits, TestCase, TestReport, TestResult

IsolationMode = Literal["auto", "netns", "audit-hook"]
_CHILD = Path(_child.__file__).resolve()
_GRACE_S = 1.0            # after the supervisor exits, how long the pipes may take to close
_RESULTS_CAP = 4 << 20    # bytes of test results read from the result pipe
_HIDDEN = ("/root", "/home", "/tmp", "/var/tmp", "/dev/shm", "/run", "/mnt", "/media")
_LAST_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s*(?P<msg>.*))?$")


def _environment(workdir: str) -> dict[str, str]:
    """The only environment the program sees."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8",
            "PYTHONNOUSERSITE": "1"}


def _isolation_mode(isolation: str | None) -> str:
    mode = isolation or os.environ.get("TTCLAB_SANDBOX_ISOLATION", "auto")
    if mode not in ("auto", "netns", "audit-hook"):
        raise ConfigError(f"sandbox isolation: must be auto, netns or audit-hook (got {mode!r})")
    return mode


def run_python(code: str, *, stdin: str = "", limits: SandboxLimits | None = None,
               isolation: IsolationMode | None = None) -> ExecResult:
    """Run ``code`` as a Python program in the sandbox, with ``stdin`` as its standard input.

    ``isolation``: ``auto`` (a network namespace where the OS allows it, else the audit hook),
    ``netns`` (fail with ``reason="sandbox_error"`` when namespaces are not permitted) or
    ``audit-hook`` (skip namespaces); default from ``$TTCLAB_SANDBOX_ISOLATION``, else ``auto``.
    """
    result, _ = _execute({"main.py": code}, "script", stdin, limits or SandboxLimits(), _isolation_mode(isolation))
    return result


def run_tests(program: str, tests: Sequence[TestCase], *, entry_point: str | None,
              limits: SandboxLimits | None = None, isolation: IsolationMode | None = None) -> TestReport:
    """Run ``program`` once in the sandbox, then each test against it (see :class:`TestCase`).

    A test that fails, raises or times out (``limits.test_timeout_s``, or its own ``timeout_s``)
    is a failed result and the next test still runs; when the whole run stops (wall or CPU limit,
    memory, output flood) the tests not reached are ``NotRun`` failures with the reason.
    """
    limits = limits or SandboxLimits()
    specs = [_test_spec(t, entry_point, limits) for t in tests]
    files = {"program.py": program, "tests.json": json.dumps(specs)}
    execution, raw = _execute(files, "tests", "", limits, _isolation_mode(isolation))
    return _report(tests, entry_point, execution, raw)


def _test_spec(test: TestCase, entry_point: str | None, limits: SandboxLimits) -> dict[str, Any]:
    if not isinstance(test, TestCase):
        raise ConfigError(f"run_tests: tests must be TestCase objects (got {type(test).__name__})")
    timeout = min(float(test.timeout_s or limits.test_timeout_s), float(limits.wall_s))
    spec: dict[str, Any] = {"entry_point": entry_point, "timeout_s": timeout}
    if test.assert_source is not None and test.input is None:
        spec["assert_source"] = test.assert_source
        return spec
    if isinstance(test.input, str):
        spec["input_source"] = test.input
    else:
        if not entry_point:
            raise ConfigError("run_tests: tests given as argument lists need entry_point")
        spec["input_source"] = repr(tuple(test.input or ()))
        spec["input_is_args"] = True
    spec["expected_source"] = test.expected_source if test.expected_source is not None else repr(test.expected)
    return spec


def _report(tests: Sequence[TestCase], entry_point: str | None, execution: ExecResult, raw: bytes) -> TestReport:
    load_error: str | None = None
    records: dict[int, dict[str, Any]] = {}
    done = False
    for line in raw.decode("utf-8", "replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        if "load" in obj and isinstance(obj["load"], dict) and not obj["load"].get("ok", False):
            load_error = str(obj["load"].get("message") or obj["load"].get("error_type") or "failed to load")
        elif isinstance(obj.get("test"), int):
            records[obj["test"]] = obj
        elif obj.get("done") is True:
            done = True
    if not raw and not execution.ok:  # the harness never reported: the program did not get to run
        load_error = f"{execution.reason}: {execution.detail}".rstrip(": ")
    stop = f"the run stopped: {execution.reason}" + (f" ({execution.detail})" if execution.detail else "")
    results = []
    for i, test in enumerate(tests):
        rec = records.get(i)
        shown_in, shown_exp = test.display_input(entry_point), test.display_expected()
        if rec is None:
            kind = "LoadError" if load_error is not None else ("Timeout" if execution.timed_out else "NotRun")
            results.append(TestResult(i, False, shown_in, shown_exp, None, kind, load_error or stop))
            continue
        results.append(TestResult(
            index=i, passed=bool(rec.get("passed")), input=shown_in, expected=shown_exp, actual=rec.get("actual"),
            error_type=rec.get("error_type"), message=str(rec.get("message") or ""), line=rec.get("line"),
            seconds=rec.get("seconds")))
    extra = {"complete": done}
    return TestReport(passed=sum(r.passed for r in results), total=len(results), results=tuple(results),
                      execution=execution, load_error=load_error, entry_point=entry_point, extra=extra)


# ----------------------------------------------------------------------------------------------
# One execution
# ----------------------------------------------------------------------------------------------

def _check_platform(limits: SandboxLimits) -> None:
    if not isinstance(limits, SandboxLimits):
        raise ConfigError(f"sandbox limits: expected SandboxLimits (got {type(limits).__name__})")
    if os.name != "posix":
        raise ConfigError("the sandbox needs Linux or macOS (process groups, resource limits); run code tasks there")


def _spawn(workdir: str, files: dict[str, str], mode: str, limits: SandboxLimits, isolation: str, status_w: int,
           result_w: int, stdin: Any) -> subprocess.Popen[bytes]:
    """Write ``files`` into ``workdir`` and start the sandbox's supervisor (``_child.py``) on them,
    with ``stdin`` (an open file, or ``subprocess.PIPE``) as the program's standard input."""
    for name, text in files.items():
        Path(workdir, name).write_text(text, encoding="utf-8")
    config = {"workdir": workdir, "mode": mode, "isolation": isolation, "status_fd": status_w,
              "result_fd": result_w, "cpu_s": limits.cpu_s, "memory_mb": limits.memory_mb,
              "max_processes": limits.max_processes, "max_file_mb": limits.max_file_mb,
              "max_disk_mb": limits.max_disk_mb, "hide": list(dict.fromkeys([*_HIDDEN, str(Path.home())]))}
    fds = (status_w,) if mode == "script" else (status_w, result_w)
    return subprocess.Popen(
        [sys.executable, "-s", "-P", "-B", str(_CHILD), json.dumps(config)],
        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir,
        env=_environment(workdir), start_new_session=True, pass_fds=fds, close_fds=True)


def _new_workdir() -> str:
    workdir = tempfile.mkdtemp(prefix="ttclab-sandbox-")
    os.chmod(workdir, 0o700)
    return workdir


def _abandon(proc: subprocess.Popen[bytes] | None, fds: Sequence[int], workdir: str) -> None:
    """Clean-up after a run whatever happened: close ``fds``, kill and reap a process still there
    (an exception in supervision), remove the working directory."""
    for fd in fds:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass
    if proc is not None and proc.returncode is None:
        _kill_group(proc.pid)
        try:
            os.waitpid(proc.pid, 0)
        except ChildProcessError:
            pass
        proc.returncode = -9
    _remove_tree(workdir)


def _execute(files: dict[str, str], mode: str, stdin: str, limits: SandboxLimits,
             isolation: str) -> tuple[ExecResult, bytes]:
    _check_platform(limits)
    workdir = _new_workdir()
    status_r, status_w = os.pipe()
    result_r, result_w = os.pipe() if mode == "tests" else (-1, -1)
    proc: subprocess.Popen[bytes] | None = None
    start = time.perf_counter()
    try:
        stdin_path = Path(workdir, ".stdin")
        stdin_path.write_text(stdin, encoding="utf-8")
        with open(stdin_path, "rb") as stdin_fh:
            stdin_path.unlink()  # the child keeps the open file; nothing of it stays in the directory
            proc = _spawn(workdir, files, mode, limits, isolation, status_w, result_w, stdin_fh)
        for fd in (status_w, result_w):
            if fd >= 0:
                os.close(fd)
        status_w = result_w = -1
        return _supervise(proc, limits, status_r, result_r, workdir, start)
    finally:
        _abandon(proc, (status_w, result_w, status_r, result_r), workdir)


def _supervise(proc: subprocess.Popen[bytes], limits: SandboxLimits, status_r: int, result_r: int,
               workdir: str, start: float) -> tuple[ExecResult, bytes]:
    assert proc.stdout is not None and proc.stderr is not None
    cap = int(limits.max_output_kb) * 1024
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    streams: dict[int, bytearray] = {out_fd: bytearray(), err_fd: bytearray(), status_r: bytearray()}
    caps = {out_fd: cap, err_fd: cap, status_r: 1 << 20}
    if result_r >= 0:
        streams[result_r] = bytearray()
        caps[result_r] = _RESULTS_CAP
    flooded: list[str] = []
    sel = selectors.DefaultSelector()
    for fd in streams:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    deadline = start + float(limits.wall_s)
    exited_at: float | None = None
    timed_out = False
    try:
        while sel.get_map():
            now = time.perf_counter()
            if now >= deadline:
                timed_out = exited_at is None
                break
            if exited_at is not None and now - exited_at > _GRACE_S:
                break
            wait = min(deadline - now, 0.05 if exited_at is not None else 0.25)
            for key, _ in sel.select(wait):
                try:
                    data = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(key.fd)
                    continue
                buf = streams[key.fd]
                room = caps[key.fd] + 1 - len(buf)
                buf += data[:max(room, 0)]
                if len(buf) > caps[key.fd]:
                    name = {out_fd: "stdout", err_fd: "stderr"}.get(key.fd, "results")
                    flooded.append(name)
                    sel.unregister(key.fd)
            if flooded:
                break
            if exited_at is None and _exited(proc.pid):
                exited_at = time.perf_counter()
    finally:
        sel.close()
    result = _conclude(proc, limits, streams, caps, status_r, timed_out, flooded, workdir, start)
    raw = bytes(streams[result_r]) if result_r >= 0 else b""
    return result, raw


def _conclude(proc: subprocess.Popen[bytes], limits: SandboxLimits, streams: dict[int, bytearray],
              caps: dict[int, int], status_r: int, timed_out: bool, flooded: list[str], workdir: str,
              start: float) -> ExecResult:
    """End the run (everything in it killed and reaped), read what is left, classify it."""
    assert proc.stdout is not None and proc.stderr is not None
    cap = int(limits.max_output_kb) * 1024
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    _stop(proc.pid, graceful=not (timed_out or flooded))
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    _wait_group_gone(proc.pid)
    for fd, buf in streams.items():  # what was written before the end (the worker's exit status)
        _drain(fd, buf, caps[fd])
    wall = time.perf_counter() - start
    out_b, err_b = bytes(streams[out_fd]), bytes(streams[err_fd])
    proc.stdout.close()
    proc.stderr.close()
    messages = _status_messages(bytes(streams[status_r]))
    info = messages.get("info", {})
    if info.get("uid") is not None:
        _kill_uid(int(info["uid"]))
    stdout_trunc, stderr_trunc = len(out_b) > cap, len(err_b) > cap
    stdout = out_b[:cap].decode("utf-8", "replace")
    stderr = err_b[:cap].decode("utf-8", "replace")
    cpu = usage.ru_utime + usage.ru_stime
    return _classify(proc.returncode, messages, timed_out, flooded, stdout, stderr, limits, wall, cpu,
                     stdout_trunc, stderr_trunc, workdir, proc.pid)


def _drain(fd: int, buf: bytearray, cap: int) -> None:
    """Read what is left in a pipe, without blocking, up to one byte past ``cap``."""
    while len(buf) <= cap:
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, OSError):
            return
        if not data:
            return
        buf += data[: cap + 1 - len(buf)]


def _exited(pid: int) -> bool:
    """Whether ``pid`` has exited, without reaping it (its id stays reserved for the group kill)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None and info.si_pid != 0


def _group_members(pgid: int) -> list[int]:
    """Processes of the process group ``pgid`` (from /proc; empty where there is none)."""
    out: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if len(fields) > 3 and int(fields[2]) == pgid:
                out.append(int(entry))
    return out


def _stop(pgid: int, *, graceful: bool) -> None:
    """End the run: (``graceful``: when its pipes closed, the supervisor is about to exit by itself;
    wait a moment) kill the supervisor's descendants and let it reap them and exit (in a pid
    namespace, killing its init kills everything in it), then kill the whole group, supervisor
    included, as the backstop. The supervisor is not reaped here, so its id stays reserved."""
    deadline = time.perf_counter() + (0.5 if graceful else 0.0)
    while graceful and not _exited(pgid) and time.perf_counter() < deadline:
        time.sleep(0.001)
    if not _exited(pgid):
        for pid in _group_members(pgid):
            if pid != pgid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        deadline = time.perf_counter() + 2.0
        while not _exited(pgid) and time.perf_counter() < deadline:
            time.sleep(0.005)
    _kill_group(pgid)


def _wait_group_gone(pgid: int, timeout_s: float = 5.0) -> None:
    """Wait until no process of the group is left (killed ones take a moment to go)."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        _kill_group(pgid)
        time.sleep(0.005)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_uid(uid: int) -> None:
    """Kill every process that runs as the sandbox's own uid (they escaped the group)."""
    if uid < _child.UID_BASE or not os.path.isdir("/proc"):
        return
    for _ in range(20):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    found = True
                    os.kill(int(entry), signal.SIGKILL)
            except OSError:
                continue
        if not found:
            return
        time.sleep(0.01)


def _remove_tree(path: str) -> None:
    def unlock(func: Any, p: str, _exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
        except OSError:
            pass
        func(p)
    try:
        shutil.rmtree(path, onerror=unlock)
    except FileNotFoundError:
        pass
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


def _status_messages(raw: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key not in out:  # the first report of each kind counts
                    out[key] = value
    return out


def _last_exception(stderr: str) -> tuple[str, str]:
    """The type and message of the last line of a Python traceback in ``stderr``."""
    for line in reversed(stderr.strip().splitlines()[-5:]):
        m = _LAST_LINE.match(line.strip())
        kind = m.group("type") if m else ""
        if m and (kind.endswith(("Error", "error", "Exception", "Exit", "Interrupt")) or kind == "MemoryError"):
            return m.group("type").rsplit(".", 1)[-1], (m.group("msg") or "")
    return "", ""


def _classify(
    returncode: int,
    messages: dict[str, Any],
    timed_out: bool,
    flooded: list[str],
    stdout: str,
    stderr: str,
    limits: SandboxLimits,
    wall: float,
    cpu: float,
    stdout_trunc: bool,
    stderr_trunc: bool,
    workdir: str,
    pid: int,
) -> ExecResult:
    info = messages.get("info") or {}
    notes = tuple(str(n) for n in [info.get("note"), *(messages.get("notes") or [])] if n)
    exit_code: int | None = None
    sig: int | None = None
    if isinstance(messages.get("exit"), int):
        code = os.waitstatus_to_exitcode(messages["exit"])
        exit_code, sig = (code, None) if code >= 0 else (None, -code)
    elif returncode < 0:
        sig = -returncode
    else:
        exit_code = returncode
    detail = ""
    reason: Reason
    if "setup_error" in messages:
        reason, detail = "sandbox_error", str(messages["setup_error"])
    elif flooded:
        reason, detail = "output_limit", f"{flooded[0]} exceeded {limits.max_output_kb} KB; the run was stopped"
    elif timed_out:
        reason, detail = "timeout", f"wall time limit of {limits.wall_s:g} s"
    elif "exit" not in messages:
        reason, detail = "sandbox_error", f"the sandbox supervisor ended without a report (exit status {returncode})"
    elif sig is not None:
        # SIGXCPU is sent only at the soft CPU limit (the measured CPU time can miss a worker reaped
        # inside the pid namespace); SIGKILL is the hard limit only when the CPU time shows it.
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= limits.cpu_s * 0.9):
            reason, detail = "timeout", f"CPU time limit of {limits.cpu_s:g} s"
            timed_out = True
        elif sig == signal.SIGXFSZ:
            reason, detail = "file_size", f"a file reached the {limits.max_file_mb} MB limit"
        else:
            reason, detail = (
                "killed",
                f"killed by signal {signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig}",
            )
    elif exit_code == 0:
        reason = "ok"
    elif exit_code == _child.EXIT_MEMORY:
        reason, detail = "memory", f"MemoryError (limit {limits.memory_mb} MB)"
    else:
        reason, detail = _error_reason(stderr, limits)
        detail = detail or f"exit code {exit_code}"
    return ExecResult(
        ok=reason == "ok",
        exit_code=exit_code,
        signal=sig,
        stdout=stdout,
        stderr=stderr,
        timed_out=timed_out,
        reason=reason,
        isolation=info.get("isolation", "audit-hook"),
        wall_s=wall,
        detail=detail,
        filesystem=info.get("filesystem", "audit-hook"),
        cpu_s=cpu,
        stdout_truncated=stdout_trunc,
        stderr_truncated=stderr_trunc,
        uid=info.get("uid"),
        pid=pid,
        workdir=workdir,
        notes=notes,
    )


def _error_reason(stderr: str, limits: SandboxLimits) -> tuple[Reason, str]:
    kind, msg = _last_exception(stderr)
    text = f"{kind}: {msg}".strip(": ") if kind else ""
    if kind == "MemoryError":
        return "memory", f"MemoryError (limit {limits.memory_mb} MB)"
    if _child.REFUSED in msg or "[Errno 30]" in msg:  # refused by the guard, or a read-only file system
        return "forbidden", text
    if "[Errno 101]" in msg or "[Errno 99]" in msg or kind == "gaierror":  # no route: the network is cut off
        return "forbidden", f"{text} (no network in the sandbox)"
    if "[Errno 27]" in msg or "[Errno 28]" in msg:  # file too large / no space left
        return "file_size", text
    # fork() failed at the process limit; with many processes writing at once the tracebacks
    # interleave, so look for the signature anywhere, not only in the last line.
    if (kind == "BlockingIOError" and "[Errno 11]" in msg) or "BlockingIOError: [Errno 11]" in stderr:
        return (
            "processes",
            f"BlockingIOError: [Errno 11] Resource temporarily unavailable (limit {limits.max_processes} processes)",
        )
    return "error", text
