"""Per-question budgets: calls, completion tokens, total tokens and dollars, never exceeded.

Before a call is sent, :meth:`Budget.admit` reserves its worst case under every active limit —
``n`` calls, ``n x max_tokens`` completion tokens, a prompt bound of one token per UTF-8 byte plus chat-template
overhead (:func:`prompt_token_bound`), and the price of both — capping ``max_tokens`` to what is left, or raising
:class:`BudgetExhausted` when not even ``min_tokens`` per sample fits. After the call the
reservation is replaced by what was actually spent. Limits nest: a ``repeat`` with a budget pushes
a limit that counts from the moment the loop starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ttclab.ledger.prices import Price


class BudgetExhausted(Exception):
    """Not enough budget left for the next call (caught by the enclosing loop or the program)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


@dataclass
class Spend:
    calls: float = 0
    completion_tokens: float = 0
    total_tokens: float = 0
    usd: float = 0.0

    def add(self, other: Spend, sign: int = 1) -> None:
        self.calls += sign * other.calls
        self.completion_tokens += sign * other.completion_tokens
        self.total_tokens += sign * other.total_tokens
        self.usd += sign * other.usd


@dataclass
class Limit:
    calls: int | None = None
    tokens: int | None = None  # completion tokens
    total_tokens: int | None = None  # prompt + completion tokens
    usd: float | None = None
    start: Spend = field(default_factory=Spend)  # spend when the limit was pushed

    def left(self, spent: Spend) -> Spend:
        inf = float("inf")
        return Spend(
            calls=(self.calls - (spent.calls - self.start.calls)) if self.calls is not None else inf,
            completion_tokens=(self.tokens - (spent.completion_tokens - self.start.completion_tokens))
            if self.tokens is not None else inf,
            total_tokens=(self.total_tokens - (spent.total_tokens - self.start.total_tokens))
            if self.total_tokens is not None else inf,
            usd=(self.usd - (spent.usd - self.start.usd)) if self.usd is not None else inf,
        )


def prompt_token_bound(prompt: str | tuple[dict[str, str], ...]) -> int:
    """An upper bound on the prompt's tokens: one per UTF-8 byte (byte-level BPE), 8 per message for
    the chat template's markers and 64 for a default system prompt the template may add."""
    if isinstance(prompt, str):
        return len(prompt.encode()) + 64
    return sum(len(m["content"].encode()) + 8 for m in prompt) + 64


class Budget:
    """The spend of one question and the stack of limits on it."""

    def __init__(self, price: Price | None = None) -> None:
        self.price = price
        self.spent = Spend()
        self.limits: list[Limit] = []

    def push(self, limit: Limit) -> None:
        limit.start = Spend(self.spent.calls, self.spent.completion_tokens, self.spent.total_tokens, self.spent.usd)
        if limit.usd is not None and self.price is None:
            from ttclab.errors import ConfigError

            raise ConfigError("budget.usd: a dollar budget needs a price file: set 'prices' in the pipeline file")
        self.limits.append(limit)

    def pop(self) -> None:
        self.limits.pop()

    def exhausted(self) -> str | None:
        """Which limit has nothing left (None when every limit still allows a call)."""
        for limit in self.limits:
            left = limit.left(self.spent)
            for name in ("calls", "completion_tokens", "total_tokens", "usd"):
                if getattr(left, name) <= 0:
                    return name
        return None

    def admit(self, prompt: str | tuple[dict[str, str], ...], n: int, max_tokens: int, *,
              min_tokens: int = 1) -> tuple[int, Spend]:
        """Reserve a call of ``n`` samples: the ``max_tokens`` allowed (<= asked) and the reservation."""
        p = prompt_token_bound(prompt)
        m = max_tokens
        for limit in self.limits:
            left = limit.left(self.spent)
            if left.calls < n:
                raise BudgetExhausted(f"calls ({left.calls:g} left, {n} needed)")
            m = min(m, int(left.completion_tokens // n) if left.completion_tokens != float("inf") else m)
            if left.total_tokens != float("inf"):
                m = min(m, int((left.total_tokens - n * p) // n))
            if left.usd != float("inf") and self.price is not None:
                out_rate = self.price.output / 1e6
                prompt_cost = self.price.cost(n * p, 0)
                m = min(m, int((left.usd - prompt_cost) / (n * out_rate)) if out_rate > 0 else m)
                if prompt_cost > left.usd:
                    raise BudgetExhausted("usd (the prompt alone would exceed it)")
        if m < min_tokens:
            raise BudgetExhausted(f"tokens ({m} per sample left, {min_tokens} needed)")
        reserve = Spend(calls=n, completion_tokens=n * m, total_tokens=n * (m + p),
                        usd=self.price.cost(n * p, n * m) if self.price is not None else 0.0)
        self.spent.add(reserve)
        return m, reserve

    def settle(self, reserve: Spend, prompt_tokens: int, completion_tokens: int, calls: int) -> None:
        """Replace a reservation by the actual spend of the call."""
        self.spent.add(reserve, -1)
        self.spent.add(Spend(calls=calls, completion_tokens=completion_tokens,
                             total_tokens=prompt_tokens + completion_tokens,
                             usd=self.price.cost(prompt_tokens, completion_tokens) if self.price is not None else 0.0))

    def describe(self) -> str:
        return json.dumps({"calls": self.spent.calls, "completion_tokens": self.spent.completion_tokens,
                           "total_tokens": self.spent.total_tokens, "usd": self.spent.usd})
