"""Repair a damaged run and regenerate what was lost (``ttclab repair RUN``).

The store side (:func:`ttclab.store.integrity.repair_run`) moves damaged part files aside and
rebuilds a missing or corrupt ``run.json``; here the lost samples are then generated again from
the sampling config stored in ``run.json`` (same seeds, so the same samples), or the way to restore
an imported run is named. A pipeline run's lost questions are run again by ``ttclab run`` (the
command is named: this layer does not run pipelines).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttclab.store.integrity import RepairReport, repair_run
from ttclab.store.reader import Run, open_run


@dataclass
class RepairResult:
    report: RepairReport
    regenerated: int = 0  # samples generated again
    note: str = ""  # what the user still has to do, if anything


def repair(ref: str | Path, *, store: str | Path | None = None, regenerate: bool = True,
           progress: bool = True, log: Callable[[str], None] | None = None) -> RepairResult:
    """Repair run ``ref`` and, when ``regenerate`` and samples were lost, sample them again (``progress``:
    a bar; ``log``: progress lines where there is no bar, as in :func:`ttclab.experiment.sample`)."""
    run = open_run(ref, store)
    report = repair_run(run.path)
    result = RepairResult(report)
    if report.tables is not None:  # a pipeline run: its questions are run again by `ttclab run`, not here
        if report.changed:
            result.note = pipeline_note(run.path, Run(run.path).meta)
        return result
    if not report.lost:  # nothing lost (at most a manifest rebuilt from the parts): nothing to regenerate
        return result
    meta = Run(run.path).meta
    source = meta.get("source")
    source = source if isinstance(source, dict) else {}  # served traffic records the string "ttclab serve"
    if source.get("path"):
        result.note = (f"the run was imported: run `ttclab import {source.get('format', 'FORMAT')} {source['path']}` "
                       "again to restore its samples")
        return result
    if "config" not in meta:
        result.note = "run.json holds no sampling config: run the original `ttclab sample CONFIG` to regenerate"
        return result
    if not regenerate:
        result.note = f"run `ttclab repair {run.path.name}` without --no-regenerate (or `ttclab sample`) to regenerate"
        return result
    result.regenerated = _resample(run, meta["config"], progress, log)
    return result


def pipeline_note(run_dir: Path, meta: dict[str, Any]) -> str:
    """What to run after repairing pipeline run ``run_dir``: the ``ttclab run`` command run.json records
    (``pipeline.command``), or the pipeline file of a run made before it did."""
    pipeline = meta.get("pipeline") or {}
    if meta.get("kind") == "pipeline" and not pipeline.get("file"):
        return "served traffic: what was lost cannot be asked again; the intact rows are kept"
    store = shlex.quote(str(Path(run_dir).resolve().parent))
    if pipeline.get("command"):
        command = f"`{pipeline['command']} --store {store}`"
    elif pipeline.get("file"):
        limit = (meta.get("identity") or {}).get("limit")
        command = (f"`ttclab run {shlex.quote(str(pipeline['file']))}{f' --limit {limit}' if limit else ''} --store "
                   f"{store}` (with the --model, --task and --seed it was first run with)")
    else:
        command = f"the pipeline's `ttclab run PIPELINE.yaml --store {store}` again"
    return (f"run {command} to run the questions without a result: their finished calls replay from the call "
            "cache, the calls lost with the damaged files are sent again")


def _resample(run: Run, config: dict[str, Any], progress: bool, log: Callable[[str], None] | None) -> int:
    from ttclab.config import SampleConfig
    from ttclab.experiment import sample

    cfg = SampleConfig.model_validate(config)
    results = sample(cfg, progress=progress, store=run.path.parent, log=log)
    return sum(r.stats.generated for r in results if r.run.path.resolve() == run.path.resolve())
