"""The sampling runner: questions × N samples through a backend, verified, stored, resumable.

Each sample has a deterministic seed derived from the run seed, the question id and the sample
index, so a re-run after a crash regenerates exactly the samples that were lost. Finished samples
(the rows already in the store) are never generated again.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ttclab.backends.base import Backend, ChatMessage, Completion, Request, SamplingParams
from ttclab.errors import BackendError, StoreError
from ttclab.seeds import SEED_MODULUS, derive_seed, sample_seed  # noqa: F401 - SEED_MODULUS kept for old imports
from ttclab.store.integrity import quarantine_damaged, run_lock
from ttclab.store.reader import Run
from ttclab.store.rows import QuestionRow, sample_row
from ttclab.store.writer import META_FILE, QUESTIONS_FILE, SAMPLES_DIR, SampleWriter, atomic_write_json, write_questions
from ttclab.tasks.base import Question
from ttclab.verify.base import Verdict, Verifier

#: Without a progress bar, at most one log line per this many seconds as work finishes (and the last).
LOG_EVERY_S = 5.0


class ProgressLines:
    """Progress where there is no bar (a log file, a pipe): :meth:`line` at once, :meth:`tick` at most once
    every :data:`LOG_EVERY_S` seconds and always for the ``last`` piece of work; nothing when ``log`` is None."""

    def __init__(self, log: Callable[[str], None] | None, started: float | None = None) -> None:
        self.log = log
        self.started = started if started is not None else time.perf_counter()
        self._last = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def line(self, text: str) -> None:
        if self.log is not None:
            self.log(text)

    def tick(self, text: str, *, last: bool = False) -> None:
        """``text`` if it is time for a line, or ``last``."""
        if self.log is None:
            return
        now = time.perf_counter()
        if last or now - self._last >= LOG_EVERY_S:
            self._last = now
            self.log(text)

Prompt = str | tuple[ChatMessage, ...]
@dataclass
class SamplingStats:
    """What one call of :func:`sample_questions` did."""

    run_dir: Path
    generated: int = 0
    skipped: int = 0
    errors: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s if self.wall_s > 0 else float("nan")


def _row(run_id: str, model: str, q: Question, qi: int, si: int, c: Completion, v: Verdict | None,
         seed: int | None) -> dict[str, Any]:
    logprobs = list(c.token_logprobs) if c.token_logprobs else None
    return sample_row(
        run_id=run_id, model=model, question_id=q.id, question_index=qi, sample_index=si,
        text=c.text, finish_reason=c.finish_reason, prompt_tokens=c.prompt_tokens,
        completion_tokens=c.completion_tokens, latency_s=c.latency_s, token_logprobs=logprobs,
        mean_logprob=(sum(logprobs) / len(logprobs)) if logprobs else None, error=c.error,
        answer=v.answer if v else None, verdict=v.status if v else "error",
        correct=bool(v and v.correct), verify_reason=v.reason if v else c.error, seed=seed,
    )


def _verify_all(verifier: Verifier, completions: Sequence[Completion], q: Question) -> list[Verdict | None]:
    """The verdict of each completion (None for a failed call: it is stored as an error row, never graded)."""
    return [verifier.verify(c.text, q) if c.ok else None for c in completions]


def prepare_run(run_dir: Path, meta: dict[str, Any], questions: Sequence[Question],
                render: Callable[[Question], Prompt]) -> None:
    """Create the run folder with run.json and questions.parquet (kept as is when they exist; a corrupt
    run.json, or one ``ttclab repair`` rebuilt without the config, is written again from ``meta``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / META_FILE).exists() or _meta_lost(run_dir):
        atomic_write_json(run_dir / META_FILE, {**meta, "status": "running"})
    if not (run_dir / QUESTIONS_FILE).exists():
        rows = []
        for qi, q in enumerate(questions):
            prompt = render(q)
            rows.append(QuestionRow(
                question_index=qi, question_id=q.id, question=q.question,
                prompt=prompt if isinstance(prompt, str) else json.dumps(list(prompt)),
                gold=q.gold, difficulty=q.difficulty, metadata=q.metadata,
            ).as_dict())
        write_questions(run_dir, rows)


def _meta_lost(run_dir: Path) -> bool:
    try:
        return "rebuilt" in Run(run_dir).meta
    except StoreError:
        return True


def mark_ended(run_dir: Path, exc: BaseException) -> None:
    """Record in run.json that the run stopped on ``exc``: ``interrupted`` (Ctrl-C, cancelled) or ``failed``,
    with the error. A run folder without a readable run.json is left as it is (never hides ``exc``)."""
    status = "interrupted" if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)) else "failed"
    try:
        meta = Run(run_dir).meta
    except Exception:  # noqa: BLE001 - never hide the original error behind a bookkeeping one
        return
    why = str(exc) or ("Ctrl-C, SIGTERM or cancelled" if status == "interrupted" else exc.__class__.__name__)
    atomic_write_json(run_dir / META_FILE, {**meta, "status": status, "error": why[:500],
                                            "finished_at": datetime.now(UTC).isoformat()})


async def sample_questions(
    backend: Backend,
    questions: Sequence[Question],
    render: Callable[[Question], Prompt],
    verifier: Verifier,
    params: SamplingParams,
    *,
    run_dir: Path,
    run_id: str,
    model: str,
    samples: int,
    samples_per_request: int = 1,
    concurrency: int = 1,
    flush_seconds: float = 2.0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> SamplingStats:
    """Generate the missing samples of every question and append them to the run's store.

    ``samples`` per question; requests ask for up to ``samples_per_request`` completions at once;
    up to ``concurrency`` requests are in flight. Failed calls are stored as error rows (retried on
    the next run), never graded. A permanent failure (the backend raises :class:`BackendError`: a
    refused key, an unknown model, nothing listening) or a full disk stops every worker at once:
    finished samples stay stored, nothing is written for requests never sent, and the error is
    raised as one line saying so. The run is locked meanwhile (a second process on the same run gets
    a one-line StoreError), and damaged part files found at the start are moved aside (with a
    warning) so that their samples are generated again. ``log`` gets a line at the start and as
    questions finish (at most one every few seconds, and the last): progress where there is no bar.
    """
    with run_lock(run_dir, f"sampling {model}"):  # a second process on the same run gets a clear error
        run = Run(run_dir)
        moved = quarantine_damaged(run_dir / SAMPLES_DIR, run.context())
        for where, why in moved:  # damaged parts go aside; their samples are generated again below
            print(f"ttclab: warning: {why.split(';')[0]}; moved to {where}, its samples are generated again",
                  file=sys.stderr)
        return await _sample_locked(backend, questions, render, verifier, params, run=run, run_dir=run_dir,
                                    run_id=run_id, model=model, samples=samples,
                                    samples_per_request=samples_per_request, concurrency=concurrency,
                                    flush_seconds=flush_seconds, progress=progress, log=log)


async def _sample_locked(
    backend: Backend,
    questions: Sequence[Question],
    render: Callable[[Question], Prompt],
    verifier: Verifier,
    params: SamplingParams,
    *,
    run: Run,
    run_dir: Path,
    run_id: str,
    model: str,
    samples: int,
    samples_per_request: int,
    concurrency: int,
    flush_seconds: float,
    progress: bool,
    log: Callable[[str], None] | None = None,
) -> SamplingStats:
    done = run.done_keys()
    work: list[tuple[int, list[int]]] = []
    for qi in range(len(questions)):
        missing = [si for si in range(samples) if (qi, si) not in done]
        for first in range(0, len(missing), samples_per_request):
            work.append((qi, missing[first:first + samples_per_request]))
    total = len(questions) * samples
    stats = SamplingStats(run_dir=run_dir, skipped=len(done))
    remaining_per_q = [samples - sum(1 for si in range(samples) if (qi, si) in done) for qi in range(len(questions))]
    questions_done = sum(1 for r in remaining_per_q if r == 0)
    writer = SampleWriter(run_dir, flush_seconds=flush_seconds)
    bar = _progress_bar(total, len(done), model, enabled=progress)
    prompts: dict[int, Prompt] = {}
    queue: asyncio.Queue[tuple[int, list[int]]] = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)
    start = time.perf_counter()
    lines = ProgressLines(log, start)
    lines.line(f"{model}: {total - len(done)} sample(s) of {len(questions)} question(s) to generate"
               + (f", {len(done)} stored before" if done else "") + f" -> {run_dir}")

    async def worker() -> None:
        nonlocal questions_done
        while True:
            try:
                qi, indices = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            q = questions[qi]
            if qi not in prompts:
                prompts[qi] = render(q)
            # Samples must be consecutive for the seed rule; split otherwise.
            runs = _consecutive(indices)
            rows = []
            for chunk in runs:
                seed = derive_seed(params.seed, q.id, chunk[0])
                completions = await backend.generate(Request(prompts[qi], seed=seed), params.with_(n=len(chunk)))
                if len(completions) != len(chunk):  # a backend bug must not silently lose samples
                    completions = list(completions)[: len(chunk)]
                    completions += [Completion.failed("backend returned too few completions")] * (len(chunk) - len(completions))
                verdicts = await asyncio.to_thread(_verify_all, verifier, completions, q)
                for j, (si, c, v) in enumerate(zip(chunk, completions, verdicts)):
                    rows.append(_row(run_id, model, q, qi, si, c, v, sample_seed(seed, j)))
                    stats.generated += 1
                    stats.errors += 0 if c.ok else 1
                    stats.completion_tokens += c.completion_tokens
            writer.add(rows)
            remaining_per_q[qi] -= len(indices)
            if remaining_per_q[qi] == 0:
                questions_done += 1
            if bar is not None:
                elapsed = time.perf_counter() - start
                bar.set_postfix_str(
                    f"questions {questions_done}/{len(questions)}, "
                    f"{stats.completion_tokens / max(elapsed, 1e-9):.0f} completion tok/s"
                    + (f", {stats.errors} errors" if stats.errors else ""),
                    refresh=False,
                )
                bar.update(len(indices))
            lines.tick(f"{model}: questions {questions_done}/{len(questions)}, samples "
                       f"{len(done) + stats.generated}/{total}, "
                       f"{stats.completion_tokens / max(lines.elapsed, 1e-9):.0f} completion tok/s"
                       + (f", {stats.errors} errors" if stats.errors else "") + f", {lines.elapsed:.0f} s",
                       last=questions_done == len(questions))

    tasks = [asyncio.create_task(worker()) for _ in range(max(1, concurrency))]
    failure: BaseException | None = None
    try:
        done_tasks, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failure = next((t.exception() for t in done_tasks if not t.cancelled() and t.exception()), None)
    except BaseException as exc:  # cancelled / interrupted: keep what is finished
        failure = exc
    finally:
        for t in tasks:  # a permanent failure (bad key, unknown model, full disk) stops every worker
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stats.wall_s = time.perf_counter() - start
        if bar is not None:
            bar.close()
        try:
            writer.close()
        except StoreError as exc:
            failure = failure or exc
    if isinstance(failure, BackendError):
        saved = len(done) + writer.rows_written
        kept = (f"{saved} finished sample(s) are saved in {run_dir}; run the same command again to resume "
                "once it is fixed") if saved else "no sample was stored"
        raise BackendError(f"{failure}; {kept}") from None
    if failure is not None:
        raise failure
    return stats


def _consecutive(indices: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for i in indices:
        if out and out[-1][-1] + 1 == i:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _progress_bar(total: int, initial: int, label: str, *, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="sample", desc=label, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5, smoothing=0.1)
