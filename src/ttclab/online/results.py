"""From a stored pipeline run to results: per-question correctness and the full ledger by role.

Reads only the store (``results`` and ``calls`` tables) and the ledger's data files, so the analysis
layer can call it: :func:`pipeline_outcome` (arrays per question, totals by role) and
:func:`pipeline_ledgers` (a :class:`~ttclab.ledger.costs.StrategyLedger` with ``k = 1``, the
pipeline's name as the strategy, so ``summarize``, ``optimize`` and the report treat a pipeline run
like any offline strategy point). Every call counts — generator, critic, reviser, judge, scorer,
reward model — including calls replayed from the cache (the compute the result needs).

Per call, FLOPs and memory traffic use the ledger's formulas for one prompt of ``p`` and one
completion of ``d`` tokens (no prefix caching across calls; reward-model calls are prefill on the
generator's architecture unless ``rm_model`` is given); USD is the price file's input/output price.
Latency: sequential = the sum of the calls' latencies; parallel = the critical path, taking calls
of one step in a row as concurrent (the maximum of each such group, summed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ttclab.store.journal import read_table
from ttclab.store.reader import Run

_CALL_COLUMNS = ["question_index", "step_id", "role", "prompt_tokens", "completion_tokens", "latency_s", "error",
                 "finish_reason"]


@dataclass
class PipelineOutcome:
    """Correctness and costs of a pipeline run, per question (index order of questions.parquet)."""

    run_id: str
    pipeline: str
    model: str  # the LLM's name (for the ledger's architecture and price lookups)
    label: str
    oracle: bool
    question_ids: np.ndarray
    correct: np.ndarray  # (Q,) 1.0 / 0.0, NaN where the question has no finished result
    calls: list[list[dict[str, Any]]]  # per question, the successful calls (role, tokens, latency, step)
    notes: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        ok = np.isfinite(self.correct)
        return float(self.correct[ok].mean()) if ok.any() else float("nan")

    def accuracy_ci(self, confidence: float = 0.95) -> tuple[float, float]:
        """Wilson score interval of the accuracy over finished questions."""
        from scipy.special import ndtri

        from ttclab.strategies.bootstrap import wilson

        ok = np.isfinite(self.correct)
        return wilson(float(self.correct[ok].sum()), int(ok.sum()), float(ndtri(0.5 + confidence / 2)))

    def by_role(self) -> dict[str, dict[str, float]]:
        """Totals over the run's questions per role: calls, prompt / completion tokens, latency."""
        out: dict[str, dict[str, float]] = {}
        for calls in self.calls:
            for c in calls:
                r = out.setdefault(c["role"], {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "latency_s": 0.0})
                r["calls"] += 1
                r["prompt_tokens"] += c["prompt_tokens"] or 0
                r["completion_tokens"] += c["completion_tokens"] or 0
                r["latency_s"] += c["latency_s"] or 0.0
        return dict(sorted(out.items()))

    def tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """(Q,) prompt and completion tokens per question over all calls."""
        p = np.array([sum(c["prompt_tokens"] or 0 for c in cs) for cs in self.calls], dtype=float)
        d = np.array([sum(c["completion_tokens"] or 0 for c in cs) for cs in self.calls], dtype=float)
        return p, d


def pipeline_outcome(run: Run) -> PipelineOutcome:
    """The outcome of a stored pipeline run (ConfigError-free: a run without results has NaN correctness)."""
    meta = run.meta
    qs = run.questions().to_pydict()
    n_q = len(qs["question_index"])
    correct = np.full(n_q, np.nan)
    finished: set[int] = set()
    unlabelled = 0
    for r in read_table(run.path, "results").to_pylist():
        qi = r["question_index"]
        if 0 <= qi < n_q and r["verdict"] != "error":
            if r["verdict"] != "unlabelled":  # served traffic without a reference: costs count, correctness unknown
                correct[qi] = 1.0 if r["correct"] else 0.0
            else:
                unlabelled += 1
            finished.add(qi)
    calls: list[list[dict[str, Any]]] = [[] for _ in range(n_q)]
    table = read_table(run.path, "calls", _CALL_COLUMNS).to_pylist()
    for c in table:
        qi = c["question_index"]
        if c["error"] is None and qi in finished:
            calls[qi].append(c)
    pipeline = meta.get("pipeline") or {}
    model = meta.get("model") or {}
    notes = [] if len(finished) == n_q else [f"{n_q - len(finished)} of {n_q} questions have no finished result"]
    if unlabelled:
        notes.append(f"{unlabelled} of {len(finished)} served answers carry no reference (ttc.reference): accuracy and the "
                     f"costs per question are over the {len(finished) - unlabelled} labelled ones; `ttclab runs` "
                     "counts the tokens of all")
    return PipelineOutcome(run.run_id, str(pipeline.get("name") or meta.get("name") or run.run_id),
                           str(model.get("name") or ""), run.model, bool(pipeline.get("oracle")),
                           np.asarray(qs["question_id"], dtype=str), correct, calls, notes)


def critical_path(calls: list[dict[str, Any]]) -> float:
    """Latency with calls of one step in a row counted as concurrent (max per group, summed)."""
    total, group_step, group_max = 0.0, None, 0.0
    for c in calls:
        if c["step_id"] != group_step:
            total += group_max
            group_step, group_max = c["step_id"], 0.0
        group_max = max(group_max, c["latency_s"] or 0.0)
    return total + group_max


def pipeline_ledgers(run: Run, spec: Any = None) -> list[Any]:
    """A one-point ledger (k = 1) for a pipeline run: accuracy per question and every cost of its calls.

    ``spec`` is a :class:`ttclab.ledger.costs.CostSpec` (prices, architectures, rm_model); FLOPs,
    memory and USD are NaN with a note when the model's data is not at hand.
    """
    from ttclab.errors import DataError
    from ttclab.ledger.costs import (
        COST_FIELDS,
        CostSpec,
        StrategyLedger,
        decode_flops,
        decode_kv_read_bytes,
        kv_bytes_per_token,
        prefill_flops,
    )

    spec = spec or CostSpec()
    out = pipeline_outcome(run)
    q = len(out.calls)
    costs = {name: np.full((q, 1), np.nan) for name in COST_FIELDS}
    notes = list(out.notes)
    p, d = out.tokens()
    costs["samples_used"][:, 0] = [len(cs) for cs in out.calls]
    costs["prompt_tokens"][:, 0] = p
    costs["completion_tokens"][:, 0] = d
    rm_p = np.array([sum(c["prompt_tokens"] or 0 for c in cs if c["role"] == "reward") for cs in out.calls], float)
    costs["rm_tokens"][:, 0] = rm_p
    costs["total_tokens"][:, 0] = p + d
    costs["latency_sequential_s"][:, 0] = [sum(c["latency_s"] or 0.0 for c in cs) for cs in out.calls]
    costs["latency_parallel_s"][:, 0] = [critical_path(cs) for cs in out.calls]
    try:
        arch = spec.arch_table().get(spec.model or out.model)
    except DataError as exc:
        arch = None
        notes.append(f"flops/memory: {exc}")
    if arch is not None:
        weights = arch.matmul_params * spec.bytes_per_param
        kv_tok = kv_bytes_per_token(arch, spec.bytes_per_kv)
        for qi, cs in enumerate(out.calls):
            cp = np.array([c["prompt_tokens"] or 0 for c in cs], float)
            cd = np.array([c["completion_tokens"] or 0 for c in cs], float)
            pre, dec = prefill_flops(arch, cp).sum(), decode_flops(arch, cp, cd).sum()
            rm = np.array([c["role"] == "reward" for c in cs], bool)
            costs["flops_prefill"][qi, 0] = pre - prefill_flops(arch, cp[rm]).sum()
            costs["rm_flops"][qi, 0] = prefill_flops(arch, cp[rm]).sum()
            costs["flops_decode"][qi, 0] = dec
            costs["flops"][qi, 0] = pre + dec
            costs["memory_bytes"][qi, 0] = (len(cs) * weights + kv_tok * cp.sum() + weights * cd.sum()
                                            + (decode_kv_read_bytes(arch, cp, cd, spec.bytes_per_kv) + kv_tok * cd).sum())
    if spec.prices is not None:
        try:
            price = spec.price_table().get(spec.model or out.model)
            costs["usd"][:, 0] = price.cost(p, d)
        except DataError as exc:
            notes.append(f"usd: {exc}")
    strategy = out.pipeline + (" (oracle)" if out.oracle else "")
    acc = out.correct[:, None].astype(float)
    return [StrategyLedger(model=out.label, run_id=out.run_id, strategy=strategy, k=np.array([1]), exact=True,
                           accuracy=acc, accuracy_se=np.zeros_like(acc), costs=costs, notes=tuple(notes),
                           question_ids=out.question_ids)]


def question_calls(run: Run, question_index: int) -> list[dict[str, Any]]:
    """The calls of one question of a pipeline run in the order they were made: step, role, tokens, answer,
    text, error, and where a call was replayed from (``ttclab show RUN --question ID``)."""
    columns = ["step_id", "role", "template", "prompt_tokens", "completion_tokens", "latency_s", "answer",
               "finish_reason", "text", "error", "cached_from", "created_at", "value"]
    if not (run.path / "calls").is_dir():
        return []
    import pyarrow.compute as pc

    table = read_table(run.path, "calls", ["question_index", *columns])
    rows = table.filter(pc.equal(table["question_index"], question_index)).to_pylist()  # not every call's text
    return sorted(rows, key=lambda c: c["created_at"].timestamp() if c["created_at"] is not None else 0.0)


def is_pipeline_run(run: Run) -> bool:
    return run.meta.get("kind") == "pipeline"


def pipeline_summary(run: Run) -> dict[str, Any]:
    """The counts of ``ttclab runs`` from a pipeline run's results table (one row per question), so
    served traffic without a reference counts: finished / failed questions, unlabelled ones, accuracy
    over the labelled, final answers cut off by max_tokens, completion tokens and their rate over the
    summed call latency of all."""
    rows = read_table(run.path, "results", ["verdict", "correct", "completion_tokens", "latency_s",
                                            "finish_reason"]).to_pylist()
    done = [r for r in rows if r["verdict"] != "error"]
    graded = [r for r in done if r["verdict"] != "unlabelled"]
    tokens = sum(int(r["completion_tokens"] or 0) for r in done)
    latency = sum(float(r["latency_s"] or 0.0) for r in done)
    known = [r for r in done if r["finish_reason"] is not None]  # unknown in runs stored before it was kept
    truncated = sum(r["finish_reason"] == "length" for r in known)
    return {"rows": len(done), "errors": len(rows) - len(done), "unlabelled": len(done) - len(graded),
            "accuracy": sum(bool(r["correct"]) for r in graded) / len(graded) if graded else float("nan"),
            "completion_tokens": tokens, "tokens_per_s": tokens / latency if latency > 0 else float("nan"),
            "latency_s_mean": latency / len(done) if done else float("nan"),
            "truncated": truncated, "truncated_pct": 100 * truncated / len(known) if known else float("nan")}



def evaluate_pipeline_run(run: Run, label: str, opts: Any) -> Any:
    """The analysis layer's run kind ``pipeline`` (``RUN_KINDS``): one point with every call's cost."""
    from ttclab.analysis.evaluate import RunLedgers, run_model_name
    from ttclab.ledger.costs import CostSpec

    spec = CostSpec(model=run_model_name(run), rm_model=opts.rm_model, prices=opts.prices,
                    price_overrides=opts.price_overrides)
    import dataclasses

    ledgers = [dataclasses.replace(led, model=label) for led in pipeline_ledgers(run, spec)]
    notes = [n for led in ledgers for n in led.notes]
    return RunLedgers(run, None, ledgers, [f"run {run.run_id}: {n}" for n in dict.fromkeys(notes)],
                      counts=pipeline_summary(run) if (run.path / "results").is_dir() else {})
