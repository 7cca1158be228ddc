"""``ttclab sample ... --probe-every D``: the answer each stored trace would give after every D tokens.

For every finished sample of a run, the backend's ``probe`` (the embedded engine:
:mod:`ttclab.backends.llama_probe`, prefix KV cache reused) forces an answer after each D-token
prefix: the prefix + an answer cue, a few tokens decoded greedily with their log-probs. Each probe
is graded by the run's verifier (the cue + the probe's text), so probe answers vote with the final
answers. Probes are a versioned table of the run, ``probes/part-*.parquet`` (``PROBES_SCHEMA``,
``probe_version`` in every row and in the file metadata), one row per (sample, spacing, boundary);
re-running continues with the samples not probed at that spacing yet. The samples are untouched.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ttclab.errors import ConfigError
from ttclab.sampling import ProgressLines
from ttclab.store.schema import rows_table

PROBES_DIR = "probes"
PROBE_VERSION = 1
PROBES_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("question_index", pa.int32()), ("question_id", pa.string()),
    ("sample_index", pa.int32()), ("every", pa.int32()), ("boundary", pa.int32()), ("prefix_tokens", pa.int32()),
    ("trace_tokens", pa.int32()), ("cue", pa.string()), ("cue_tokens", pa.int32()), ("text", pa.string()),
    ("token_ids", pa.list_(pa.int32())), ("token_logprobs", pa.list_(pa.float32())), ("answer", pa.string()),
    ("verdict", pa.string()), ("correct", pa.bool_()), ("probe_version", pa.int32()),
    ("created_at", pa.timestamp("us", tz="UTC")),
], metadata={"probe_version": str(PROBE_VERSION)})


def read_probes(run_dir: str | Path) -> pa.Table:
    """The run's probes (an empty table with the schema when there are none)."""
    parts = sorted((Path(run_dir) / PROBES_DIR).glob("part-*.parquet"))
    if not parts:
        return PROBES_SCHEMA.empty_table()
    return pa.concat_tables([pq.read_table(p, schema=PROBES_SCHEMA) for p in parts])


def _write_part(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    folder = run_dir / PROBES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    n = len(list(folder.glob("part-*.parquet")))
    path = folder / f"part-{n:05d}-{time.time_ns()}.parquet"
    tmp = path.with_suffix(".tmp")
    pq.write_table(rows_table(rows, PROBES_SCHEMA), tmp)
    tmp.replace(path)


async def collect_probes(backend: Any, run_dir: Path, questions: Sequence[Any], render: Callable[[Any], Any],
                         verifier: Any, *, every: int, cue: str = "\nAnswer:", max_tokens: int = 8,
                         progress: bool = True, log: Callable[[str], None] | None = None) -> int:
    """Probe every finished sample not probed at ``every`` yet; returns the number of samples probed.

    ``log`` gets a line as probing starts and one every few seconds (where there is no bar)."""
    from ttclab.store.reader import Run

    if every < 1:
        raise ConfigError(f"--probe-every must be at least 1 token (got {every})")
    if not hasattr(backend, "probe"):
        raise ConfigError(f"--probe-every: the {getattr(backend, 'name', '?')} backend cannot probe traces; probes need "
                          "the embedded engine (backend: llamacpp), which reuses each prefix's KV cache")
    run = Run(run_dir)
    done = read_probes(run_dir).select(["question_index", "sample_index", "every"]).to_pydict()
    probed = {(q, s) for q, s, e in zip(done["question_index"], done["sample_index"], done["every"]) if e == every}
    done_marks = run_dir / PROBES_DIR / f"done-every-{every}.txt"  # samples too short for any probe
    if done_marks.exists():
        for line in done_marks.read_text().split("\n"):
            if line.strip():
                q, sample = map(int, line.split())
                probed.add((q, sample))
    s = run.samples(["question_index", "sample_index", "text", "error"]).to_pydict()
    todo: dict[int, list[tuple[int, str]]] = {}
    for qi, si, text, err in zip(s["question_index"], s["sample_index"], s["text"], s["error"]):
        if err is None and (qi, si) not in probed:
            todo.setdefault(qi, []).append((si, text or ""))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(v) for v in todo.values()), unit="trace", desc=f"probes every {every}",
                   file=sys.stderr, dynamic_ncols=True)
    count = 0
    run_id = run.run_id
    total = sum(len(v) for v in todo.values())
    lines = ProgressLines(log)
    if total:
        lines.line(f"{run_id}: probing {total} trace(s) of {len(todo)} question(s) every {every} tokens")
    try:
        for qi in sorted(todo):
            q = questions[qi]
            items = sorted(todo[qi])
            results = await backend.probe(render(q), [t for _, t in items], every=every, cue=cue, max_tokens=max_tokens)
            rows = []
            now = datetime.now(UTC)
            short = []
            for (si, _), (probes, n_tokens) in zip(items, results):
                if not probes:
                    short.append(f"{qi} {si}")
                for p in probes:
                    v = verifier.verify(f"{cue.strip()} {p.text}", q)
                    rows.append({"run_id": run_id, "question_index": qi, "question_id": q.id, "sample_index": si,
                                 "every": every, "boundary": p.boundary, "prefix_tokens": p.prefix_tokens,
                                 "trace_tokens": n_tokens, "cue": cue, "cue_tokens": p.cue_tokens, "text": p.text,
                                 "token_ids": list(p.token_ids), "token_logprobs": list(p.token_logprobs),
                                 "answer": v.answer, "verdict": v.status, "correct": bool(v.correct),
                                 "probe_version": PROBE_VERSION, "created_at": now})
            if rows:
                _write_part(run_dir, rows)
            if short:
                done_marks.parent.mkdir(parents=True, exist_ok=True)
                with done_marks.open("a") as fh:
                    fh.write("\n".join(short) + "\n")
            count += len(items)
            if bar is not None:
                bar.update(len(items))
            lines.tick(f"{run_id}: probes every {every}: traces {count}/{total}, {lines.elapsed:.0f} s",
                       last=count == total)
    finally:
        if bar is not None:
            bar.close()
    return count
