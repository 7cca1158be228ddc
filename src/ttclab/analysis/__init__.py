"""Offline analysis of stored runs, one module per question asked of them:

- :mod:`~ttclab.analysis.evaluate`: every strategy at every budget k with the compute ledger
  (:func:`evaluate_runs` -> :class:`Evaluation`, including paired differences);
- :mod:`~ttclab.analysis.optimize`: the compute-optimal choice per budget and difficulty
  (:func:`optimize` -> :class:`Optimization`);
- :mod:`~ttclab.analysis.market`: market providers from stored runs.

The HTML report over these is :func:`ttclab.report.write_report`. Oracle strategies (``pass_at_k``)
are reported but never chosen as compute-optimal: they need the gold answer at inference time.
"""

from __future__ import annotations

from typing import Any

from ttclab.analysis.evaluate import (
    ORACLE_STRATEGIES,
    TRUNCATED_POLICIES,
    EvalOptions,
    Evaluation,
    PairedDifference,
    evaluate_runs,
    load_arrays,
    resolve_runs,
)
from ttclab.analysis.market import market_curves
from ttclab.analysis.optimize import Optimization, optimize
from ttclab.tables import write_csv


def write_report(*args: Any, **kwargs: Any) -> Any:
    """See :func:`ttclab.report.write_report` (kept here for existing callers)."""
    from ttclab.report import write_report as _write

    return _write(*args, **kwargs)


__all__ = ["ORACLE_STRATEGIES", "TRUNCATED_POLICIES", "EvalOptions", "Evaluation", "Optimization", "PairedDifference",
           "evaluate_runs", "load_arrays", "market_curves", "optimize", "resolve_runs", "write_csv", "write_report"]
