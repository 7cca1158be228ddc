"""``ttclab run PIPELINE.yaml``: run a pipeline over a task's questions, store everything, resume.

The run id is a hash of what determines the results (the compiled steps with their template
hashes and sampling, the seed, the model, the task, the question limit and the verifier). Re-running
the same command continues an interrupted run: finished questions are skipped and finished calls
replay from the call cache (every pipeline run in the store feeds it), so no finished call is sent
again and the results are the same as an uninterrupted run's. Questions run concurrently (bounded);
within a question, calls of one step run concurrently.

When the run ends, ``samples/`` gets one row per question — the final answer, with the question's
total tokens and latency over all its calls — so ``ttclab runs``, ``show``, ``evaluate`` and
``report`` read a pipeline run like any other; the exact ledger by role is
:func:`ttclab.online.results.pipeline_outcome`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import re
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ttclab.backends import create_backend
from ttclab.config import OPERATIONAL_OPTIONS, ModelSpec, read_yaml_mapping
from ttclab.errors import ConfigError, StoreError
from ttclab.online.budget import Budget, BudgetExhausted
from ttclab.online.calls import CallCache, Caller, CallStats
from ttclab.online.candidates import Candidate
from ttclab.online.program import Pipeline, load_pipeline, run_steps
from ttclab.online.state import QuestionState, RunContext
from ttclab.online.steps.base import QuestionFailed
from ttclab.online.steps.select import vote_winners
from ttclab.online.templates import builtin_template, chat_format, default_format
from ttclab.sampling import ProgressLines, mark_ended, prepare_run
from ttclab.store.integrity import update_manifest
from ttclab.store.journal import TableLog, compact_table, read_table
from ttclab.store.reader import Run, store_root
from ttclab.store.rows import run_meta, sample_row
from ttclab.store.schema import PIPELINE_TABLES
from ttclab.store.writer import META_FILE, SAMPLES_DIR, SampleWriter, atomic_write_json
from ttclab.tasks.base import Question


@dataclass
class PipelineRunResult:
    """What one :func:`run_pipeline` call did."""

    run: Run
    pipeline: str
    stats: CallStats
    questions: int
    ran: int  # questions run now (not skipped)
    skipped: int  # finished in an earlier run
    failed: int  # a call failed (stored as error; the next run retries)
    accuracy: float  # over the finished questions
    wall_s: float


def parse_override(value: str | None, flag: str = "--model") -> Any:
    """A ``--task`` / ``--model`` value: a name or a YAML mapping (``{source: gym, name: ...}``)."""
    if value is None:
        return None
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError(f"{flag}: could not read {value!r}: give a name or a YAML mapping such as "
                          "{name: x}") from None
    if isinstance(parsed, dict):  # "{backend:openai}" is one key "backend:openai" in YAML flow style
        glued = next((k for k, v in parsed.items() if v is None and isinstance(k, str) and ":" in k), None)
        if glued is not None:
            key, _, rest = glued.partition(":")
            raise ConfigError(f"{flag}: {glued!r} is read as one key; put a space after each colon ({key}: {rest})")
    return parsed


def model_override(value: Any, current: dict[str, Any] | None) -> dict[str, Any] | None:
    """``--model NAME`` keeps the file's backend and options (an embedded name or .gguf → llamacpp)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    from ttclab.backends.models import is_local_model

    name = str(value)
    if is_local_model(name):
        return {"backend": "llamacpp", "name": name}
    base = dict(current or {})
    if base.get("backend", "llamacpp") == "llamacpp":
        raise ConfigError(f"--model {name!r}: not a built-in model or .gguf file; for a server model give a mapping "
                          "such as --model '{backend: openai, name: NAME, options: {base_urls: [URL]}}'")
    base.pop("label", None)
    return {**base, "name": name}


def model_identity(model: ModelSpec) -> str:
    """The model as part of a call's cache key: backend, name and the options that change outputs."""
    opts = {k: v for k, v in sorted(model.options.items()) if k not in OPERATIONAL_OPTIONS}
    return f"{model.backend}:{model.name}" + (f":{json.dumps(opts, sort_keys=True)}" if opts else "")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()[:40] or "x"


def _is_chat_model(model: ModelSpec) -> bool:
    if model.backend == "openai":
        return model.options.get("chat") is not False
    from ttclab.backends.models import EMBEDDED

    return EMBEDDED[model.name].chat if model.name in EMBEDDED else True


def _formats(pipe: Pipeline) -> tuple[bool, Any]:
    spec = pipe.spec
    cont = spec.continuation_format
    if cont == "auto":
        cont = spec.format if spec.format not in ("auto", "chat") else (default_format(spec.model.name) or "")
    fmt = chat_format(cont) if cont else None
    if spec.format == "chat":
        return True, fmt
    if spec.format == "auto":
        if _is_chat_model(spec.model):
            return True, fmt
        return False, fmt or chat_format("plain")
    return False, chat_format(spec.format)


def run_pipeline(pipeline: str | Path | Pipeline, *, task: Any = None, model: Any = None, limit: int | None = None,
                 store: str | Path | None = None, concurrency: int | None = None, seed: int | None = None,
                 progress: bool = True, overrides: dict[str, Any] | None = None,
                 backend: Any = None, backends: dict[str, Any] | None = None,
                 log: Callable[[str], None] | None = None) -> PipelineRunResult:
    """Run (or resume) a pipeline file; ``task`` / ``model`` / ``limit`` / ``seed`` override the file's,
    ``overrides`` any other top-level setting (``{"sampling": {...}, "continuation_format": "chatml"}``).
    ``backend``: an already created backend for the file's model (kept open; e.g. one loaded model
    shared by several runs); ``backends``: the same for the file's named ``models``, by name. ``log`` gets a
    line as the run starts and as questions finish (at most one every few seconds, and the last): progress
    where there is no bar (a log file, a pipe)."""
    command = None
    if isinstance(pipeline, Pipeline):
        pipe = pipeline
    else:
        command = run_command(pipeline, task=task, model=model, limit=limit, seed=seed, overrides=overrides)
        current = read_yaml_mapping(pipeline, "pipeline", "name, model, task, steps").get("model")
        overrides = {"task": task, "model": model_override(model, current if isinstance(current, dict) else None),
                     "limit": limit, "seed": seed, **(overrides or {})}
        pipe = load_pipeline(pipeline, overrides)
    return asyncio.run(_run(pipe, store=store, concurrency=concurrency, progress=progress, backend=backend,
                            backends=backends, log=log, command=command))


def run_command(pipeline: str | Path, *, task: Any = None, model: Any = None, limit: int | None = None,
                seed: int | None = None, overrides: dict[str, Any] | None = None) -> str | None:
    """The ``ttclab run`` command (without ``--store``) that makes the same run as :func:`run_pipeline`
    with these arguments; None when an override has no command-line flag. Stored in run.json (``pipeline.
    command``), so ``ttclab repair`` can say what to run again."""
    extra = {k: v for k, v in (overrides or {}).items() if v is not None}
    fmt = extra.pop("continuation_format", None)
    if extra:
        return None
    args = ["ttclab", "run", str(Path(pipeline).resolve())]
    for flag, value in (("--task", task), ("--model", model), ("--limit", limit), ("--seed", seed),
                        ("--continuation-format", fmt)):
        if value is not None:
            args += [flag, value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict) else str(value)]
    return shlex.join(args)


async def _run(pipe: Pipeline, *, store: str | Path | None, concurrency: int | None, progress: bool,
               backend: Any = None, backends: dict[str, Any] | None = None,
               log: Callable[[str], None] | None = None, command: str | None = None) -> PipelineRunResult:
    from ttclab.tasks.config import load_task
    from ttclab.verify.registry import get_verifier

    spec = pipe.spec
    started = time.perf_counter()
    task = load_task(spec.task)
    questions = list(task.questions())[: spec.limit] if spec.limit else list(task.questions())
    vspec = spec.verifier
    verifier = get_verifier(vspec.name, **vspec.options) if vspec else get_verifier(task.default_verifier())
    chat, fmt = _formats(pipe)
    if fmt is None and pipe.needs_continuation():
        raise ConfigError(f"{pipe.source}: continuation_format: this pipeline continues partial answers through the "
                          f"completions API and the chat format of model {spec.model.name!r} is not known; give the "
                          "model's chat template: continuation_format: chatml (or gemma, llama3, plain) in the file, "
                          "or --continuation-format chatml")
    identity = {
        "pipeline": pipe.identity_hash(), "model": model_identity(spec.model), "task": spec.task.model_dump(mode="json"),
        "limit": spec.limit, "verifier": vspec.model_dump(mode="json") if vspec else task.default_verifier(),
        "chat": chat, "format": fmt.name if fmt else None,
    }
    if spec.models:  # graph pipelines: every named model is part of the identity (absent otherwise: ids unchanged)
        identity["models"] = {name: model_identity(m) for name, m in sorted(spec.models.items())}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    run_id = f"{_slug(pipe.name)}-{_slug(spec.model.display)}-{digest}"
    root = store_root(store)
    run_dir = root / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    with _locked(run_dir):
        try:
            return await _run_locked(pipe, run_id, run_dir, root, questions, task, verifier, chat, fmt, identity,
                                     concurrency=concurrency, progress=progress, started=started, backend=backend,
                                     backends=backends, log=log, command=command)
        except BaseException as exc:  # run.json says how it ended (not "running"); finished questions resume
            cancelled = isinstance(exc, asyncio.CancelledError)  # Ctrl-C reaches the run as a cancellation
            mark_ended(run_dir, KeyboardInterrupt("Ctrl-C, SIGTERM or cancelled") if cancelled else exc)
            raise


@contextlib.contextmanager
def _locked(run_dir: Path) -> Any:
    fh = open(run_dir / ".lock", "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise StoreError(f"{run_dir}: another ttclab run is writing this run; wait for it or stop it") from None
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


async def _run_locked(pipe: Pipeline, run_id: str, run_dir: Path, root: Path, questions: list[Question], task: Any,
                      verifier: Any, chat: bool, fmt: Any, identity: dict[str, Any], *, concurrency: int | None,
                      progress: bool, started: float, backend: Any = None,
                      backends: dict[str, Any] | None = None,
                      log: Callable[[str], None] | None = None, command: str | None = None) -> PipelineRunResult:
    spec = pipe.spec
    oracle = pipe.uses_oracle()
    label = f"{pipe.name} ({spec.model.display})"
    models_meta: dict[str, Any] = ({"models": {k: {"name": m.name, "backend": m.backend, "llm": m.display}
                                                for k, m in spec.models.items()}} if spec.models else {})
    meta = run_meta(
        run_id, kind="pipeline", name=pipe.name, identity=identity,
        pipeline={"name": pipe.name, "file": pipe.source, "description": spec.description, "oracle": oracle,
                  "steps": pipe.describe_steps(), "seed": spec.seed, "final": spec.final,
                  "budget": spec.budget.model_dump(mode="json") if spec.budget else None, "command": command},
        model={"name": spec.model.name, "label": label, "backend": spec.model.backend, "llm": spec.model.display},
        task=task.describe() | {"name": task.name}, verifier=getattr(verifier, "name", ""),
        samples=1, n_questions=len(questions), prices=spec.prices,
        **models_meta,
        samples_semantics="one row per question: the pipeline's final answer; prompt/completion tokens and "
                          "latency are the question's totals over all its calls",
    )
    solve = builtin_template("solve")
    prepare_run(run_dir, meta, questions, lambda q: solve.messages(question=q.question))
    finished = _finished_questions(run_dir)
    for name in ("candidates", "judgments"):  # damage is found now (one line, nothing sent), not when merging at the end
        read_table(run_dir, name)
    todo = [i for i in range(len(questions)) if i not in finished]
    on_damaged = _damage_warner()
    # one read of the store's calls for every model of the pipeline (call ids include the model)
    identities = [model_identity(spec.model), *(model_identity(m) for m in spec.models.values())]
    cache = CallCache.load(root, identities, own=run_dir, on_damaged=on_damaged)
    own = cache.own_ids
    logs = {name: TableLog(run_dir, name) for name in PIPELINE_TABLES}
    stats = CallStats()
    price = _price(spec)
    own_backend = backend is None
    if backend is None:
        backend = create_backend(spec.model.backend, model=spec.model.name, **spec.model.options)
    caller = Caller(backend, model=model_identity(spec.model), run_id=run_id, log=logs["calls"], cache=cache,
                    seed=spec.seed, stats=stats, own=own)
    ctx = RunContext(caller, verifier, spec.seed, chat, fmt, spec.model.backend, price, oracle)
    extra = await _model_contexts(pipe, ctx, backends or {}, logs["calls"], stats, own)
    limit = concurrency or spec.concurrency or (1 if spec.model.backend == "llamacpp" else 8)
    bar = _bar(len(todo), label, progress)
    gate = asyncio.Semaphore(limit)
    counts = {"failed": 0, "done": 0, "correct": 0}
    lines = ProgressLines(log, started)

    def status() -> str:
        return (f"{label}: {counts['done']}/{len(todo)} questions ({counts['correct']}/"
                f"{counts['done'] - counts['failed']} correct" + (f", {counts['failed']} failed" if counts["failed"] else "")
                + f"), {stats.describe()}, {lines.elapsed:.0f} s")

    # a line as calls finish too (at most one every few seconds): a question of many calls on a slow
    # model takes minutes, and a log should show it is moving
    caller.on_call = ((lambda: bar.set_postfix_str(stats.describe(), refresh=False)) if bar is not None
                      else (lambda: lines.tick(status())) if log is not None else None)
    for other, _ in extra:
        other.caller.on_call = caller.on_call
    lines.line(f"{label}: {len(todo)} question(s) to run" + (f", {len(finished)} finished before" if finished else "")
               + f", {limit} at a time -> {run_dir}")

    async def one(index: int) -> None:
        async with gate:
            row = await run_question(pipe, ctx, questions[index], index, price, logs)
        counts["done"] += 1
        counts["failed"] += row["verdict"] == "error"
        counts["correct"] += bool(row["correct"])
        if bar is not None:
            bar.update(1)
        lines.tick(status(), last=counts["done"] == len(todo))

    refresher = asyncio.ensure_future(_refresh(bar)) if bar is not None else None
    try:
        tasks = [asyncio.ensure_future(one(i)) for i in todo]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
    finally:
        if refresher is not None:
            refresher.cancel()
        for table in logs.values():
            table.close()
        await caller.aclose()
        if own_backend:
            await backend.aclose()
        for other, owned in extra:
            await other.caller.aclose()
            if owned:
                await other.caller.backend.aclose()
        if bar is not None:
            bar.close()
    for name in PIPELINE_TABLES:
        compact_table(run_dir, name)
    accuracy = write_samples(run_dir, run_id, label, questions)
    finished_now = _finished_questions(run_dir)
    final = {**Run(run_dir).meta, "status": "complete" if len(finished_now) == len(questions) else "incomplete",
             "model": meta["model"] | {"info": dataclasses.asdict(backend.info())},
             "finished_at": datetime.now(UTC).isoformat()}
    atomic_write_json(run_dir / META_FILE, final)
    return PipelineRunResult(Run(run_dir), pipe.name, stats, len(questions), len(todo), len(finished),
                             counts["failed"], accuracy, time.perf_counter() - started)


async def _model_contexts(pipe: Pipeline, ctx: RunContext, given: dict[str, Any], log: TableLog, stats: CallStats,
                          own: set[str]) -> list[tuple[RunContext, bool]]:
    """A caller and context per named model of a graph pipeline (``ctx.models``, sharing the run's call
    cache); [(context, owns backend)]."""
    out = []
    for name, model in pipe.spec.models.items():
        sub = Pipeline(pipe.spec.model_copy(update={"model": model, "models": {}}), pipe.steps, pipe.source)
        chat, fmt = _formats(sub)
        backend = given.get(name)
        owned = backend is None
        if backend is None:
            backend = create_backend(model.backend, model=model.name, **model.options)
        caller = Caller(backend, model=model_identity(model), run_id=ctx.caller.run_id, log=log,
                        cache=ctx.caller.cache, seed=ctx.seed, stats=stats, own=own)
        sub_ctx = dataclasses.replace(ctx, caller=caller, chat=chat, fmt=fmt, backend_kind=model.backend,
                                      price=_price(sub.spec), models=ctx.models)
        ctx.models[name] = sub_ctx
        out.append((sub_ctx, owned))
    return out


async def run_question(pipe: Pipeline, ctx: RunContext, question: Question, index: int, price: Any,
                       logs: dict[str, TableLog]) -> dict[str, Any]:
    """Run the program on one question and store its candidates, judgments and result."""
    spec = pipe.spec
    q = QuestionState(ctx, question, index, Budget(price))
    if spec.budget is not None:
        q.budget.push(spec.budget.limit())
    t0 = time.perf_counter()
    error = None
    final: Candidate | None = None
    try:
        try:
            pop = await run_steps(pipe.steps, q, [])
        except BudgetExhausted as exc:
            q.note(f"budget reached ({exc.what}); the program stopped after its last finished step")
            pop = q.population
        final = await choose_final(q, pop, spec.final)
    except QuestionFailed as exc:
        error = str(exc)
    logs["candidates"].add_many([c.row(ctx.caller.run_id) for c in q.candidates.values()])  # one write each
    logs["judgments"].add_many(q.judgments)
    if final is None and error is None:  # e.g. a budget too small for a single candidate: the pipeline abstains
        q.note("no candidate: the program ended without one (abstains; graded as unparseable)")
    ok = final is not None and error is None
    final = final if ok else None
    row = {
        "run_id": ctx.caller.run_id, "question_index": index, "question_id": question.id,
        "candidate_id": final.id if final is not None else None, "text": final.text if final is not None else None,
        "answer": final.answer if final is not None else None,
        "verdict": "error" if error else (final.verdict or "unparseable") if final is not None else "unparseable",
        "correct": bool(final is not None and final.correct), "n_calls": q.calls, "prompt_tokens": q.prompt_tokens,
        "completion_tokens": q.completion_tokens, "latency_s": q.latency_s, "wall_s": time.perf_counter() - t0,
        "notes": "; ".join(q.notes) or None, "error": error, "created_at": datetime.now(UTC),
        "finish_reason": final.finish_reason if final is not None else None,
    }
    logs["results"].add(row)
    return row


async def choose_final(q: QuestionState, pop: list[Candidate], how: str) -> Candidate | None:
    """The final candidate: the only one, or by vote / first / best score among several."""
    pop = [c for c in pop if c.text or c.complete]
    if not pop:
        return None
    for c in pop:
        if c.verdict is None:
            await q.grade(c)
    if len(pop) == 1 or how == "first":
        return pop[0]
    if how == "score":
        return sorted(pop, key=lambda c: (c.score is None, -(c.score or 0.0)))[0]
    winners = vote_winners(q, pop)
    return winners[0] if winners else pop[0]


def write_samples(run_dir: Path, run_id: str, label: str, questions: list[Question]) -> float:
    """Rewrite samples/ from the results table (one row per finished question); returns the accuracy."""
    results = read_table(run_dir, "results").to_pylist()
    by_index = {r["question_index"]: r for r in results}
    rows = [row for qi, q in enumerate(questions) if (r := by_index.get(qi)) is not None
            and (row := result_sample(run_id, label, r, q.id)) is not None]
    old = sorted((run_dir / SAMPLES_DIR).glob("part-*.parquet")) if (run_dir / SAMPLES_DIR).is_dir() else []
    writer = SampleWriter(run_dir, flush_rows=10**9, flush_seconds=1e9)
    writer.add(rows)
    writer.close()
    for path in old:
        path.unlink(missing_ok=True)
    if old:
        update_manifest(run_dir / SAMPLES_DIR, drop=[p.name for p in old])
    done = [r for r in rows if r["verdict"] != "error"]
    return sum(r["correct"] for r in done) / len(done) if done else float("nan")


def result_sample(run_id: str, label: str, r: dict[str, Any], question_id: str | None = None) -> dict[str, Any] | None:
    """The samples/ row of a results row (None for served traffic without a reference: not a graded sample)."""
    if r["verdict"] == "unlabelled":
        return None
    return sample_row(
        run_id=run_id, model=label, question_id=question_id or r["question_id"], question_index=r["question_index"],
        sample_index=0, text=r["text"],
        finish_reason="error" if r["verdict"] == "error" else r.get("finish_reason") or "stop",
        prompt_tokens=r["prompt_tokens"], completion_tokens=r["completion_tokens"], latency_s=r["latency_s"],
        error=r["error"], answer=r["answer"], verdict=r["verdict"], correct=bool(r["correct"]),
        verify_reason=r["notes"] or r["error"],
    )


def _finished_questions(run_dir: Path) -> set[int]:
    if not (run_dir / "results").is_dir():
        return set()
    table = read_table(run_dir, "results", ["question_index", "verdict"])
    return {qi for qi, v in zip(table["question_index"].to_pylist(), table["verdict"].to_pylist()) if v != "error"}


def _damage_warner() -> Callable[[Path, StoreError], None]:
    """Another run's damaged calls do not stop this run: they are left out of its call caches, said once."""
    warned: set[Path] = set()

    def warn(run_dir: Path, exc: StoreError) -> None:
        if run_dir not in warned:
            warned.add(run_dir)
            print(f"ttclab: warning: {exc} (until then this run does not replay that run's calls)", file=sys.stderr)

    return warn


def _price(spec: Any) -> Any:
    if spec.prices is None:
        return None
    from ttclab.ledger.prices import load_prices

    return load_prices(spec.prices).get(spec.model.name)


def _bar(total: int, label: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="question", desc=label, file=sys.stderr, dynamic_ncols=True, mininterval=0.5)


async def _refresh(bar: Any) -> None:
    while True:
        await asyncio.sleep(0.5)
        bar.refresh()
