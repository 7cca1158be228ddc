"""Online test-time scaling: pipelines of model calls over a population of candidates.

A pipeline file (``configs/pipelines/*.yaml``) is compiled to a program of steps
(:mod:`ttclab.online.program`); :func:`run_pipeline` runs it over a task's questions, storing every
call, candidate, judgment and final answer (:mod:`ttclab.online.calls`), resumable and replayable
from the call cache. Nothing below this package imports it.
"""

from __future__ import annotations

from typing import Any


def run_pipeline(*args: Any, **kwargs: Any) -> Any:
    """See :func:`ttclab.online.runner.run_pipeline`."""
    from ttclab.online.runner import run_pipeline as run

    return run(*args, **kwargs)


__all__ = ["run_pipeline"]
