"""Reproduce the published GSM8K outputs of Test-Time Compute Games (the shipped ttclab/market/data/ttc_games_gsm8k.json).

Conventions that reproduce them (all within 1e-5 USD; the targets are rounded to 5 decimals):
accuracy = *_acc_pct / 100; tokens = tokens_at_theta (or θ × mean tokens per sample: same result);
reasoning tokens = mean_total_tokens; "U" = mean (p − c), "wU" = Σ s (p − c). The equilibrium the
dynamics reach does not depend on the seeded order here (the same one for every seed and from random
starts), so seed 0 is used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ttclab.market.api import run_market
from ttclab.market.config import load_market_config
from ttclab.market.game import MarketGame
from ttclab.market.providers import providers_from_ttc_games_spec

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "src" / "ttclab" / "market" / "data" / "ttc_games_gsm8k.json"  # shipped as package data
TOL = 2e-5


@pytest.fixture(scope="module")
def published() -> dict:
    return json.loads(SPEC.read_text())["published_outputs"]


def _game(strategy: str, tokens: str = "tokens_at_theta") -> MarketGame:
    return MarketGame(providers_from_ttc_games_spec(SPEC, strategy, "ttc_games_gsm8k", tokens))


@pytest.mark.parametrize(
    "strategy, tokens",
    [("majority", "tokens_at_theta"), ("majority", "per_sample"), ("best-of-n", "tokens_at_theta"),
     ("best-of-n", "per_sample"), ("relative_efforts", "tokens_at_theta")],
)
def test_market_statistics_match_published(published, strategy, tokens):
    game = _game(strategy, tokens)
    for beta, target in published[strategy]["beta"].items():
        a = game.analyse(float(beta), seed=0)
        assert a.equilibrium_checked and a.dynamics.converged
        got = {"opt": a.optimum.welfare, "eq": a.stats.welfare, **a.stats.published()}
        for key, value in target.items():
            assert abs(got[key] - value) <= TOL, (strategy, beta, key, got[key], value)


@pytest.mark.parametrize("strategy", ["majority", "best-of-n", "relative_efforts"])
def test_auction_matches_published(published, strategy):
    game = _game(strategy)
    au = game.auction()
    t = published[strategy]["auction"]
    assert au.winner_name == t["winner"] and au.runner_up_name == t["runner"]
    got = {"W1": au.W1, "W2": au.W2, "user": au.user_surplus, "price": au.payment, "util": au.winner_utility,
           "sw": au.total_welfare}
    for key, value in got.items():
        assert abs(value - t[key]) <= TOL, (strategy, key, value, t[key])
    # the identities of the mechanism
    assert au.payment == pytest.approx(au.bid_c[au.winner] + au.W1 - au.W2)
    assert au.winner_utility == pytest.approx(au.W1 - au.W2) and au.user_surplus == pytest.approx(au.W2)


@pytest.mark.parametrize("strategy", ["majority", "best-of-n"])
def test_equilibrium_reached_does_not_depend_on_order(strategy):
    game = _game(strategy)
    for beta in (200.0, 1000.0, 100000.0):
        reached = {tuple(game.dynamics(beta, seed=s, track=False).profile) for s in range(6)}
        assert len(reached) == 1
        br = game.dynamics(beta, seed=0, method="best_response", track=False).profile
        assert tuple(br) in reached  # best-response dynamics find the same equilibrium


def test_reasoning_market_equilibria_enumerated():
    game = _game("relative_efforts")
    for beta in (200.0, 1000.0, 100000.0):
        a = game.analyse(beta)
        assert a.equilibria is not None and len(a.equilibria) >= 1
        assert any(np.array_equal(e, a.equilibrium) for e in a.equilibria)
        assert all(game.is_equilibrium(e, beta) for e in a.equilibria)
        assert a.poa_worst >= a.poa - 1e-12 >= a.pos - 2e-12 >= 1 - 1e-12


def test_published_beta_sweep(published):
    """The published inefficiency-vs-β curves: reasoning matches everywhere; the non-reasoning figure
    matches at most βs but not at a few (e.g. majority β=1000: 13.05 here and in the published
    table's own opt/eq, 14.24 in the figure), where our equilibrium is the unique one found."""
    sweep = json.loads(SPEC.read_text())["beta_sweep_inefficiency_pct"]
    for strategy, tol, min_match in (("relative_efforts", 0.05, 17), ("majority", 0.15, 13), ("best-of-n", 0.2, 13)):
        game = _game(strategy)
        ours = [game.analyse(b, track=False, enumerate_limit=0).inefficiency_pct for b in sweep["betas"]]
        match = sum(abs(o - p) <= tol for o, p in zip(ours, sweep["values"][strategy]))
        assert match >= min_match, (strategy, np.round(ours, 2).tolist())


def test_configs_run_and_report(published):
    report = run_market(load_market_config(REPO / "configs" / "market_gsm8k_majority.yaml"))
    rows = {r["beta"]: r for r in report.summary_rows()}
    for beta, target in published["majority"]["beta"].items():
        assert abs(rows[float(beta)]["eq_sw"] - target["eq"]) <= TOL
        assert rows[float(beta)]["equilibrium_checked"]
    assert report.auction_dict()["winner"] == "Qwen2.5-7B"
    text = report.text()
    assert "reverse second-price auction" in text and "Qwen2.5-7B" in text
    d = report.to_dict()
    json.dumps(d)  # JSON-able
    assert len(d["comparison"]) == 3
    for cfg in ("market_gsm8k_best_of_n.yaml", "market_gsm8k_reasoning.yaml"):
        rep = run_market(REPO / "configs" / cfg)
        assert all(r["equilibrium_checked"] for r in rep.summary_rows())


def test_shipped_configs_need_no_shared_folder(tmp_path, published):
    """The market configs name the shipped curves, so they run from any folder (a fresh clone has no ../shared)."""
    import shutil

    import ttclab

    for cfg in ("market_gsm8k_majority.yaml", "market_gsm8k_best_of_n.yaml", "market_gsm8k_reasoning.yaml"):
        assert "shared/spec" not in (REPO / "configs" / cfg).read_text()
        shutil.copy(REPO / "configs" / cfg, tmp_path / cfg)
    report = ttclab.market(tmp_path / "market_gsm8k_majority.yaml")  # the top-level verb
    rows = {r["beta"]: r for r in report.summary_rows()}
    for beta, target in published["majority"]["beta"].items():
        assert abs(rows[float(beta)]["eq_sw"] - target["eq"]) <= TOL
    assert run_market(tmp_path / "market_gsm8k_reasoning.yaml").summary_rows()
