"""generate, extend, inject, copy: steps that write candidate text.

* ``generate`` — n fresh solutions (one backend request with ``n``). ``accumulate: true`` adds them to
  the population (adaptive sampling in rounds). ``first: k`` keeps the first k to finish: by
  completion tokens on the embedded engine (the batch's shortest finish first), by arrival on a
  server (n parallel requests; the rest are cancelled and stored as cancelled error rows).
* ``extend`` — continue each partial candidate through the completions API (its prompt in the
  run's chat format, ending with the text so far), up to ``stop`` / ``max_tokens``; ``n`` children each.
* ``inject`` — append fixed text ("Wait", "Final answer:") to each candidate (no call).
* ``copy`` — k copies of each candidate (no call), e.g. to critique one answer several ways.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import Field

from ttclab.extract import final_answer
from ttclab.online.calls import CallResult
from ttclab.online.candidates import Candidate
from ttclab.online.state import QuestionState
from ttclab.online.steps.base import QuestionFailed, StepSpec, call_each, call_item, prepare_all


class GenerateSpec(StepSpec):
    op: Literal["generate"] = "generate"
    n: int = Field(default=1, ge=1, le=4096)
    template: str | dict | None = None
    accumulate: bool = False
    first: int | None = Field(default=None, ge=1, description="keep the first k to finish")
    by: Literal["auto", "tokens", "arrival"] = "auto"
    default_template = "solve"

    async def run(self, q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
        prompt = q.ctx.prompt(self.tpl, question=q.question.question)
        if self.first is not None and self.first < self.n:
            by = self.by if self.by != "auto" else ("tokens" if q.ctx.backend_kind == "llamacpp" else "arrival")
            if by == "arrival":
                new = await self._first_by_arrival(q, prompt)
                return (pop + new) if self.accumulate else new
        [results] = await call_each(q, [call_item(self, prompt, role="generate", n=self.n)], grade=q.answer_of)
        new = [await q.grade(q.new(self.sid, "generated", r.text, calls=(r,))) for r in results]
        if self.first is not None and self.first < self.n:  # by completion tokens: the shortest finish first
            order = sorted(range(len(new)), key=lambda i: (new[i].completion_tokens, i))
            for rank, i in enumerate(order):
                new[i].meta["finish_rank"] = rank
            new = [new[i] for i in order[: self.first]]
        return (pop + new) if self.accumulate else new

    async def _first_by_arrival(self, q: QuestionState, prompt: object) -> list[Candidate]:
        prepared = prepare_all(q, [call_item(self, prompt, role="generate") for _ in range(self.n)])  # type: ignore[arg-type]
        tasks = {asyncio.ensure_future(q.caller.run(p, q.answer_of)): i for i, p in enumerate(prepared)}
        done_results: list[tuple[int, CallResult]] = []
        pending = set(tasks)
        assert self.first is not None
        try:
            while pending and len(done_results) < self.first:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for t in sorted(finished, key=lambda t: tasks[t]):
                    r = t.result()[0]
                    if not r.ok:
                        raise QuestionFailed(r.error or "call failed")
                    done_results.append((tasks[t], r))
        finally:
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                for t in pending:
                    q.caller.cancel(prepared[tasks[t]], f"cancelled: first-finish kept the first {self.first} of {self.n}")
        out = []
        for rank, (i, r) in enumerate(done_results[: self.first]):
            c = await q.grade(q.new(self.sid, "generated", r.text, calls=(r,), finish_rank=rank, launch_index=i))
            out.append(c)
        return out


def finished(full_text: str, added: str, finish_reason: str, has_stop: bool) -> bool:
    """Whether a continuation ended the solution (not just a step or the token cap)."""
    if finish_reason == "length":
        return False
    if not has_stop:
        return True
    return not added.strip() or final_answer(full_text)[0] is not None


class ExtendSpec(StepSpec):
    op: Literal["extend"] = "extend"
    n: int = Field(default=1, ge=1, le=256, description="continuations per candidate")
    stop: list[str] = Field(default_factory=list)
    all: bool = Field(default=False, description="also extend candidates that are complete")
    template: str | dict | None = None
    default_template = "solve"
    continues = True

    async def run(self, q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
        todo = [c for c in pop if self.all or not c.complete]
        keep = [c for c in pop if not (self.all or not c.complete)]
        params = self.params_with(stop=(*self.params.stop, *self.stop, *q.ctx.stops()))
        items = [call_item(self, q.ctx.continuation(self.tpl, c.text, question=q.question.question), role="extend",
                           parents=(c.id,), n=self.n, params=params) for c in todo]
        results = await call_each(q, items)
        out = list(keep)
        for c, group in zip(todo, results):
            for r in group:
                text = c.text + r.text
                child = q.new(self.sid, "extended", text, parents=(c.id,), calls=(r,),
                              complete=finished(text, r.text, r.finish_reason, bool(self.stop)))
                child.token_logprobs = c.token_logprobs + child.token_logprobs
                out.append(await q.grade(child))
        return out


class InjectSpec(StepSpec):
    op: Literal["inject"] = "inject"
    text: str = Field(min_length=1)
    to: Literal["all", "incomplete", "complete"] = "all"

    async def run(self, q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
        out = []
        for c in pop:
            if self.to == "all" or (self.to == "incomplete") != c.complete:
                child = q.new(self.sid, "injected", c.text + self.text, parents=(c.id,), complete=False)
                child.token_logprobs = c.token_logprobs
                out.append(child)
            else:
                out.append(c)
        return out


class CopySpec(StepSpec):
    op: Literal["copy"] = "copy"
    k: int = Field(ge=1, le=1024)

    async def run(self, q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
        return [q.copy(c, self.sid) for c in pop for _ in range(self.k)]
