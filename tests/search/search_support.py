"""Shared by the search tests (imported by name: a conftest is not importable when several test
folders are collected together)."""

#: A small arithmetic task every search test runs on.
TASK = {"source": "gym", "name": "basic_arithmetic", "size": 8, "seed": 3}
