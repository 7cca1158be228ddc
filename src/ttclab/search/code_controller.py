"""Controllers written as Python source (e.g. proposed by an LLM), run only inside the sandbox.

A code controller is a module that defines ``decide(observation) -> action``. It runs in one
sandboxed process per evaluation (:class:`~ttclab.sandbox.session.SandboxSession`: no network,
no writes outside its temporary directory, CPU / memory / process limits, scrubbed environment),
which answers one JSON observation per decision within ``CodeLimits.decision_s`` seconds. The
module is executed afresh at the start of every episode, so its globals do not carry over from
one episode to the next. :class:`ReplayEnv` is driven exactly as by the built-in controllers, so a
code controller gets the same seeded trace orders, beta sweep, CIs and place on the Pareto front.

The observation (JSON)::

    {"beta": 4.0,              # the controller's knob (its beta sweep)
     "every": 64,              # tokens per segment (CONTINUE decodes at most this many)
     "n_traces": 16, "started": 3, "left": 13,          # stored traces: in all, started, not started
     "tokens": 410.0, "decode_tokens": 400, "probe_tokens": 10.0,
     "budget": null, "budget_left": null,                # the episode's token budget, when one is set
     "decision": 5,            # decisions taken so far in this episode (0: a new episode)
     "traces": [{"id": 0, "state": "running" | "finished" | "pruned", "tokens": 128,
                 "probes": [3, 3],        # answers of the PROBEs of this trace so far (-1: none)
                 "confidence": -0.4,      # mean log-prob of its last probe (null: none)
                 "final": null}]}         # its final answer once finished

Answers are integer codes per question (the same answer, the same code). Actions (a string, or a
list): ``"BRANCH"`` (start the next trace and decode its first segment), ``["CONTINUE", i]``,
``["FINISH", i]`` (CONTINUE until trace i ends, the same cost), ``["PROBE", i]``, ``["PRUNE", i]``,
``["ANSWER", a]`` (end the episode; ``a`` is -1 to abstain or an answer seen in this episode — a
final or a probe answer — or a list of such answers, of which the environment picks one with its
seeded generator: ties broken as the built-in controllers break them). ``"CONTINUE 2"`` is the same
as ``["CONTINUE", 2]``. With a budget, only PRUNE and ANSWER are possible once it is spent.

A decision that times out, crashes (the sandbox's reason: ``error``, ``forbidden``, ``memory``...),
prints garbage or asks for an impossible action ends the episode as a failure: the sandbox process
is killed and :class:`ControllerFailure` is raised with the reason; the evaluation stops there and
gives no accuracy (a failure is counted, never turned into an answer).
"""

from __future__ import annotations

import ast
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ttclab.sandbox.runner import IsolationMode
from ttclab.sandbox.session import SandboxSession, SessionError
from ttclab.sandbox.types import ExecResult, SandboxLimits
from ttclab.search.controller_search import Act, ControllerEval, evaluate_controller
from ttclab.search.replay import ReplayData, ReplayEnv, ReplayError

#: Longest controller source accepted (characters).
MAX_SOURCE_CHARS = 16_000
#: Most betas a code controller sweeps.
MAX_BETAS = 12
ACTIONS = ("BRANCH", "CONTINUE", "FINISH", "PROBE", "PRUNE", "ANSWER")
_SPENDING = ("BRANCH", "CONTINUE", "FINISH", "PROBE")
_DRIVER = Path(__file__).with_name("_code_driver.py")


def validate_source(source: Any, *, max_chars: int = MAX_SOURCE_CHARS) -> str:
    """``source`` if it is Python that defines a top-level ``decide(observation)``; else ValueError."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError("the controller's code must be a non-empty string of Python source")
    if len(source) > max_chars:
        raise ValueError(f"the controller's code has {len(source)} characters; at most {max_chars}")
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"the controller's code does not parse: {exc.msg} (line {exc.lineno})") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ValueError(f"the controller's code does not parse: {exc}") from None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "decide":
            args = node.args
            if len(args.posonlyargs) + len(args.args) >= 1 or args.vararg is not None:
                return source
            raise ValueError("decide must take one argument, the observation")
    raise ValueError("the controller's code defines no top-level function decide(observation)")


@dataclass(frozen=True)
class CodeController:
    """A controller as source: ``decide(observation) -> action``, swept over ``betas``; ``budget``:
    tokens per episode (``None``: unlimited)."""

    source: str
    name: str = "code"
    betas: tuple[float, ...] = (1.0,)
    budget: float | None = None

    @property
    def key(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]


def code_controller(raw: Any, *, base: Path | None = None, name: str = "code") -> CodeController:
    """A validated :class:`CodeController` from ``{code: SOURCE | file: PATH, name?, betas?, budget?}``
    (a config entry or an agent's proposal); ValueError naming the problem."""
    if not isinstance(raw, Mapping):
        raise ValueError("a code controller must be an object {code, betas, name}")
    unknown = set(raw) - {"code", "file", "name", "betas", "budget"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}; use code, betas, name, budget")
    if ("code" in raw) == ("file" in raw):
        raise ValueError("give the controller's source as code, or a file holding it (one of the two)")
    if "file" in raw:
        path = Path(str(raw["file"]))
        path = path if path.is_absolute() or base is None else base / path
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"file {path}: cannot read it ({exc.strerror})") from None
    else:
        source = raw["code"]
    source = validate_source(source)
    betas = raw.get("betas", [1.0])
    if isinstance(betas, (int, float)) and not isinstance(betas, bool):
        betas = [betas]
    if not isinstance(betas, list) or not 1 <= len(betas) <= MAX_BETAS or not all(
            isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in betas):
        raise ValueError(f"betas must be a list of 1 to {MAX_BETAS} finite numbers (got {betas!r})")
    budget = raw.get("budget")
    if budget is not None and (not isinstance(budget, (int, float)) or isinstance(budget, bool) or budget <= 0):
        raise ValueError(f"budget must be a number of tokens > 0 (got {budget!r})")
    label = raw.get("name", name)
    if not isinstance(label, str) or not label.strip() or len(label) > 64:
        raise ValueError(f"name must be a short non-empty string (got {label!r})")
    return CodeController(source, label.strip(), tuple(float(b) for b in betas),
                          None if budget is None else float(budget))


def _default_sandbox() -> SandboxLimits:
    return SandboxLimits(cpu_s=120, wall_s=1800, memory_mb=256, max_processes=8, max_output_kb=256)


@dataclass(frozen=True)
class CodeLimits:
    """``decision_s``: wall seconds per decision (and ``load_s`` for loading the module);
    ``max_decisions`` per episode; ``sandbox``: the session's limits (``wall_s`` and ``cpu_s`` for
    the whole evaluation)."""

    decision_s: float = 1.0
    load_s: float = 10.0
    max_decisions: int = 20_000
    sandbox: SandboxLimits = field(default_factory=_default_sandbox)


class ControllerFailure(Exception):
    """A code controller's episode failed: ``reason`` (``timeout``, ``error``, ``forbidden``,
    ``memory``, ``killed``, ``output_limit``, ``garbage``, ``impossible``, ``decisions``, ``load``...)
    and a one-line ``detail``; where: ``question`` (index in the data), ``episode``, ``decision``."""

    def __init__(self, reason: str, detail: str, *, question: int | None = None, episode: int | None = None,
                 decision: int | None = None, stderr: str = "", result: ExecResult | None = None) -> None:
        where = "" if question is None else f" (question {question}, episode {episode}, decision {decision})"
        super().__init__(f"{reason}: {detail}{where}")
        self.reason, self.detail = reason, detail
        self.question, self.episode, self.decision = question, episode, decision
        self.stderr = stderr
        self.result = result  # the sandbox session's end (the process is gone by then)

    def record(self) -> dict[str, Any]:
        return {"reason": self.reason, "detail": self.detail, "question": self.question, "episode": self.episode,
                "decision": self.decision, "stderr": self.stderr[-500:]}


def parse_action(raw: Any) -> tuple[str, Any]:
    """``(KIND, argument)`` of an action (see the module doc); ValueError when it is not one."""
    if isinstance(raw, str):
        parts = raw.split()
        if len(parts) == 2:
            try:
                raw = [parts[0], int(parts[1])]
            except ValueError:
                raw = parts
        else:
            raw = parts
    if not isinstance(raw, list) or not raw or not isinstance(raw[0], str):
        raise ValueError(f"an action is \"BRANCH\" or [KIND, argument] with KIND one of {', '.join(ACTIONS)} "
                         f"(got {_short(raw)})")
    kind = raw[0].upper()
    if kind not in ACTIONS:
        raise ValueError(f"unknown action {raw[0]!r}; one of {', '.join(ACTIONS)}")
    if kind == "BRANCH":
        if len(raw) != 1:
            raise ValueError("BRANCH takes no argument")
        return kind, None
    if len(raw) != 2:
        raise ValueError(f"{kind} takes one argument (got {_short(raw)})")
    arg = raw[1]
    if kind == "ANSWER":
        values = arg if isinstance(arg, list) else [arg]
        if not values or not all(_is_int(v) for v in values):
            raise ValueError(f"ANSWER takes an answer code or a non-empty list of them (got {_short(arg)})")
        return kind, [int(v) for v in values]
    if not _is_int(arg):
        raise ValueError(f"{kind} takes a trace id, an integer (got {_short(arg)})")
    return kind, int(arg)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 120 else text[:117] + "..."


class _Episode:
    """What the controller has seen in one episode: probe answers per trace and answers seen."""

    def __init__(self, env: ReplayEnv) -> None:
        self.env = env
        self.probes: list[list[int]] = []
        self.confidence: list[float | None] = []
        self.seen: set[int] = {-1}

    def observation(self, beta: float, budget: float | None, decision: int) -> dict[str, Any]:
        env = self.env
        traces = []
        for i in range(env.n_started):
            finished = env.finished(i)
            final = env.final_answer(i) if finished else None
            if final is not None:
                self.seen.add(final)
            traces.append({"id": i, "state": "pruned" if env.pruned(i) else "finished" if finished else "running",
                           "tokens": env.position(i), "probes": self.probes[i], "confidence": self.confidence[i],
                           "final": final})
        return {"beta": beta, "every": env.every, "n_traces": env.n_traces, "started": env.n_started,
                "left": env.n_left, "tokens": env.tokens, "decode_tokens": env.decode_tokens,
                "probe_tokens": env.probe_tokens, "budget": budget,
                "budget_left": None if budget is None else budget - env.tokens, "decision": decision,
                "traces": traces}

    def apply(self, kind: str, arg: Any, budget: float | None, rng: np.random.Generator) -> bool:
        """Take the action on the environment; True when it ended the episode (ReplayError / ValueError
        when it is impossible)."""
        env = self.env
        if budget is not None and kind in _SPENDING and env.tokens >= budget:
            raise ValueError(f"{kind}: the token budget of {budget:g} is spent; only PRUNE or ANSWER remain")
        if kind == "BRANCH":
            env.branch()
            self.probes.append([])
            self.confidence.append(None)
        elif kind == "CONTINUE":
            env.cont(arg)
        elif kind == "FINISH":
            env.finish(arg)
        elif kind == "PROBE":
            answer, conf = env.probe(arg)
            self.probes[arg].append(answer)
            self.confidence[arg] = conf if math.isfinite(conf) else None
            self.seen.add(answer)
        elif kind == "PRUNE":
            env.prune(arg)
        else:  # ANSWER
            unseen = [a for a in arg if a not in self.seen]
            if unseen:
                raise ValueError(f"ANSWER {unseen[0]}: not an answer seen in this episode (a final or probe answer, "
                                 "or -1 to abstain)")
            env.answer(arg[int(rng.integers(len(arg)))] if len(arg) > 1 else arg[0])
            return True
        return False


class CodeSession:
    """One sandbox process running a code controller, for one evaluation (any number of episodes)."""

    def __init__(self, controller: CodeController, limits: CodeLimits | None = None, *,
                 isolation: IsolationMode | None = None) -> None:
        self.controller = controller
        self.limits = limits or CodeLimits()
        self.session = SandboxSession({"main.py": _DRIVER.read_text(encoding="utf-8"),
                                       "program.py": controller.source},
                                      limits=self.limits.sandbox, isolation=isolation)
        self.episodes = 0
        self.decisions = 0

    def __enter__(self) -> CodeSession:
        self.session.start()
        try:
            ready = self.session.receive(self.limits.load_s)
        except SessionError as exc:
            reason = "load" if exc.reason in ("error", "exited") else exc.reason  # timeouts, refusals keep theirs
            raise self._failure(reason, f"loading: {exc.detail}") from None
        if ready != {"ready": True}:
            raise self._failure("garbage", f"loading: expected the driver's ready line, got {_short(ready)}")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.session.close()

    def act(self, beta: float) -> Act:
        """The controller at ``beta``, as an act function for :func:`evaluate_controller`."""
        def act(env: ReplayEnv, rng: np.random.Generator) -> None:
            self.episode(env, rng, beta)
        return act

    def episode(self, env: ReplayEnv, rng: np.random.Generator, beta: float) -> None:
        """Drive one episode until the controller answers (ControllerFailure otherwise)."""
        self.episodes += 1
        ep = _Episode(env)
        budget = self.controller.budget
        for n in range(self.limits.max_decisions):
            obs = ep.observation(beta, budget, n)
            try:
                reply = self.session.request(obs, self.limits.decision_s)
            except SessionError as exc:
                raise self._failure(exc.reason, exc.detail, env, n) from None
            self.decisions += 1
            if not isinstance(reply, dict) or set(reply) != {"action"}:
                raise self._failure("garbage", f"a reply that is not the driver's: {_short(reply)}", env, n)
            try:
                kind, arg = parse_action(reply["action"])
                if ep.apply(kind, arg, budget, rng):
                    return
            except (ValueError, ReplayError) as exc:
                raise self._failure("impossible", f"{_short(reply['action'])}: {exc}", env, n) from None
        raise self._failure("decisions", f"no ANSWER within {self.limits.max_decisions} decisions", env,
                            self.limits.max_decisions)

    def _failure(self, reason: str, detail: str, env: ReplayEnv | None = None, decision: int | None = None
                 ) -> ControllerFailure:
        result = self.session.close()  # killed, whatever state it is in
        return ControllerFailure(reason, detail, question=None if env is None else env.q,
                                 episode=None if env is None else self.episodes, decision=decision,
                                 stderr=result.stderr, result=result)


def evaluate_code_controller(data: ReplayData, controller: CodeController, beta: float, *, orders: int = 16,
                             seed: int = 0, limits: CodeLimits | None = None,
                             isolation: IsolationMode | None = None) -> ControllerEval:
    """:func:`evaluate_controller` for a code controller at ``beta``: one sandbox process for all
    questions and orders; raises :class:`ControllerFailure` at the first failed episode."""
    with CodeSession(controller, limits, isolation=isolation) as session:
        ev = evaluate_controller(data, session.act(beta), orders=orders, seed=seed)
    ev.decisions = session.decisions
    return ev


def code_sweep(data: ReplayData, controller: CodeController, *, orders: int, seed: int,
               limits: CodeLimits | None = None, betas: Sequence[float] | None = None,
               isolation: IsolationMode | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The beta sweep of a code controller: (points like the reference curves', failures). A beta
    whose evaluation failed gives a failure record (reason, where), not a point."""
    points, failures = [], []
    for beta in betas or controller.betas:
        tag = {"controller": controller.name, "beta": beta, "code_key": controller.key}
        try:
            ev = evaluate_code_controller(data, controller, beta, orders=orders, seed=seed, limits=limits,
                                          isolation=isolation)
        except ControllerFailure as exc:
            failures.append({**tag, **exc.record()})
            continue
        points.append({**tag, **ev.summary(np.random.default_rng(seed)), "decisions": ev.decisions})
    return points, failures
