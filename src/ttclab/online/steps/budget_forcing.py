"""budget_force: s1-style budget forcing through the completions API (works on every backend).

For each of ``n`` candidates: think (continue the solution, role ``think``) for at most ``budget``
tokens in total. When the model stops before the budget — at EOS or at one of ``think_stop`` (by
default the answer cue, i.e. it tries to conclude) — append ``wait`` and continue, up to
``num_ignore`` times. Then append ``answer_cue`` and decode the answer (role ``answer``, at most
``answer_tokens``, up to the end of the line). Every piece is a candidate in the lineage
(extended / injected); the last one is the complete solution. Candidates advance in lock-step
rounds, so calls are prepared in the same order on every run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ttclab.online.candidates import Candidate
from ttclab.online.state import QuestionState
from ttclab.online.steps.base import StepSpec, call_each, call_item


class BudgetForcingSpec(StepSpec):
    op: Literal["budget_force"] = "budget_force"
    n: int = Field(default=1, ge=1, le=256)
    budget: int = Field(default=256, ge=1, description="thinking tokens per candidate (the cap B)")
    num_ignore: int = Field(default=1, ge=0, description="times an early stop is replaced by `wait`")
    wait: str = "\nWait,"
    answer_cue: str = "\nAnswer:"
    think_stop: list[str] = Field(default_factory=lambda: ["Answer:"])
    answer_tokens: int = Field(default=16, ge=1)
    template: str | dict | None = None
    default_template = "solve"
    continues = True

    async def run(self, q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
        fmt_stops = q.ctx.stops()
        question = q.question.question
        root = q.new(self.sid, "root", "", complete=False)
        # state per candidate: [candidate, thinking tokens used, waits appended, thinking done]
        states: list[list] = []
        while True:
            todo = [s for s in states if not s[3]] if states else None
            if todo is not None and not todo:
                break
            if todo is None:  # first round: n samples of the same prompt in one request
                items = [call_item(self, q.ctx.continuation(self.tpl, "", question=question), role="think",
                                   parents=(root.id,), n=self.n,
                                   params=self.params_with(max_tokens=self.budget, stop=(*self.think_stop, *fmt_stops)))]
                [group] = await call_each(q, items)
                for r in group:
                    c = q.new(self.sid, "extended", r.text, parents=(root.id,), calls=(r,), complete=False)
                    states.append([c, r.completion_tokens, 0, False])
                    self._after_think(states[-1], r.finish_reason)
            else:
                items = [call_item(self, q.ctx.continuation(self.tpl, s[0].text, question=question), role="think",
                                   parents=(s[0].id,),
                                   params=self.params_with(max_tokens=self.budget - s[1],
                                                           stop=(*self.think_stop, *fmt_stops))) for s in todo]
                for s, [r] in zip(todo, await call_each(q, items)):
                    s[0] = q.new(self.sid, "extended", s[0].text + r.text, parents=(s[0].id,), calls=(r,), complete=False)
                    s[1] += r.completion_tokens
                    self._after_think(s, r.finish_reason)
            for s in states:  # append "Wait" to those that stopped early and may still think
                if not s[3] and s[0].meta.get("needs_wait"):
                    s[0] = q.new(self.sid, "injected", s[0].text + self.wait, parents=(s[0].id,), complete=False)
                    s[2] += 1
        cued = [q.new(self.sid, "injected", s[0].text + self.answer_cue, parents=(s[0].id,), complete=False,
                      thinking_tokens=s[1], waits=s[2]) for s in states]
        items = [call_item(self, q.ctx.continuation(self.tpl, c.text, question=question), role="answer",
                           parents=(c.id,), params=self.params_with(max_tokens=self.answer_tokens,
                                                                    stop=("\n", *fmt_stops))) for c in cued]
        out = []
        for c, [r] in zip(cued, await call_each(q, items)):
            final = q.new(self.sid, "extended", c.text + r.text, parents=(c.id,), calls=(r,), complete=True,
                          thinking_tokens=c.meta["thinking_tokens"], waits=c.meta["waits"])
            out.append(await q.grade(final))
        return out

    def _after_think(self, s: list, finish_reason: str) -> None:
        if finish_reason == "length" or s[1] >= self.budget:
            s[3] = True  # the cap: stop thinking, answer now
        elif s[2] < self.num_ignore:
            s[0].meta["needs_wait"] = True
        else:
            s[3] = True
