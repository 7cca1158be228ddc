"""beam_search and dvts: step-level search over partial solutions, built on extend + score.

A step is the text up to ``delimiter`` (default a blank line), written by continuing the partial
solution through the completions API (role ``step``). Each new step is scored by ``scorer`` (any
``score`` method: a PRM behind ``reward_model`` when configured, otherwise ``self_eval`` of the
partial solution); a path's score aggregates its step scores (``last``, ``min`` or ``product``). A
path is finished when its last step states a final answer, the model stops without writing a
step, or ``depth`` steps were taken.

* ``beam_search`` — ``beam_width`` paths are kept; each is expanded into ``expansion`` children; the
  best ``beam_width`` unfinished children continue; finished paths are set aside until
  ``beam_width`` have finished.
* ``dvts`` (diverse verifier tree search) — ``n / beam_width`` independent subtrees; each keeps one
  path and expands it into ``beam_width`` children, continuing with its best child.

The step returns the finished paths (and unfinished ones cut at ``depth``), best aggregate score
first, each candidate's ``score`` set to its aggregate — follow it with ``select: {by: score}`` or a
(weighted) vote.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from ttclab.online.candidates import Candidate
from ttclab.online.state import QuestionState
from ttclab.online.steps.base import BindContext, StepSpec, call_each, call_item
from ttclab.online.steps.generate import finished
from ttclab.online.steps.score import ScoreSpec


def aggregate(scores: list[float | None], how: str) -> float | None:
    """A path's score from its step scores (None when a step is unscored)."""
    if not scores or any(s is None for s in scores):
        return None
    vals = [float(s) for s in scores if s is not None]
    if how == "last":
        return vals[-1]
    if how == "min":
        return min(vals)
    return float(math.prod(vals))


def _rank_key(c: Candidate) -> tuple[bool, float]:
    return (c.score is None, -(c.score if c.score is not None else 0.0))


class _SearchSpec(StepSpec):
    beam_width: int = Field(default=2, ge=1, le=256)
    depth: int = Field(default=4, ge=1, le=256)
    delimiter: str = "\n\n"
    scorer: ScoreSpec = Field(default_factory=lambda: ScoreSpec(by="self_eval", partial=True))
    aggregate: Literal["last", "min", "product"] = "last"
    template: str | dict | None = None
    default_template = "solve"
    continues = True

    def bind(self, path: str, ctx: BindContext) -> None:
        super().bind(path, ctx)
        scorer_ctx = BindContext({k: v for k, v in ctx.sampling.items() if k != "max_tokens"} | {"max_tokens": 16},
                                 ctx.templates, ctx.base_dir, f"{ctx.where}: scorer")
        self.scorer.bind(f"{self.sid}.scorer", scorer_ctx)

    def children(self) -> list[StepSpec]:
        return [self.scorer]

    async def _expand(self, q: QuestionState, beams: list[Candidate], width: int, depth: int) -> list[list[Candidate]]:
        """``width`` scored children for each beam (beams with the same text share one request)."""
        params = self.params_with(stop=(*self.params.stop, self.delimiter, *q.ctx.stops()))
        items = [call_item(self, q.ctx.continuation(self.tpl, b.text, question=q.question.question), role="step",
                           parents=(b.id,), n=width, params=params) for b in beams]
        groups = await call_each(q, items)
        out: list[list[Candidate]] = []
        flat: list[Candidate] = []
        for b, group in zip(beams, groups):
            kids = []
            for r in group:
                done = finished(b.text + r.text, r.text, r.finish_reason, True)
                text = b.text + r.text + ("" if done or r.finish_reason == "length" else self.delimiter)
                child = q.new(self.sid, "step", text, parents=(b.id,), calls=(r,), complete=done, depth=depth + 1)
                child.meta["step_scores"] = list(b.meta.get("step_scores", []))
                kids.append(await q.grade(child))
            out.append(kids)
            flat += kids
        for c, s in zip(flat, await self.scorer.score_many(q, flat)):
            c.meta["step_scores"].append(s)
            c.score = aggregate(c.meta["step_scores"], self.aggregate)
        return out

    def _root(self, q: QuestionState) -> Candidate:
        return q.new(self.sid, "root", "", complete=False, depth=0)


class BeamSearchSpec(_SearchSpec):
    op: Literal["beam_search"] = "beam_search"
    expansion: int = Field(default=2, ge=1, le=256, description="children per kept path")

    async def run(self, q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
        done: list[Candidate] = []
        active = [self._root(q)]
        for depth in range(self.depth):
            width = self.beam_width * self.expansion if depth == 0 else self.expansion
            children = [c for kids in await self._expand(q, active, width, depth) for c in kids]
            last = depth == self.depth - 1
            done += [c for c in children if c.complete or last]
            active = sorted((c for c in children if not c.complete and not last), key=_rank_key)[: self.beam_width]
            if len(done) >= self.beam_width or not active:
                break
        return sorted(done, key=_rank_key)


class DVTSSpec(_SearchSpec):
    op: Literal["dvts"] = "dvts"
    n: int = Field(default=4, ge=1, le=4096, description="paths expanded per depth (subtrees x beam_width)")

    @model_validator(mode="after")
    def _divisible(self) -> DVTSSpec:
        if self.n % self.beam_width:
            raise ValueError(f"n ({self.n}) must be a multiple of beam_width ({self.beam_width})")
        return self

    async def run(self, q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
        subtrees = self.n // self.beam_width
        root = self._root(q)
        [first] = await self._expand(q, [root], subtrees, 0)  # one first step per subtree
        active: list[Candidate] = []
        done: list[Candidate] = []
        for c in first:
            (done if c.complete or self.depth == 1 else active).append(c)
        for depth in range(1, self.depth):
            if not active:
                break
            last = depth == self.depth - 1
            groups = await self._expand(q, active, self.beam_width, depth)
            active = []
            for kids in groups:
                best = sorted(kids, key=_rank_key)[0]
                (done if best.complete or last else active).append(best)
        return sorted(done, key=_rank_key)
