"""The Parquet store: one row per completion, versioned, crash-safe, resumable."""

from ttclab.store.reader import Run, list_runs, open_run, scan, store_root
from ttclab.store.schema import QUESTIONS_SCHEMA, SAMPLES_SCHEMA, SCHEMA_VERSION

__all__ = ["QUESTIONS_SCHEMA", "SAMPLES_SCHEMA", "SCHEMA_VERSION", "Run", "list_runs", "open_run", "scan", "store_root"]
