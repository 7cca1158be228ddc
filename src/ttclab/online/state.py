"""What steps see while a pipeline runs: the run (shared) and one question's state.

:class:`RunContext` holds what every question shares: the caller, the verifier, the prompt format,
default sampling, the pipeline seed. :class:`QuestionState` holds one question's candidates,
judgments, budget, seeded RNG and the occurrence counters that fix call seeds. Steps prepare their
calls in a fixed order (synchronously) and then await them together, so a question's calls, seeds
and random draws are the same on every run — which is what makes replay and resume exact.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ttclab.online.budget import Budget
from ttclab.online.calls import Caller, CallResult
from ttclab.online.candidates import Candidate
from ttclab.online.templates import ChatFormat, Prompt, Template
from ttclab.seeds import derive_seed
from ttclab.tasks.base import Question
from ttclab.verify.base import Verdict, Verifier

#: Verifiers slow enough to run off the event loop (process-isolated maths, code execution).
_THREADED_VERIFIERS = frozenset({"math", "code"})


@dataclass
class RunContext:
    """Shared by every question of a pipeline run."""

    caller: Caller
    verifier: Verifier
    seed: int
    chat: bool  # chat messages (True) or completion strings in ``fmt``
    fmt: ChatFormat | None  # the format for completion strings and for continuing partial answers
    backend_kind: str  # "llamacpp" or "openai" (first-finish picks its rule from it)
    price: Any = None  # ledger Price of the model, for dollar budgets
    oracle_used: bool = False
    #: The contexts of the pipeline's named ``models`` (shared by all of them; steps with ``model:`` use one).
    models: dict[str, RunContext] = field(default_factory=dict)

    def prompt(self, template: Template, **values: Any) -> Prompt:
        """The prompt of a template: chat messages, or one string in the run's format."""
        messages = template.messages(**values)
        if self.chat:
            return messages
        assert self.fmt is not None
        return self.fmt.render(messages)

    def continuation(self, template: Template, partial: str, **values: Any) -> str:
        """A completion string that ends with ``partial`` inside the model's turn (for extending it)."""
        from ttclab.errors import ConfigError

        if self.fmt is None:
            raise ConfigError("continuation_format: continuing a partial answer needs the model's chat format; "
                              "set continuation_format in the pipeline file (chatml, gemma, llama3 or plain)")
        return self.fmt.render(template.messages(**values), partial)

    def stops(self) -> tuple[str, ...]:
        return self.fmt.stop if self.fmt is not None else ()


@dataclass
class QuestionState:
    """One question while its program runs."""

    ctx: RunContext
    question: Question
    index: int
    budget: Budget
    rng: np.random.Generator = field(init=False)
    candidates: dict[str, Candidate] = field(default_factory=dict)
    judgments: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why loops stopped (consensus, budget, ...)
    population: list[Candidate] = field(default_factory=list)  # after the last finished step
    outputs: dict[str, list[Candidate]] = field(default_factory=dict)  # each top-level step's output, by step id
    calls: int = 0  # answered calls of this question (fresh or replayed)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    _occurrences: dict[str, int] = field(default_factory=dict)
    _verdicts: dict[str, Verdict] = field(default_factory=dict)
    _seq: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(derive_seed(self.ctx.seed, f"rng\x00{self.question.id}", 0))

    @property
    def question_id(self) -> str:
        return self.question.id

    @property
    def caller(self) -> Caller:
        return self.ctx.caller

    def account(self, r: CallResult) -> None:
        """Count one answered call in the question's totals."""
        self.calls += 1
        self.prompt_tokens += r.prompt_tokens
        self.completion_tokens += r.completion_tokens
        self.latency_s += r.latency_s

    def note(self, text: str) -> None:
        self.notes.append(text)

    def next_occurrence(self, content: str, n: int) -> int:
        start = self._occurrences.get(content, 0)
        self._occurrences[content] = start + n
        return start

    # -- candidates -------------------------------------------------------------------------
    def new(self, step_id: str, kind: str, text: str, *, parents: tuple[str, ...] = (),
            calls: tuple[CallResult, ...] = (), complete: bool = True, **meta: Any) -> Candidate:
        cid = f"q{self.index}-c{self._seq}"
        self._seq += 1
        c = Candidate(cid, self.index, step_id, kind, text, parents=parents,
                      call_ids=tuple(r.call_id for r in calls), complete=complete,
                      finish_reason=calls[-1].finish_reason if calls else None,
                      completion_tokens=sum(r.completion_tokens for r in calls),
                      token_logprobs=tuple(x for r in calls for x in (r.token_logprobs or ())), meta=dict(meta))
        self.candidates[cid] = c
        return c

    def copy(self, c: Candidate, step_id: str) -> Candidate:
        out = self.new(step_id, "copied", c.text, parents=(c.id,), complete=c.complete, **c.meta)
        out.answer, out.verdict, out.score = c.answer, c.verdict, c.score
        out.token_logprobs, out.completion_tokens, out.finish_reason = c.token_logprobs, c.completion_tokens, c.finish_reason
        return out

    async def verdict(self, text: str) -> Verdict:
        """The task verifier's verdict on a text (memoised per question)."""
        found = self._verdicts.get(text)
        if found is None:
            if getattr(self.ctx.verifier, "name", "") in _THREADED_VERIFIERS:
                found = await asyncio.to_thread(self.ctx.verifier.verify, text, self.question)
            else:
                found = self.ctx.verifier.verify(text, self.question)
            self._verdicts[text] = found
        return found

    async def grade(self, c: Candidate) -> Candidate:
        """Extract and check the candidate's answer with the task's verifier."""
        verdict = await self.verdict(c.text)
        c.answer, c.verdict = verdict.answer, verdict.status
        return c

    async def answer_of(self, text: str) -> str | None:
        return (await self.verdict(text)).answer

    def judge(self, step_id: str, kind: str, method: str, candidate_ids: list[str], *, value: float | None = None,
              chosen: str | None = None, position: int | None = None, parsed: bool = True,
              calls: tuple[CallResult, ...] = ()) -> None:
        self.judgments.append({
            "run_id": self.caller.run_id, "judgment_id": f"q{self.index}-j{len(self.judgments)}",
            "question_index": self.index, "step_id": step_id, "kind": kind, "method": method,
            "candidate_ids": list(candidate_ids), "value": value, "chosen": chosen, "position": position,
            "parsed": parsed, "call_ids": [r.call_id for r in calls], "created_at": datetime.now(UTC),
        })
