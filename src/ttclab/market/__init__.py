"""ttclab.market: the test-time compute game (docs/market.md) and the reverse auction.

Pure numpy functions for the maths (:mod:`.economics`, :mod:`.welfare`, :mod:`.equilibrium`,
:mod:`.auction`), a thin :class:`MarketGame` on top, providers from tables / curves / logs
(:mod:`.providers`), and :func:`run_market` / :func:`run_sweep` for configs.
"""

from __future__ import annotations

import sys

from ttclab import VerbModule
from ttclab.market.api import MarketReport, build_game, run_market, run_sweep
from ttclab.market.auction import AuctionResult, reverse_second_price, run_auction
from ttclab.market.config import MarketConfig, load_market_config
from ttclab.market.economics import MarketParams, economics, logit_shares, potential, welfare
from ttclab.market.equilibrium import all_equilibria, improvement_dynamics, is_equilibrium
from ttclab.market.game import MarketGame
from ttclab.market.providers import (
    Provider,
    load_provider_table,
    make_provider,
    providers_from_curves,
    providers_from_pricing_reversal,
    providers_from_ttc_games_spec,
)
from ttclab.market.welfare import optimum, optimum_enumeration

__verb__ = run_market  # ``ttclab.market(config)`` is ``run_market(config)``
sys.modules[__name__].__class__ = VerbModule

__all__ = [
    "AuctionResult", "MarketConfig", "MarketGame", "MarketParams", "MarketReport", "Provider", "all_equilibria",
    "build_game", "economics", "improvement_dynamics", "is_equilibrium", "load_market_config", "load_provider_table",
    "logit_shares", "make_provider", "optimum", "optimum_enumeration", "potential", "providers_from_curves",
    "providers_from_pricing_reversal", "providers_from_ttc_games_spec", "reverse_second_price", "run_auction",
    "run_market", "run_sweep", "welfare",
]
