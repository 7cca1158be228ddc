"""critique and revise: reflection.

``critique`` gives each candidate feedback:

* ``self`` — the model reviews the solution (template ``critique_self``; role ``critic``);
* ``none`` — no feedback, only a request to reconsider (template ``feedback_none``, no call);
* ``oracle`` — whether the answer is right, from the ground truth (template ``feedback_oracle``,
  no call; the run is labelled oracle and never chosen as compute-optimal);
* ``execution`` — the candidate program run on the task's sample tests in the sandbox (template
  ``feedback_execution``): passed/total and the first failure's error type, input, expected and
  actual output, truncated.

``revise`` writes a new candidate from each candidate and its feedback (template ``revise``; role
``reviser``); the new candidate's parent is the old one.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import Field

from ttclab.online.candidates import Candidate
from ttclab.online.state import QuestionState
from ttclab.online.steps.base import StepSpec, call_each, call_item, truncate
from ttclab.online.templates import builtin_template

_FEEDBACK_TEMPLATES = {"self": "critique_self", "none": "feedback_none", "oracle": "feedback_oracle",
                       "execution": "feedback_execution"}


class CritiqueSpec(StepSpec):
    op: Literal["critique"] = "critique"
    kind: Literal["self", "none", "oracle", "execution"] = "self"
    template: str | dict | None = None
    max_chars: int = Field(default=4000, ge=100, description="solution text shown to the critic")
    feedback_chars: int = Field(default=1200, ge=100, description="execution feedback kept")

    def template_default(self) -> str | None:
        return _FEEDBACK_TEMPLATES[self.kind]

    def uses_oracle(self) -> bool:
        return self.kind == "oracle"

    async def run(self, q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
        if self.kind == "self":
            items = [call_item(self, q.ctx.prompt(self.tpl, question=q.question.question,
                                                  solution=truncate(c.text, self.max_chars)),
                               role="critic", parents=(c.id,)) for c in pop]
            for c, [r] in zip(pop, await call_each(q, items)):
                c.feedback = r.text
                c.meta.setdefault("critique_calls", []).append(r.call_id)
        elif self.kind == "none":
            for c in pop:
                c.feedback = self.tpl.text()
        elif self.kind == "oracle":
            for c in pop:
                if c.verdict is None:
                    await q.grade(c)
                c.feedback = self.tpl.text(answer=c.answer if c.answer is not None else "(none found)",
                                           verdict=c.verdict or "unparseable")
        else:
            from ttclab.online.execution import execution_feedback

            reports = await asyncio.gather(*(execution_feedback(q.question, c.text) for c in pop))
            for c, report in zip(pop, reports):
                c.feedback = self.tpl.text(report=truncate(report, self.feedback_chars))
        return pop


class ReviseSpec(StepSpec):
    op: Literal["revise"] = "revise"
    template: str | dict | None = None
    max_chars: int = Field(default=4000, ge=100)
    default_template = "revise"

    async def run(self, q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
        none = builtin_template("feedback_none").text()
        items = [call_item(self, q.ctx.prompt(self.tpl, question=q.question.question,
                                              solution=truncate(c.text, self.max_chars),
                                              feedback=c.feedback if c.feedback is not None else none),
                           role="reviser", parents=(c.id,)) for c in pop]
        out = []
        for c, [r] in zip(pop, await call_each(q, items, grade=q.answer_of)):
            out.append(await q.grade(q.new(self.sid, "revised", r.text, parents=(c.id,), calls=(r,))))
        return out

