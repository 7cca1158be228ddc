"""The market API: build a market from a config, analyse it at the configured β values, sweep it.

    report = run_market(load_market_config("configs/market_gsm8k_majority.yaml"))
    print(report.summary_table())
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ttclab.errors import ConfigError
from ttclab.market.auction import AuctionResult
from ttclab.market.config import MarketConfig, load_market_config
from ttclab.market.economics import MarketParams
from ttclab.market.game import DEFAULT_ENUMERATE_LIMIT, SYMBOLS, BetaAnalysis, MarketGame
from ttclab.market.plots import beta_label
from ttclab.market.providers import (
    Provider,
    load_provider_table,
    providers_from_curves,
    providers_from_pricing_reversal,
    providers_from_ttc_games_spec,
)
from ttclab.tables import Table

STAT_KEYS = ("wV", "V", "wP", "P", "wU", "U")
SHARE_DECIMALS = 4  # market shares (the outside option's too) as fractions with fixed decimals: 0.0417, 0.0000
SHARE_FLOOR = 10.0 ** -SHARE_DECIMALS  # a share that is not zero but rounds to it reads "< 0.0001"
MONEY_DECIMALS = 4  # every amount of money in the market tables, in the report's unit (see market_table)
MONEY_FLOOR = 10.0 ** -MONEY_DECIMALS


def build_providers(cfg: MarketConfig) -> list[Provider]:
    """The providers a config describes (prices from its price file)."""
    spec = cfg.providers
    prices = cfg.prices
    if prices is not None and Path(prices).suffix in (".yaml", ".yml"):
        prices = str(cfg.resolve(prices))
    if spec.source == "curves":
        return providers_from_curves(spec.curves or {}, prices)
    if spec.source == "runs":
        from ttclab.analysis import market_curves

        return providers_from_curves(
            market_curves(spec.runs, strategy=spec.run_strategy, levels=spec.levels, store=spec.store), prices)
    path = cfg.provider_path()
    if spec.source == "table":
        return load_provider_table(path, prices)
    if prices is None:
        raise ConfigError(f"prices: required for providers.source={spec.source}; name a price file (e.g. ttc_games_gsm8k)")
    if spec.source == "ttc_games_spec":
        return providers_from_ttc_games_spec(path, spec.strategy or "", prices, spec.tokens)
    return providers_from_pricing_reversal(path, spec.dataset or "", spec.budgets or [], prices, spec.models,
                                           spec.include_input)


def market_params(cfg: MarketConfig) -> MarketParams:
    return MarketParams(alpha=cfg.alpha, baseline=cfg.baseline, margin=cfg.margin, value_curve=cfg.value_curve,
                        gamma=cfg.gamma, kappa=cfg.kappa, v0=cfg.v0)


def build_game(cfg: MarketConfig) -> MarketGame:
    return MarketGame(build_providers(cfg), market_params(cfg))


@dataclass
class MarketReport:
    """Equilibrium, optimum, PoA and statistics at each β, and the auction beside them."""

    name: str
    game: MarketGame
    analyses: list[BetaAnalysis]
    auction: AuctionResult
    seed: int
    method: str
    enumerate_limit: int = DEFAULT_ENUMERATE_LIMIT

    # -- tables -----------------------------------------------------------------------------------
    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per β (USD per query): optimum, equilibrium, PoA, the published statistics."""
        rows = []
        for a in self.analyses:
            rows.append({
                "beta": a.beta, "opt_sw": a.optimum.welfare, "eq_sw": a.stats.welfare, "poa": a.poa,
                "inefficiency_pct": a.inefficiency_pct, **a.stats.published(),
                "outside_share": a.stats.outside_share, "rounds": a.dynamics.rounds, "moves": len(a.dynamics.moves),
                "converged": a.dynamics.converged, "equilibrium_checked": a.equilibrium_checked,
                "n_equilibria": None if a.equilibria is None else len(a.equilibria),
                "poa_worst": a.poa_worst, "pos": a.pos,
            })
        return rows

    def provider_rows(self, a: BetaAnalysis) -> list[list[Any]]:
        lv = self.game.levels
        return [[name, _level(lv[a.equilibrium[i]]), float(a.stats.values[i]), float(a.stats.prices[i]),
                 float(a.stats.shares[i]), float(a.stats.provider_profits[i]), _level(lv[a.optimum.profile[i]]),
                 float(a.optimum_stats.shares[i])] for i, name in enumerate(self.game.names)]

    def comparison_rows(self) -> list[dict[str, Any]]:
        """Market equilibrium vs auction at each β (USD per query)."""
        au = self.auction
        return [{"beta": a.beta, "market_sw": a.stats.welfare, "market_user": a.stats.user_surplus,
                 "market_profit": float(a.stats.provider_profits.sum()), "opt_sw": a.optimum.welfare,
                 "auction_sw": au.total_welfare, "auction_user": au.user_surplus, "auction_profit": au.winner_utility}
                for a in self.analyses]

    def auction_dict(self) -> dict[str, Any]:
        au = self.auction
        lv = self.game.levels
        return {"winner": au.winner_name, "winner_level": _level(lv[au.bid_levels[au.winner]]), "W1": au.W1,
                "runner": au.runner_up_name, "runner_level": _level(lv[au.bid_levels[au.runner_up]]), "W2": au.W2,
                "user": au.user_surplus, "price": au.payment, "util": au.winner_utility, "sw": au.total_welfare}

    def to_dict(self) -> dict[str, Any]:
        lv = self.game.levels
        return {
            "name": self.name, "providers": list(self.game.names), "levels": [_level(x) for x in lv],
            "params": vars_params(self.game.params), "seed": self.seed, "dynamics": self.method, "money_unit": "USD per query",
            "betas": [{**row, "equilibrium": [_level(lv[k]) for k in a.equilibrium],
                       "optimum": [_level(lv[k]) for k in a.optimum.profile],
                       "shares": a.stats.shares.tolist()} for row, a in zip(self.summary_rows(), self.analyses)],
            "auction": self.auction_dict(), "comparison": self.comparison_rows(),
        }

    def ratio_notes(self) -> list[str]:
        """Why a PoA, worst PoA or PoS cell is empty, one line per reason: a welfare <= 0 (SW* / SW is no
        measure of the loss then), or equilibria not enumerated (too many profiles)."""
        f, _ = self.money_scale()
        groups: dict[tuple[tuple[str, ...], bool], list[float]] = {}
        for a in self.analyses:
            eqs = a.equilibria_welfare
            welfare = {"PoA, inefficiency": a.stats.welfare, "worst PoA": None if eqs is None else float(eqs.min()),
                       "PoS": None if eqs is None else float(eqs.max())}
            undefined = {k: w for k, w in welfare.items() if w is not None and w <= 0}
            if undefined:  # negative, or 0 to the tables' decimals
                zero = next(iter(undefined.values())) * f > -MONEY_FLOOR / 2
                groups.setdefault((tuple(undefined), zero), []).append(a.beta)
        whose = {"PoA, inefficiency": "the welfare SW of the equilibrium reached",
                 "worst PoA": "the welfare of the worst equilibrium", "PoS": "the welfare of the best equilibrium"}
        notes = [f"{', '.join(names)} undefined at β = {_betas(betas)}: {whose[names[0]]} is "
                 + ("0 (users take the outside option)" if zero else
                    "negative (some providers' answers are worth less than they cost, q < c)")
                 + ", and SW* / SW measures the loss only when SW > 0." for (names, zero), betas in groups.items()]
        skipped = [a.beta for a in self.analyses if a.equilibria is None]
        if skipped:
            n, levels = self.game.n, len(self.game.levels)
            notes.append(f"equilibria, worst PoA and PoS not enumerated at β = {_betas(skipped)}: {levels}^{n} = "
                         f"{levels ** n:,} profiles is more than enumerate_limit ({self.enumerate_limit:,}); raise it "
                         "in the config to enumerate them.")
        return notes

    # -- presentation (one set of tables for the terminal and the HTML page) ----------------------
    def money_scale(self) -> tuple[float, str]:
        """A readable money unit for this market's magnitudes: USD per query, per 1,000 or per million queries."""
        values = [abs(v) for r in self.summary_rows() for v in (r["opt_sw"], r["eq_sw"], r["wV"], r["wP"])
                  if v is not None and np.isfinite(v) and v != 0]
        typical = float(np.median(values)) if values else 1.0
        for factor, name in ((1.0, "USD per query"), (1e3, "USD per 1,000 queries"), (1e6, "USD per million queries")):
            if typical * factor >= 0.1:
                return factor, name
        return 1e9, "USD per billion queries"

    def tables(self) -> list[Table]:
        """The market as tables with spelled-out columns, money in :meth:`money_scale` units (each number
        formatted by :func:`market_table`)."""
        f, unit = self.money_scale()

        def money(v: Any) -> Any:
            return None if v is None else float(v) * f

        rows = self.summary_rows()
        welfare = market_table(
            ["β", "optimal welfare SW*", "equilibrium welfare SW", "PoA", "inefficiency %", "outside option share",
             "equilibrium verified", "rounds", "equilibria", "worst PoA", "PoS"],
            [[r["beta"], money(r["opt_sw"]), money(r["eq_sw"]), r["poa"], r["inefficiency_pct"], r["outside_share"],
              "yes" if r["equilibrium_checked"] else "NO", r["rounds"], r["n_equilibria"], r["poa_worst"], r["pos"]]
             for r in rows],
            f"equilibrium vs optimum at each β ({unit})", money=("optimal welfare SW*", "equilibrium welfare SW"),
            shares=("outside option share",), decimals={"PoA": 3, "worst PoA": 3, "PoS": 3, "inefficiency %": 2},
            notes=self.ratio_notes())
        published = market_table(
            ["β", "user surplus wV", "mean net value V", "revenue wP", "mean price P", "provider profit wU",
             "mean profit U"],
            [[r["beta"], money(r["wV"]), money(r["V"]), money(r["wP"]), money(r["P"]), money(r["wU"]), money(r["U"])]
             for r in rows],
            f"the published statistics at the equilibrium reached ({unit}; w = weighted by market share)",
            money=ALL_MONEY)
        out = [welfare, published]
        for a in self.analyses:
            prows = [[name, eq, money(v), money(p), s, money(u), opt, s_opt]
                     for name, eq, v, p, s, u, opt, s_opt in self.provider_rows(a)]
            out.append(market_table(
                ["provider", "equilibrium level θ", "net value V = q − p", "price p", "share s",
                 "profit u = s (p − c)", "optimal level θ*", "share at optimum"], prows,
                f"β = {beta_label(a.beta)}: each provider at the equilibrium reached and at the optimum ({unit})",
                money=("net value V = q − p", "price p", "profit u = s (p − c)"),
                shares=("share s", "share at optimum")))
        ad = self.auction_dict()
        out.append(market_table(
            ["winner", "level θ", "welfare W1", "runner-up", "level θ", "welfare W2", "payment", "user surplus",
             "winner utility", "total welfare"],
            [[ad["winner"], ad["winner_level"], money(ad["W1"]), ad["runner"], ad["runner_level"], money(ad["W2"]),
              money(ad["price"]), money(ad["user"]), money(ad["util"]), money(ad["sw"])]],
            f"reverse second-price auction ({unit})",
            money=("welfare W1", "welfare W2", "payment", "user surplus", "winner utility", "total welfare")))
        out.append(market_table(
            ["β", "market welfare", "auction welfare", "optimal welfare under logit demand", "market user surplus",
             "auction user surplus", "market provider profit", "auction provider profit"],
            [[r["beta"], money(r["market_sw"]), money(r["auction_sw"]), money(r["opt_sw"]), money(r["market_user"]),
              money(r["auction_user"]), money(r["market_profit"]), money(r["auction_profit"])]
             for r in self.comparison_rows()],
            f"market equilibrium vs auction ({unit})", money=ALL_MONEY,
            notes=["The auction's welfare W1 = q − c of the winner can exceed the optimum: the optimum "
                   "is the best SW = Σ s_i (q_i − c_i) when users still choose by logit demand at β "
                   "(spread over providers and the outside option), while the auction sends every "
                   "query to the winner at its welfare-maximising level."]))
        return out

    def text(self) -> str:
        """Readable tables for the terminal (the same tables as the HTML page) and the symbols."""
        _, unit = self.money_scale()
        out = [f"market {self.name}: {self.game.n} providers x {len(self.game.levels)} compute levels "
               f"{[_level(x) for x in self.game.levels]} ({self.method} dynamics, seed {self.seed}); money in {unit}"]
        for t in self.tables():
            out += ["", t.text()]
        out += ["", "symbols: " + "; ".join(f"{k}: {v}" for k, v in SYMBOLS.items())]
        return "\n".join(out)




ALL_MONEY = ("*",)  # market_table(money=ALL_MONEY): every column but β is money


def market_table(headers: list[str], rows: list[list[Any]], title: str, *, money: tuple[str, ...] = (),
                 shares: tuple[str, ...] = (), decimals: dict[str, int] | None = None,
                 notes: list[str] | None = None) -> Table:
    """A market table with the one number format of every market table (terminal and HTML alike).

    Money columns (``money``; :data:`ALL_MONEY` for every column but β) have :data:`MONEY_DECIMALS` fixed
    decimals in the report's money unit, which :meth:`MarketReport.money_scale` picks so that typical amounts
    are at least 0.1; shares have :data:`SHARE_DECIMALS`. A non-zero amount or share below the last decimal
    reads ``< 0.0001`` (a money column only when it has no negative entries), never a ``0.0000`` that reads
    as exactly zero. ``decimals`` fixes the rest (PoA, inefficiency %)."""
    cols = [h for h in headers if h != "β"] if money == ALL_MONEY else list(money)
    fixed = {**{h: MONEY_DECIMALS for h in cols}, **{h: SHARE_DECIMALS for h in shares}, **(decimals or {})}
    floors = {h: SHARE_FLOOR for h in shares}
    for h in cols:
        i = headers.index(h)
        if all(r[i] is None or not r[i] < 0 for r in rows):
            floors[h] = MONEY_FLOOR
    return Table(headers, rows, title=title, digits=4, decimals=fixed, floors=floors, notes=list(notes or []))


def _betas(betas: list[float]) -> str:
    return ", ".join(beta_label(b) for b in betas)


def vars_params(p: MarketParams) -> dict[str, Any]:
    return {k: getattr(p, k) for k in ("alpha", "baseline", "margin", "value_curve", "gamma", "kappa", "v0")}


def _level(x: float) -> float | int:
    return int(x) if float(x).is_integer() else float(x)


def run_market(config: MarketConfig | str | Path) -> MarketReport:
    """Equilibrium (published dynamics by default), optimum, PoA and statistics at each β, plus the auction."""
    cfg = config if isinstance(config, MarketConfig) else load_market_config(config)
    game = build_game(cfg)
    analyses = [game.analyse(b, seed=cfg.seed, method=cfg.dynamics, enumerate_limit=cfg.enumerate_limit)
                for b in cfg.betas]
    return MarketReport(cfg.name, game, analyses, game.auction(), cfg.seed, cfg.dynamics, cfg.enumerate_limit)


# -------------------------------------------------------------------------------------------------
# Sweeps
# -------------------------------------------------------------------------------------------------

SWEEP_COLUMNS = ("varied", "value_curve", "margin", "alpha", "beta", "opt_sw", "eq_sw", "poa", "inefficiency_pct",
                 *STAT_KEYS, "outside_share", "auction_sw", "rounds", "moves",
                 "converged", "equilibrium", "optimum")


def sweep_rows(game: MarketGame, betas: list[float], seed: int = 0, method: str = "nearest",
               varied: str = "base") -> list[dict[str, Any]]:
    """One row per β: optimum, equilibrium reached (checked), PoA and the statistics."""
    lv = game.levels
    au = game.auction().total_welfare if game.n >= 2 else float("nan")
    rows = []
    for b in betas:
        a = game.analyse(b, seed=seed, method=method, enumerate_limit=0, track=False)
        if not a.equilibrium_checked:  # pragma: no cover - the dynamics stop only at equilibria
            raise RuntimeError(f"dynamics ended off equilibrium at beta={b}")
        rows.append({
            "varied": varied, "value_curve": game.params.value_curve, "margin": game.params.margin,
            "alpha": game.params.alpha, "beta": b, "opt_sw": a.optimum.welfare, "eq_sw": a.stats.welfare,
            "poa": a.poa, "inefficiency_pct": a.inefficiency_pct, **a.stats.published(),
            "outside_share": a.stats.outside_share, "auction_sw": au, "rounds": a.dynamics.rounds,
            "moves": len(a.dynamics.moves), "converged": a.dynamics.converged,
            "equilibrium": ";".join(str(_level(lv[k])) for k in a.equilibrium),
            "optimum": ";".join(str(_level(lv[k])) for k in a.optimum.profile),
            "_shares": a.stats.shares,
        })
    return rows


@dataclass
class SweepResult:
    rows: list[dict[str, Any]]
    files: list[Path] = field(default_factory=list)


def run_sweep(config: MarketConfig | str | Path, out_dir: str | Path | None = None, figures: bool = True) -> SweepResult:
    """β sweep (log-spaced) at the base parameters, and varying margin, α and value curve one at a time.

    Writes ``sweep.csv``, ``shares.csv``, the figures (PNG + SVG) and ``market.html`` (the report
    section: tables + inline SVG) into ``out_dir``.
    """
    import csv

    cfg = config if isinstance(config, MarketConfig) else load_market_config(config)
    game = build_game(cfg)
    betas = cfg.sweep.beta_values()
    rows = sweep_rows(game, betas, cfg.seed, cfg.dynamics, "base")
    variants: list[tuple[str, dict[str, Any]]] = []
    for m in cfg.sweep.margins or []:
        variants.append(("margin", {"margin": float(m)}))
    for al in cfg.sweep.alphas or []:
        variants.append(("alpha", {"alpha": float(al)}))
    for vc in cfg.sweep.value_curves or []:
        variants.append(("value_curve", {"value_curve": vc}))
    for name, change in variants:
        rows += sweep_rows(game.with_params(**change), betas, cfg.seed, cfg.dynamics, name)
    out = Path(out_dir or cfg.sweep.out or f"out/market/{cfg.name}")
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "sweep.csv", out / "shares.csv"]
    with files[0].open("w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(SWEEP_COLUMNS), extrasaction="ignore")
        wr.writeheader()
        wr.writerows(rows)
    with files[1].open("w", newline="") as fh:
        wr2 = csv.writer(fh)
        wr2.writerow(["beta", *game.names, "outside"])
        for r in rows:
            if r["varied"] == "base":
                wr2.writerow([r["beta"], *r["_shares"].tolist(), r["outside_share"]])
    if figures:
        from ttclab.market import plots

        report = run_market(cfg)
        figs = plots.all_figures(game, rows, report, out)
        from ttclab.report.market import write_market_page

        page = write_market_page(report, [f for f in figs if f.suffix == ".svg"], out / "market.html")
        files += [*figs, page]
    return SweepResult(rows, files)


def sweep_betas(game: MarketGame, betas: np.ndarray | list[float], seed: int = 0) -> list[dict[str, Any]]:
    """Convenience: the base β sweep of an already-built game (used by ``bench/market.py``)."""
    return sweep_rows(game, list(map(float, betas)), seed)
