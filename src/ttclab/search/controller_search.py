"""``ttclab search controller CONFIG``: controllers over stored traces, searched and validated.

Data: a stored run with probes (``data: {run: RUN_ID}``), or collected first by the config
(``data: {collect: {config: SAMPLE_CONFIG, every: D, ...}}``: ``ttclab sample --probe-every D``,
resumable), or ``data: {synthetic: {...}}`` (no model; for checks). The questions are split into
a search split and a disjoint held-out split. Every controller is evaluated over ``orders`` seeded
trace orders per question; accuracy CIs are percentile bootstraps over questions (the per-question
accuracy averaged over the orders; injected seed).

Code controllers (:mod:`ttclab.search.code_controller`: Python source run only inside the
sandbox, one process per evaluation, ``code_limits.decision_s`` per decision) come from the config
(``code: [{name, file, betas}]``: swept on both splits like the references) or from the agent
(``agent: {model, code: true}``: swept on the search split as proposed, ``code_trials.jsonl``,
resumable; those that ran without a failure are swept on the held-out split too). A failed
evaluation (timeout, crash, refused operation, garbage, impossible action) is recorded in
``code_failures`` with its reason and gives no point.

Output: every reference controller's beta sweep (accuracy vs tokens) on both splits, the searched
family's candidates (``trials.jsonl``, resumable; random / REINFORCE / LLM-proposed parameters), the
Pareto front on the held-out split, and "tokens saved at matched accuracy vs SC@k": for every
controller point, the tokens SC@k needs to reach its accuracy (linear interpolation on the SC
curve) — the headline is the cheapest held-out point matching SC@k_max's held-out accuracy.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ttclab.config import ModelSpec, read_yaml_mapping
from ttclab.errors import ConfigError
from ttclab.search.replay import ReplayData, ReplayEnv
from ttclab.strategies.bootstrap import wilson

if TYPE_CHECKING:
    from ttclab.search.code_controller import CodeController, CodeLimits
    from ttclab.search.controllers import Controller

#: A controller bound to its knobs: acts on one episode and ends it with ``env.answer``.
Act = Callable[[ReplayEnv, np.random.Generator], None]
Reference = Literal["sc", "adaptive", "esc", "probe_prune", "confidence"]


def _all_references() -> list[Reference]:
    return ["sc", "adaptive", "esc", "probe_prune", "confidence"]


def with_beta(fn: Controller, beta: float) -> Act:
    """Reference controller ``fn`` at knob ``beta``."""
    def act(env: ReplayEnv, rng: np.random.Generator) -> None:
        fn(env, beta, rng)
    return act


def with_params(params: Mapping[str, Any]) -> Act:
    """The searched family (:func:`ttclab.search.controllers.family`) at ``params``."""
    from ttclab.search.controllers import family

    def act(env: ReplayEnv, rng: np.random.Generator) -> None:
        family(env, params, rng)
    return act


# -- evaluation ----------------------------------------------------------------------------------
@dataclass
class ControllerEval:
    """Per-question means over the seeded orders."""

    accuracy: np.ndarray  # (Q,)
    tokens: np.ndarray  # (Q,) decode + probe tokens
    decode_tokens: np.ndarray
    probe_tokens: np.ndarray
    sequential_tokens: np.ndarray
    decisions: int  # actions taken in total

    def summary(self, rng: np.random.Generator, draws: int = 1000) -> dict[str, Any]:
        q = len(self.accuracy)
        idx = rng.integers(q, size=(draws, q))
        boot = self.accuracy[idx].mean(axis=1)
        lo, hi = np.quantile(boot, [0.025, 0.975]) if q else (np.nan, np.nan)
        if q and (np.all(self.accuracy == 0.0) or np.all(self.accuracy == 1.0)):
            # every question wrong (or right) in every order: a bootstrap has nothing to resample and gives a
            # point ([0.00, 0.00]); the Wilson interval of q questions says how little q questions show
            lo, hi = wilson(float(self.accuracy.sum()), q)
        return {"accuracy": float(self.accuracy.mean()), "ci": [float(lo), float(hi)],
                "tokens": float(self.tokens.mean()), "decode_tokens": float(self.decode_tokens.mean()),
                "probe_tokens": float(self.probe_tokens.mean()),
                "sequential_tokens": float(self.sequential_tokens.mean()), "questions": q,
                "per_question": [round(float(a), 6) for a in self.accuracy]}


def evaluate_controller(data: ReplayData, act: Act, *,
                        orders: int = 16, seed: int = 0) -> ControllerEval:
    """Run a controller on every question of ``data`` over ``orders`` seeded trace orders."""
    n_q = data.n_questions
    acc = np.zeros(n_q)
    tok = np.zeros(n_q)
    dec = np.zeros(n_q)
    prb = np.zeros(n_q)
    seq = np.zeros(n_q)
    decisions = 0
    for q in range(n_q):
        for r in range(orders):
            rng = np.random.default_rng([seed, q, r])
            env = ReplayEnv(data, q, rng)
            act(env, rng)
            if env.answered is None:
                raise ConfigError("a controller ended without env.answer(...)")
            acc[q] += env.correct
            tok[q] += env.tokens
            dec[q] += env.decode_tokens
            prb[q] += env.probe_tokens
            seq[q] += env.sequential_tokens
            decisions += env.n_started + sum(env._seg) + env.probes_used + 1
    return ControllerEval(acc / orders, tok / orders, dec / orders, prb / orders, seq / orders, decisions)


def paired_difference_ci(a: Sequence[float], b: Sequence[float], rng: np.random.Generator,
                         draws: int = 2000) -> tuple[float, float, float]:
    """Mean of ``a - b`` over questions and its paired bootstrap 95% interval (questions resampled)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.size == 0:
        return float("nan"), float("nan"), float("nan")
    boot = d[rng.integers(d.size, size=(draws, d.size))].mean(axis=1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return float(d.mean()), float(lo), float(hi)


def _noise_note(best: Mapping[str, Any], top: Mapping[str, Any], rng: np.random.Generator) -> str:
    """The paired accuracy difference behind a headline, and whether it could be noise."""
    a, b = best.get("per_question"), top.get("per_question")
    if not a or not b or len(a) != len(b):
        return ""
    mean, lo, hi = paired_difference_ci(a, b, rng)
    text = f" (accuracy difference {mean:+.3f}, paired 95% CI [{lo:+.3f}, {hi:+.3f}] over {len(a)} questions"
    if not any(x > 0 for x in b):  # before: '75% fewer tokens' for matching an accuracy of 0
        return text + ": SC gets no held-out question right, so matching it takes nothing; not a finding)"
    if lo < -0.05:
        return text + ": it could be noise; more held-out questions are needed to call it a finding)"
    if hi - lo < 1e-12 and len(a) < 10:  # both score the same on each of a handful of questions: a point, not a CI
        return (text + f": the interval is a point because both score the same on each of only {len(a)} "
                "questions; not a finding at this size)")
    return text + ")"


def reference_curves(data: ReplayData, *, orders: int, seed: int, names: Sequence[str] | None = None,
                     betas: Mapping[str, Sequence[float]] | None = None) -> list[dict[str, Any]]:
    """The beta sweep of each reference controller: one point per beta."""
    from ttclab.search.controllers import REFERENCE

    out = []
    for name in names or REFERENCE:
        fn, grid = REFERENCE[name]
        for beta in (betas or {}).get(name, grid):
            if name == "sc" and beta > int(data.present.sum(axis=1).max()):
                continue
            ev = evaluate_controller(data, with_beta(fn, beta), orders=orders, seed=seed)
            out.append({"controller": name, "beta": beta, **ev.summary(np.random.default_rng(seed))})
    return out


def tokens_saved(points: Sequence[Mapping[str, Any]], sc_points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """For each point, the tokens SC@k needs for the same accuracy (interpolated) and the saving."""
    sc_sorted = sorted(sc_points, key=lambda p: p["tokens"])
    toks = np.array([p["tokens"] for p in sc_sorted])
    accs = np.maximum.accumulate(np.array([p["accuracy"] for p in sc_sorted]))
    out = []
    for p in points:
        need = float("nan")
        if len(accs) and p["accuracy"] <= accs[-1]:
            j = int(np.searchsorted(accs, p["accuracy"] - 1e-12))
            if j == 0 or accs[j] == accs[j - 1]:
                need = float(toks[j])
            else:
                t = (p["accuracy"] - accs[j - 1]) / (accs[j] - accs[j - 1])
                need = float(toks[j - 1] + t * (toks[j] - toks[j - 1]))
        saved = 1 - p["tokens"] / need if math.isfinite(need) and need > 0 else float("nan")
        out.append({**p, "sc_tokens_at_accuracy": need, "tokens_saved": saved})
    return out


def pareto(points: Sequence[Mapping[str, Any]], cost: str = "tokens") -> list[dict[str, Any]]:
    out, best = [], -1.0
    for p in sorted(points, key=lambda p: (p[cost], -p["accuracy"])):
        if p["accuracy"] > best:
            out.append(dict(p))
            best = p["accuracy"]
    return out


# -- config ----------------------------------------------------------------------------------------
class CollectSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: str = Field(description="a ttclab sample config (one model)")
    every: int = Field(ge=1)
    probe_tokens: int = Field(default=8, ge=1)
    cue: str = "\nAnswer:"
    limit: int | None = Field(default=None, ge=1)
    samples: int | None = Field(default=None, ge=1)


class DataSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run: str | None = None
    collect: CollectSpec | None = None
    synthetic: dict[str, Any] | None = None
    every: int | None = Field(default=None, ge=1, description="probe spacing to use when the run has several")

    @model_validator(mode="after")
    def _one(self) -> DataSpec:
        if sum(x is not None for x in (self.run, self.collect, self.synthetic)) != 1:
            raise ValueError("give exactly one of run, collect, synthetic")
        return self


class CodeLimitsSpec(BaseModel):
    """Limits of code controllers (:class:`ttclab.search.code_controller.CodeLimits`)."""

    model_config = ConfigDict(extra="forbid")
    decision_s: float = Field(default=1.0, gt=0, description="wall seconds per decision")
    load_s: float = Field(default=10.0, gt=0)
    max_decisions: int = Field(default=20_000, ge=1, description="per episode")
    cpu_s: float = Field(default=120.0, ge=1, description="CPU seconds of one evaluation's sandbox process")
    wall_s: float = Field(default=1800.0, ge=1, description="wall seconds of one evaluation's sandbox process")
    memory_mb: int = Field(default=256, ge=64)

    def limits(self) -> CodeLimits:
        from ttclab.sandbox.types import SandboxLimits
        from ttclab.search.code_controller import CodeLimits

        return CodeLimits(self.decision_s, self.load_s, self.max_decisions,
                          SandboxLimits(cpu_s=self.cpu_s, wall_s=self.wall_s, memory_mb=self.memory_mb,
                                        max_processes=8, max_output_kb=256))


class ControllerSearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    data: DataSpec
    split: dict[str, int] = Field(default_factory=lambda: {"search": 0, "heldout": 0},
                                  description="{search: N, heldout: M}; 0/0: half and half")
    orders: int = Field(default=16, ge=1)
    seed: int = 0
    references: list[Reference] = Field(default_factory=_all_references)
    betas: dict[str, list[float]] = Field(default_factory=dict)
    gamma: float = Field(default=0.5, ge=0, description="objective: accuracy - gamma * tokens / SC@N's tokens")
    method: dict[str, Any] = Field(default_factory=lambda: {"name": "reinforce", "evaluations": 24, "batch": 4})
    agent: dict[str, Any] | None = None
    code: list[dict[str, Any]] = Field(default_factory=list, description=(
        "controllers as Python source run in the sandbox: [{name, file | code, betas, budget}]"))
    code_limits: CodeLimitsSpec = Field(default_factory=CodeLimitsSpec)
    out: str | None = None


def load_controller_search(path: str | Path) -> tuple[ControllerSearchConfig, Path]:
    from ttclab.tasks.config import format_validation_error

    path = Path(path)
    data = read_yaml_mapping(path, "controller search", "name, data")
    if "data" not in data and {"models", "task"} & set(data):  # before: "task: unknown setting; did you mean 'betas'?"
        raise ConfigError(f"{path}: a graph search config (it has {', '.join(sorted({'models', 'task'} & set(data)))}, "
                          f"no data:); run it with `ttclab search graph {path}`")
    try:
        return ControllerSearchConfig.model_validate(data), path.parent
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None


@dataclass
class ControllerSearchResult:
    out: Path
    curves: list[dict[str, Any]]
    front: list[dict[str, Any]]
    trials: list[dict[str, Any]]
    headline: list[str] = field(default_factory=list)
    code_trials: list[dict[str, Any]] = field(default_factory=list)
    code_failures: list[dict[str, Any]] = field(default_factory=list)


def _data(cfg: ControllerSearchConfig, base: Path, store: str | Path | None, progress: bool,
          log: Callable[[str], None] | None = None) -> ReplayData:
    from ttclab.search.replay import from_run, synthetic
    from ttclab.store.reader import store_root

    d = cfg.data
    if d.synthetic is not None:
        return synthetic(**d.synthetic)
    if d.run is not None:
        path = Path(d.run)
        return from_run(path if path.is_dir() else store_root(store) / d.run, d.every)
    assert d.collect is not None
    from ttclab.experiment import sample

    c = d.collect
    cpath = Path(c.config)
    if not cpath.is_absolute():
        cpath = base / cpath
    results = sample(cpath, progress=progress, store=store, limit=c.limit, samples=c.samples, log=log,
                     probe={"every": c.every, "cue": c.cue, "max_tokens": c.probe_tokens})
    if len(results) != 1:
        raise ConfigError(f"data.collect.config: {cpath} has {len(results)} models; controller search uses one")
    return from_run(results[0].run, c.every)


def search_controllers(config: str | Path | ControllerSearchConfig, *, store: str | Path | None = None,
                       progress: bool = True, evaluations: int | None = None,
                       out: str | Path | None = None, log: Callable[[str], None] | None = None) -> ControllerSearchResult:
    """Reference sweeps, the family search (search split), held-out evaluation and the comparison with SC@k.

    ``log`` gets progress lines of collecting the traces (sampling, probing) where there is no bar."""
    from ttclab.search.code_controller import code_controller, code_sweep
    from ttclab.search.controllers import family_space
    from ttclab.search.methods import make_method, run_search
    from ttclab.store.reader import store_root

    if isinstance(config, ControllerSearchConfig):
        cfg, base = config, Path.cwd()
    else:
        cfg, base = load_controller_search(config)
    data = _data(cfg, base, store, progress, log)
    n = data.n_questions
    n_s = cfg.split.get("search") or n // 2
    n_h = cfg.split.get("heldout") or n - n_s
    if n_s + n_h > n or n_s < 1 or n_h < 1:
        raise ConfigError(f"split: search {n_s} + heldout {n_h} questions, but the data has {n}")
    search, held = data.subset(range(n_s)), data.subset(range(n_s, n_s + n_h))
    out_dir = Path(out or cfg.out or store_root(store) / "search" / cfg.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=2, unit="sweep", desc=f"controllers {cfg.name}", file=sys.stderr, dynamic_ncols=True)
    code_limits = cfg.code_limits.limits()
    code_ctrls = _code_controllers(cfg, base)
    code_failures: list[dict[str, Any]] = []
    curves = {}
    for split_name, part in (("search", search), ("heldout", held)):
        curves[split_name] = reference_curves(part, orders=cfg.orders, seed=cfg.seed, names=cfg.references,
                                              betas=cfg.betas)
        for ctrl in code_ctrls:
            points, failures = code_sweep(part, ctrl, orders=cfg.orders, seed=cfg.seed, limits=code_limits)
            curves[split_name] += points
            code_failures += [{**f, "split": split_name} for f in failures]
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    sc_search = [p for p in curves["search"] if p["controller"] == "sc"]
    scale = max((p["tokens"] for p in sc_search), default=1.0) or 1.0

    # the family search, resumable
    trials_path = out_dir / "trials.jsonl"
    done: dict[str, dict[str, Any]] = {}
    if trials_path.exists():
        for line in trials_path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                done[rec["key"]] = rec
    space = family_space(int(data.present.sum(axis=1).max()))
    mopts = dict(cfg.method)
    name = str(mopts.pop("name", "reinforce"))
    n_eval = int(evaluations or mopts.pop("evaluations", 24))
    mopts.pop("evaluations", None)
    batch = int(mopts.pop("batch", 4))
    sbar = None
    if progress:
        from tqdm import tqdm

        sbar = tqdm(total=n_eval, unit="controller", desc=f"search {name}", file=sys.stderr, dynamic_ncols=True)

    seen: list[str] = []  # keys in this session's order: the agent's summary (and prompt) replays on a re-run
    code_seen: list[str] = []

    def evaluate(cand: dict[str, Any]) -> tuple[float | None, dict[str, Any]]:
        key = space.key(cand)
        if key not in seen:
            seen.append(key)
        if key not in done:
            ev = evaluate_controller(search, with_params(cand), orders=cfg.orders, seed=cfg.seed)
            s = ev.summary(np.random.default_rng(cfg.seed))
            rec = {"key": key, "params": cand, "search": s, "score": s["accuracy"] - cfg.gamma * s["tokens"] / scale,
                   "evaluation": len(done), "method": name}
            done[key] = rec
            with trials_path.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
        if sbar is not None:
            sbar.update(1)
        return done[key]["score"], {}

    # code proposals of the agent: swept on the search split as they come, resumable
    code_path = out_dir / "code_trials.jsonl"
    code_done: dict[str, dict[str, Any]] = {}
    if code_path.exists():
        for line in code_path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                code_done[rec["key"]] = rec

    def evaluate_code(ctrl: CodeController) -> None:
        key = f"{ctrl.key}:{json.dumps(ctrl.betas)}"
        if key not in code_seen:
            code_seen.append(key)
        if key not in code_done:
            points, failures = code_sweep(search, ctrl, orders=cfg.orders, seed=cfg.seed, limits=code_limits)
            for p in points:
                p["score"] = p["accuracy"] - cfg.gamma * p["tokens"] / scale
            rec = {"key": key, "name": ctrl.name, "betas": list(ctrl.betas), "budget": ctrl.budget,
                   "source": ctrl.source, "search": points, "failures": failures, "evaluation": len(code_done)}
            code_done[key] = rec
            with code_path.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")

    if name == "agent":
        from ttclab.search.agent import AgentProposer

        if cfg.agent is None:
            raise ConfigError("method agent needs an agent: {model: {...}} section")
        method: Any = AgentProposer(space, ModelSpec.model_validate(cfg.agent["model"]), seed=cfg.method.get("seed", 0),
                                    batch=batch, log_path=out_dir / "agent.jsonl",
                                    max_tokens=int(cfg.agent.get("max_tokens", 256)),
                                    what="a controller that spends decode tokens on parallel reasoning traces",
                                    code=bool(cfg.agent.get("code", False)), decision_s=code_limits.decision_s)
        method.summary = lambda: _controller_summary([done[k] for k in seen], sc_search, [code_done[k] for k in code_seen])
        method.on_code = evaluate_code
    else:
        method = make_method(name, space, seed=int(mopts.pop("seed", 0)), batch=batch, options=mopts)
    try:
        run_search(method, evaluate, evaluations=n_eval)
    finally:
        if sbar is not None:
            sbar.close()
        if hasattr(method, "close"):
            method.close()
    trials = sorted(done.values(), key=lambda r: r["evaluation"])
    # the searched candidates on the search-split front, and the reference points, on the held-out split
    fam_front = pareto([{**r["search"], "controller": "family", "beta": json.dumps(r["params"]), "params": r["params"]}
                        for r in trials])
    held_points = list(curves["heldout"])
    for p in fam_front:
        ev = evaluate_controller(held, with_params(p["params"]), orders=cfg.orders, seed=cfg.seed)
        held_points.append({"controller": "searched", "beta": p["beta"], "params": p["params"],
                            **ev.summary(np.random.default_rng(cfg.seed))})
    code_trials = sorted(code_done.values(), key=lambda r: r["evaluation"])
    for rec in code_trials:  # proposed code that ran on the search split: its sweep on the held-out split
        if rec["search"] and not rec["failures"]:
            ctrl = code_controller({"code": rec["source"], "betas": rec["betas"], "budget": rec["budget"],
                                    "name": rec["name"]})
            points, failures = code_sweep(held, ctrl, orders=cfg.orders, seed=cfg.seed, limits=code_limits)
            held_points += [{**p, "proposed": True} for p in points]
            code_failures += [{**f, "split": "heldout"} for f in failures]
    code_failures += [{**f, "split": "search"} for rec in code_trials for f in rec["failures"]]
    sc_held = [p for p in held_points if p["controller"] == "sc"]
    saved = tokens_saved(held_points, sc_held)
    front = pareto(saved)
    headline = []
    if sc_held:
        top = max(sc_held, key=lambda p: p["beta"])
        matched = [p for p in saved if p["accuracy"] >= top["accuracy"] and p["controller"] != "sc"]
        if matched:
            best = min(matched, key=lambda p: p["tokens"])
            line = (f"matched SC@{top['beta']:g} held-out accuracy {top['accuracy']:.3f} with "
                    f"{best['controller']} (beta {best['beta']}) at {best['tokens']:.0f} tokens vs "
                    f"{top['tokens']:.0f}: {100 * (1 - best['tokens'] / top['tokens']):.1f}% fewer tokens")
            headline.append(line + _noise_note(best, top, np.random.default_rng(cfg.seed)))
        else:
            headline.append(f"no controller matched SC@{top['beta']:g}'s held-out accuracy {top['accuracy']:.3f}")
    summary = {"name": cfg.name, "source": data.source, "every": data.every, "questions": {"search": n_s, "heldout": n_h},
               "traces_per_question": int(data.present.sum(axis=1).max()), "orders": cfg.orders,
               "curves": curves, "heldout_points": saved, "front": front, "trials": trials, "headline": headline,
               "rejected": getattr(method, "rejected", []), "code_trials": code_trials,
               "code_failures": code_failures}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    from ttclab.report.search import write_search_report

    write_search_report(out_dir)  # report.html: fronts, trajectory (and the chosen graph)
    return ControllerSearchResult(out_dir, saved, front, trials, headline, code_trials, code_failures)


def _code_controllers(cfg: ControllerSearchConfig, base: Path) -> list[CodeController]:
    from ttclab.search.code_controller import code_controller

    out = []
    for i, raw in enumerate(cfg.code):
        try:
            out.append(code_controller(raw, base=base, name=f"code-{i}"))
        except ValueError as exc:
            raise ConfigError(f"code[{i}]: {exc}") from None
    names = [c.name for c in out]
    taken = set(cfg.references) | {"searched"}
    clash = sorted({n for n in names if names.count(n) > 1 or n in taken})
    if clash:
        raise ConfigError(f"code: controller name(s) {', '.join(clash)} are taken; give each a name of its own")
    return out


def _controller_summary(trials: Sequence[Mapping[str, Any]], sc_points: Sequence[Mapping[str, Any]],
                        code_trials: Sequence[Mapping[str, Any]] = ()) -> str:
    lines = ["Reference SC@k on the search split: " + "; ".join(
        f"k={p['beta']:g}: acc {p['accuracy']:.3f}, {p['tokens']:.0f} tokens" for p in sc_points)]
    for r in sorted(trials, key=lambda r: -r["score"])[:8]:
        s = r["search"]
        lines.append(f"- params {json.dumps(r['params'])}: acc {s['accuracy']:.3f}, {s['tokens']:.0f} tokens, "
                     f"score {r['score']:.3f}")
    for r in code_trials[-4:]:
        runs = "; ".join(f"beta {p['beta']:g}: acc {p['accuracy']:.3f}, {p['tokens']:.0f} tokens" for p in r["search"])
        fails = "; ".join(f"beta {f['beta']:g} FAILED ({f['reason']}: {f['detail']})" for f in r["failures"])
        lines.append(f"- code controller {r['name']}: " + "; ".join(x for x in (runs, fails) if x))
    return "\n".join(lines)
