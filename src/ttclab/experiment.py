"""``ttclab sample``: from a config to stored, verified runs (one run per model)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ttclab.backends import create_backend
from ttclab.backends.base import backend_capabilities
from ttclab.config import ModelSpec, SampleConfig, config_warnings, load_config, override_config, run_id_for, run_identity
from ttclab.sampling import SamplingStats, mark_ended, prepare_run, sample_questions
from ttclab.store.reader import Run, store_root
from ttclab.store.rows import run_meta
from ttclab.store.writer import META_FILE, atomic_write_json


@dataclass
class RunResult:
    run: Run
    stats: SamplingStats
    summary: dict[str, Any]


def sample(config: SampleConfig | str | Path, *, progress: bool = True, store: str | Path | None = None,
           probe: dict[str, Any] | None = None, log: Callable[[str], None] | None = None,
           **overrides: Any) -> list[RunResult]:
    """Sample every model of ``config`` on its task; resume runs that were interrupted.

    ``overrides`` (``limit``, ``samples``, ``model``, ``max_tokens``, ``temperature``, ``seed``) change
    the config for a quick study (see :func:`ttclab.config.override_config`); they are part of the run
    identity like any edit of the YAML. ``probe`` (``{"every": D, "cue": ..., "max_tokens": ...}``)
    also stores each sample's probe answers after every D tokens (:mod:`ttclab.probes`). ``log`` gets
    progress lines where there is no bar (a log file, a pipe).
    """
    cfg = config if isinstance(config, SampleConfig) else load_config(config)
    if any(v is not None for v in overrides.values()):
        cfg = override_config(cfg, **overrides)
    for warning in config_warnings(cfg):
        logging.getLogger("ttclab").warning("ttclab: warning: %s", warning)
    return [asyncio.run(_sample_model(cfg, m, progress=progress, store=store, probe=probe, log=log))
            for m in cfg.models]


async def _sample_model(cfg: SampleConfig, model: ModelSpec, *, progress: bool, store: str | Path | None,
                        probe: dict[str, Any] | None = None, log: Callable[[str], None] | None = None) -> RunResult:
    from ttclab.store.summary import run_summary
    from ttclab.tasks.config import build_prompt_template, load_task
    from ttclab.verify.registry import get_verifier

    task = load_task(cfg.task)
    questions = list(task.questions())
    prompt_cfg = model.prompt or cfg.prompt
    template = build_prompt_template(prompt_cfg, cfg.task, chat=_is_chat(model))
    vspec = cfg.verifier
    verifier = get_verifier(vspec.name, **vspec.options) if vspec else get_verifier(task.default_verifier())
    run_id = run_id_for(cfg, model, task.name)
    run_dir = store_root(store or cfg.store) / run_id
    meta = run_meta(
        run_id, name=cfg.name,
        config=cfg.model_dump(mode="json", exclude={"models"}) | {"model": model.model_dump(mode="json")},
        identity=run_identity(cfg, model),
        model={"name": model.name, "label": model.display, "backend": model.backend},
        task=task.describe() | {"name": task.name},
        verifier=getattr(verifier, "name", vspec.name if vspec else task.default_verifier()),
        sampling=cfg.sampling.model_dump(mode="json"), samples=cfg.samples, n_questions=len(questions),
    )
    params = cfg.sampling
    extra_stop = [s for s in getattr(template, "stop", ()) or () if s not in params.stop]
    if extra_stop:  # few-shot templates stop before the model starts the next example
        params = params.with_(stop=(*params.stop, *extra_stop))
    meta["sampling"] = params.model_dump(mode="json")
    # the run folder appears only once the backend has loaded: a model that fails to start leaves nothing behind
    backend = create_backend(model.backend, model=model.name, **model.options)
    caps = backend_capabilities(backend)  # e.g. the embedded engine decodes a question's samples as one batch
    try:
        backend.info()  # resolves the model (unknown name / missing file: a one-line error, no run folder)
        prepare_run(run_dir, meta, questions, template.render)
        try:
            stats = await sample_questions(
                backend, questions, template.render, verifier, params,
                run_dir=run_dir, run_id=run_id, model=model.display, samples=cfg.samples,
                samples_per_request=cfg.samples_per_request or (cfg.samples if caps.batched_samples else 1),
                concurrency=cfg.concurrency or caps.concurrency or 1,
                flush_seconds=cfg.flush_seconds, progress=progress, log=log,
            )
        except BaseException as exc:  # the run says how it ended; finished samples stay and resume
            mark_ended(run_dir, exc)
            raise
        if probe is not None:  # the same loaded model probes the stored traces
            from ttclab.probes import collect_probes

            await collect_probes(backend, run_dir, questions, template.render, verifier, progress=progress, log=log,
                                 **probe)
        info = dataclasses.asdict(backend.info())
    finally:
        await backend.aclose()
    run = Run(run_dir)
    run.compact()
    done = len(run.done_keys())
    final = {**Run(run_dir).meta, "model": meta["model"] | {"info": info},
             "status": "complete" if done == len(questions) * cfg.samples else "incomplete",
             "finished_at": datetime.now(UTC).isoformat()}
    atomic_write_json(run_dir / META_FILE, final)
    run = Run(run_dir)
    return RunResult(run=run, stats=stats, summary=run_summary(run))


def _is_chat(model: ModelSpec) -> bool:
    """The backend says whether the model takes chat messages (``speaks_chat``; default: it does)."""
    from ttclab.backends import BACKENDS

    speaks_chat = getattr(BACKENDS.get(model.backend), "speaks_chat", None)
    return bool(speaks_chat(model.name, model.options)) if speaks_chat else True
