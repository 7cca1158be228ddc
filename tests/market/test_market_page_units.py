"""market.html uses one money unit: the tables' (here USD per 1,000 queries) is the figures' too."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _labels(svg: Path) -> list[str]:
    """The text of a matplotlib SVG (drawn as paths, each after a comment holding its text)."""
    return re.findall(r"<!-- (.*?) -->", svg.read_text())


def test_figures_draw_money_in_the_tables_unit(tmp_path):
    # the README's command
    r = subprocess.run([sys.executable, "-m", "ttclab", "market", "sweep", "configs/market_gsm8k_majority.yaml",
                        "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "market.html").read_text()
    units = set(re.findall(r"\((USD per [^;)]*)", page))
    assert units == {"USD per 1,000 queries"}, units  # every table title, one unit
    unit = units.pop()
    labels = {stem: _labels(tmp_path / f"{stem}.svg") for stem in ("welfare_vs_beta", "value_curves", "dynamics")}
    assert f"welfare ({unit})" in labels["welfare_vs_beta"]
    assert any(unit in t for t in labels["value_curves"]) and any(unit in t for t in labels["dynamics"])
    assert not any("USD per query" in t or t.endswith("(USD)") for ts in labels.values() for t in ts)
    # the axis spans the numbers of the table: optimal welfare SW* at β = 200, 1,000, 100,000 (5.9 to 7.3)
    ticks = [float(t) for t in labels["welfare_vs_beta"] if re.fullmatch(r"\d+\.\d+", t)]
    table = page[page.index("equilibrium vs optimum at each β"):]
    optimal = [float(x) for x in re.findall(r"<tr><td[^>]*>[\d,]+</td><td[^>]*>([\d.]+)</td>", table)[:3]]
    assert len(optimal) == 3 and ticks and min(ticks) <= min(optimal) and max(optimal) <= max(ticks) + 0.5, (ticks, optimal)
