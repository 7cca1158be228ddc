"""select and fuse: aggregation of a population.

``select`` keeps ``k`` candidates:

* ``vote`` — the plurality of the verifier's canonical answers (``weighted: true`` weighs each
  vote by the candidate's score, e.g. DeepConf confidence); ties broken by the question's seeded
  RNG; unparseable answers never vote.
* ``score`` — the highest scores of an earlier ``score`` step (unscored candidates last).
* ``llm_pick`` — the judge sees the candidates in a seeded random order and names one (template
  ``pick``); the index is parsed from ``Best: N``, ``Solution N`` or the first number in range; an
  unparsed reply falls back to the candidate shown first (a seeded random choice) and is recorded
  as unparsed, with the position shown. ``subsets: [2, 4]`` also asks the judge about seeded
  random subsets of those sizes (role ``judge_eval``) so the offline engine has picks at every n.
* ``pairwise`` — a tournament: every pair (round robin) or ``opponents`` random opponents per
  candidate, each comparison shown in a seeded random order (template ``pairwise``); most wins
  first, ties broken by the seeded RNG.

``fuse`` writes ``n`` new candidates from the whole population (template ``fuse``; role ``fuser``;
generate-1-from-n), the candidates shown in a seeded random order.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from ttclab.online.candidates import Candidate
from ttclab.online.state import QuestionState
from ttclab.online.steps.base import StepSpec, call_each, call_item, numbered, truncate
from ttclab.online.stopping import plurality

_BEST = re.compile(r"best\s*(?:solution)?\s*(?:is)?\s*[:#=]?\s*(?:solution\s*)?#?\s*(\d+)", re.I)
_SOLUTION = re.compile(r"solution\s*#?\s*(\d+)", re.I)
_INT = re.compile(r"(?<![\d.])(\d+)(?![\d.])")
_LETTER = re.compile(r"(?:^|\b(?:solution|answer|option|choice)\s*:?\s*|^\W*)([AB])\b", re.I)


def parse_index(text: str, n: int) -> int | None:
    """0-based index of the chosen solution (1..n in the reply); None when no valid number is found."""
    for pattern in (_BEST, _SOLUTION, _INT):
        for m in pattern.finditer(text or ""):
            value = int(m.group(1))
            if 1 <= value <= n:
                return value - 1
    return None


def parse_letter(text: str) -> int | None:
    """0 for A, 1 for B (``A``, ``Solution B``, ``**B**``, ``Answer: A``); None when neither or both."""
    text = (text or "").strip()
    m = _LETTER.search(text)
    if m:
        return "AB".index(m.group(1).upper())
    found = set(re.findall(r"\b([AB])\b", text))
    if len(found) == 1:
        return "AB".index(found.pop())
    return None


def vote_winners(q: QuestionState, pop: list[Candidate], weighted: bool = False) -> list[Candidate]:
    """The candidates carrying the plurality answer (ties broken by the question's RNG); [] when none is valid."""
    weights = [c.score if c.score is not None else float("nan") for c in pop] if weighted else None
    leaders = plurality([c.answer for c in pop], weights)
    if not leaders:
        return []
    winner = leaders[int(q.rng.integers(len(leaders)))] if len(leaders) > 1 else leaders[0]
    chosen = [c for c in pop if c.answer == winner]
    if weighted:
        chosen.sort(key=lambda c: -(c.score or 0.0))
    return chosen


class SelectSpec(StepSpec):
    op: Literal["select"] = "select"
    by: Literal["vote", "score", "llm_pick", "pairwise"] = "vote"
    k: int = Field(default=1, ge=1)
    weighted: bool = False
    opponents: int | None = Field(default=None, ge=1, description="pairwise: random opponents per candidate")
    subsets: list[int] = Field(default_factory=list, description="llm_pick: extra picks over subsets of these sizes")
    max_chars: int = Field(default=1200, ge=100, description="solution text shown to the judge")
    template: str | dict | None = None
    default_sampling = {"temperature": 0.0, "max_tokens": 16}

    @model_validator(mode="after")
    def _consistent(self) -> SelectSpec:
        if self.by == "llm_pick" and self.k != 1:
            raise ValueError("by: llm_pick keeps one candidate; remove k or use by: score / pairwise")
        if any(s < 2 for s in self.subsets):
            raise ValueError("subsets: sizes must be at least 2")
        return self

    def template_default(self) -> str | None:
        return {"llm_pick": "pick", "pairwise": "pairwise"}.get(self.by)

    async def run(self, q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
        if len(pop) <= self.k:
            return pop
        if self.by == "vote":
            return self._vote(q, pop)
        if self.by == "score":
            order = sorted(range(len(pop)), key=lambda i: (pop[i].score is None, -(pop[i].score or 0.0), i))
            return [pop[i] for i in order[: self.k]]
        if self.by == "llm_pick":
            return [await self._pick(q, pop)]
        return await self._pairwise(q, pop)

    def _vote(self, q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
        chosen = vote_winners(q, pop, self.weighted)
        if not chosen:  # no valid answer: the vote abstains
            q.judge(self.sid, "vote", "vote", [c.id for c in pop], parsed=False)
            return pop[: self.k]
        q.judge(self.sid, "vote", "weighted_vote" if self.weighted else "vote", [c.id for c in pop],
                value=len(chosen) / len(pop), chosen=chosen[0].id)
        return chosen[: self.k]

    async def _pick(self, q: QuestionState, pop: list[Candidate]) -> Candidate:
        sets = [("pick", "judge", [pop[i] for i in q.rng.permutation(len(pop))])]
        for size in self.subsets:
            if size < len(pop):
                members = q.rng.choice(len(pop), size=size, replace=False)
                sets.append(("pick_eval", "judge_eval", [pop[i] for i in members]))
        items = [call_item(self, q.ctx.prompt(self.tpl, question=q.question.question, n=len(shown),
                                              candidates=numbered(shown, self.max_chars)),
                           role=role, parents=[c.id for c in shown]) for _, role, shown in sets]
        results = await call_each(q, items)
        picked = pop[0]
        for (kind, _, shown), [r] in zip(sets, results):
            idx = parse_index(r.text, len(shown))
            choice = shown[idx if idx is not None else 0]
            q.judge(self.sid, kind, "llm_pick", [c.id for c in shown], chosen=choice.id,
                    position=idx if idx is not None else 0, parsed=idx is not None, calls=(r,))
            if kind == "pick":
                picked = choice
        return picked

    async def _pairwise(self, q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
        n = len(pop)
        if self.opponents is None or self.opponents >= n - 1:
            pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        else:
            chosen: set[tuple[int, int]] = set()
            for i in range(n):
                others = [j for j in range(n) if j != i]
                for j in q.rng.choice(others, size=self.opponents, replace=False):
                    chosen.add((min(i, int(j)), max(i, int(j))))
            pairs = sorted(chosen)
        shown = [(i, j) if q.rng.random() < 0.5 else (j, i) for i, j in pairs]
        items = [call_item(self, q.ctx.prompt(self.tpl, question=q.question.question,
                                              solution_a=truncate(pop[a].text, self.max_chars),
                                              solution_b=truncate(pop[b].text, self.max_chars)),
                           role="judge", parents=(pop[a].id, pop[b].id)) for a, b in shown]
        wins = [0] * n
        for (a, b), [r] in zip(shown, await call_each(q, items)):
            letter = parse_letter(r.text)
            winner = None if letter is None else (a, b)[letter]
            if winner is not None:
                wins[winner] += 1
            q.judge(self.sid, "pairwise", "llm_pairwise", [pop[a].id, pop[b].id],
                    value=None if letter is None else float(letter == 0),
                    chosen=pop[winner].id if winner is not None else None,
                    position=letter, parsed=letter is not None, calls=(r,))
        tiebreak = q.rng.permutation(n)
        order = sorted(range(n), key=lambda i: (-wins[i], int(tiebreak[i])))
        for i in range(n):
            pop[i].meta["wins"] = wins[i]
        return [pop[i] for i in order[: self.k]]


class FuseSpec(StepSpec):
    op: Literal["fuse"] = "fuse"
    n: int = Field(default=1, ge=1)
    max_chars: int = Field(default=1200, ge=100)
    template: str | dict | None = None
    default_template = "fuse"

    async def run(self, q: QuestionState, pop: list[Candidate]) -> list[Candidate]:
        if not pop:
            return pop
        shown = [pop[i] for i in q.rng.permutation(len(pop))]
        prompt = q.ctx.prompt(self.tpl, question=q.question.question, n=len(shown),
                              candidates=numbered(shown, self.max_chars))
        [results] = await call_each(q, [call_item(self, prompt, role="fuser", parents=[c.id for c in shown], n=self.n)],
                                    grade=q.answer_of)
        parents = tuple(c.id for c in pop)
        return [await q.grade(q.new(self.sid, "fused", r.text, parents=parents, calls=(r,))) for r in results]
