"""Samples of one run as dense (questions × samples) arrays — the input of every strategy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ttclab.errors import DataError


@dataclass(frozen=True)
class SampleArrays:
    """One model's samples on one task, as aligned (Q, N) arrays.

    ``present[q, j]`` marks real samples: a question with fewer than N successful samples (failed
    calls are not samples) is padded on the right with ``present=False``. ``answers`` holds integer
    codes per question (equal canonical answers share a code, codes are dense from 0 within a
    question) and -1 for a sample without a valid answer (it never votes) or a padded slot.
    Missing numbers (no reward model, no log-probs, unknown latency) are NaN.
    """

    answers: np.ndarray  # (Q, N) int32
    correct: np.ndarray  # (Q, N) bool
    present: np.ndarray  # (Q, N) bool
    completion_tokens: np.ndarray  # (Q, N) float64
    prompt_tokens: np.ndarray  # (Q, N) float64
    rewards: np.ndarray  # (Q, N) float64, NaN when absent
    mean_logprob: np.ndarray  # (Q, N) float64, NaN when absent
    latency_s: np.ndarray  # (Q, N) float64, NaN when unknown
    question_ids: np.ndarray  # (Q,) str
    difficulty: np.ndarray  # (Q,) float64, NaN when unknown
    model: str = ""
    run_id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = self.answers.shape
        if self.answers.ndim != 2:
            raise DataError(f"answers must be a (questions, samples) array, got shape {shape}")
        for name in ("correct", "present", "completion_tokens", "prompt_tokens", "rewards", "mean_logprob", "latency_s"):
            if getattr(self, name).shape != shape:
                raise DataError(f"{name} has shape {getattr(self, name).shape}, expected {shape} like answers")
        for name in ("question_ids", "difficulty"):
            if getattr(self, name).shape != (shape[0],):
                raise DataError(f"{name} has shape {getattr(self, name).shape}, expected ({shape[0]},)")

    @property
    def n_questions(self) -> int:
        return int(self.answers.shape[0])

    @property
    def n_samples(self) -> int:
        """N, the largest number of samples of any question."""
        return int(self.answers.shape[1])

    @property
    def n_per_question(self) -> np.ndarray:
        """(Q,) number of real samples of each question."""
        return np.asarray(self.present.sum(axis=1))

    @property
    def has_rewards(self) -> bool:
        return bool(np.isfinite(self.rewards[self.present]).any())
