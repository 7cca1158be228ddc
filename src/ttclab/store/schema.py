"""The store schema: one row per completion (long format), versioned.

A run lives in ``<store>/<run_id>/``::

    run.json                 metadata: schema_version, config, model, sampling params, package version
    questions.parquet        one row per question (QUESTIONS_SCHEMA)
    samples/part-*.parquet   one row per completion (SAMPLES_SCHEMA), written in atomic chunks

Every file is plain Parquet: ``duckdb.sql("select * from 'runs/*/samples/*.parquet'")`` works.
Identity is never encoded in column names; the strategy, model and sample index are values.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ttclab.errors import StoreError

SCHEMA_VERSION = 1

#: Verdicts a verifier can give. ``error`` marks a failed backend call (never graded).
VERDICTS = ("correct", "incorrect", "unparseable", "error")

SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("question_id", pa.string(), nullable=False),
        pa.field("question_index", pa.int32(), nullable=False),
        pa.field("sample_index", pa.int32(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("finish_reason", pa.string()),
        pa.field("prompt_tokens", pa.int32()),
        pa.field("completion_tokens", pa.int32()),
        pa.field("latency_s", pa.float64()),
        pa.field("token_logprobs", pa.list_(pa.float32())),
        pa.field("mean_logprob", pa.float64()),
        pa.field("error", pa.string()),
        pa.field("answer", pa.string()),  # canonical extracted answer; null if unparseable / error
        pa.field("verdict", pa.string(), nullable=False),  # one of VERDICTS
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("verify_reason", pa.string()),
        pa.field("reward", pa.float64()),  # outcome reward-model score, if any
        pa.field("seed", pa.int64()),
        pa.field("created_at", pa.timestamp("ms", tz="UTC")),
    ],
    metadata={b"ttclab.schema_version": str(SCHEMA_VERSION).encode(), b"ttclab.table": b"samples"},
)

QUESTIONS_SCHEMA = pa.schema(
    [
        pa.field("question_index", pa.int32(), nullable=False),
        pa.field("question_id", pa.string(), nullable=False),
        pa.field("question", pa.string()),
        pa.field("prompt", pa.string()),  # rendered prompt (JSON for chat messages)
        pa.field("gold", pa.string()),
        pa.field("difficulty", pa.float64()),
        pa.field("metadata", pa.string()),  # JSON object
        pa.field("run_id", pa.string()),  # the run (joins with samples without parsing folder names)
    ],
    metadata={b"ttclab.schema_version": str(SCHEMA_VERSION).encode(), b"ttclab.table": b"questions"},
)


def rows_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """``pa.Table.from_pylist(rows, schema=schema)`` built column by column (the same table, several
    times faster: from_pylist converts each row as a struct). A key missing from a row is null."""
    return pa.Table.from_arrays([pa.array([r.get(f.name) for r in rows], type=f.type) for f in schema], schema=schema)


#: Nullable columns added to a table after files were written without them: such a file reads them as
#: null (any other missing column is an error). Keyed by the schema's ``ttclab.table``.
ADDED_COLUMNS: dict[bytes, frozenset[str]] = {b"results": frozenset({"finish_reason"})}


def validate_table(table: pa.Table, schema: pa.Schema, source: str) -> pa.Table:
    """Check ``table`` against ``schema`` and return it cast to the schema's exact types.

    Raises :class:`StoreError` naming the file and the column when a column is missing (except one of
    :data:`ADDED_COLUMNS`, read as null) or has an incompatible type, or when the file was written by a
    newer schema version.
    """
    version = (table.schema.metadata or {}).get(b"ttclab.schema_version")
    if version is not None:
        try:
            written = int(version)
        except ValueError:  # a flipped byte in the footer's metadata
            raise StoreError(f"{source}: damaged (its schema version {version!r} is not a number)") from None
        if written > SCHEMA_VERSION:
            raise StoreError(
                f"{source}: written with store schema v{written}, this ttclab reads up to v{SCHEMA_VERSION}; "
                "upgrade ttclab"
            )
    added = ADDED_COLUMNS.get((schema.metadata or {}).get(b"ttclab.table", b""), frozenset())
    missing = [f.name for f in schema if f.name not in table.column_names and f.name not in added]
    if missing:
        raise StoreError(f"{source}: missing column(s) {', '.join(missing)}; not a ttclab store file")
    columns = []
    for f in schema:
        if f.name not in table.column_names:  # written before the column existed
            columns.append(pa.nulls(table.num_rows, f.type))
            continue
        col = table.column(f.name)
        if not col.type.equals(f.type):
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise StoreError(f"{source}: column {f.name!r} has type {col.type}, expected {f.type}") from exc
        if not f.nullable and col.null_count:
            raise StoreError(f"{source}: column {f.name!r} has {col.null_count} null value(s); it must not")
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)


# --------------------------------------------------------------------------------------------------
# Online pipeline runs (issue 8). A pipeline run folder holds, besides run.json and questions.parquet:
#
#     calls/        one row per model call (one completion, or one reward-model / failed request)
#     candidates/   one row per candidate solution, with its parents (lineage) and the calls that made it
#     judgments/    scores, pairwise comparisons and pick-1-of-n choices (re-run offline over subsets)
#     results/      one row per finished question: the final candidate and answer
#     samples/      the final answer per question as a sample row, so every offline verb reads the run
#
# Each table is written as atomic Parquet parts plus an append-only JSONL journal (crash-safe, see
# ttclab.store.journal); readers de-duplicate by the table's key.
# --------------------------------------------------------------------------------------------------

PIPELINE_TABLES = ("calls", "candidates", "judgments", "results")

CALLS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("call_id", pa.string(), nullable=False),  # = cache key (hash of model, prompt, params, seed)
        pa.field("question_index", pa.int32(), nullable=False),
        pa.field("question_id", pa.string(), nullable=False),
        pa.field("step_id", pa.string(), nullable=False),
        pa.field("role", pa.string(), nullable=False),  # generate, extend, critic, reviser, judge, scorer, ...
        pa.field("parent_ids", pa.list_(pa.string())),  # candidates the call was about
        pa.field("template", pa.string()),  # prompt template name
        pa.field("template_hash", pa.string()),
        pa.field("model", pa.string(), nullable=False),  # model identity (backend:name)
        pa.field("prompt", pa.string()),  # the prompt (JSON for chat messages)
        pa.field("params", pa.string()),  # sampling parameters (JSON, without n and seed)
        pa.field("seed", pa.int64()),
        pa.field("text", pa.string()),
        pa.field("answer", pa.string()),  # canonical answer when the call produced a solution
        pa.field("finish_reason", pa.string()),
        pa.field("prompt_tokens", pa.int32()),
        pa.field("completion_tokens", pa.int32()),
        pa.field("latency_s", pa.float64()),
        pa.field("token_logprobs", pa.list_(pa.float32())),
        pa.field("value", pa.float64()),  # a reward-model score, when the call is one
        pa.field("error", pa.string()),
        pa.field("cached_from", pa.string()),  # run id the call was replayed from (another run), else null
        pa.field("created_at", pa.timestamp("ms", tz="UTC")),
    ],
    metadata={b"ttclab.schema_version": str(SCHEMA_VERSION).encode(), b"ttclab.table": b"calls"},
)

CANDIDATES_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("candidate_id", pa.string(), nullable=False),
        pa.field("question_index", pa.int32(), nullable=False),
        pa.field("step_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # generated, revised, fused, extended, injected, copied
        pa.field("parent_ids", pa.list_(pa.string())),
        pa.field("call_ids", pa.list_(pa.string())),
        pa.field("text", pa.string()),
        pa.field("answer", pa.string()),
        pa.field("verdict", pa.string()),  # correct / incorrect / unparseable (VERDICTS)
        pa.field("correct", pa.bool_()),
        pa.field("score", pa.float64()),  # the latest score given to it, if any
        pa.field("complete", pa.bool_()),  # False for partial solutions (search steps, thinking)
        pa.field("feedback", pa.string()),  # the critique it received, if any
        pa.field("created_at", pa.timestamp("ms", tz="UTC")),
    ],
    metadata={b"ttclab.schema_version": str(SCHEMA_VERSION).encode(), b"ttclab.table": b"candidates"},
)

JUDGMENTS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("judgment_id", pa.string(), nullable=False),
        pa.field("question_index", pa.int32(), nullable=False),
        pa.field("step_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # score, pairwise, pick
        pa.field("method", pa.string(), nullable=False),  # llm_rubric, self_eval, confidence, reward_model, oracle, llm_pick, ...
        pa.field("candidate_ids", pa.list_(pa.string())),  # score: [c]; pairwise: [a, b] as shown; pick: as shown
        pa.field("value", pa.float64()),  # score value; pairwise: 1 if the first won, 0 if the second; pick: null
        pa.field("chosen", pa.string()),  # winner / picked candidate id (null when unparsed)
        pa.field("position", pa.int32()),  # shown position of the chosen candidate (0-based)
        pa.field("parsed", pa.bool_()),  # False when the judge's reply could not be parsed
        pa.field("call_ids", pa.list_(pa.string())),
        pa.field("created_at", pa.timestamp("ms", tz="UTC")),
    ],
    metadata={b"ttclab.schema_version": str(SCHEMA_VERSION).encode(), b"ttclab.table": b"judgments"},
)

RESULTS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("question_index", pa.int32(), nullable=False),
        pa.field("question_id", pa.string(), nullable=False),
        pa.field("candidate_id", pa.string()),  # the final candidate (null when the question failed)
        pa.field("text", pa.string()),
        pa.field("answer", pa.string()),
        pa.field("verdict", pa.string(), nullable=False),  # VERDICTS; error when a call failed
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("n_calls", pa.int32()),
        pa.field("prompt_tokens", pa.int64()),
        pa.field("completion_tokens", pa.int64()),
        pa.field("latency_s", pa.float64()),  # sum of the calls' latencies
        pa.field("wall_s", pa.float64()),  # wall time of the question (replayed calls are instant)
        pa.field("notes", pa.string()),  # why loops stopped (consensus, budget, ...), "; "-separated
        pa.field("error", pa.string()),
        pa.field("created_at", pa.timestamp("ms", tz="UTC")),
        # the final candidate's last call: "length" when max_tokens cut it off (added later: see ADDED_COLUMNS)
        pa.field("finish_reason", pa.string()),
    ],
    metadata={b"ttclab.schema_version": str(SCHEMA_VERSION).encode(), b"ttclab.table": b"results"},
)

PIPELINE_SCHEMAS = {"calls": CALLS_SCHEMA, "candidates": CANDIDATES_SCHEMA, "judgments": JUDGMENTS_SCHEMA,
                    "results": RESULTS_SCHEMA}
#: The column that identifies a row of each table (the last row written for a key wins).
PIPELINE_KEYS = {"calls": "call_id", "candidates": "candidate_id", "judgments": "judgment_id",
                 "results": "question_index"}
