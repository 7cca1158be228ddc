"""The pipeline tables' journal and parts: kept here for the imports of ``ttclab.online.journal``; the
code is :mod:`ttclab.store.journal` (store-level, so ``ttclab repair`` can check and repair them)."""

from __future__ import annotations

from ttclab.store.journal import TableLog, compact_table, read_table

__all__ = ["TableLog", "compact_table", "read_table"]
