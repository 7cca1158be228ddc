"""deepconf: DeepConf-online (Fu et al. 2025) — confidence-filtered traces with early stopping.

1. ``warmup`` traces are generated in full with token log-probs; each trace's confidence is its
   lowest sliding-window mean log-prob (``window`` tokens, :func:`ttclab.online.stopping.trace_confidence`).
2. The stop threshold is the ``1 - keep`` quantile of the warm-up confidences (``keep: 0.9`` keeps
   the top 90%: DeepConf-high; ``keep: 0.1``: DeepConf-low).
3. ``traces`` further traces are generated ``chunk`` tokens at a time (continuing through the
   completions API); a trace stops as soon as one of its full windows falls below the threshold,
   and stopped traces do not vote.
4. The step returns the warm-up traces at or above the threshold and the traces that finished,
   each scored with ``exp(confidence)`` (a positive vote weight); follow it with
   ``select: {by: vote, weighted: true}``.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from ttclab.online.candidates import Candidate
from ttclab.online.state import QuestionState
from ttclab.online.steps.base import StepSpec, call_each, call_item
from ttclab.online.stopping import first_window_below, trace_confidence


class DeepConfSpec(StepSpec):
    op: Literal["deepconf"] = "deepconf"
    warmup: int = Field(default=4, ge=1, le=1024)
    traces: int = Field(default=4, ge=0, le=4096)
    keep: float = Field(default=0.9, gt=0.0, le=1.0)
    window: int = Field(default=16, ge=1)
    chunk: int = Field(default=16, ge=1, description="tokens per continuation call of an online trace")
    template: str | dict | None = None
    default_template = "solve"
    continues = True

    async def run(self, q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
        question = q.question.question
        stops = q.ctx.stops()
        prompt = q.ctx.continuation(self.tpl, "", question=question)
        params = self.params_with(logprobs=True, stop=(*self.params.stop, *stops))
        [warm] = await call_each(q, [call_item(self, prompt, role="warmup", n=self.warmup, params=params)],
                                 grade=q.answer_of)
        kept: list[Candidate] = []
        confs = []
        for r in warm:
            c = await q.grade(q.new(self.sid, "generated", r.text, calls=(r,)))
            conf = trace_confidence(c.token_logprobs, self.window)
            confs.append(conf)
            c.meta["confidence"] = conf
            q.judge(self.sid, "score", "confidence", [c.id], value=None if math.isnan(conf) else conf,
                    chosen=c.id, parsed=not math.isnan(conf), calls=(r,))
            kept.append(c)
        valid = [x for x in confs if not math.isnan(x)]
        threshold = float(np.quantile(valid, 1.0 - self.keep)) if valid else -math.inf
        q.note(f"{self.sid}: confidence threshold {threshold:.4g} from {len(valid)} warm-up traces")
        q.judge(self.sid, "threshold", "confidence", [c.id for c in kept], value=threshold if valid else None,
                parsed=bool(valid))
        kept = [c for c in kept if not math.isnan(c.meta["confidence"]) and c.meta["confidence"] >= threshold]

        root = q.new(self.sid, "root", "", complete=False)
        budget = self.params.max_tokens
        live: list[Candidate] = []
        stopped = 0
        if self.traces:
            first = self.params_with(logprobs=True, max_tokens=min(self.chunk, budget), stop=(*self.params.stop, *stops))
            [group] = await call_each(q, [call_item(self, prompt, role="trace", parents=(root.id,), n=self.traces,
                                                    params=first)])
            live = [q.new(self.sid, "extended", r.text, parents=(root.id,), calls=(r,), complete=r.finish_reason != "length",
                          used=r.completion_tokens) for r in group]
        finished: list[Candidate] = []
        while live:
            nxt: list[Candidate] = []
            for c in live:
                if first_window_below(c.token_logprobs, self.window, threshold) is not None:
                    c.meta["stopped_early"] = True
                    stopped += 1
                elif c.complete or c.meta["used"] >= budget:
                    finished.append(c)
                else:
                    nxt.append(c)
            if not nxt:
                break
            items = [call_item(self, q.ctx.continuation(self.tpl, c.text, question=question), role="trace",
                               parents=(c.id,), params=self.params_with(
                                   logprobs=True, max_tokens=min(self.chunk, budget - c.meta["used"]),
                                   stop=(*self.params.stop, *stops))) for c in nxt]
            live = []
            for c, [r] in zip(nxt, await call_each(q, items)):
                child = q.new(self.sid, "extended", c.text + r.text, parents=(c.id,), calls=(r,),
                              complete=r.finish_reason != "length", used=c.meta["used"] + r.completion_tokens)
                child.token_logprobs = c.token_logprobs + child.token_logprobs
                live.append(child)
        for c in finished:
            await q.grade(c)
            conf = trace_confidence(c.token_logprobs, self.window)
            c.meta["confidence"] = conf
            q.judge(self.sid, "score", "confidence", [c.id], value=None if math.isnan(conf) else conf, chosen=c.id,
                    parsed=not math.isnan(conf))
        q.note(f"{self.sid}: {stopped} of {self.traces} online traces stopped early")
        out = kept + [c for c in finished if not math.isnan(c.meta["confidence"])]
        for c in out:
            c.score = math.exp(c.meta["confidence"])
        return out
