"""The cost of a graph, predicted before it runs and measured after.

Prediction, per question and node (one call each, in topological order):

* completion tokens ``d`` — the mean completion tokens of that model's calls in that role in the
  store (:class:`TokenStats`, from every pipeline run's ``calls`` table), else the node's
  ``max_tokens`` (an upper bound, flagged in ``notes``);
* prompt tokens ``p`` — the node's prompt rendered with its inputs' texts left empty, counted by
  the model's :class:`TokenCounter`, plus the predicted completion tokens of its inputs (a
  refiner sees its input's text, fusers and judges all of theirs);
* FLOPs from the ledger's per-call formulas on the model's architecture (``ledger/data``);
* latency: per call ``p / prefill_rate + d / decode_rate`` (rates fitted on the store's calls of
  the model, else the ledger defaults), on the critical path of the DAG (nodes of one layer run
  concurrently) and summed (sequential).

Actual costs come from the run's ``calls`` table the same way (:func:`actual_cost`), so predicted
and actual are comparable number by number. With answers of fixed length and a counter that
counts as the server does, the prediction is exact (``tests/search/test_graph_cost.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ttclab.search.graph import CALL_ROLE, Graph, Node

if TYPE_CHECKING:
    from ttclab.ledger.models import ModelArch

COST_KEYS = ("calls", "prompt_tokens", "completion_tokens", "total_tokens", "flops", "latency_s",
             "latency_sequential_s")


@dataclass
class Cost:
    """Mean cost per question (every key of ``COST_KEYS``)."""

    values: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> float:
        return self.values[key]

    def as_dict(self) -> dict[str, float]:
        return dict(self.values)


class TokenStats:
    """Mean completion tokens per (model identity, call role) and per-token latencies per model."""

    def __init__(self) -> None:
        self.completion: dict[tuple[str, str], float] = {}
        self.rates: dict[str, tuple[float, float]] = {}  # model -> (s per prompt token, s per completion token)

    @classmethod
    def from_store(cls, root: str | Path) -> TokenStats:
        """From every pipeline run's ``calls`` table under ``root``."""
        from ttclab.store.journal import read_table

        out = cls()
        root = Path(root)
        groups: dict[tuple[str, str], list[float]] = {}
        lat: dict[str, list[tuple[float, float, float]]] = {}
        if root.is_dir():
            for run_dir in sorted(p for p in root.iterdir() if (p / "calls").is_dir()):
                t = read_table(run_dir, "calls", ["model", "role", "prompt_tokens", "completion_tokens", "latency_s",
                                                  "error", "cached_from"]).to_pydict()
                for m, r, p, d, s, e, c in zip(t["model"], t["role"], t["prompt_tokens"], t["completion_tokens"],
                                               t["latency_s"], t["error"], t["cached_from"]):
                    if e is not None or d is None or c is not None:
                        continue
                    groups.setdefault((m, r), []).append(float(d))
                    if s is not None and s > 0:
                        lat.setdefault(m, []).append((float(p or 0), float(d), float(s)))
        out.completion = {k: float(np.mean(v)) for k, v in groups.items()}
        for m, rows in lat.items():
            a = np.array(rows)
            if len(a) >= 3:
                coef, *_ = np.linalg.lstsq(a[:, :2], a[:, 2], rcond=None)
                out.rates[m] = (max(float(coef[0]), 0.0), max(float(coef[1]), 1e-6))
        return out

    def completion_tokens(self, model: str, role: str) -> float | None:
        return self.completion.get((model, role))


class TokenCounter:
    """Counts a prompt's tokens as a model would: ``llama`` (the embedded engine's own tokenizer and
    chat template, exact), ``whitespace`` (words of the message contents; servers that count so),
    or ``chars`` (characters / ``chars_per_token``, an estimate for servers without a tokenizer)."""

    def __init__(self, kind: str = "chars", *, backend: Any = None, chars_per_token: float = 4.0) -> None:
        if kind not in ("llama", "whitespace", "chars"):
            from ttclab.errors import ConfigError

            raise ConfigError(f"token counter {kind!r}: choose llama, whitespace or chars")
        self.kind = kind
        self.backend = backend
        self.chars_per_token = chars_per_token
        self._memo: dict[str, int] = {}

    def count(self, prompt: Any) -> int:
        import json

        key = prompt if isinstance(prompt, str) else json.dumps(list(prompt))
        hit = self._memo.get(key)
        if hit is None:
            hit = self._count(prompt)
            self._memo[key] = hit
        return hit

    def count_text(self, text: str) -> int:
        if self.kind == "whitespace":
            return len(text.split())
        if self.kind == "chars":
            return int(round(len(text) / self.chars_per_token))
        llama = self.backend._load()
        return len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _count(self, prompt: Any) -> int:
        if self.kind == "llama":
            from ttclab.backends.base import Request
            from ttclab.backends.llamacpp import render_prompt

            llama = self.backend._load()
            prompt = prompt if isinstance(prompt, str) else tuple(prompt)
            return len(render_prompt(llama, Request(prompt), ())[0])
        texts = [prompt] if isinstance(prompt, str) else [m["content"] for m in prompt]
        if self.kind == "whitespace":
            return sum(len(t.split()) for t in texts)
        return int(round(sum(len(t) for t in texts) / self.chars_per_token))


@dataclass
class ModelCosting:
    """What the predictor knows of one pool model."""

    identity: str  # the calls table's model column
    name: str  # for the ledger's architecture table
    counter: TokenCounter
    chat: bool = True
    fmt: Any = None
    max_tokens: int = 128


def predict_cost(graph: Graph, questions: Sequence[Any], costing: dict[str, ModelCosting], stats: TokenStats,
                 sampling: dict[str, Any] | None = None) -> Cost:
    """Mean predicted cost per question of running ``graph`` on ``questions`` (see the module doc)."""
    from ttclab.online.templates import builtin_template

    notes: set[str] = set()
    sampling = sampling or {}
    per_q: dict[str, list[float]] = {k: [] for k in COST_KEYS}
    arch = _archs(costing, notes)
    for q in questions:
        d_of: dict[str, float] = {}
        lat_of: dict[str, float] = {}
        tot = dict.fromkeys(COST_KEYS, 0.0)
        for n in graph.nodes:
            mc = costing[n.model]
            d = stats.completion_tokens(mc.identity, CALL_ROLE[n.role])
            if d is None:
                d = float(_node_max_tokens(n, sampling, mc))
                notes.add(f"{n.model}/{n.role}: no stored calls; completion tokens predicted as max_tokens {int(d)}")
            p = float(mc.counter.count(_render(n, q, mc, builtin_template))) + sum(d_of[i] for i in n.inputs)
            d_of[n.id] = d
            call_lat = _latency(stats, mc, p, d)
            lat_of[n.id] = call_lat + max((lat_of[i] for i in n.inputs), default=0.0)
            tot["calls"] += 1
            tot["prompt_tokens"] += p
            tot["completion_tokens"] += d
            tot["flops"] += _flops(arch.get(n.model), p, d)
            tot["latency_sequential_s"] += call_lat
        tot["total_tokens"] = tot["prompt_tokens"] + tot["completion_tokens"]
        tot["latency_s"] = lat_of[graph.output]
        for k in COST_KEYS:
            per_q[k].append(tot[k])
    return Cost({k: float(np.mean(v)) if v else float("nan") for k, v in per_q.items()}, sorted(notes))


def actual_cost(run_path: str | Path, graph: Graph, costing: dict[str, ModelCosting],
                questions: Sequence[int] | None = None) -> Cost:
    """Mean measured cost per question of a finished graph run (its ``calls`` table)."""
    from ttclab.store.journal import read_table

    notes: set[str] = set()
    arch = _archs(costing, notes)
    by_identity = {mc.identity: k for k, mc in costing.items()}
    t = read_table(Path(run_path), "calls", ["question_index", "step_id", "model", "prompt_tokens",
                                             "completion_tokens", "latency_s", "error"]).to_pylist()
    by_q: dict[int, list[dict[str, Any]]] = {}
    for c in t:
        if c["error"] is None:
            by_q.setdefault(c["question_index"], []).append(c)
    wanted = sorted(by_q) if questions is None else list(questions)
    per_q: dict[str, list[float]] = {k: [] for k in COST_KEYS}
    node_ids = {n.id for n in graph.nodes}
    for qi in wanted:
        calls = by_q.get(qi, [])
        tot = dict.fromkeys(COST_KEYS, 0.0)
        lat_node: dict[str, float] = {}
        for c in calls:
            p, d = float(c["prompt_tokens"] or 0), float(c["completion_tokens"] or 0)
            pool = by_identity.get(c["model"])
            tot["calls"] += 1
            tot["prompt_tokens"] += p
            tot["completion_tokens"] += d
            tot["flops"] += _flops(arch.get(pool) if pool else None, p, d)
            tot["latency_sequential_s"] += float(c["latency_s"] or 0.0)
            nid = c["step_id"] if c["step_id"] in node_ids else c["step_id"].rsplit(".", 1)[0]
            lat_node[nid] = lat_node.get(nid, 0.0) + float(c["latency_s"] or 0.0)
        done: dict[str, float] = {}
        for n in graph.nodes:
            done[n.id] = lat_node.get(n.id, 0.0) + max((done[i] for i in n.inputs), default=0.0)
        tot["total_tokens"] = tot["prompt_tokens"] + tot["completion_tokens"]
        tot["latency_s"] = done[graph.output]
        for k in COST_KEYS:
            per_q[k].append(tot[k])
    return Cost({k: float(np.mean(v)) if v else float("nan") for k, v in per_q.items()}, sorted(notes))


def _node_max_tokens(n: Node, sampling: dict[str, Any], mc: ModelCosting) -> int:
    if "max_tokens" in n.sampling:
        return int(n.sampling["max_tokens"])
    if n.role == "judge":
        return 16  # select's default
    return int(sampling.get("max_tokens", mc.max_tokens))


def _render(n: Node, q: Any, mc: ModelCosting, builtin_template: Callable[[str], Any]) -> Any:
    """The node's prompt with its inputs' texts empty (their tokens are added separately)."""
    question = q.question
    k = len(n.inputs)
    if n.role == "generator":
        messages = builtin_template("solve").messages(question=question)
    elif n.role == "refiner":
        feedback = builtin_template("feedback_none").text()
        messages = builtin_template("revise").messages(question=question, solution="", feedback=feedback)
    else:
        shown = "\n\n".join(f"Solution {i + 1}:\n" for i in range(k))
        messages = builtin_template("fuse" if n.role == "fuser" else "pick").messages(
            question=question, n=k, candidates=shown)
    if mc.chat or mc.fmt is None:
        return messages
    return mc.fmt.render(messages)


def _archs(costing: dict[str, ModelCosting], notes: set[str]) -> dict[str, ModelArch | None]:
    from ttclab.errors import DataError
    from ttclab.ledger.models import load_architectures

    table = load_architectures()
    out: dict[str, ModelArch | None] = {}
    for k, mc in costing.items():
        try:
            out[k] = table.get(mc.name)
        except DataError:
            notes.add(f"flops: no architecture for {mc.name} in the ledger's model data (FLOPs NaN)")
            out[k] = None
    return out


def _flops(arch: ModelArch | None, p: float, d: float) -> float:
    if arch is None:
        return float("nan")
    from ttclab.ledger.work import decode_flops, prefill_flops

    return float(prefill_flops(arch, np.array([p])).sum() + decode_flops(arch, np.array([p]), np.array([d])).sum())


def _latency(stats: TokenStats, mc: ModelCosting, p: float, d: float) -> float:
    rate = stats.rates.get(mc.identity)
    if rate is None:
        return float("nan")
    return rate[0] * p + rate[1] * d


def model_costing(models: dict[str, Any], *, backends: dict[str, Any] | None = None,
                  counters: Mapping[str, str] | None = None, max_tokens: int = 128) -> dict[str, ModelCosting]:
    """A :class:`ModelCosting` per pool model: the embedded engine counts with its own tokenizer
    (``llama``), servers with ``counters[name]`` (``whitespace`` / ``chars``; default ``chars``)."""
    from ttclab.online.program import Pipeline, PipelineSpec
    from ttclab.online.runner import _formats, model_identity

    out = {}
    for name, m in models.items():
        kind = (counters or {}).get(name) or ("llama" if m.backend == "llamacpp" else "chars")
        backend = (backends or {}).get(name)
        if kind == "llama" and backend is None:
            from ttclab.backends import create_backend

            backend = create_backend(m.backend, model=m.name, **m.options)
        spec = PipelineSpec.model_validate({"name": "x", "model": m.model_dump(mode="json"),
                                            "task": {"source": "gym", "name": "basic_arithmetic"}, "steps": [{}]})
        chat, fmt = _formats(Pipeline(spec, [], "costing"))
        out[name] = ModelCosting(model_identity(m), m.name, TokenCounter(kind, backend=backend), chat, fmt, max_tokens)
    return out
