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
from ttclab.market.game import BetaAnalysis, MarketGame
from ttclab.market.providers import (
    Provider,
    load_provider_table,
    providers_from_curves,
    providers_from_pricing_reversal,
    providers_from_ttc_games_spec,
)

STAT_KEYS = ("wV", "V", "wP", "P", "wU", "U")


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
    path = cfg.resolve(spec.path or "")
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

    # -- tables -----------------------------------------------------------------------------------
    def summary_rows(self) -> list[dict[str, Any]]:
        rows = []
        for a in self.analyses:
            rows.append({
                "beta": a.beta, "opt_sw": a.optimum.welfare, "eq_sw": a.stats.welfare, "poa": a.poa,
                "inefficiency_pct": a.inefficiency_pct, **a.stats.published(),
                "user_surplus": a.stats.user_surplus, "provider_profit": float(a.stats.provider_profits.sum()),
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
            "params": vars_params(self.game.params), "seed": self.seed, "dynamics": self.method,
            "betas": [{**row, "equilibrium": [_level(lv[k]) for k in a.equilibrium],
                       "optimum": [_level(lv[k]) for k in a.optimum.profile],
                       "shares": a.stats.shares.tolist()} for row, a in zip(self.summary_rows(), self.analyses)],
            "auction": self.auction_dict(), "comparison": self.comparison_rows(),
        }

    def html(self, figures: list[Path] | None = None) -> str:
        """A self-contained HTML section (tables + inline SVG figures) for the HTML report."""
        import html as _h

        def table(headers: list[str], rows: list[list[Any]]) -> str:
            from ttclab.cli._table import fmt

            head = "".join(f"<th>{_h.escape(h)}</th>" for h in headers)
            body = "".join("<tr>" + "".join(f"<td>{_h.escape(fmt(v, 5))}</td>" for v in r) + "</tr>" for r in rows)
            return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

        summ = [[r["beta"], r["opt_sw"], r["eq_sw"], r["poa"], r["inefficiency_pct"], *(r[k] for k in STAT_KEYS)]
                for r in self.summary_rows()]
        ad = self.auction_dict()
        parts = [f"<section class='market'><h2>Market: {_h.escape(self.name)}</h2>",
                 f"<p>{self.game.n} providers, levels {[_level(x) for x in self.game.levels]}; "
                 f"{self.method} dynamics (seed {self.seed}); USD per query.</p>",
                 table(["beta", "opt SW", "eq SW", "PoA", "ineff %", *STAT_KEYS], summ),
                 "<h3>Reverse second-price auction</h3>",
                 table(["winner", "W1", "runner-up", "W2", "price", "user", "winner util", "SW"],
                       [[ad["winner"], ad["W1"], ad["runner"], ad["W2"], ad["price"], ad["user"], ad["util"], ad["sw"]]])]
        for f in figures or []:
            if Path(f).suffix == ".svg":
                svg = Path(f).read_text()
                parts.append(f"<figure>{svg[svg.find('<svg'):]}<figcaption>{_h.escape(Path(f).stem)}</figcaption></figure>")
        parts.append("</section>")
        return "\n".join(parts)

    def text(self) -> str:
        """Readable tables for the terminal."""
        from ttclab.cli._table import format_table

        out = [f"market {self.name}: {self.game.n} providers x {len(self.game.levels)} levels "
               f"({self.method} dynamics, seed {self.seed}; USD per query)"]
        headers = ["beta", "opt SW", "eq SW", "PoA", "ineff %", *STAT_KEYS, "user", "profit", "rounds", "NE ok",
                   "#NE", "PoA worst", "PoS"]
        rows = [[f"{r['beta']:g}", r["opt_sw"], r["eq_sw"], r["poa"], r["inefficiency_pct"], *(r[k] for k in STAT_KEYS),
                 r["user_surplus"], r["provider_profit"], r["rounds"], "yes" if r["equilibrium_checked"] else "NO",
                 r["n_equilibria"], r["poa_worst"], r["pos"]] for r in self.summary_rows()]
        out += ["", format_table(rows, headers, digits=5)]
        for a in self.analyses:
            out += ["", f"beta = {a.beta:g}: equilibrium reached vs optimum",
                    format_table(self.provider_rows(a), ["provider", "eq level", "V", "price", "share", "profit",
                                                         "opt level", "opt share"], digits=5)]
        ad = self.auction_dict()
        out += ["", "reverse second-price auction",
                format_table([[ad["winner"], ad["winner_level"], ad["W1"], ad["runner"], ad["runner_level"], ad["W2"],
                               ad["price"], ad["user"], ad["util"], ad["sw"]]],
                             ["winner", "level", "W1", "runner-up", "level", "W2", "price", "user", "winner util", "SW"],
                             digits=5)]
        cmp_rows = [[f"{r['beta']:g}", r["market_sw"], r["auction_sw"], r["opt_sw"], r["market_user"], r["auction_user"],
                     r["market_profit"], r["auction_profit"]] for r in self.comparison_rows()]
        out += ["", "market equilibrium vs auction",
                format_table(cmp_rows, ["beta", "market SW", "auction SW", "opt SW", "market user", "auction user",
                                        "market profit", "auction profit"], digits=5)]
        return "\n".join(out)


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
    return MarketReport(cfg.name, game, analyses, game.auction(), cfg.seed, cfg.dynamics)


# -------------------------------------------------------------------------------------------------
# Sweeps
# -------------------------------------------------------------------------------------------------

SWEEP_COLUMNS = ("varied", "value_curve", "margin", "alpha", "beta", "opt_sw", "eq_sw", "poa", "inefficiency_pct",
                 *STAT_KEYS, "user_surplus", "provider_profit", "outside_share", "auction_sw", "rounds", "moves",
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
            "user_surplus": a.stats.user_surplus, "provider_profit": float(a.stats.provider_profits.sum()),
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
        page = out / "market.html"
        page.write_text("<!doctype html><html><head><meta charset='utf-8'><title>ttclab market</title></head><body>"
                        + report.html([f for f in figs if f.suffix == ".svg"]) + "</body></html>")
        files += [*figs, page]
    return SweepResult(rows, files)


def sweep_betas(game: MarketGame, betas: np.ndarray | list[float], seed: int = 0) -> list[dict[str, Any]]:
    """Convenience: the base β sweep of an already-built game (used by ``bench/market.py``)."""
    return sweep_rows(game, list(map(float, betas)), seed)
