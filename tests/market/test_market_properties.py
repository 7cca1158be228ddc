"""Property-based tests on random small games: exact optimum, equilibria, potential, auction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttclab.market.auction import auction_bids, reverse_second_price, run_auction
from ttclab.market.economics import Economics, logit_shares, potential, welfare
from ttclab.market.equilibrium import all_equilibria, deviation_gains, improvement_dynamics, is_equilibrium
from ttclab.market.welfare import optimum, optimum_enumeration

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BETAS = st.sampled_from([0.0, 1.0, 50.0, 300.0, 1000.0, 1e4, 1e5, 1e6])


@st.composite
def games(draw, max_n: int = 4, max_L: int = 4) -> Economics:
    """Random games with the model's structure: q in [0, α], p >= 0, c = p / (1 + m); sometimes ties."""
    n = draw(st.integers(2, max_n))
    L = draw(st.integers(1, max_L))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    coarse = draw(st.booleans())
    acc = rng.random((n, L))
    tok = rng.uniform(10, 5000, (n, L)) * rng.uniform(0.05, 2.0, (n, 1))
    if coarse:  # a small grid: many exact ties
        acc = np.round(acc * 4) / 4
        tok = np.round(tok / 1000) * 1000
    price = rng.uniform(0, 3.0, n)
    alpha = draw(st.sampled_from([0.001, 0.008, 0.05]))
    m = draw(st.sampled_from([0.0, 0.25, 1.0]))
    p = tok * price[:, None] / 1e6
    q = alpha * (0.1 + 0.9 * acc)
    return Economics(q=q, p=p, c=p / (1 + m))


@SETTINGS
@given(games(), BETAS)
def test_fast_optimum_equals_enumeration(eco, beta):
    fast = optimum(eco, beta)
    brute = optimum_enumeration(eco, beta)
    # the log-domain keys are beta * V ~ 5e4 at beta = 1e6, whose float64 spacing is ~1e-11: two profiles
    # within that relative welfare of each other cannot be ordered, anything further apart must be
    assert abs(fast.welfare - brute.welfare) <= 1e-11 * max(1e-12, abs(brute.welfare)) + 1e-18
    assert float(welfare(eco, fast.profile, beta)) == fast.welfare


@SETTINGS
@given(games(), BETAS, st.integers(0, 1000), st.sampled_from(["nearest", "best_response"]))
def test_dynamics_reach_checked_equilibria_with_increasing_potential(eco, beta, seed, method):
    res = improvement_dynamics(eco, beta, rng=seed, method=method)
    assert res.converged
    assert is_equilibrium(eco, res.profile, beta)
    assert np.all(deviation_gains(eco, res.profile, beta) <= np.log1p(1e-8))
    # Φ strictly increases at every move, and by exactly the mover's change in log-utility
    finite = np.isfinite(res.phi)
    assert np.all(np.diff(res.phi[finite]) > 0) if finite.all() else True
    eqs = all_equilibria(eco, beta)
    assert any(np.array_equal(e, res.profile) for e in eqs)
    for e in eqs:  # every enumerated equilibrium passes the independent deviation check
        V = eco.V[np.arange(len(e)), e]
        s = logit_shares(V, beta)
        u = s * eco.profit[np.arange(len(e)), e]
        for i in range(len(e)):
            for k in range(eco.V.shape[1]):
                Vk = V.copy()
                Vk[i] = eco.V[i, k]
                uk = logit_shares(Vk, beta)[i] * eco.profit[i, k]
                assert uk <= u[i] * (1 + 1e-8) + 1e-300 or (u[i] == 0 and uk < 1e-300)


@SETTINGS
@given(games(), st.sampled_from([1.0, 100.0, 1000.0]), st.integers(0, 99))
def test_potential_tracks_unilateral_moves(eco, beta, seed):
    rng = np.random.default_rng(seed)
    n, L = eco.V.shape
    prof = rng.integers(0, L, n)
    i, k = int(rng.integers(n)), int(rng.integers(L))
    new = prof.copy()
    new[i] = k
    u0 = logit_shares(eco.V[np.arange(n), prof], beta)[i] * eco.profit[i, prof[i]]
    u1 = logit_shares(eco.V[np.arange(n), new], beta)[i] * eco.profit[i, k]
    positive = np.all(eco.profit[np.arange(n), prof] > 0) and np.all(eco.profit[np.arange(n), new] > 0)
    if positive and u0 > 1e-250 and u1 > 1e-250:
        dphi = potential(eco, new, beta) - potential(eco, prof, beta)
        assert np.isclose(dphi, np.log(u1) - np.log(u0), rtol=1e-9, atol=1e-9)


@SETTINGS
@given(games(max_n=5, max_L=5), st.integers(0, 10_000))
def test_auction_truthful_individually_rational_efficient(eco, seed):
    q, c = eco.q, eco.c
    n, L = q.shape
    truth = run_auction(q, c)
    W = q - c
    # efficiency: the winner creates the most welfare over every provider and level
    assert truth.W1 == W.max() and truth.total_welfare == W.max()
    # individual rationality: winner utility >= 0, losers 0; the user gets W2
    assert truth.winner_utility >= 0 and np.count_nonzero(truth.utilities) <= 1
    assert truth.user_surplus == truth.W2
    lv, bq, bc = auction_bids(q, c)
    rng = np.random.default_rng(seed)
    for i in range(n):
        for _ in range(8):
            k = int(rng.integers(L))  # the level i would actually serve
            rq, rc = bq.copy(), bc.copy()
            rq[i] = q[i, k] * rng.uniform(0, 2) + rng.normal(0, 1e-3)  # misreported quality
            rc[i] = c[i, k] * rng.uniform(0, 2) + rng.normal(0, 1e-3)  # misreported cost
            dq, tc = bq.copy(), bc.copy()
            dq[i], tc[i] = q[i, k], c[i, k]
            lie = reverse_second_price(rq, rc, delivered_q=dq, true_c=tc)
            assert lie.utilities[i] <= truth.utilities[i] + 1e-15


def test_stable_at_huge_beta():
    q = np.array([[0.007, 0.0071], [0.0072, 0.0069], [0.001, 0.002]])
    p = np.array([[0.0001, 0.0003], [0.0002, 0.0001], [0.0, 0.0001]])
    eco = Economics(q=q, p=p, c=p / 1.25)
    for beta in (1e6, 1e8):
        s = logit_shares(eco.V[np.arange(3), [0, 0, 1]], beta)
        assert np.all(np.isfinite(s)) and s.sum() <= 1 + 1e-12 and s.max() > 0.99
        assert np.isfinite(potential(eco, np.array([0, 0, 1]), beta))
        assert optimum(eco, beta).welfare == optimum_enumeration(eco, beta).welfare
        res = improvement_dynamics(eco, beta, rng=0)
        assert res.converged and is_equilibrium(eco, res.profile, beta)


def test_fast_optimum_at_large_beta_where_shares_differ_by_e300():
    """Found by the property above: at β = 1e5 one provider's share is e^-327 of another's, and the gap
    w − λ computed from the rounded λ had the wrong sign, so Dinkelbach stopped at [0, 0, 0, 0]."""
    q = np.array([[0.05, 0.0275], [0.05, 0.005], [0.0275, 0.0275], [0.03875, 0.01625]])
    p = np.array([[0.01691675, 0.01057297], [0.02262729, 0.01131364], [0.00199697, 0.00399394],
                  [0.00240112, 0.00080037]])
    eco = Economics(q=q, p=p, c=p / 2)
    fast, brute = optimum(eco, 1e5), optimum_enumeration(eco, 1e5)
    assert brute.profile.tolist() == [0, 0, 0, 1] and fast.profile[3] == 1  # provider 3 steps down to level 1
    assert fast.welfare == pytest.approx(brute.welfare, rel=1e-12)  # provider 2's level is invisible at e^-300
