"""ttclab.report: the HTML report (figures, tables, per-question pages, the market page)."""

from __future__ import annotations

import sys
from typing import Any

from ttclab import VerbModule


def write_report(*args: Any, **kwargs: Any) -> Any:
    """A self-contained HTML report of an evaluation (see :func:`ttclab.report.build.write_report`)."""
    from ttclab.report.build import write_report as _write

    return _write(*args, **kwargs)


__verb__ = write_report  # ``ttclab.report(...)`` is ``write_report(...)``
sys.modules[__name__].__class__ = VerbModule

__all__ = ["write_report"]
