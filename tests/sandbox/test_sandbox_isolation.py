"""The sandbox against hostile programs, in both isolation modes: each is stopped, recorded as a
failed execution with its reason, and leaves nothing behind (no process, no temporary directory)."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ttclab.errors import ConfigError
from ttclab.sandbox import ExecResult, SandboxLimits, arun_python, run_python

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox's isolation is Linux's")

FAST = SandboxLimits(cpu_s=1, wall_s=4, memory_mb=256, max_processes=16, max_output_kb=16)
MODES = ["auto", "audit-hook"]


def _processes_of(uid: int | None) -> list[int]:
    if uid is None:
        return []
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    out.append(int(entry))
            except OSError:
                pass
    return out


def assert_nothing_left(r: ExecResult) -> None:
    """No process in the run's group, none under its uid, no temporary directory."""
    assert r.workdir and not Path(r.workdir).exists(), f"temporary directory left: {r.workdir}"
    with pytest.raises(ProcessLookupError):
        os.killpg(r.pid, 0)
    assert _processes_of(r.uid) == []


def assert_failed(r: ExecResult, reason: str) -> None:
    assert not r.ok, r
    assert r.reason == reason, (r.reason, r.detail, r.stderr[-300:])
    assert r.detail
    assert_nothing_left(r)


@pytest.fixture(params=MODES)
def mode(request) -> str:
    return request.param


@functools.cache
def namespaces_permitted() -> bool:
    """Whether this OS lets us create network + mount + pid namespaces (probed with util-linux)."""
    if shutil.which("unshare") is None:
        return False
    user = [] if os.geteuid() == 0 else ["--user", "--map-current-user"]
    cmd = ["unshare", *user, "--net", "--mount", "--pid", "--fork", "true"]
    return subprocess.run(cmd, capture_output=True).returncode == 0


def expected_isolation(mode: str) -> str:
    return "netns" if mode == "auto" and namespaces_permitted() else "audit-hook"


def test_a_plain_program_runs_with_its_stdin_and_says_how_it_was_isolated(mode):
    r = run_python("import sys\nname = sys.stdin.readline().strip()\nprint(f'hello {name}')", stdin="ada\n",
                   isolation=mode)
    assert r.ok and r.reason == "ok" and r.exit_code == 0 and r.signal is None
    assert r.stdout == "hello ada\n" and r.stderr == ""
    assert r.isolation == expected_isolation(mode)
    assert r.filesystem == ("readonly-mounts" if expected_isolation(mode) == "netns" else "audit-hook")
    assert r.wall_s > 0
    assert_nothing_left(r)


def test_the_environment_is_scrubbed(mode, monkeypatch):
    monkeypatch.setenv("TTCLAB_SECRET_TOKEN", "s3cret")
    r = run_python("import os, json; print(json.dumps(dict(os.environ)))", isolation=mode)
    assert r.ok
    assert "s3cret" not in r.stdout and "TTCLAB_SECRET_TOKEN" not in r.stdout
    assert '"HOME"' in r.stdout and '"PYTHONHASHSEED": "0"' in r.stdout


def test_an_infinite_loop_is_stopped_by_the_cpu_limit(mode):
    r = run_python("while True:\n    pass", limits=FAST, isolation=mode)
    assert_failed(r, "timeout")
    assert r.timed_out and "CPU" in r.detail


def test_a_sleeping_program_is_stopped_by_the_wall_limit(mode):
    r = run_python("import time\ntime.sleep(60)", limits=SandboxLimits(wall_s=1.5), isolation=mode)
    assert_failed(r, "timeout")
    assert r.timed_out and "wall" in r.detail


def test_a_memory_bomb_is_stopped(mode):
    r = run_python("blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 2**20))", limits=FAST, isolation=mode)
    assert_failed(r, "memory")


def test_a_single_huge_allocation_is_stopped(mode):
    r = run_python("x = bytearray(10**11)", limits=FAST, isolation=mode)
    assert_failed(r, "memory")


def test_a_fork_bomb_is_stopped_and_no_process_survives(mode):
    code = "import os\nwhile True:\n    os.fork()"
    r = run_python(code, limits=FAST, isolation=mode)
    # With a uid of its own the process limit stops it ("processes"); as root without namespaces
    # the guard refuses fork itself ("forbidden").
    expected = "forbidden" if expected_isolation(mode) == "audit-hook" and os.geteuid() == 0 else "processes"
    assert_failed(r, expected)


def test_a_socket_connection_to_a_local_server_never_arrives(mode):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\ns.sendall(b'leak')"
        r = run_python(code, limits=FAST, isolation=mode)
        assert_failed(r, "forbidden")
        with pytest.raises(socket.timeout):
            server.accept()  # nothing ever connected
    finally:
        server.close()
    if expected_isolation(mode) == "audit-hook":
        assert "network access is refused" in r.stderr
    else:
        assert "Network is unreachable" in r.stderr


def test_name_resolution_fails(mode):
    r = run_python("import socket\nprint(socket.getaddrinfo('pypi.org', 443))", limits=FAST, isolation=mode)
    assert_failed(r, "forbidden")


def test_writing_outside_the_temporary_directory_is_refused(mode, tmp_path):
    target = tmp_path / "escaped.txt"
    os.chmod(tmp_path, 0o777)  # even a world-writable directory stays out of reach
    r = run_python(f"open({str(target)!r}, 'w').write('x')", limits=FAST, isolation=mode)
    assert_failed(r, "forbidden")
    assert not target.exists()


def test_writing_inside_the_temporary_directory_works(mode):
    code = ("import os, tempfile\nopen('out.txt', 'w').write('data')\nos.mkdir('d')\n"
            "with tempfile.NamedTemporaryFile('w', delete=False) as f:\n    f.write('t')\n"
            "print(open('out.txt').read(), sorted(os.listdir('.')) != [])")
    r = run_python(code, limits=FAST, isolation=mode)
    assert r.ok, r.stderr
    assert r.stdout == "data True\n"
    assert_nothing_left(r)


def test_a_shell_cannot_write_outside_either():
    """Below the Python guard: the mounts are read-only (namespaces), or the shell is refused."""
    target = Path("/tmp") / f"ttclab-escape-{os.getpid()}.txt"
    r = run_python(f"import subprocess\nsubprocess.run(['sh', '-c', 'echo x > {target}'], check=True)", limits=FAST)
    assert not target.exists()
    assert not r.ok
    if r.filesystem == "readonly-mounts":
        assert "Read-only file system" in r.stderr
    assert_nothing_left(r)


def test_the_audit_hook_refuses_running_other_programs():
    r = run_python("import os\nos.system('echo hi')", limits=FAST, isolation="audit-hook")
    assert_failed(r, "forbidden")
    assert "os.system is refused" in r.stderr


def test_the_audit_hook_refuses_signalling_processes_outside_the_sandbox():
    r = run_python(f"import os, signal\nos.kill({os.getpid()}, signal.SIGTERM)", limits=FAST, isolation="audit-hook")
    assert_failed(r, "forbidden")


def test_output_flooding_is_stopped_and_truncated(mode):
    r = run_python("while True:\n    print('x' * 1000)", limits=FAST, isolation=mode)
    assert_failed(r, "output_limit")
    assert r.stdout_truncated and 0 < len(r.stdout) <= FAST.max_output_kb * 1024
    assert "stdout" in r.detail


def test_stderr_flooding_is_stopped_too(mode):
    r = run_python("import sys\nwhile True:\n    sys.stderr.write('y' * 1000)", limits=FAST, isolation=mode)
    assert_failed(r, "output_limit")
    assert r.stderr_truncated and "stderr" in r.detail


def test_a_huge_file_is_stopped_by_the_file_size_limit(mode):
    r = run_python("open('big', 'wb').write(b'0' * (40 * 2**20))", limits=SandboxLimits(max_file_mb=4), isolation=mode)
    assert_failed(r, "file_size")


def test_a_child_left_running_is_killed():
    if expected_isolation("auto") == "audit-hook" and os.geteuid() == 0:
        pytest.skip("as root without namespaces the sandbox refuses fork")
    code = "import os, time\nif os.fork() == 0:\n    time.sleep(60)\nprint('parent done')"
    r = run_python(code, limits=FAST)
    assert r.ok and r.stdout == "parent done\n"
    assert_nothing_left(r)


def test_a_child_in_a_new_session_is_killed_too():
    if expected_isolation("auto") == "audit-hook" and os.geteuid() == 0:
        pytest.skip("as root without namespaces the sandbox refuses fork")
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint('parent done')"
    r = run_python(code, limits=FAST)
    assert r.stdout == "parent done\n"
    assert_nothing_left(r)


def test_errors_and_exit_codes_are_reported(mode):
    r = run_python("1 / 0", isolation=mode)
    assert_failed(r, "error")
    assert r.exit_code == 1 and "ZeroDivisionError" in r.detail and "ZeroDivisionError" in r.stderr
    r = run_python("import sys\nsys.exit(3)", isolation=mode)
    assert r.reason == "error" and r.exit_code == 3
    r = run_python("raise SystemExit(0)", isolation=mode)
    assert r.ok


def test_a_crash_is_reported_with_its_signal():
    r = run_python("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", limits=FAST)
    assert_failed(r, "killed")
    assert r.signal == 11 and "SIGSEGV" in r.detail


def test_the_home_directory_and_other_temporary_files_are_hidden():
    r = run_python("import os\nprint(os.path.exists(os.path.expanduser('~root/.bashrc')), os.listdir('/tmp'))")
    assert r.ok
    if r.filesystem == "readonly-mounts":
        seen_tmp = eval(r.stdout.split(" ", 1)[1])
        assert r.stdout.startswith("False") and len(seen_tmp) == 1  # only its own working directory


def test_bad_limits_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="sandbox.wall_s"):
        SandboxLimits(wall_s=0)
    with pytest.raises(ConfigError, match="sandbox.memory_mb"):
        SandboxLimits(memory_mb="lots")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="isolation"):
        run_python("print(1)", isolation="docker")  # type: ignore[arg-type]


def test_parallel_runs_from_threads_do_not_interfere():
    """Hostile and ordinary programs at once: each gets its own result and its own directory."""
    programs = {i: f"import os\nprint({i} * {i}, len(os.listdir('.')))" for i in range(6)}
    hostile = {"bomb": "import os\nwhile True:\n    os.fork()", "flood": "while True:\n    print('z' * 999)",
               "loop": "while True:\n    pass"}
    results: dict = {}

    def work(key, code):
        results[key] = run_python(code, limits=FAST)

    threads = [threading.Thread(target=work, args=item) for item in [*programs.items(), *hostile.items()]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i in programs:
        assert results[i].ok, results[i]
        assert results[i].stdout == f"{i * i} 1\n"  # sees only its own program file
    assert results["flood"].reason == "output_limit" and results["loop"].reason == "timeout"
    assert not results["bomb"].ok
    dirs = {r.workdir for r in results.values()}
    assert len(dirs) == len(results)
    for r in results.values():
        assert_nothing_left(r)


def test_async_wrapper_keeps_the_event_loop_free():
    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.02)
                ticks += 1

        tick_task = asyncio.create_task(ticker())
        results = await asyncio.gather(*(arun_python(f"import time\ntime.sleep(0.3)\nprint({i})") for i in range(4)))
        tick_task.cancel()
        return results, ticks

    results, ticks = asyncio.run(main())
    assert [r.stdout for r in results] == ["0\n", "1\n", "2\n", "3\n"]
    assert all(r.ok for r in results)
    assert ticks >= 5  # the loop kept running while the programs slept
