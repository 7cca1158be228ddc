"""``ttclab search graph CONFIG``: search collaboration graphs under a budget, honestly validated.

Every candidate is decoded to a graph, its cost predicted on the search split
(:mod:`ttclab.search.cost`); a graph over the budget is rejected without being run. The others
compile to pipelines and run through the online engine on the search split (their calls are
stored and cached, so graphs sharing nodes share calls and a re-run replays them). Each evaluation
is a line of ``trials.jsonl`` in the output folder: a re-run continues where it stopped. At the
end, the Pareto front (accuracy vs predicted cost, and vs latency) is evaluated on a disjoint
held-out split with Wilson CIs, and the best graph per budget level is written as a pipeline file
``ttclab run`` accepts (``best/<level>.yaml``) with its graph spec (``best/<level>.graph.yaml``).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ttclab.config import ModelSpec, VerifierSpec, read_yaml_mapping
from ttclab.errors import ConfigError
from ttclab.strategies.bootstrap import wilson
from ttclab.tasks.config import TaskConfig, format_validation_error

FEW_QUESTIONS = 10  # below this, a split's accuracies are said to be rough


class SplitSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    search: int = Field(ge=1, description="the first N questions: the search split")
    heldout: int = Field(ge=1, description="the next M questions: the held-out split")


InnerRole = Literal["refiner", "fuser"]
OutputRole = Literal["judge", "fuser"]
Heuristic = Literal["model_prior", "moderate_size", "budget_coupling"]


def _inner_roles() -> list[InnerRole]:
    return ["refiner", "fuser"]


def _output_roles() -> list[OutputRole]:
    return ["judge", "fuser"]


def _heuristics() -> list[Heuristic]:
    return ["model_prior", "moderate_size", "budget_coupling"]


class SpaceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_width: int = Field(default=3, ge=1, le=16)
    max_depth: int = Field(default=2, ge=1, le=8)
    roles: list[InnerRole] = Field(default_factory=_inner_roles, min_length=1)
    output_roles: list[OutputRole] = Field(default_factory=_output_roles, min_length=1)
    skips: bool = True


class BudgetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit: Literal["total_tokens", "completion_tokens", "calls", "flops", "latency_s"] = "total_tokens"
    max: float = Field(gt=0, description="per question, predicted")
    levels: list[float] = Field(default_factory=list, description="budgets to report a best graph for")


class MethodSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["random", "grid", "reinforce", "agent"] = "reinforce"
    evaluations: int = Field(default=12, ge=1)
    batch: int = Field(default=4, ge=1)
    seed: int = 0
    lr: float = Field(default=0.5, gt=0)
    baseline_decay: float = Field(default=0.8, ge=0, lt=1)
    over: list[str] = Field(default_factory=lambda: ["width", "depth"])


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: ModelSpec
    max_tokens: int = Field(default=256, ge=16)
    temperature: float = Field(default=0.7, ge=0)
    examples: int = Field(default=3, ge=0, description="failed questions shown per summary")


class GraphSearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    task: TaskConfig
    verifier: VerifierSpec | None = None
    split: SplitSpec
    models: dict[str, ModelSpec] = Field(min_length=1)
    sampling: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0.7, "max_tokens": 128})
    seed: int = 0
    space: SpaceSpec = Field(default_factory=SpaceSpec)
    budget: BudgetSpec
    method: MethodSpec = Field(default_factory=MethodSpec)
    heuristics: list[Heuristic] = Field(default_factory=_heuristics)
    gamma: float = Field(default=0.0, ge=0, description="score = accuracy - gamma * cost / budget.max")
    agent: AgentSpec | None = None
    token_counter: dict[str, Literal["llama", "whitespace", "chars"]] = Field(default_factory=dict)
    out: str | None = None
    front_heldout: int = Field(default=6, ge=1, description="front members evaluated on the held-out split")
    concurrency: int | None = Field(default=None, ge=1, description="questions in flight per graph run")

    @model_validator(mode="after")
    def _check(self) -> GraphSearchConfig:
        if self.method.name == "agent" and self.agent is None:
            raise ValueError("method agent needs an agent: {model: {...}} section")
        for k in self.token_counter:
            if k not in self.models:
                raise ValueError(f"token_counter: {k!r} is not one of the models")
        return self


def load_graph_search(path: str | Path) -> tuple[GraphSearchConfig, Path]:
    path = Path(path)
    data = read_yaml_mapping(path, "graph search", "name, task, split, models, budget")
    if "data" in data and "models" not in data:
        raise ConfigError(f"{path}: a controller search config (it has data:, no models:); run it with "
                          f"`ttclab search controller {path}`")
    try:
        cfg = GraphSearchConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None
    return cfg, path.parent


@dataclass
class GraphSearchResult:
    out: Path
    trials: list[dict[str, Any]]
    front: list[dict[str, Any]]
    best: dict[str, dict[str, Any]]
    rejected: int
    agent_rejected: int
    notes: list[str] = field(default_factory=list)


def pareto(points: list[dict[str, Any]], cost: str, acc: str = "accuracy") -> list[dict[str, Any]]:
    """Points not dominated (lower cost, higher accuracy), by increasing cost."""
    pts = sorted((p for p in points if math.isfinite(p.get(cost, float("nan"))) and math.isfinite(p.get(acc, float("nan")))),
                 key=lambda p: (p[cost], -p[acc]))
    out, best = [], -1.0
    for p in pts:
        if p[acc] > best:
            out.append(p)
            best = p[acc]
    return out


class _Evaluator:
    """Runs graphs (shared backends, stored trials, resumable)."""

    def __init__(self, cfg: GraphSearchConfig, store: Path, out: Path, progress: bool) -> None:
        from ttclab.backends import create_backend
        from ttclab.search.cost import TokenStats, model_costing
        from ttclab.tasks.config import load_task

        self.cfg, self.store, self.out, self.progress = cfg, store, out, progress
        task = load_task(cfg.task)
        n = cfg.split.search + cfg.split.heldout
        self.questions = list(task.questions())[:n]
        if len(self.questions) < n:
            raise ConfigError(f"split: the task has {len(self.questions)} questions; search + heldout needs {n}")
        self.backends = {k: create_backend(m.backend, model=m.name, **m.options) for k, m in cfg.models.items()}
        self.costing = model_costing(cfg.models, backends=self.backends, counters=cfg.token_counter,
                                     max_tokens=int(cfg.sampling.get("max_tokens", 128)))
        self.stats = TokenStats.from_store(store)
        self.trials_path = out / "trials.jsonl"
        self.done: dict[str, dict[str, Any]] = {}
        self.session: list[str] = []  # graph keys in the order this search reached them (a resumed one: again)
        if self.trials_path.exists():
            for line in self.trials_path.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    self.done[rec["graph_key"]] = rec

    def predict(self, graph: Any) -> Any:
        from ttclab.search.cost import predict_cost

        return predict_cost(graph, self.questions[: self.cfg.split.search], self.costing, self.stats, self.cfg.sampling)

    def pipeline(self, graph: Any, limit: int) -> Any:
        from ttclab.search.graph import compile_graph

        task = self.cfg.task.model_dump(mode="json", exclude_none=True)
        return compile_graph(graph, name=f"{self.cfg.name}-{graph.key()}", task=task,
                             verifier=self.cfg.verifier.model_dump(mode="json") if self.cfg.verifier else None,
                             sampling=self.cfg.sampling, seed=self.cfg.seed, limit=limit,
                             concurrency=self.cfg.concurrency)

    def run(self, graph: Any, limit: int) -> Any:
        from ttclab.online.runner import run_pipeline
        from ttclab.search.graph import main_model

        pipe = self.pipeline(graph, limit)
        main = main_model(graph)
        return run_pipeline(pipe, store=self.store, progress=False, backend=self.backends[main],
                            backends={k: b for k, b in self.backends.items() if k != main})

    def evaluate(self, cand: dict[str, Any], graph: Any, source: str) -> dict[str, Any]:
        from ttclab.online.results import pipeline_outcome
        from ttclab.search.cost import TokenStats, actual_cost

        key = graph.key()
        if key not in self.session:
            self.session.append(key)
        if key in self.done:
            return self.done[key]
        pred = self.predict(graph)
        rec: dict[str, Any] = {"graph_key": key, "candidate": cand, "graph": graph.as_dict(),
                               "describe": graph.describe(), "width": graph.width, "depth": graph.depth,
                               "nodes": len(graph.nodes), "predicted": pred.as_dict(), "predict_notes": pred.notes,
                               "source": source}
        budget = self.cfg.budget
        if pred[budget.unit] > budget.max:
            rec.update(rejected=f"predicted {budget.unit} {pred[budget.unit]:.0f} > budget {budget.max:g}",
                       accuracy=None, score=None)
        else:
            r = self.run(graph, self.cfg.split.search)
            outcome = pipeline_outcome(r.run)
            act = actual_cost(r.run.path, graph, self.costing)
            n_ok = int((outcome.correct == outcome.correct).sum())
            acc = outcome.accuracy
            rec.update(accuracy=acc, ci=wilson(acc * n_ok, n_ok), questions=n_ok, actual=act.as_dict(),
                       run_id=r.run.run_id, fresh_calls=r.stats.fresh, replayed_calls=r.stats.replayed,
                       failures=_failures(r.run, self.cfg.agent.examples if self.cfg.agent else 3))
            rec["score"] = acc - self.cfg.gamma * act[budget.unit] / budget.max if math.isfinite(acc) else None
            self.stats = TokenStats.from_store(self.store)  # the new calls refine later predictions
        rec["evaluation"] = len(self.done)
        self.done[key] = rec
        with self.trials_path.open("a") as fh:
            fh.write(json.dumps(rec, default=_json) + "\n")
        return rec

    def heldout(self, graph: Any) -> dict[str, Any]:
        import numpy as np

        from ttclab.online.results import pipeline_outcome
        from ttclab.search.cost import actual_cost

        n_s, n_h = self.cfg.split.search, self.cfg.split.heldout
        r = self.run(graph, n_s + n_h)
        outcome = pipeline_outcome(r.run)
        held = outcome.correct[n_s:n_s + n_h]
        ok = np.isfinite(held)
        k, n = float(held[ok].sum()), int(ok.sum())
        act = actual_cost(r.run.path, graph, self.costing, questions=range(n_s, n_s + n_h))
        return {"accuracy": k / n if n else float("nan"), "ci": wilson(k, n), "questions": n, "actual": act.as_dict(),
                "run_id": r.run.run_id}

    def close(self) -> None:
        import asyncio

        async def close_all() -> None:
            for b in self.backends.values():
                await b.aclose()

        asyncio.run(close_all())


def _failures(run: Any, k: int) -> list[dict[str, Any]]:
    from ttclab.store.journal import read_table

    rows = [r for r in read_table(run.path, "results").to_pylist() if r["verdict"] not in ("correct",)]
    qs = run.questions().to_pydict()
    out = []
    for r in rows[:k]:
        qi = r["question_index"]
        out.append({"question": qs["question"][qi][:200], "gold": qs["gold"][qi], "answer": r["answer"],
                    "verdict": r["verdict"]})
    return out


def _json(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return str(x)


def search_graphs(config: str | Path | GraphSearchConfig, *, store: str | Path | None = None, progress: bool = True,
                  evaluations: int | None = None, out: str | Path | None = None,
                  log: Callable[[str], None] | None = None) -> GraphSearchResult:
    """Run (or continue) a graph search; returns the trials, the Pareto front (held-out
    accuracies attached) and the best graph per budget level (also written under ``out``).
    ``log`` gets a line as the search starts and as each graph is run or rejected (progress
    where there is no bar: a log file, a pipe)."""
    from ttclab.search.graph_space import budget_constraint, decode, graph_space, initial_distribution, single_model_candidates
    from ttclab.search.methods import make_method, run_search
    from ttclab.store.reader import store_root

    if isinstance(config, GraphSearchConfig):
        cfg, base = config, Path.cwd()
    else:
        cfg, base = load_graph_search(config)
    if evaluations is not None:
        cfg = cfg.model_copy(update={"method": cfg.method.model_copy(update={"evaluations": evaluations})})
    root = store_root(store)
    out_dir = Path(out or cfg.out or root / "search" / cfg.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=1))
    ev = _Evaluator(cfg, root, out_dir, progress)
    pool = list(cfg.models)
    space = graph_space(pool, max_width=cfg.space.max_width, max_depth=cfg.space.max_depth, roles=cfg.space.roles,
                        output_roles=cfg.space.output_roles, skips=cfg.space.skips)
    cheapest = min((decode(c, cfg.models) for c in single_model_candidates(space, pool)),
                   key=lambda g: ev.predict(g)[cfg.budget.unit])  # a lone generator: every graph has one
    floor = ev.predict(cheapest)[cfg.budget.unit]
    if floor > cfg.budget.max:  # before: every candidate rejected, one line each, for minutes, then an empty front
        ev.close()
        raise ConfigError(f"budget.max {cfg.budget.max:g} {cfg.budget.unit} per question is below the cheapest graph "
                          f"({cheapest.describe()}: {floor:.0f} {cfg.budget.unit}/q predicted): no graph fits; raise "
                          f"budget.max to at least {floor:.0f}")
    total = cfg.method.evaluations + (len(pool) if "model_prior" in cfg.heuristics else 0)
    bar = _bar(total, cfg.name, progress)
    if log is not None:
        log(f"search {cfg.name}: {cfg.method.name}, up to {total} graphs of {', '.join(pool)}, each run on "
            f"{cfg.split.search} questions (budget {cfg.budget.max:g} {cfg.budget.unit} per question); "
            f"{len(ev.done)} already stored in {out_dir}")
    try:
        def evaluate(cand: dict[str, Any], source: str = cfg.method.name) -> tuple[float | None, dict[str, Any]]:
            graph = decode(cand, cfg.models)
            fresh = graph.key() not in ev.done
            duplicate = graph.key() in ev.session  # another candidate of a graph this search already reached
            rec = ev.evaluate(cand, graph, source)
            if fresh and (bar is not None or log is not None):
                best = max((r["accuracy"] for r in ev.done.values() if r.get("accuracy") is not None), default=float("nan"))
                run = sum(1 for k in ev.session if ev.done[k].get("accuracy") is not None)
                if bar is not None and not rec.get("rejected"):
                    bar.update(1)
                    bar.set_postfix_str(f"best acc {best:.2f}", refresh=False)
                if log is not None:
                    cost = f"{rec['predicted'][cfg.budget.unit]:.0f} {cfg.budget.unit}/q predicted"
                    log(f"  {rec['describe']}: over budget ({cost}), not run" if rec.get("rejected") else
                        f"  [{run}/{total}] accuracy {rec['accuracy']:.3f}, {cost}: {rec['describe']} "
                        f"(best so far {best:.3f})")
            return rec.get("score"), {"rejected": rec.get("rejected"), "duplicate": duplicate}

        model_acc: dict[str, float] = {}
        if "model_prior" in cfg.heuristics:
            for m, cand in zip(pool, single_model_candidates(space, pool)):
                evaluate(cand, "model_prior")
                rec = ev.done[decode(cand, cfg.models).key()]
                model_acc[m] = rec.get("accuracy") or 0.0
        init = initial_distribution(space, cfg.heuristics, model_accuracy=model_acc)
        constrain = None
        if "budget_coupling" in cfg.heuristics:
            constrain = budget_constraint(lambda c: ev.predict(decode(c, cfg.models))[cfg.budget.unit], cfg.budget.max)
        if cfg.method.name == "agent":
            from ttclab.search.agent import AgentProposer

            assert cfg.agent is not None
            method: Any = AgentProposer(space, cfg.agent.model, seed=cfg.method.seed, batch=cfg.method.batch, init=init,
                                        constrain=constrain, max_tokens=cfg.agent.max_tokens,
                                        temperature=cfg.agent.temperature, log_path=out_dir / "agent.jsonl",
                                        what="collaboration graphs (roles generator/refiner/fuser/judge)")
            # what the search has reached so far (on a re-run the same, so the replies replay)
            method.summary = lambda: graph_summary([ev.done[k] for k in ev.session], cfg)
        else:
            method = make_method(cfg.method.name, space, seed=cfg.method.seed, batch=cfg.method.batch, init=init,
                                 constrain=constrain, options=cfg.method.model_dump())
        run_search(method, evaluate, evaluations=cfg.method.evaluations)
        agent_rejected = len(getattr(method, "rejected", []))
        if hasattr(method, "close"):
            method.close()
        trials = sorted(ev.done.values(), key=lambda r: r["evaluation"])
        evaluated = [dict(r, cost=r["predicted"][cfg.budget.unit], latency=r["predicted"]["latency_s"])
                     for r in trials if r.get("accuracy") is not None]
        front = pareto(evaluated, "cost")
        front_latency = pareto(evaluated, "latency")
        from ttclab.search.graph import parse_graph, to_pipeline, write_pipeline

        chosen = front[-cfg.front_heldout:]
        if log is not None:
            log(f"held-out: the last {len(chosen)} graphs of the Pareto front (and the best per budget level) on "
                f"{cfg.split.heldout} more questions")
        for rec in chosen:
            rec["heldout"] = ev.heldout(parse_graph(rec["graph"]))
        best: dict[str, dict[str, Any]] = {}
        notes: list[str] = []
        if min(cfg.split.search, cfg.split.heldout) < FEW_QUESTIONS:
            notes.append(f"search on {cfg.split.search} questions, held-out on {cfg.split.heldout}: at this size "
                         "accuracy differences between graphs are mostly noise (see the held-out CIs); raise split "
                         "and the task size for a finding")
        for level in sorted(set(cfg.budget.levels or [cfg.budget.max])):
            fits = [r for r in evaluated if r["cost"] <= level]
            if not fits:
                low = min((r["cost"] for r in evaluated), default=float("nan"))
                notes.append(f"budget level {level:g} {cfg.budget.unit}: no evaluated graph fits (the cheapest "
                             f"evaluated costs {low:.0f}/q predicted); no best graph for it")
                continue
            top = max(fits, key=lambda r: (r["accuracy"], -r["cost"]))
            graph = parse_graph(top["graph"])
            if "heldout" not in top:
                top["heldout"] = ev.heldout(graph)
            label = f"{cfg.budget.unit}-{level:g}"
            spec = to_pipeline(graph, name=f"{cfg.name}-best-{label}", task=cfg.task.model_dump(mode="json", exclude_none=True),
                               verifier=cfg.verifier.model_dump(mode="json") if cfg.verifier else None,
                               sampling=cfg.sampling, seed=cfg.seed,
                               description=f"best graph within {level:g} {cfg.budget.unit} per question "
                                           f"(search accuracy {top['accuracy']:.3f}): {graph.describe()}")
            write_pipeline(out_dir / "best" / f"{label}.yaml", spec)
            write_pipeline(out_dir / "best" / f"{label}.graph.yaml", graph.as_dict())
            best[label] = {**top, "pipeline_file": str(out_dir / "best" / f"{label}.yaml")}
        rejected_over_budget = sum(1 for r in trials if r.get("rejected"))
        summary = {"name": cfg.name, "unit": cfg.budget.unit, "budget": cfg.budget.max, "method": cfg.method.name,
                   "heuristics": cfg.heuristics, "trials": trials, "front": front,
                   "front_latency": front_latency, "best": best,
                   "rejected_over_budget": rejected_over_budget,
                   "agent_rejected": agent_rejected, "notes": notes,
                   "agent_rejections": getattr(method, "rejected", [])}
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=_json))
        from ttclab.report.search import write_search_report

        write_search_report(out_dir)  # report.html: fronts, trajectory (and the chosen graph)
    finally:
        if bar is not None:
            bar.close()
        ev.close()
    return GraphSearchResult(out_dir, trials, front, best, rejected_over_budget, agent_rejected, notes)


def graph_summary(records: Any, cfg: GraphSearchConfig, top: int = 8) -> str:
    """The agent's view of the search so far: the best and the latest graphs, costs, failures."""
    recs = [r for r in records if r.get("accuracy") is not None]
    lines = [f"Task: {cfg.task.name if hasattr(cfg.task, 'name') else 'task'}; budget {cfg.budget.max:g} "
             f"{cfg.budget.unit} per question (predicted). Models: {', '.join(cfg.models)}.",
             f"Evaluated graphs: {len(recs)}; rejected over budget: {sum(1 for r in records if r.get('rejected'))}."]
    for r in sorted(recs, key=lambda r: -(r["accuracy"]))[:top]:
        lines.append(f"- accuracy {r['accuracy']:.3f}, {cfg.budget.unit} {r['predicted'][cfg.budget.unit]:.0f}: "
                     f"{r['describe']} | choices {json.dumps(r['candidate'])}")
    fails = [f for r in recs[-2:] for f in r.get("failures", [])][:3]
    for f in fails:
        lines.append(f"  failed example: question {f['question']!r}, gold {f['gold']!r}, answered {f['answer']!r}")
    return "\n".join(lines)


def _bar(total: int, label: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="graph", desc=f"search {label}", file=sys.stderr, dynamic_ncols=True)
