"""The one place every model call of a pipeline goes through: budget, seed, cache, store.

A call is one sample: (model, prompt, sampling parameters without ``n``, seed). Its id is the hash
of those four — the cache key. The seed of the j-th sample of a prompt in a question is
``derive_seed(pipeline seed, question id + hash(model, prompt, params), j)``, so seeds do not
depend on the step's name or position: a pipeline that shares a prefix with an earlier one asks
the same calls and gets them from the cache, and ``n`` samples asked at once (one backend request
with seed ``s_j``, which the engines expand to ``s_j, s_j + 1, ...``) are the same calls as ``n``
single requests.

Every finished call is a row of the run's ``calls`` table (journaled at once, see
:mod:`ttclab.store.journal`) with the run, question, step, role, parent candidates, template,
parameters, seed, text, tokens, latency, log-probs and error. A call finished in an earlier run of
the same pipeline (resume) is replayed and not stored again; one from another run is replayed and
stored with ``cached_from`` set, so each run's ledger has all its calls. A failed call is an error
row, never cached (the next run retries it); authentication and unknown-model errors stop the run.
Log-probs are rounded to float32 when they arrive, so a replayed call is bit-identical to the
original.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ttclab.backends.base import Backend, Completion, Request, SamplingParams
from ttclab.errors import BackendError, StoreError
from ttclab.online.budget import Budget, Spend
from ttclab.online.templates import Prompt, Template
from ttclab.sampling import _consecutive
from ttclab.seeds import derive_seed, sample_seed
from ttclab.store.journal import read_table

#: Errors that no retry fixes (bad key, forbidden, unknown model or route): the run stops.
_PERMANENT = re.compile(r"^HTTP (401|403|404)\b")
_CACHE_COLUMNS = ["run_id", "call_id", "text", "finish_reason", "prompt_tokens", "completion_tokens", "latency_s",
                  "token_logprobs", "value", "error"]


class RowLog(Protocol):
    """Where call rows go: a run's :class:`~ttclab.store.journal.TableLog`, or any sink with ``add``."""

    def add(self, row: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class CallResult:
    """What one call returned (fresh or replayed)."""

    call_id: str
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    token_logprobs: tuple[float, ...] | None = None
    error: str | None = None
    cached: bool = False
    value: float | None = None  # reward-model score

    @property
    def ok(self) -> bool:
        return self.error is None


class QuestionLike(Protocol):
    @property
    def index(self) -> int: ...

    @property
    def question_id(self) -> str: ...

    @property
    def budget(self) -> Budget: ...

    def next_occurrence(self, content: str, n: int) -> int: ...

    def account(self, result: CallResult) -> None: ...


@dataclass
class CallStats:
    """Counters for the progress bar and the run summary."""

    calls: int = 0  # calls answered (fresh + replayed)
    fresh: int = 0  # calls sent to a backend
    replayed: int = 0
    errors: int = 0
    tokens: int = 0  # prompt + completion tokens of answered calls

    def describe(self) -> str:
        return f"calls {self.calls} ({self.replayed} replayed), tokens {self.tokens}" + (
            f", {self.errors} errors" if self.errors else "")


class CallCache:
    """Finished calls of every pipeline run in a store, by call id (a call id includes the model)."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[str, CallResult]] = {}
        self._tables: list[dict[str, list[Any]]] = []  # loaded columns; a row becomes a CallResult when asked for
        self._where: dict[str, tuple[int, int]] = {}  # call id -> (table, row)
        self.own_ids: set[str] = set()  # the finished calls stored by the run ``load`` was given as ``own``

    @classmethod
    def load(cls, root: Path, models: str | Collection[str] | None = None, *, own: Path | None = None,
             on_damaged: Callable[[Path, StoreError], None] | None = None) -> CallCache:
        """Finished calls of every pipeline run under ``root`` (only those of ``models`` when given; the ids
        of run ``own``'s are ``own_ids``). With ``on_damaged``, another run whose calls are damaged is reported
        to it and left out (its calls are sent again, not replayed) instead of stopping this one; run
        ``own``'s damage always raises."""
        import pyarrow as pa
        import pyarrow.compute as pc

        cache = cls()
        wanted = None if models is None else pa.array([models] if isinstance(models, str) else list(models), pa.string())
        own_dir = own.resolve() if own is not None else None
        if root.is_dir():
            for run_dir in sorted(p for p in root.iterdir() if (p / "calls").is_dir()):
                is_own = own_dir is not None and run_dir.resolve() == own_dir
                try:
                    table = read_table(run_dir, "calls", [*_CACHE_COLUMNS, "model"])
                except StoreError as exc:
                    if on_damaged is None or is_own:
                        raise
                    on_damaged(run_dir, exc)
                    continue
                if wanted is not None:
                    table = table.filter(pc.is_in(table["model"], value_set=wanted))
                table = table.filter(pc.is_null(table["error"]))
                if is_own:
                    cache.own_ids = set(table["call_id"].to_pylist())
                cache.add_table(table)
        return cache

    def add_table(self, table: Any) -> None:
        cols = table.to_pydict()
        t = len(self._tables)
        self._tables.append(cols)
        for i, call_id in enumerate(cols["call_id"]):
            self._rows.pop(call_id, None)  # a later table wins, as when rows were built eagerly
            self._where[call_id] = (t, i)

    def _build(self, call_id: str, t: int, i: int) -> tuple[str, CallResult]:
        cols = self._tables[t]
        lp = cols["token_logprobs"][i]
        return cols["run_id"][i], CallResult(
            call_id=call_id, text=cols["text"][i] or "", finish_reason=cols["finish_reason"][i] or "stop",
            prompt_tokens=int(cols["prompt_tokens"][i] or 0), completion_tokens=int(cols["completion_tokens"][i] or 0),
            latency_s=float(cols["latency_s"][i] or 0.0), token_logprobs=tuple(lp) if lp is not None else None,
            value=cols["value"][i], cached=True)

    def get(self, call_id: str) -> tuple[str, CallResult] | None:
        found = self._rows.get(call_id)
        if found is None:
            where = self._where.pop(call_id, None)
            if where is None:
                return None
            found = self._rows[call_id] = self._build(call_id, *where)
        return found

    def put(self, run_id: str, result: CallResult) -> None:
        if result.ok:
            self._where.pop(result.call_id, None)
            self._rows[result.call_id] = (run_id, CallResult(**{**result.__dict__, "cached": True}))

    def __len__(self) -> int:
        return len(self._rows) + len(self._where)


@dataclass
class PreparedCall:
    """A call with its budget reserved, seeds and ids fixed (see :meth:`Caller.prepare`)."""

    question: QuestionLike
    prompt: Prompt
    params: SamplingParams  # n = 1, seed None, max_tokens admitted
    seeds: list[int]
    call_ids: list[str]
    step_id: str
    role: str
    parents: tuple[str, ...]
    template: Template | None
    reserve: Spend
    params_json: str
    extra: dict[str, Any] = field(default_factory=dict)
    prompt_text: str | None = None  # the prompt as stored (JSON for chat messages)


# Encoders built once: json.dumps with options builds a JSONEncoder per call (same output either way).
_KEY_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
_PROMPT_JSON = json.JSONEncoder(ensure_ascii=False)
_ascii_str = json.encoder.encode_basestring_ascii
_utf8_str = json.encoder.encode_basestring


def _digest(*parts: Any) -> str:
    if all(type(p) is str for p in parts):  # the call key (model, prompt, params): the same JSON, built directly
        return hashlib.sha256(("[" + ",".join(map(_ascii_str, parts)) + "]").encode()).hexdigest()
    return hashlib.sha256(_KEY_JSON.encode(parts).encode()).hexdigest()


def _call_id(content: str, seed: int) -> str:
    """``_digest(content, seed)[:24]`` for a hex ``content`` (its JSON needs no escaping), without json."""
    return hashlib.sha256(f'["{content}",{int(seed)}]'.encode()).hexdigest()[:24]


def prompt_json(prompt: Prompt) -> str:
    """The prompt as stored: a string as is, chat messages as ``_PROMPT_JSON`` writes them."""
    if isinstance(prompt, str):
        return prompt
    try:  # messages of string fields: the same text as the encoder's, without its per-object machinery
        return "[" + ", ".join("{" + ", ".join(f"{_utf8_str(k)}: {_utf8_str(v)}" for k, v in m.items()) + "}"
                               for m in prompt) + "]"
    except (TypeError, AttributeError):  # a non-string field, key or message: the encoder handles (or refuses) it
        return _PROMPT_JSON.encode(list(prompt))


def _f32(values: Sequence[float] | None) -> tuple[float, ...] | None:
    if values is None:
        return None
    return tuple(float(x) for x in np.asarray(values, dtype=np.float32))


class Caller:
    """Sends a run's model calls (budgeted, seeded, cached, stored). One per pipeline run."""

    def __init__(self, backend: Backend, *, model: str, run_id: str, log: RowLog, cache: CallCache,
                 seed: int, stats: CallStats | None = None, own: set[str] | None = None) -> None:
        self.backend = backend
        self.model = model
        self.run_id = run_id
        self.log = log
        self.cache = cache
        self.seed = seed
        self.stats = stats or CallStats()
        self.own = own if own is not None else set()  # call ids already stored in this run
        self._http: Any = None
        self._params_memo: dict[tuple[int, int], tuple[SamplingParams, SamplingParams, str]] = {}
        self.on_call: Callable[[], None] | None = None  # progress hook

    # -- model calls --------------------------------------------------------------------------
    def prepare(self, q: QuestionLike, prompt: Prompt, params: SamplingParams, n: int = 1, *, step_id: str,
                role: str, parents: Sequence[str] = (), template: Template | None = None,
                min_tokens: int = 1) -> PreparedCall:
        """Reserve the budget and fix seeds and call ids for ``n`` samples (synchronous: call in program order)."""
        max_tokens, reserve = q.budget.admit(prompt, n, params.max_tokens, min_tokens=min_tokens)
        params, params_json = self._request_params(params, max_tokens)
        text = prompt_json(prompt)
        content = _digest(self.model, text, params_json)
        start = q.next_occurrence(content, n)
        scope = f"{q.question_id}\x00{content}"
        first = derive_seed(self.seed, scope, start)  # consecutive seeds: one hash per call, not per sample
        seeds = [sample_seed(first, j) for j in range(n)]
        ids = [_call_id(content, s) for s in seeds]
        return PreparedCall(q, prompt, params, seeds, ids, step_id, role, tuple(parents), template, reserve, params_json,
                            prompt_text=text)

    def is_cached(self, call: PreparedCall) -> bool:
        """Every sample of the call finished before (it will be replayed, not sent)."""
        return all(self.cache.get(cid) is not None for cid in call.call_ids)

    async def run(self, call: PreparedCall,
                  grade: Callable[[str], Awaitable[str | None]] | None = None) -> list[CallResult]:
        """The samples of a prepared call: replayed from the cache where finished, else generated."""
        results: list[CallResult | None] = [None] * len(call.call_ids)
        sources: list[str | None] = [None] * len(call.call_ids)
        for j, cid in enumerate(call.call_ids):
            hit = self.cache.get(cid)
            if hit is not None:
                sources[j], results[j] = hit
        missing = [j for j, r in enumerate(results) if r is None]
        for chunk in _consecutive(missing):
            request = Request(call.prompt, seed=call.seeds[chunk[0]])
            completions = await self.backend.generate(request, call.params.with_(n=len(chunk)))
            completions = list(completions)[: len(chunk)]
            completions += [Completion.failed("backend returned too few completions")] * (len(chunk) - len(completions))
            for j, c in zip(chunk, completions):
                results[j] = CallResult(
                    call_id=call.call_ids[j], text=c.text, finish_reason=c.finish_reason, prompt_tokens=c.prompt_tokens,
                    completion_tokens=c.completion_tokens, latency_s=c.latency_s, token_logprobs=_f32(c.token_logprobs),
                    error=c.error)
        final = [r for r in results if r is not None]
        await self._record(call, final, sources, grade)
        return final

    async def run_stream(self, call: PreparedCall, on_text: Callable[[str], None],
                         grade: Callable[[str], Awaitable[str | None]] | None = None) -> list[CallResult]:
        """A one-sample call streamed from the backend (``backend.stream``; one piece when it has none):
        text deltas go to ``on_text`` as they arrive; stored like :meth:`run` (never replayed)."""
        assert len(call.call_ids) == 1, "run_stream streams one sample"
        request = Request(call.prompt, seed=call.seeds[0])
        stream = getattr(self.backend, "stream", None)
        completion: Completion | None = None
        if stream is None:
            [completion] = (await self.backend.generate(request, call.params.with_(n=1)))[:1] or [
                Completion.failed("backend returned no completion")]
            if completion.ok and completion.text:
                on_text(completion.text)
        else:
            async for item in stream(request, call.params.with_(n=1)):
                if isinstance(item, str):
                    on_text(item)
                else:
                    completion = item
        c = completion or Completion.failed("the backend's stream ended without a result")
        result = CallResult(call_id=call.call_ids[0], text=c.text, finish_reason=c.finish_reason,
                            prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens, latency_s=c.latency_s,
                            token_logprobs=_f32(c.token_logprobs), error=c.error)
        await self._record(call, [result], [None], grade)
        return [result]

    async def complete(self, q: QuestionLike, prompt: Prompt, params: SamplingParams, n: int = 1, *, step_id: str,
                       role: str, parents: Sequence[str] = (), template: Template | None = None,
                       grade: Callable[[str], Awaitable[str | None]] | None = None) -> list[CallResult]:
        """:meth:`prepare` then :meth:`run`."""
        call = self.prepare(q, prompt, params, n, step_id=step_id, role=role, parents=parents, template=template)
        return await self.run(call, grade)

    def _request_params(self, params: SamplingParams, max_tokens: int) -> tuple[SamplingParams, str]:
        """The per-sample parameters (n 1, no base seed, admitted max_tokens) and their JSON, memoised."""
        key = (id(params), max_tokens)
        hit = self._params_memo.get(key)
        if hit is None or hit[0] is not params:
            one = params.with_(n=1, seed=None, max_tokens=max_tokens)
            hit = (params, one, json.dumps(one.model_dump(mode="json", exclude={"n", "seed"}), sort_keys=True))
            if len(self._params_memo) > 4096:
                self._params_memo.clear()
            self._params_memo[key] = hit  # keeps ``params`` alive, so its id is not reused
        return hit[1], hit[2]

    # -- reward-model calls ---------------------------------------------------------------------
    def prepare_reward(self, q: QuestionLike, *, endpoint: str, model: str, body: dict[str, Any], step_id: str,
                       parents: Sequence[str] = ()) -> PreparedCall:
        """A reward-model request (counted as one call; its tokens come from the server's usage)."""
        reserve = q.budget.admit(json.dumps(body), 1, 1, min_tokens=1)[1]
        content = _digest("reward", model, body)
        start = q.next_occurrence(content, 1)
        cid = _digest(content, start)[:24]
        return PreparedCall(q, json.dumps(body, ensure_ascii=False), SamplingParams(max_tokens=1), [0], [cid], step_id,
                            "reward", tuple(parents), None, reserve, json.dumps({"endpoint": endpoint}),
                            extra={"endpoint": endpoint, "model": model, "body": body})

    async def run_reward(self, call: PreparedCall, field_path: str, reduce: str) -> CallResult:
        hit = self.cache.get(call.call_ids[0])
        if hit is not None:
            source, result = hit
        else:
            source, result = None, await self._post_reward(call, field_path, reduce)
        await self._record(call, [result], [source], None)
        return result

    async def _post_reward(self, call: PreparedCall, field_path: str, reduce: str) -> CallResult:
        try:
            import httpx
        except ModuleNotFoundError:
            from ttclab.errors import missing_extra

            raise missing_extra("httpx", "openai") from None

        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(120.0))
        cid = call.call_ids[0]
        start = time.perf_counter()
        try:
            response = await self._http.post(call.extra["endpoint"], json=call.extra["body"])
        except httpx.HTTPError as exc:
            return CallResult(cid, "", "error", 0, 0, time.perf_counter() - start,
                              error=f"reward model {call.extra['endpoint']}: {type(exc).__name__}: {exc}")
        latency = time.perf_counter() - start
        if response.status_code >= 400:
            return CallResult(cid, "", "error", 0, 0, latency,
                              error=f"HTTP {response.status_code}: {response.text[:200]} ({call.extra['endpoint']})")
        try:
            data = response.json()
            value = reduce_value(extract_field(data, field_path), reduce)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return CallResult(cid, "", "error", 0, 0, latency,
                              error=f"reward model response has no number at {field_path!r}: {exc}")
        usage = data.get("usage") or {} if isinstance(data, dict) else {}
        return CallResult(cid, "", "stop", int(usage.get("prompt_tokens") or 0), 0, latency, value=value)

    # -- storing ----------------------------------------------------------------------------
    async def _record(self, call: PreparedCall, results: list[CallResult], sources: list[str | None],
                      grade: Callable[[str], Awaitable[str | None]] | None) -> None:
        q = call.question
        prompt_tokens = sum(r.prompt_tokens for r in results if r.ok)
        completion_tokens = sum(r.completion_tokens for r in results if r.ok)
        q.budget.settle(call.reserve, prompt_tokens, completion_tokens, len(results))
        now = datetime.now(UTC)
        for r, source, seed in zip(results, sources, call.seeds):
            q.account(r)
            self.stats.calls += 1
            if r.ok:
                self.stats.tokens += r.prompt_tokens + r.completion_tokens
            else:
                self.stats.errors += 1
            if source is not None:
                self.stats.replayed += 1
            else:
                self.stats.fresh += 1
            if source == self.run_id or r.call_id in self.own:
                continue  # stored by an earlier run of this pipeline
            answer = await grade(r.text) if grade is not None and r.ok else None
            self.log.add({
                "run_id": self.run_id, "call_id": r.call_id, "question_index": q.index, "question_id": q.question_id,
                "step_id": call.step_id, "role": call.role, "parent_ids": list(call.parents),
                "template": call.template.label if call.template else None,
                "template_hash": call.template.hash if call.template else None, "model": self.model,
                "prompt": call.prompt_text or prompt_json(call.prompt), "params": call.params_json,
                "seed": seed if call.role != "reward" else None, "text": r.text, "answer": answer,
                "finish_reason": r.finish_reason, "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens, "latency_s": r.latency_s,
                "token_logprobs": list(r.token_logprobs) if r.token_logprobs is not None else None,
                "value": r.value, "error": r.error, "cached_from": source, "created_at": now,
            })
            if r.ok:
                self.own.add(r.call_id)
                self.cache.put(self.run_id, r)
        if self.on_call is not None:
            self.on_call()
        for r in results:
            if r.error and _PERMANENT.match(r.error):
                raise BackendError(f"model call failed permanently: {r.error}; fix the model name, URL or API key")

    def cancel(self, call: PreparedCall, reason: str) -> None:
        """A prepared call that was started and then cancelled (first-finish): released, stored as error rows."""
        call.question.budget.settle(call.reserve, 0, 0, 0)
        now = datetime.now(UTC)
        for cid, seed in zip(call.call_ids, call.seeds):
            self.log.add({
                "run_id": self.run_id, "call_id": cid, "question_index": call.question.index,
                "question_id": call.question.question_id, "step_id": call.step_id, "role": call.role,
                "parent_ids": list(call.parents), "template": call.template.label if call.template else None,
                "template_hash": call.template.hash if call.template else None, "model": self.model,
                "prompt": prompt_json(call.prompt), "params": call.params_json, "seed": seed, "text": None,
                "answer": None, "finish_reason": "cancelled", "prompt_tokens": None, "completion_tokens": None,
                "latency_s": None, "token_logprobs": None, "value": None, "error": reason, "cached_from": None,
                "created_at": now,
            })

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def extract_field(data: Any, path: str) -> Any:
    """The value at a dotted path (``data.0.data``, ``reward``, ``choices.0.score``)."""
    value = data
    for part in path.split(".") if path else []:
        if isinstance(value, list):
            value = value[int(part)]
        elif isinstance(value, dict):
            value = value[part]
        else:
            raise KeyError(part)
    return value


def reduce_value(value: Any, reduce: str) -> float:
    """A number from a reward model's field: a number, or a list of step scores reduced by last/min/mean/product."""
    while isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]
    if isinstance(value, list):
        nums = [float(v) for v in value]
        if not nums:
            raise ValueError("empty list of scores")
        if reduce == "last":
            return nums[-1]
        if reduce == "min":
            return min(nums)
        if reduce == "mean":
            return float(np.mean(nums))
        if reduce == "product":
            return float(np.prod(nums))
        raise ValueError(f"unknown reduce {reduce!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)

