"""repeat / until: loops with stop rules.

``repeat`` runs its ``steps`` up to ``times`` times. After each round it checks ``until``:

* ``consensus: {rule: beta, threshold: 0.95}`` — adaptive consistency on the population's answers
  (the Beta rule); ``{rule: window, size: 3}`` — the last ``size`` answers agree;
* ``confidence: {threshold: X}`` — the best candidate score reaches X;
* ``budget: {calls, tokens, total_tokens, usd}`` — limits counted from the start of the loop; every
  call inside is capped to what is left (never exceeded) and the loop ends when the next call
  does not fit. A round cut short by the budget is dropped (its calls are stored and counted).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ttclab.online.budget import BudgetExhausted, Limit
from ttclab.online.candidates import Candidate
from ttclab.online.state import QuestionState
from ttclab.online.steps.base import StepSpec
from ttclab.online.stopping import beta_consensus, window_consensus


class BudgetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calls: int | None = Field(default=None, ge=1)
    tokens: int | None = Field(default=None, ge=1, description="completion tokens")
    total_tokens: int | None = Field(default=None, ge=1, description="prompt + completion tokens")
    usd: float | None = Field(default=None, gt=0)

    def limit(self) -> Limit:
        return Limit(calls=self.calls, tokens=self.tokens, total_tokens=self.total_tokens, usd=self.usd)


class ConsensusSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: Literal["beta", "window"] = "beta"
    threshold: float = Field(default=0.95, gt=0.5, lt=1.0)
    size: int = Field(default=3, ge=2)

    def reached(self, answers: list[str | None]) -> bool:
        if self.rule == "beta":
            return beta_consensus(answers, self.threshold)
        return window_consensus(answers, self.size)


class ConfidenceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float


class UntilSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    budget: BudgetSpec | None = None
    consensus: ConsensusSpec | None = None
    confidence: ConfidenceSpec | None = None


class RepeatSpec(StepSpec):
    op: Literal["repeat"] = "repeat"
    times: int = Field(ge=1, le=10_000)
    steps: list[Any] = Field(min_length=1)  # StepSpec union, validated by the pipeline compiler
    until: UntilSpec | None = None

    def children(self) -> list[StepSpec]:
        return list(self.steps)

    async def run(self, q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
        from ttclab.online.program import run_steps

        until = self.until or UntilSpec()
        if until.budget is not None:
            q.budget.push(until.budget.limit())
        try:
            for round_ in range(self.times):
                before = pop
                try:
                    pop = await run_steps(self.steps, q, pop)
                except BudgetExhausted as exc:
                    if until.budget is None:
                        raise
                    q.note(f"{self.sid}: budget reached in round {round_ + 1} ({exc.what}); round dropped")
                    return before
                if until.consensus is not None and until.consensus.reached([c.answer for c in pop]):
                    q.note(f"{self.sid}: consensus after round {round_ + 1}")
                    return pop
                if until.confidence is not None:
                    scores = [c.score for c in pop if c.score is not None]
                    if scores and max(scores) >= until.confidence.threshold:
                        q.note(f"{self.sid}: confidence {max(scores):.3g} after round {round_ + 1}")
                        return pop
                if until.budget is not None and q.budget.exhausted():
                    q.note(f"{self.sid}: budget spent after round {round_ + 1}")
                    return pop
            return pop
        finally:
            if until.budget is not None:
                q.budget.pop()
