"""The agent variant of the search: an LLM turns results into the next distribution or candidates.

Each round the proposer sends the model (any configured backend) the space (dimensions and their
choices), the current distribution and a textual summary of the evaluated candidates (scores,
costs, examples of failures), and asks for one JSON object in this schema::

    {"candidates": [{"<dimension>": <choice>, ...}, ...]}      # concrete candidates, and/or
    {"distribution": {"<dimension>": {"<choice>": <prob>, ...}}}  # the next sampling distribution

With ``code=True`` (controller search) the model may also propose controllers as Python source,
``{"controllers": [{"name": ..., "betas": [...], "code": "def decide(observation): ..."}]}``
(:mod:`ttclab.search.code_controller`: run only inside the sandbox); each is validated (a string
that parses, defines ``decide``, within the size limit; betas a short list of numbers) and passed
to ``on_code`` when accepted.

Candidates may leave dimensions out (they are drawn from the current distribution). Everything is
validated: a reply that is not JSON, names unknown dimensions or choices, gives negative or
all-zero probabilities, or code that does not qualify is rejected with a reason (``rejected``, counted and stored in the log), and
the round falls back to the current distribution, so the search always continues. The replies are
logged (``agent.jsonl``) and replayed on a re-run with the same prompt, so a resumed search asks
the model nothing it asked before.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ttclab.config import ModelSpec
from ttclab.search.code_controller import MAX_SOURCE_CHARS, CodeController, code_controller
from ttclab.search.methods import Candidate, Distribution, Method, Space

SYSTEM = ("You are a research assistant optimising {what} under a compute budget. Reply with ONE JSON object and "
          "nothing else.")
USER = """Search space (dimension: allowed choices):
{space}

Current sampling distribution (top choices):
{dist}

Results so far:
{summary}

Propose the next {batch} candidates to evaluate, and optionally a new sampling distribution. Reply with JSON:
{{"candidates": [{{"<dimension>": <choice>, ...}}], "distribution": {{"<dimension>": {{"<choice>": <probability>}}}}}}
Dimensions you leave out are sampled from the current distribution."""
CODE = """

You may also propose controllers as Python code, run in a sandbox (no network, no files, {decision_s:g} s per
decision): a module defining decide(observation) -> action, swept over the betas you give. Add to the JSON:
{{"controllers": [{{"name": "<short name>", "betas": [<numbers>], "code": "<Python source>"}}]}}
The observation: {{"beta", "every" (tokens per segment), "n_traces", "started", "left", "tokens", "budget_left",
"decision", "traces": [{{"id", "state" (running/finished/pruned), "tokens", "probes" (answers of its probes so
far), "confidence", "final" (its answer once finished)}}]}}. Answers are integer codes. Actions: "BRANCH",
["CONTINUE", id], ["FINISH", id], ["PROBE", id], ["PRUNE", id], ["ANSWER", code or list of tied codes] (codes you
have seen, or -1). At most {max_chars} characters of code."""


def parse_json_object(text: str) -> Any:
    """The first JSON object in a reply (fenced or bare); ValueError when there is none."""
    m = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", text, re.S)
    body = m.group(1) if m else None
    if body is None:
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise ValueError("the reply has no JSON object")
        body = text[start:end + 1]
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the reply is not valid JSON ({exc.msg} at character {exc.pos})") from None


def _coerce(dim_choices: Sequence[Any], value: Any) -> Any:
    for c in dim_choices:
        if value == c or str(value) == str(c):
            return c
    return value


class AgentProposer(Method):
    name = "agent"

    def __init__(self, space: Space, model: ModelSpec | dict[str, Any], *, max_tokens: int = 256,
                 temperature: float = 0.7, log_path: str | Path | None = None, what: str = "test-time strategies",
                 backend: Any = None, code: bool = False, decision_s: float = 1.0, **kw: Any) -> None:
        super().__init__(space, **kw)
        self.code = code
        self.decision_s = decision_s
        #: accepted code proposals, in order; ``on_code`` is called with each as it is accepted
        self.code_proposals: list[CodeController] = []
        self.on_code: Callable[[CodeController], None] | None = None
        self.model = model if isinstance(model, ModelSpec) else ModelSpec.model_validate(model)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.what = what
        self.summary: Callable[[], str] = lambda: "(nothing evaluated yet)"
        self.log_path = Path(log_path) if log_path else None
        self.replies: dict[str, str] = {}
        if self.log_path is not None and self.log_path.exists():
            for line in self.log_path.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    self.replies[rec["prompt_hash"]] = rec["reply"]
        self._backend = backend
        self._own_backend = backend is None
        self.rounds = 0
        self.accepted = 0

    # -- the model ---------------------------------------------------------------------------
    def _messages(self) -> tuple[dict[str, str], ...]:
        space = "\n".join(f"- {d.name}: {json.dumps(list(d.choices), default=str)}" for d in self.space.dims)
        user = USER.format(space=space, dist=json.dumps(self.dist.describe()), summary=self.summary(), batch=self.batch)
        if self.code:
            user += CODE.format(decision_s=self.decision_s, max_chars=MAX_SOURCE_CHARS)
        return ({"role": "system", "content": SYSTEM.format(what=self.what)}, {"role": "user", "content": user})

    def _ask_model(self, messages: tuple[dict[str, str], ...]) -> str:
        from ttclab.backends import create_backend
        from ttclab.backends.base import Request, SamplingParams

        seed = int(self.rng.integers(2**30))  # drawn on replay too, so a resumed search draws the same
        key = hashlib.sha256(json.dumps([messages, self.rounds, self.model.model_dump(mode="json")]).encode()).hexdigest()[:16]
        if key in self.replies:
            return self.replies[key]
        if self._backend is None:
            self._backend = create_backend(self.model.backend, model=self.model.name, **self.model.options)
        params = SamplingParams(max_tokens=self.max_tokens, temperature=self.temperature, seed=seed)
        [c] = asyncio.run(self._backend.generate(Request(messages, seed=params.seed), params))
        if not c.ok:
            from ttclab.errors import BackendError

            raise BackendError(f"agent model {self.model.name}: {c.error}")
        self.replies[key] = c.text
        if self.log_path is not None:
            with self.log_path.open("a") as fh:
                fh.write(json.dumps({"prompt_hash": key, "round": self.rounds, "reply": c.text}) + "\n")
        return c.text

    # -- proposals ---------------------------------------------------------------------------
    def parse(self, text: str) -> tuple[list[Candidate], Distribution | None]:
        """Validated candidates and distribution from a reply; each problem is one entry of ``rejected``."""
        try:
            data = parse_json_object(text)
        except ValueError as exc:
            self.rejected.append(("reply", str(exc)))
            return [], None
        fields = {"candidates", "distribution"} | ({"controllers"} if self.code else set())
        if not isinstance(data, dict) or not (fields & set(data)):
            self.rejected.append(("reply", f"the JSON object has none of {', '.join(repr(f) for f in sorted(fields))}"))
            return [], None
        if self.code and "controllers" in data:
            self._code(data["controllers"])
        dist = None
        if "distribution" in data:
            dist = self._distribution(data["distribution"])
        cands: list[Candidate] = []
        raw = data.get("candidates") or []
        if not isinstance(raw, list):
            self.rejected.append(("candidates", "'candidates' must be a list of objects"))
            raw = []
        base = dist or self.dist
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                self.rejected.append((f"candidates[{i}]", "a candidate must be an object of dimension: choice"))
                continue
            filled = base.sample(self.rng)
            try:
                fixed = {k: _coerce(self.space.dim(k).choices, v) if k in self.space.names else v for k, v in item.items()}
                cand = self.space.validate({**filled, **fixed})
            except ValueError as exc:
                self.rejected.append((f"candidates[{i}]", str(exc)))
                continue
            cands.append(cand)
        return cands, dist

    def _code(self, raw: Any) -> None:
        """Validated code proposals (parses, defines decide, size limit) into ``code_proposals``."""
        if not isinstance(raw, list):
            self.rejected.append(("controllers", "'controllers' must be a list of {name, betas, code} objects"))
            return
        for i, item in enumerate(raw):
            try:
                if isinstance(item, dict) and "file" in item:
                    raise ValueError("give the source as code (a file is not read from a proposal)")
                ctrl = code_controller(item, name=f"proposed-{self.rounds}-{i}")
            except ValueError as exc:
                self.rejected.append((f"controllers[{i}]", str(exc)))
                continue
            self.code_proposals.append(ctrl)
            if self.on_code is not None:
                self.on_code(ctrl)

    def _distribution(self, raw: Any) -> Distribution | None:
        if not isinstance(raw, dict):
            self.rejected.append(("distribution", "'distribution' must map dimensions to {choice: probability}"))
            return None
        dist = Distribution(self.space, {k: v.tolist() for k, v in self.dist.logits.items()})
        for name, probs in raw.items():
            if name not in self.space.names:
                self.rejected.append(("distribution", f"unknown dimension {name!r}"))
                return None
            dim = self.space.dim(name)
            if not isinstance(probs, dict):
                self.rejected.append(("distribution", f"{name}: give {{choice: probability}}"))
                return None
            vec = [0.0] * len(dim.choices)
            for key, p in probs.items():
                c = _coerce(dim.choices, key)
                if c not in dim.choices:
                    self.rejected.append(("distribution", f"{name}: {key!r} is not one of {list(dim.choices)}"))
                    return None
                if not isinstance(p, (int, float)) or isinstance(p, bool) or p < 0:
                    self.rejected.append(("distribution", f"{name}: probability {p!r} must be a number >= 0"))
                    return None
                vec[dim.choices.index(c)] = float(p)
            if sum(vec) <= 0:
                self.rejected.append(("distribution", f"{name}: probabilities sum to 0"))
                return None
            dist.set_probs(name, vec)
        return dist

    def ask(self) -> list[Candidate]:
        text = self._ask_model(self._messages())
        self.rounds += 1
        cands, dist = self.parse(text)
        if dist is not None:
            self.dist = dist
        self.accepted += len(cands)
        while len(cands) < self.batch:  # the rest (or all, after a rejected reply) from the distribution
            cands.append(self._draw())
        return cands[: self.batch]

    def close(self) -> None:
        if self._own_backend and self._backend is not None:
            asyncio.run(self._backend.aclose())
            self._backend = None
