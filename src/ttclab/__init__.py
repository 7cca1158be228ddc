"""ttclab: test-time compute for LLMs — sample, verify, store, scale offline, optimise, market.

The library API, one function per CLI verb (imported on first use, so ``import ttclab`` stays fast)::

    import ttclab

    runs = ttclab.sample("configs/smoke.yaml")               # -> [RunResult]; resumes interrupted runs
    ev = ttclab.evaluate([r.run.run_id for r in runs])       # every strategy at every k, with the ledger
    opt = ttclab.optimize(ev)                                # the compute-optimal choice per budget
    ttclab.report(ev, "out/report", opt=opt)                 # self-contained HTML (ttclab.report.write_report)
    market = ttclab.market("configs/market_gsm8k_nonreasoning.yaml")  # ttclab.market.run_market
    run = ttclab.open_run("smoke-smollm2")                   # a stored run (prefix or path)
    res = ttclab.run_pipeline("configs/pipelines/reflect-then-aggregate.yaml")

``ttclab.optimize``, ``ttclab.report`` and ``ttclab.market`` are also the subpackages of those names
(callable modules: calling one runs its verb, e.g. ``ttclab.optimize(ev)`` is ``ttclab.analysis.optimize(ev)``).
"""

from __future__ import annotations

import importlib
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these load lazily (see __getattr__)
    from ttclab import market as market
    from ttclab import optimize as optimize
    from ttclab import report as report
    from ttclab.analysis.evaluate import evaluate_runs as evaluate
    from ttclab.experiment import sample as sample
    from ttclab.market.api import run_market as run_market
    from ttclab.online.runner import run_pipeline as run_pipeline
    from ttclab.report.build import write_report as write_report
    from ttclab.store.reader import open_run as open_run

__version__: str

#: public name -> "module:attribute" (or "module" for a subpackage), imported on first access.
_LAZY: dict[str, str] = {
    "sample": "ttclab.experiment:sample",
    "evaluate": "ttclab.analysis.evaluate:evaluate_runs",
    "optimize": "ttclab.optimize",
    "report": "ttclab.report",
    "write_report": "ttclab.report.build:write_report",
    "market": "ttclab.market",
    "run_market": "ttclab.market.api:run_market",
    "open_run": "ttclab.store.reader:open_run",
    "run_pipeline": "ttclab.online.runner:run_pipeline",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ttclab")
    except PackageNotFoundError:  # running from a source tree without install
        return "0.0.0+local"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _LAZY:
        module, _, attr = _LAZY[name].partition(":")
        value = importlib.import_module(module)
        if attr:
            value = getattr(value, attr)
    else:
        raise AttributeError(f"module 'ttclab' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class VerbModule(types.ModuleType):
    """A subpackage that is also its verb: ``ttclab.report(...)`` calls ``ttclab.report.__verb__(...)``.

    ``__verb__`` is a function, or ``"module:attribute"`` when the verb lives in a higher layer
    (``ttclab.optimize(ev)`` is :func:`ttclab.analysis.optimize.optimize`), imported on first call.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        verb = self.__dict__["__verb__"]
        if isinstance(verb, str):
            module, _, attr = verb.partition(":")
            verb = self.__dict__["__verb__"] = getattr(importlib.import_module(module), attr)
        return verb(*args, **kwargs)


__all__ = ["__version__", "evaluate", "market", "open_run", "optimize", "report", "run_market", "run_pipeline",
           "sample", "write_report"]
