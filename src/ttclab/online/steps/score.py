"""score: a number per candidate, stored as a judgment (re-usable offline) and on the candidate.

* ``llm_rubric`` — the model grades the solution 0-10 (template ``score_rubric``); the grade is
  parsed from ``Score: X`` or the first number 0-10; an unparsed reply scores None.
* ``self_eval`` — P("Yes") to "is this solution correct?" (template ``self_eval``; ``step_eval``
  for partial solutions in search) from the log-prob of the first generated token (greedy, one
  token). The backends report the sampled token's log-prob only, so P(Yes) = p when the token is
  Yes and 1 - p when it is No (exact when the two carry all the mass); any other token scores None.
* ``confidence`` — DeepConf trace confidence: the lowest mean token log-prob over a sliding window
  of ``window`` tokens (needs candidates generated with ``logprobs: true``; no call).
* ``reward_model`` — POST to a reward model behind an OpenAI-compatible server (``reward.url``,
  e.g. vLLM's ``/pooling``), the number read at ``reward.field`` (a dotted path; a list of step
  scores is reduced by ``reward.reduce``: last / min / mean / product). Role ``reward``.
* ``oracle`` — 1 if the answer is correct, else 0 (ground truth: the run is labelled oracle).
"""

from __future__ import annotations

import asyncio
import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ttclab.online.calls import CallResult
from ttclab.online.candidates import Candidate
from ttclab.online.state import QuestionState
from ttclab.online.steps.base import QuestionFailed, StepSpec, call_each, call_item, truncate
from ttclab.online.stopping import trace_confidence

_SCORE = re.compile(r"score\s*[:=]?\s*(\d+(?:\.\d+)?)", re.I)
_NUMBER = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)")

ScoreMethod = Literal["llm_rubric", "self_eval", "confidence", "reward_model", "oracle"]


class RewardModelSpec(BaseModel):
    """A reward model behind an HTTP endpoint (OpenAI-compatible servers: vLLM ``/pooling``, ``/classify``)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, description="full URL, e.g. http://127.0.0.1:8001/pooling")
    model: str = Field(min_length=1)
    field: str = Field(default="data.0.data", description="dotted path of the score in the JSON response")
    input: Literal["chat", "text"] = "chat"
    reduce: Literal["last", "min", "mean", "product"] = "last"

    def body(self, question: str, solution: str) -> dict:
        if self.input == "chat":
            return {"model": self.model, "messages": [{"role": "user", "content": question},
                                                      {"role": "assistant", "content": solution}]}
        return {"model": self.model, "input": f"{question}\n\n{solution}"}


def parse_grade(text: str, high: float = 10.0) -> float | None:
    """A 0..high grade from a judge's reply (``Score: 7``, ``7/10``, ``7``); None when absent."""
    m = _SCORE.search(text or "")
    candidates = [m.group(1)] if m else _NUMBER.findall(text or "")
    for raw in candidates:
        value = float(raw)
        if 0.0 <= value <= high:
            return value
    return None


def p_yes(text: str, logprobs: tuple[float, ...] | None) -> float | None:
    """P("Yes") from the first token and its log-prob (see the module doc); None when neither."""
    word = (text or "").strip().lower()
    if not logprobs:
        return None
    p = math.exp(float(logprobs[0]))
    if word.startswith("yes"):
        return p
    if word.startswith("no"):
        return 1.0 - p
    return None


class ScoreSpec(StepSpec):
    op: Literal["score"] = "score"
    by: ScoreMethod = "llm_rubric"
    template: str | dict | None = None
    window: int = Field(default=16, ge=1, description="confidence: sliding-window size in tokens")
    reward: RewardModelSpec | None = None
    partial: bool = Field(default=False, description="self_eval of partial solutions (search steps)")
    max_chars: int = Field(default=4000, ge=100)

    def template_default(self) -> str | None:
        if self.by == "llm_rubric":
            return "score_rubric"
        if self.by == "self_eval":
            return "step_eval" if self.partial else "self_eval"
        return None

    @property
    def default_sampling(self) -> dict:  # type: ignore[override]
        if self.by == "self_eval":
            return {"temperature": 0.0, "max_tokens": 1, "logprobs": True}
        return {"temperature": 0.0, "max_tokens": 16}

    def uses_oracle(self) -> bool:
        return self.by == "oracle"

    @model_validator(mode="after")
    def _reward_given(self) -> ScoreSpec:
        if self.by == "reward_model" and self.reward is None:
            raise ValueError("by: reward_model needs reward: {url: ..., model: ...}")
        return self

    async def run(self, q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
        for c, value in zip(pop, await self.score_many(q, pop)):
            c.score = value
        return pop

    async def score_many(self, q: QuestionState, cands: list[Candidate]) -> list[float | None]:
        """Score each candidate, store one judgment per candidate, return the scores (None: unparsed)."""
        method = self.by
        values: list[float | None] = []
        calls: list[tuple[CallResult, ...]] = [()] * len(cands)
        if method in ("llm_rubric", "self_eval"):
            items = [call_item(self, q.ctx.prompt(self.tpl, question=q.question.question,
                                                  solution=truncate(c.text, self.max_chars)),
                               role="scorer", parents=(c.id,)) for c in cands]
            results = await call_each(q, items)
            for i, [res] in enumerate(results):
                calls[i] = (res,)
                values.append(parse_grade(res.text) if method == "llm_rubric" else p_yes(res.text, res.token_logprobs))
        elif method == "confidence":
            for c in cands:
                v = trace_confidence(c.token_logprobs, self.window)
                values.append(None if math.isnan(v) else v)
        elif method == "oracle":
            for c in cands:
                if c.verdict is None:
                    await q.grade(c)
                values.append(1.0 if c.correct else 0.0)
        else:
            assert self.reward is not None
            prepared = [q.caller.prepare_reward(q, endpoint=self.reward.url, model=self.reward.model,
                                                body=self.reward.body(q.question.question, c.text), step_id=self.sid,
                                                parents=(c.id,)) for c in cands]
            rewards = await asyncio.gather(*(q.caller.run_reward(p, self.reward.field, self.reward.reduce)
                                             for p in prepared))
            for i, reward in enumerate(rewards):
                if not reward.ok:
                    raise QuestionFailed(reward.error or "reward model call failed")
                calls[i] = (reward,)
                values.append(reward.value)
        for c, value, cs in zip(cands, values, calls):
            q.judge(self.sid, "score", method, [c.id], value=value, chosen=c.id, parsed=value is not None, calls=cs)
        return values
