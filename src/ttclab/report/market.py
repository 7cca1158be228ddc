"""The market as HTML: the same tables as the terminal text, the symbols' legend and the figures,
styled like the main report (a section of it, or a page of its own for ``ttclab market sweep``)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ttclab.report.html import Report, Section, svg_figure

FIGURE_CAPTIONS = {
    "inefficiency_vs_beta": "Inefficiency (PoA − 1) × 100 % against user rationality β at the base parameters, and a "
                            "panel for each parameter the config's sweep varies (one at a time).",
    "welfare_vs_beta": "Social welfare at the optimum, at the equilibrium reached and under the reverse auction, and "
                       "the users' surplus in the market, against β.",
    "value_curves": "Each provider's net value to the user, V(θ) = q(θ) − p(θ), at every compute level θ.",
    "dynamics": "The improvement dynamics at each configured β: the potential Φ rises with every move until no "
                "provider can gain (an equilibrium); welfare along the way, dashed: the optimum.",
    "market_shares": "Equilibrium market shares against β (the outside option takes the rest).",
}


def _legend(report: Any) -> str:
    from ttclab.market.game import SYMBOLS

    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in SYMBOLS.items())
    return f"<details><summary>symbols (the paper's terms)</summary><dl class='legend'>{items}</dl></details>"


def market_section(sec: Section, report: Any, figures: Sequence[Path] = ()) -> Section:
    """Fill a report section with the market's tables (the summary open, the rest collapsed) and figures."""
    _, unit = report.money_scale()
    levels = ", ".join(f"{x:g}" for x in report.game.levels)
    sec.text(f"Market '{report.name}': {report.game.n} providers choose a compute level θ ∈ {{{levels}}}; users "
             f"choose by logit demand. Equilibrium ({report.method} dynamics, seed {report.seed}, verified) vs the "
             f"welfare optimum at each β, and the reverse second-price auction. Money in {unit}.")
    sec.raw(_legend(report))
    for i, table in enumerate(report.tables()):
        sec.table(table, table.title, open_=i == 0)
        if table.notes:
            sec.notes(table.notes)
    for f in figures:
        f = Path(f)
        sec.raw(svg_figure(f.read_text(), FIGURE_CAPTIONS.get(f.stem, f.stem.replace("_", " ")), f.stem))
    return sec


def write_market_page(report: Any, figures: Sequence[Path], path: str | Path) -> Path:
    """``market.html``: the market section as a page of its own."""
    rep = Report(f"Market: {report.name}", subtitle="Test-time compute game between providers, and the reverse "
                 "second-price auction (Test-Time Compute Games, arXiv 2601.21839).")
    market_section(rep.section("Market"), report, figures)
    return rep.write(path)


__all__ = ["FIGURE_CAPTIONS", "market_section", "write_market_page"]
