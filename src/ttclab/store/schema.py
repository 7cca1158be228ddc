"""The store schema: one row per completion (long format), versioned.

A run lives in ``<store>/<run_id>/``::

    run.json                 metadata: schema_version, config, model, sampling params, package version
    questions.parquet        one row per question (QUESTIONS_SCHEMA)
    samples/part-*.parquet   one row per completion (SAMPLES_SCHEMA), written in atomic chunks

Every file is plain Parquet: ``duckdb.sql("select * from 'runs/*/samples/*.parquet'")`` works.
Identity is never encoded in column names; the strategy, model and sample index are values.
"""

from __future__ import annotations

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


def validate_table(table: pa.Table, schema: pa.Schema, source: str) -> pa.Table:
    """Check ``table`` against ``schema`` and return it cast to the schema's exact types.

    Raises :class:`StoreError` naming the file and the column when a column is missing or has an
    incompatible type, or when the file was written by a newer schema version.
    """
    version = (table.schema.metadata or {}).get(b"ttclab.schema_version")
    if version is not None and int(version) > SCHEMA_VERSION:
        raise StoreError(
            f"{source}: written with store schema v{int(version)}, this ttclab reads up to v{SCHEMA_VERSION}; "
            "upgrade ttclab"
        )
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise StoreError(f"{source}: missing column(s) {', '.join(missing)}; not a ttclab store file")
    columns = []
    for f in schema:
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
