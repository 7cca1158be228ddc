"""SandboxSession: one long-lived sandboxed process answering JSON lines, in both isolation modes;
every way it can go wrong ends the session with a reason and leaves nothing behind."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from test_sandbox_isolation import assert_nothing_left

from ttclab.sandbox import SandboxLimits
from ttclab.sandbox.session import SandboxSession, SessionError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox's isolation is Linux's")

LIMITS = SandboxLimits(cpu_s=5, wall_s=20, memory_mb=256, max_processes=8, max_output_kb=16)
ECHO = """import json, sys
for line in sys.stdin:
    v = json.loads(line)
    if v == "loop":
        while True:
            pass
    if v == "crash":
        1 / 0
    if v == "junk":
        print("junk", flush=True)
    if v == "flood":
        sys.stderr.write("x" * 100000)
    if v == "exit":
        sys.exit(0)
    if isinstance(v, dict) and "write" in v:
        open(v["write"], "w").write("x")
    print(json.dumps({"twice": v * 2 if isinstance(v, (int, str)) else v}), flush=True)
"""


@pytest.fixture(params=["auto", "audit-hook"])
def mode(request) -> str:
    return request.param


def test_many_requests_in_one_process(mode):
    with SandboxSession({"main.py": ECHO}, limits=LIMITS, isolation=mode) as s:
        pid = s._proc.pid if s._proc else None
        for i in range(300):
            assert s.request(i, 2.0) == {"twice": 2 * i}
        assert s.request("ab", 2.0) == {"twice": "abab"} and s._proc is not None and s._proc.pid == pid
    assert s.result is not None and s.result.ok and s.result.isolation == ("netns" if mode == "auto" else "audit-hook")
    assert_nothing_left(s.result)
    assert s.close() is s.result  # idempotent


@pytest.mark.parametrize(("request_value", "reason", "detail"), [
    ("loop", "timeout", "no reply within 0.5 s"),
    ("crash", "error", "ZeroDivisionError: division by zero"),
    ("junk", "garbage", "a reply that is not JSON: 'junk'"),
    ("flood", "output_limit", "stderr exceeded 16 KB"),
    ("exit", "exited", "the program exited before replying"),
])
def test_failures_end_the_session_with_a_reason(mode, request_value, reason, detail):
    s = SandboxSession({"main.py": ECHO}, limits=LIMITS, isolation=mode)
    s.start()
    assert s.request(1, 2.0) == {"twice": 2}
    started = time.perf_counter()
    with pytest.raises(SessionError) as info:
        s.request(request_value, 0.5)
    assert info.value.reason == reason and detail in info.value.detail, (info.value.reason, info.value.detail)
    assert time.perf_counter() - started < 5.0
    assert info.value.result is s.result and not s.alive
    assert_nothing_left(s.result)
    with pytest.raises(SessionError, match="the session has ended"):
        s.request(1, 1.0)


def test_a_write_outside_the_directory_is_refused(mode, tmp_path: Path):
    target = tmp_path / "out.txt"
    with SandboxSession({"main.py": ECHO}, limits=LIMITS, isolation=mode) as s, pytest.raises(SessionError) as info:
        s.request({"write": str(target)}, 2.0)
    assert info.value.reason == "forbidden" and not target.exists()
    assert_nothing_left(info.value.result)


def test_the_session_wall_limit_bounds_every_reply():
    limits = SandboxLimits(cpu_s=5, wall_s=1.0, memory_mb=256, max_processes=8)
    with SandboxSession({"main.py": "import time\ntime.sleep(30)\n"}, limits=limits) as s, \
            pytest.raises(SessionError) as info:
        s.receive(10.0)
    assert info.value.reason == "timeout" and "session's wall time limit of 1 s" in info.value.detail
    assert_nothing_left(info.value.result)


def test_files_are_checked():
    with pytest.raises(ValueError, match="main.py"):
        SandboxSession({"program.py": "x = 1"})
    with pytest.raises(ValueError, match="main.py"):
        SandboxSession({"main.py": "", "other.txt": ""})
