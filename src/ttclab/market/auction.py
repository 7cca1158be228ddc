"""The reverse second-price auction that removes the market's over-provisioning of compute.

1. Each provider bids, at its welfare-maximising level θ_i^A = argmax_θ W_i(θ) with W = q − c, the
   pair (q_i, c_i) (lowest level on ties).
2. The highest W = q − c wins (W₁); the runner-up has W₂. Ties: the provider listed first wins
   (stable, deterministic; the published code sorted a list with a stable sort, same rule).
3. The winner is paid P = q_w − W₂ = c_w + (W₁ − W₂).
4. The user gets q_w for P: surplus W₂; the winner's utility is W₁ − W₂ ≥ 0; losers get 0; total W₁.

Quality is verifiable ex post (the delivered answers' accuracy is observed), so the payment uses the
quality actually delivered: with ``delivered_q`` / ``true_c`` given, reports only decide who wins and at
what second price. Under that rule truthful bidding is a dominant strategy (tested on random games).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ttclab.errors import ConfigError


@dataclass(frozen=True)
class AuctionResult:
    """Bids, allocation and payments (USD per query); indices refer to the providers' order."""

    names: tuple[str, ...]
    bid_levels: np.ndarray
    bid_q: np.ndarray
    bid_c: np.ndarray
    winner: int
    runner_up: int
    W1: float  # noqa: N815 - the spec's names
    W2: float  # noqa: N815
    payment: float
    user_surplus: float
    winner_utility: float
    total_welfare: float
    utilities: np.ndarray

    @property
    def bid_w(self) -> np.ndarray:
        return np.asarray(self.bid_q - self.bid_c)

    @property
    def winner_name(self) -> str:
        return self.names[self.winner]

    @property
    def runner_up_name(self) -> str:
        return self.names[self.runner_up]


def auction_bids(q: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truthful bids: per provider the level maximising q − c (lowest on ties), and its (q, c)."""
    q = np.asarray(q, dtype=float)
    c = np.asarray(c, dtype=float)
    lv = np.argmax(q - c, axis=1)
    rows = np.arange(q.shape[0])
    return lv, q[rows, lv], c[rows, lv]


def reverse_second_price(
    bid_q: Sequence[float] | np.ndarray,
    bid_c: Sequence[float] | np.ndarray,
    *,
    names: Sequence[str] | None = None,
    bid_levels: np.ndarray | None = None,
    delivered_q: Sequence[float] | np.ndarray | None = None,
    true_c: Sequence[float] | np.ndarray | None = None,
) -> AuctionResult:
    """Run the auction on reported (q, c); payments use ``delivered_q`` and utilities ``true_c`` if given."""
    bq = np.asarray(bid_q, dtype=float)
    bc = np.asarray(bid_c, dtype=float)
    n = bq.size
    if n < 2:
        raise ConfigError(
            f"the auction needs at least 2 providers (got {n}): the price is set by the runner-up; add a provider"
        )
    if bc.size != n or not np.all(np.isfinite(bq)) or not np.all(np.isfinite(bc)):
        raise ConfigError("auction bids: give one finite (quality, cost) pair per provider")
    dq = bq if delivered_q is None else np.asarray(delivered_q, dtype=float)
    tc = bc if true_c is None else np.asarray(true_c, dtype=float)
    W = bq - bc
    winner = int(np.argmax(W))  # first maximum: the provider listed first wins ties
    rest = W.copy()
    rest[winner] = -np.inf
    runner = int(np.argmax(rest))
    W1, W2 = float(W[winner]), float(W[runner])
    payment = float(dq[winner] - W2)
    util = np.zeros(n)
    util[winner] = payment - tc[winner]
    return AuctionResult(
        names=tuple(names) if names is not None else tuple(str(i) for i in range(n)),
        bid_levels=np.zeros(n, dtype=np.intp) if bid_levels is None else np.asarray(bid_levels),
        bid_q=bq, bid_c=bc, winner=winner, runner_up=runner, W1=W1, W2=W2, payment=payment,
        user_surplus=W2, winner_utility=float(util[winner]),
        total_welfare=float(dq[winner] - tc[winner]), utilities=util,
    )


def run_auction(q: np.ndarray, c: np.ndarray, names: Sequence[str] | None = None) -> AuctionResult:
    """Truthful auction on per-level quality and cost tables of shape ``(n, L)``."""
    q = np.asarray(q, dtype=float)
    if q.ndim != 2 or q.shape[0] < 2:
        raise ConfigError(
            f"the auction needs at least 2 providers (got {q.shape[0] if q.ndim else 0}): "
            "the price is set by the runner-up; add a provider"
        )
    lv, bq, bc = auction_bids(q, c)
    return reverse_second_price(bq, bc, names=names, bid_levels=lv)
