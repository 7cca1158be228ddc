"""Tasks from the Hugging Face hub (needs network and the optional ``datasets`` package).

``datasets`` is imported only when the questions are first read; without it the error is one line
with the install hint ``pip install 'ttclab[hub]'``. Rows are mapped with the same presets and field
mapping as local files (:mod:`ttclab.tasks.files`); a bad row is named ``dataset[split] row n``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any

from ttclab.errors import ConfigError, DataError, missing_extra
from ttclab.tasks.base import Question
from ttclab.tasks.files import Record, get_preset, records_to_questions


def import_datasets() -> Any:
    """The ``datasets`` module, or a BackendError with the install hint."""
    try:
        return importlib.import_module("datasets")
    except ImportError:
        raise missing_extra("datasets", "hub") from None


def numbered_rows(rows: Iterable[Mapping[str, Any]], source: str) -> Iterator[tuple[str, Record]]:
    """``(where, row)`` pairs with ``where`` = ``source row n`` (1-based)."""
    for i, row in enumerate(rows, start=1):
        yield f"{source} row {i}", dict(row)


class HubTask:
    """Questions from ``datasets.load_dataset(dataset, config, split=split, revision=revision)``."""

    def __init__(self, dataset: str, *, split: str = "test", config: str | None = None, revision: str | None = None,
                 preset: str = "generic", fields: Mapping[str, Any] | None = None, limit: int | None = None,
                 name: str | None = None) -> None:
        if not dataset:
            raise ConfigError("task.dataset: give a hub dataset name such as openai/gsm8k")
        self.dataset = dataset
        self.split = split
        self.config = config
        self.revision = revision
        self.preset = get_preset(preset)
        self.fields = dict(fields or {})
        self.fieldmap = self.preset.fields.override(self.fields)
        if limit is not None and limit < 1:
            raise ConfigError(f"task.limit: must be at least 1 (got {limit})")
        self.limit = limit
        self.name = name or dataset.rsplit("/", 1)[-1] + (f"-{config}" if config else "") + f"-{split}"

    @property
    def source(self) -> str:
        return f"{self.dataset}" + (f"/{self.config}" if self.config else "") + f"[{self.split}]"

    def _rows(self) -> Iterable[Mapping[str, Any]]:
        datasets = import_datasets()
        try:
            return datasets.load_dataset(self.dataset, self.config, split=self.split, revision=self.revision)
        except Exception as exc:  # network, auth, unknown dataset / split: one line, no traceback
            first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
            raise DataError(f"hub dataset {self.source}: {exc.__class__.__name__}: {first}; "
                            "check task.dataset, task.config and task.split, the network, and HF_TOKEN for gated sets"
                            ) from None

    def questions_from_rows(self, rows: Iterable[Mapping[str, Any]]) -> list[Question]:
        """Map hub rows (dicts) to questions with this task's preset and fields."""
        return records_to_questions(numbered_rows(rows, self.source), self.preset, self.fieldmap,
                                    source=self.source, limit=self.limit)

    @cached_property
    def _questions(self) -> tuple[Question, ...]:
        return tuple(self.questions_from_rows(self._rows()))

    def questions(self) -> Sequence[Question]:
        """The questions, downloaded (or read from the hub cache) once."""
        return self._questions

    def default_verifier(self) -> str:
        return self.preset.verifier

    def describe(self) -> dict[str, Any]:
        return {"source": "hub", "dataset": self.dataset, "config": self.config, "split": self.split,
                "revision": self.revision, "preset": self.preset.name, "fields": self.fields, "limit": self.limit,
                "count": len(self.questions())}

    def __repr__(self) -> str:
        return f"HubTask({self.dataset!r}, split={self.split!r}, preset={self.preset.name!r})"
