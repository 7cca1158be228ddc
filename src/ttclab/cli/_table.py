"""Kept for verbs written against the old path: table formatting lives in :mod:`ttclab.tables`."""

from ttclab.tables import fmt, format_table

__all__ = ["fmt", "format_table"]
