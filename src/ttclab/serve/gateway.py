"""One request through a strategy, on the online engine's primitives and call store.

Each choice of a request (``n`` of them) is one independent strategy run: a one-question program
(:class:`~ttclab.online.state.QuestionState`) whose calls go through a
:class:`~ttclab.online.calls.Caller` (budget, seeds, the ``calls`` rows). The generator's ``solve``
prompt is the client's own conversation (or completion prompt); judges, critics and fusers see it as
``{question}``. Answers are read by the config's verifier so equal answers vote together; a
request's ``ttc.reference`` (the correct answer, when the client knows it) grades it.

Pass-through (strategy ``none``) asks the backend once for all ``n`` choices (the backend falls back
to parallel single requests where the upstream lacks ``n``); streamed, each choice is its own
token stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ttclab.backends import create_backend
from ttclab.backends.base import Backend, SamplingParams
from ttclab.config import ModelSpec
from ttclab.errors import BackendError, ConfigError, DataError
from ttclab.online.budget import Budget, BudgetExhausted, Limit
from ttclab.online.calls import CallCache, Caller
from ttclab.online.program import run_steps
from ttclab.online.runner import choose_final, model_identity
from ttclab.online.state import QuestionState, RunContext
from ttclab.online.steps.base import QuestionFailed, StepSpec
from ttclab.online.templates import Prompt, Template, chat_format, default_format
from ttclab.seeds import SEED_MODULUS
from ttclab.serve.config import ServeConfig
from ttclab.serve.protocol import APIError
from ttclab.serve.strategies import PipelineSource, Plan, compile_steps, parse_alias, plan_from_ttc, plan_samples, strategy_steps
from ttclab.tasks.base import Question

#: Sampling fields a request may set (OpenAI names) and their SamplingParams names.
REQUEST_SAMPLING = ("max_tokens", "temperature", "top_p", "presence_penalty", "frequency_penalty")


@dataclass
class ServedModel:
    """A configured model: its public name, backend and the model identity stored with its calls."""

    spec: ModelSpec
    backend: Backend

    @property
    def name(self) -> str:
        return self.spec.label or self.spec.name

    @property
    def identity(self) -> str:
        return model_identity(self.spec)

    def completion_format(self) -> Any:
        fmt = default_format(self.spec.name)
        return chat_format(fmt or "plain")


@dataclass
class ServeContext(RunContext):
    """The run context of one strategy run: the generator's prompt is the client's own."""

    client_prompt: Prompt = ""

    def prompt(self, template: Template, **values: Any) -> Prompt:
        if template.name == "solve":
            return self.client_prompt
        return super().prompt(template, **values)


#: A stand-in gold per verifier, so an unlabelled request's answers are still read (the verdict is dropped).
_PLACEHOLDER_GOLD = {"numeric": "0", "math": "0", "choice": "A", "gym": "0"}


class AnswerReader:
    """The config's verifier for served text: canonical answers always; a verdict only with a reference."""

    def __init__(self, verifier: Any) -> None:
        self.verifier = verifier
        self.name = getattr(verifier, "name", "verifier")  # keeps the online engine threading slow verifiers
        self._gold = _PLACEHOLDER_GOLD.get(getattr(verifier, "name", ""), "x")

    def verify(self, completion: str, question: Question) -> Any:
        from ttclab.verify.base import Verdict

        if question.gold:
            return self.verifier.verify(completion, question)
        v = self.verifier.verify(completion, dataclasses.replace(question, gold=self._gold))
        return Verdict(v.answer, "unparseable" if v.answer is None else "unlabelled", "no reference answer")  # type: ignore[arg-type]


def _check_local_model(spec: ModelSpec, index: int) -> None:
    """An embedded model that cannot be found is a ConfigError at startup, not a 502 on every request
    (a built-in name is checked when it loads: that is the expensive part)."""
    from ttclab.backends.models import EMBEDDED, resolve_model_path

    if spec.name in EMBEDDED:
        return
    try:
        resolve_model_path(spec.name)
    except BackendError as exc:
        raise ConfigError(f"models.{index}.name: {exc}") from None


class CallLog:
    """The call rows of one strategy run (kept for usage; forwarded to the recorded run's table)."""

    def __init__(self, sink: Any, question_id: str, question_index: int) -> None:
        self.sink = sink
        self.question_id = question_id
        self.question_index = question_index
        self.rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        row = {**row, "question_id": self.question_id, "question_index": self.question_index}
        self.rows.append(row)
        if self.sink is not None:
            self.sink.add(row)


@dataclass
class BareQuestion:
    """What a :class:`~ttclab.online.calls.Caller` needs of a question, for an unrecorded pass-through call
    (no candidates, verdicts or seeded RNG to set up)."""

    budget: Budget
    index: int = 0
    question_id: str = "choice-0"
    _occurrences: dict[str, int] = field(default_factory=dict)

    def next_occurrence(self, content: str, n: int) -> int:
        start = self._occurrences.get(content, 0)
        self._occurrences[content] = start + n
        return start

    def account(self, result: Any) -> None:
        pass


@dataclass
class ChoiceOutcome:
    """What one strategy run answered, with every call it made."""

    index: int
    text: str
    finish_reason: str
    answer: str | None
    rows: list[dict[str, Any]]
    candidates: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class Job:
    """A validated request, ready to run."""

    rid: str
    served: ServedModel
    plan: Plan
    chat: bool
    prompts: list[Prompt]  # one per prompt (/v1/completions may send several)
    n: int
    sampling: dict[str, Any]  # request-level sampling (over the config's defaults)
    seed: int
    reference: str | None
    endpoint: str
    steps: Callable[[], list[StepSpec]] | None = None  # a fresh program per strategy run
    final: str = "first"
    fmt: Any = None
    created: float = field(default_factory=time.time)

    @property
    def choices(self) -> int:
        return self.n * len(self.prompts)

    def prompt_of(self, choice: int) -> Prompt:
        return self.prompts[choice // self.n]


def question_text(prompt: Prompt) -> str:
    """The conversation as the ``{question}`` of judge / critic / fuser prompts."""
    if isinstance(prompt, str):
        return prompt
    turns = [m for m in prompt if m["role"] != "system"]
    if len(turns) == 1:
        return turns[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in turns)


class Gateway:
    """The served models, strategies and pipelines; runs requests (see the module doc)."""

    def __init__(self, config: ServeConfig, *, recorder: Any = None, backends: dict[str, Backend] | None = None) -> None:
        from ttclab.verify.registry import get_verifier

        self.config = config
        self.recorder = recorder
        self.models: dict[str, ServedModel] = {}
        for i, spec in enumerate(config.models):
            given = (backends or {}).get(spec.label or spec.name)
            if spec.backend == "llamacpp" and given is None:
                _check_local_model(spec, i)
            # a gateway outlives upstream outages: an upstream that refuses (still starting) fails that request
            # only, and the next one tries again (a batch run's backend stops at the first such failure)
            options = {"fail_fast": False, **spec.options} if spec.backend == "openai" else spec.options
            backend = given or create_backend(
                spec.backend, model=spec.name, **options)
            served = ServedModel(spec, backend)
            if served.name in self.models:
                raise ConfigError(f"models: {served.name!r} is listed twice; give one a label")
            self.models[served.name] = served
        self.verifier = AnswerReader(get_verifier(config.verifier.name, **config.verifier.options))
        self.pipelines = {name: PipelineSource(name, config.resolve(path)) for name, path in config.pipelines.items()}
        self.default = self._config_plan(config.default, "default")
        for i, alias in enumerate(config.aliases):
            self._config_plan(alias, f"aliases[{i}]")
        self.rng = np.random.default_rng(config.seed)
        self.prices = self._prices()
        self._arch: dict[str, Any] = {}
        self._programs: dict[tuple[Plan, str], list[StepSpec]] = {}

    def _config_plan(self, text: str, where: str) -> Plan:
        try:
            plan = parse_alias(text, where)
        except APIError as exc:
            raise ConfigError(exc.message) from None  # it starts with where
        self._check_plan(plan, where)
        return plan

    def _check_plan(self, plan: Plan, where: str) -> None:
        if plan.strategy == "pipeline" and plan.pipeline not in self.pipelines:
            raise ConfigError(f"{where}: {plan.label}: no pipeline {plan.pipeline!r} under pipelines")
        if plan.strategy == "best_of_n" and self.config.reward is None:
            raise ConfigError(f"{where}: {plan.label} needs a reward model: set reward: {{url, model}}")

    def _prices(self) -> Any:
        if self.config.prices is None:
            return None
        from ttclab.ledger.prices import load_prices

        return load_prices(self.config.prices)

    def price(self, served: ServedModel) -> Any:
        if self.prices is None:
            return None
        try:
            return self.prices.get(served.spec.name)
        except DataError:
            return None

    def arch(self, served: ServedModel) -> Any:
        name = served.spec.name
        if name not in self._arch:
            from ttclab.ledger.models import load_architectures

            try:
                self._arch[name] = load_architectures().get(name)
            except DataError:
                self._arch[name] = None
        return self._arch[name]

    def model_ids(self) -> list[tuple[str, str]]:
        """(id, owner) of every model and alias /v1/models lists."""
        out = []
        for name in self.models:
            out.append((name, "ttclab"))
            for alias in self.config.aliases:
                out.append((f"{name}:{alias}", "ttclab"))
            for pipe in self.pipelines:
                out.append((f"{name}:pipeline/{pipe}", "ttclab"))
        return out

    # -- request -> job ---------------------------------------------------------------------------
    def resolve(self, model: str, ttc: Any) -> tuple[ServedModel, Plan]:
        """The served model and the plan: ``ttc`` over the alias over the default."""
        served = self.models.get(model)
        plan = self.default
        if served is None:
            for name, candidate in self.models.items():
                if model.startswith(name + ":"):
                    served, plan = candidate, parse_alias(model[len(name) + 1:])
                    break
        if served is None:
            import difflib

            names = list(self.models)
            close = difflib.get_close_matches(model.split(":")[0], names, n=1)
            example = self.config.aliases[0] if self.config.aliases else "majority@8"
            raise APIError(404, f"The model {model!r} does not exist" + (f"; did you mean {close[0]!r}?" if close else "")
                           + f"; served models: {', '.join(names)} (a strategy after a colon: {names[0]}:{example}; "
                             "GET /v1/models lists them)", param="model", code="model_not_found")
        alias = plan
        if ttc is not None:
            plan = plan_from_ttc(ttc, plan)
        from_ttc = plan is not alias  # which field named the plan, for the error's param
        if plan.strategy == "pipeline" and plan.pipeline not in self.pipelines:
            known = ", ".join(self.pipelines) or "none configured"
            param = "ttc.pipeline" if from_ttc else "model"
            raise APIError(400, f"{param}: unknown pipeline {plan.pipeline!r}; this server has: {known}",
                           param=param, code="unknown_strategy")
        if plan.strategy == "best_of_n" and self.config.reward is None:
            param = "ttc.strategy" if from_ttc else "model"
            raise APIError(400, f"{param}: best_of_n needs a reward model and this server has none (the serve "
                                "config's reward: {url, model}); use majority or another strategy",
                           param=param, code="unknown_strategy")
        return served, plan

    def job(self, rid: str, endpoint: str, req: Any, prompts: list[Prompt], chat: bool) -> Job:
        """Validate caps and build the job of a parsed request (APIError 400 naming the field)."""
        limits = self.config.limits
        served, plan = self.resolve(req.model, req.ttc)
        n = req.n or 1
        if n > limits.max_n:
            raise APIError(400, f"n: {n} is over this server's cap of {limits.max_n}", param="n")
        if len(prompts) > limits.max_prompts:
            raise APIError(400, f"prompt: {len(prompts)} prompts is over this server's cap of {limits.max_prompts}",
                           param="prompt")
        max_tokens = getattr(req, "max_completion_tokens", None) or req.max_tokens
        if max_tokens is not None and max_tokens > limits.max_tokens:
            raise APIError(400, f"max_tokens: {max_tokens} is over this server's cap of {limits.max_tokens}",
                           param="max_tokens")
        if plan.strategy != "pipeline" and plan_samples(plan) > limits.max_k:
            raise APIError(400, f"{plan.label}: {plan_samples(plan)} samples is over this server's cap of "
                                f"{limits.max_k} per strategy run", param="ttc.k")
        sampling: dict[str, Any] = dict(self.config.sampling)
        for name in REQUEST_SAMPLING:
            value = max_tokens if name == "max_tokens" else getattr(req, name)
            if value is not None:
                sampling[name] = value
        if "max_tokens" not in sampling:
            sampling["max_tokens"] = min(256, limits.max_tokens)
        sampling["max_tokens"] = min(int(sampling["max_tokens"]), limits.max_tokens)
        stops = req.stop_list()
        if stops:
            sampling["stop"] = list(stops)
        try:
            SamplingParams.model_validate(sampling)
        except Exception as exc:  # a config default out of range
            raise APIError(400, f"sampling: {exc.errors()[0]['msg']}") from None  # type: ignore[attr-defined]
        seed = req.seed if req.seed is not None else int(self.rng.integers(0, SEED_MODULUS))
        job = Job(rid, served, plan, chat, prompts, n, sampling, seed, req.ttc.reference if req.ttc else None, endpoint)
        job.fmt = served.completion_format()
        job.final = self.pipelines[plan.pipeline or ""].check.spec.final if plan.strategy == "pipeline" else plan.final
        steps = self._program(plan, sampling)
        job.steps = lambda: steps  # compiled steps hold no run state: shared by every run (as in the online runner)
        return job

    def _program(self, plan: Plan, sampling: dict[str, Any]) -> list[StepSpec]:
        """The compiled steps of a plan with this sampling (memoised: most requests repeat both)."""
        key = (plan, json.dumps(sampling, sort_keys=True))
        steps = self._programs.get(key)
        if steps is None:
            if plan.strategy == "pipeline":
                steps = self.pipelines[plan.pipeline or ""].compile(sampling).steps
            else:
                steps = compile_steps(strategy_steps(plan, self.config.reward), sampling, plan.label)
            if len(self._programs) >= 512:
                self._programs.clear()
            self._programs[key] = steps
        return steps

    # -- running ----------------------------------------------------------------------------------
    def _caller(self, job: Job, run_id: str, log: CallLog, seed: int) -> Caller:
        return Caller(job.served.backend, model=job.served.identity, run_id=run_id, log=log, cache=CallCache(),
                      seed=seed)

    def _state(self, job: Job, caller: Caller, prompt: Prompt, choice: int, index: int) -> QuestionState:
        ctx = ServeContext(caller, self.verifier, job.seed, job.chat, job.fmt, job.served.spec.backend,
                           self.price(job.served), False, client_prompt=prompt)
        question = Question(id=f"choice-{choice}", question=question_text(prompt),
                            gold=job.reference or "")
        q = QuestionState(ctx, question, index, Budget(ctx.price))
        limits = self.config.limits
        q.budget.push(Limit(calls=limits.max_calls, total_tokens=limits.max_total_tokens))
        return q

    def _bare(self) -> BareQuestion:
        limits = self.config.limits
        q = BareQuestion(Budget(None))
        q.budget.push(Limit(calls=limits.max_calls, total_tokens=limits.max_total_tokens))
        return q

    async def run(self, job: Job) -> list[ChoiceOutcome]:
        """Every choice of a job (concurrently); cancelling this cancels every internal call."""
        if job.plan.strategy == "none":
            groups = [self._passthrough(job, p) for p in range(len(job.prompts))]
            results = await _gather(groups)
            return [c for group in results for c in group]
        return await _gather([self._strategy_run(job, i) for i in range(job.choices)])

    async def _strategy_run(self, job: Job, choice: int) -> ChoiceOutcome:
        record = self.recorder.begin(job, choice) if self.recorder is not None else None
        log = CallLog(record.calls if record else None, record.question_id if record else f"{job.rid}-{choice}",
                      record.index if record else 0)
        caller = self._caller(job, record.run_id if record else "serve", log, job.seed)
        q = self._state(job, caller, job.prompt_of(choice), choice, log.question_index)
        outcome = ChoiceOutcome(choice, "", "error", None, log.rows)
        assert job.steps is not None
        try:
            try:
                pop = await run_steps(job.steps(), q, [])
            except BudgetExhausted as exc:
                q.note(f"strategy budget reached ({exc.what}); answered from the finished steps")
                pop = q.population
            final = await choose_final(q, pop, job.final)
            if final is None:
                outcome.error = "the strategy produced no answer (the budget was too small for one call)"
            else:
                outcome.text, outcome.answer = final.text, final.answer
                outcome.finish_reason = "length" if final.finish_reason == "length" else "stop"
        except (QuestionFailed, BackendError) as exc:
            outcome.error = str(exc)
        except asyncio.CancelledError:
            outcome.error = "cancelled: the client disconnected or the request timed out"
            if record is not None:
                record.finish(q, outcome, None)
            raise
        finally:
            await caller.aclose()
        outcome.candidates = list(q.candidates.values())
        outcome.notes = list(q.notes)
        if record is not None:
            record.finish(q, outcome, final if outcome.error is None else None)
        return outcome

    async def _passthrough(self, job: Job, prompt_index: int) -> list[ChoiceOutcome]:
        """One call for all ``n`` choices of a prompt (the backend's ``n``, or parallel single requests)."""
        first = prompt_index * job.n
        record = self.recorder.begin(job, first) if self.recorder is not None else None
        log = CallLog(record.calls if record else None, record.question_id if record else f"{job.rid}-{first}",
                      record.index if record else 0)
        caller = self._caller(job, record.run_id if record else "serve", log, job.seed)
        prompt = job.prompt_of(first)
        q: Any = self._state(job, caller, prompt, first, log.question_index) if record is not None else self._bare()
        assert job.steps is not None
        [step] = job.steps()
        params = step.params
        outcomes: list[ChoiceOutcome] = []
        call = None
        try:
            call = caller.prepare(q, prompt, params, job.n, step_id=step.sid, role="generate")
            results = await caller.run(call, q.answer_of if record is not None else None)
        except (BudgetExhausted, BackendError) as exc:
            err = str(exc)
            outs = [ChoiceOutcome(first + j, "", "error", None, log.rows if j == 0 else [], error=err)
                    for j in range(job.n)]
            if record is not None:
                record.finish(q, outs[0], None)
            return outs
        except asyncio.CancelledError:
            if call is not None and not caller.own.intersection(call.call_ids):  # stored as cancelled error rows
                caller.cancel(call, "cancelled: the client disconnected or the request timed out")
            if record is not None:
                record.finish(q, ChoiceOutcome(first, "", "error", None, log.rows,
                                               error="cancelled: the client disconnected"), None)
            raise
        finally:
            await caller.aclose()
        cands = []
        for j, r in enumerate(results):
            mine = []
            if record is not None:  # candidates and answers for the recorded run (pass-through never votes)
                c = q.new(step.sid, "generated", r.text, calls=(r,))
                if r.ok:
                    await q.grade(c)
                cands.append(c)
                mine = [c]
            outcomes.append(ChoiceOutcome(first + j, r.text, "length" if r.finish_reason == "length" else "stop",
                                          mine[0].answer if mine else None, log.rows if j == 0 else [], mine,
                                          error=r.error))
        if record is not None:
            ok = [c for c, r in zip(cands, results) if r.ok]
            record.finish(q, outcomes[0] if ok else next(o for o in outcomes if o.error), ok[0] if ok else None)
        return outcomes

    async def stream_passthrough(self, job: Job, choice: int, on_text: Callable[[str], None]) -> ChoiceOutcome:
        """One choice of a pass-through request, its tokens passed to ``on_text`` as they come."""
        record = self.recorder.begin(job, choice) if self.recorder is not None else None
        log = CallLog(record.calls if record else None, record.question_id if record else f"{job.rid}-{choice}",
                      record.index if record else 0)
        caller = self._caller(job, record.run_id if record else "serve", log, job.seed)
        prompt = job.prompt_of(choice)
        q = self._state(job, caller, prompt, choice, log.question_index)
        assert job.steps is not None
        [step] = job.steps()
        outcome = ChoiceOutcome(choice, "", "error", None, log.rows)
        call = None
        try:
            j = choice % job.n  # sample j of the prompt: the seed of the non-streamed request's j-th choice
            call = caller.prepare(q, prompt, step.params, j + 1, step_id=step.sid, role="generate")
            call = dataclasses.replace(call, seeds=call.seeds[j:], call_ids=call.call_ids[j:])
            [r] = await caller.run_stream(call, on_text, q.answer_of)
            if r.ok:
                c = await q.grade(q.new(step.sid, "generated", r.text, calls=(r,)))
                outcome.text, outcome.answer, outcome.candidates = r.text, c.answer, [c]
                outcome.finish_reason = "length" if r.finish_reason == "length" else "stop"
            else:
                outcome.error = r.error
        except (BudgetExhausted, BackendError) as exc:
            outcome.error = str(exc)
        except asyncio.CancelledError:
            outcome.error = "cancelled: the client disconnected"
            if call is not None and not caller.own.intersection(call.call_ids):
                caller.cancel(call, outcome.error)
            if record is not None:
                record.finish(q, outcome, None)
            raise
        finally:
            await caller.aclose()
        if record is not None:
            record.finish(q, outcome, outcome.candidates[0] if outcome.candidates else None)
        return outcome

    async def aclose(self) -> None:
        for served in self.models.values():
            await served.backend.aclose()


async def _gather(coros: Sequence[Any]) -> list[Any]:
    """Run concurrently; on cancellation or failure, cancel the others and wait for them."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def usage_of(gw: Gateway, job: Job, outcomes: list[ChoiceOutcome], wall_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``usage``, ``ttc_usage``) summed over every internal call of the request."""
    rows = [r for o in outcomes for r in o.rows]
    p = sum(int(r["prompt_tokens"] or 0) for r in rows)
    d = sum(int(r["completion_tokens"] or 0) for r in rows)
    by_role: dict[str, dict[str, float]] = {}
    for r in rows:
        entry = by_role.setdefault(r["role"], {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "errors": 0})
        entry["calls"] += 1
        entry["prompt_tokens"] += int(r["prompt_tokens"] or 0)
        entry["completion_tokens"] += int(r["completion_tokens"] or 0)
        entry["errors"] += int(r["error"] is not None)
    arch = gw.arch(job.served)
    flops = None
    if arch is not None and rows:
        from ttclab.ledger.work import decode_flops, prefill_flops

        cp = np.array([int(r["prompt_tokens"] or 0) for r in rows], float)
        cd = np.array([int(r["completion_tokens"] or 0) for r in rows], float)
        flops = float(prefill_flops(arch, cp).sum() + decode_flops(arch, cp, cd).sum())
    price = gw.price(job.served)
    usd = float(price.cost(p, d)) if price is not None else None
    choices: list[dict[str, Any]] = []
    for o in outcomes:
        answers = Counter(c.answer for c in o.candidates if c.answer is not None and c.kind not in ("copied", "injected"))
        choices.append({"index": o.index, "answer": o.answer, "candidates": sum(
            1 for c in o.candidates if c.kind not in ("copied", "injected")),
                        "answers": dict(answers.most_common()), "notes": o.notes})
    ttc = {
        "strategy": job.plan.label, "calls": len(rows), "errors": sum(1 for r in rows if r["error"] is not None),
        "by_role": by_role, "prompt_tokens": p, "completion_tokens": d, "flops": flops,
        "usd": usd, "latency_s": wall_s, "call_latency_s": sum(float(r["latency_s"] or 0.0) for r in rows),
        "candidates": sum(c["candidates"] for c in choices), "choices": choices,
    }
    usage = {"prompt_tokens": p, "completion_tokens": d, "total_tokens": p + d}
    return usage, ttc
