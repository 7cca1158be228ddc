"""Run untrusted Python programs and tests in an isolated, resource-limited subprocess.

>>> from ttclab.sandbox import run_python, run_tests, TestCase
>>> run_python("print(1 + 1)").stdout
'2\\n'

See :mod:`ttclab.sandbox.runner` for how a run is isolated, :class:`SandboxLimits` for the limits,
:mod:`ttclab.sandbox.aio` for the asyncio wrappers and :class:`SandboxSession` for a long-lived
sandboxed process answering JSON lines.
"""

from __future__ import annotations

from ttclab.sandbox.aio import arun_python, arun_tests, set_max_parallel
from ttclab.sandbox.runner import run_python, run_tests
from ttclab.sandbox.session import SandboxSession, SessionError
from ttclab.sandbox.types import ExecResult, Failure, SandboxLimits, TestCase, TestReport, TestResult

__all__ = ["ExecResult", "Failure", "SandboxLimits", "SandboxSession", "SessionError", "TestCase", "TestReport",
           "TestResult", "arun_python", "arun_tests", "run_python", "run_tests", "set_max_parallel"]
