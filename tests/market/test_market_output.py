"""What a user reads from ``ttclab market``: numbers without scientific notation, and a mistyped action
answered with "did you mean" (one line, exit 2) instead of "no such file"."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ttclab.cli import main
from ttclab.cli.market import with_default_action
from ttclab.market.api import run_market
from ttclab.market.plots import beta_label
from ttclab.report.market import write_market_page

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
SCIENTIFIC = re.compile(r"\d\.?\d*e[+-]?\d+")  # 4.170e-02, 1e-6, 1e+05


def _column(report_table, header):
    i = report_table.headers.index(header)
    return [row[i] for row in report_table.formatted()]


@pytest.mark.parametrize("cfg", ["market_gsm8k_majority.yaml", "market_gsm8k_reasoning.yaml"])
def test_market_tables_have_no_scientific_notation(cfg, tmp_path):
    """The reasoning market has shares of 7e-05 and inefficiencies of 1e-04 %, the majority market
    profits of 1e-134 and an outside option of 4.6e-04: all in fixed decimals, in text and HTML."""
    report = run_market(CONFIGS / cfg)
    text = report.text()
    assert not SCIENTIFIC.findall(text), SCIENTIFIC.findall(text)[:5]
    html = write_market_page(report, [], tmp_path / "market.html").read_text()
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", html)
    assert cells and not [c for c in cells if SCIENTIFIC.search(c)]

    tables = report.tables()
    outside = _column(tables[0], "outside option share")
    raw = [r["outside_share"] for r in report.summary_rows()]
    assert all(re.fullmatch(r"0\.\d{4}|< 0\.0001", c) for c in outside), outside
    assert [c == "< 0.0001" for c in outside] == [0 < v < 1e-4 for v in raw]  # not zero, yet below 0.0001
    assert [float(c) for c in outside if c != "< 0.0001"] == [round(v, 4) for v in raw if not 0 < v < 1e-4]
    assert all(re.fullmatch(r"\d+\.\d{2}", c) for c in _column(tables[0], "inefficiency %"))
    for t in tables[2:2 + len(report.analyses)]:  # one provider table per β
        for header in ("share s", "share at optimum"):
            assert all(re.fullmatch(r"[01]\.\d{4}|< 0\.0001", c) for c in _column(t, header)), (t.title, header)
        profits = _column(t, "profit u = s (p − c)")
        assert len({len(c.split(".")[1]) for c in profits}) == 1  # one number of decimals in the column
        assert max(float(c) for c in profits if c != "< 0.0001") > 0  # the largest profit keeps its digits
        # the column is the provider's utility s (p − c) = s p m / (1 + m), not its profit per served query p − c
        m = report.game.params.margin
        for share, price, profit in zip(_column(t, "share s"), _column(t, "price p"), profits):
            if share != "< 0.0001" and profit != "< 0.0001":
                assert float(profit) == pytest.approx(float(share) * float(price) * m / (1 + m), abs=5e-4)


MONEY = ("welfare", "surplus", "net value", "price", "revenue", "profit", "payment", "utility")


@pytest.mark.parametrize("cfg", ["market_gsm8k_majority.yaml", "market_gsm8k_reasoning.yaml"])
def test_every_amount_of_money_has_the_same_decimals_in_every_table(cfg):
    """'price p' had 3 decimals in the β = 200 table (1.783) and 4 in the β = 1,000 one (0.9291), welfare 3
    and revenue 4 in one table: every money cell of every market table now has MONEY_DECIMALS decimals
    (or reads '< 0.0001'), whatever the column's magnitudes."""
    from ttclab.market.api import MONEY_DECIMALS

    report = run_market(CONFIGS / cfg)
    tables = report.tables()
    seen = set()
    for t in tables:
        for header in t.headers:
            if any(word in header for word in MONEY) and "level" not in header:
                seen.add(header)
                cells = _column(t, header)
                assert all(re.fullmatch(rf"-?\d+\.\d{{{MONEY_DECIMALS}}}|< 0\.0001", c) for c in cells), (t.title, header, cells)
    assert {"price p", "optimal welfare SW*", "revenue wP", "payment", "profit u = s (p − c)"} <= seen
    prices = [c for t in tables if "price p" in t.headers for c in _column(t, "price p")]
    assert len(prices) == len(report.analyses) * report.game.n and {len(c.split(".")[1]) for c in prices} == {4}


def test_outside_option_share_matches_the_raw_value():
    report = run_market(CONFIGS / "market_gsm8k_majority.yaml")
    text = report.text()
    line = next(ln for ln in text.splitlines() if ln.lstrip().startswith("200 "))
    assert " 0.0417 " in line  # 4.170e-02 before
    assert report.summary_rows()[0]["outside_share"] == pytest.approx(0.0417, abs=5e-5)


def test_beta_labels_are_plain():
    assert [beta_label(b) for b in (200, 1e5, 1e7, 533.669, 112468.3, 0.5)] == [
        "200", "100,000", "10,000,000", "533.7", "112,468", "0.5"]


@pytest.mark.parametrize("argv, close", [
    (["market", "swep"], "sweep"),
    (["market", "swep", str(CONFIGS / "market_gsm8k_majority.yaml")], "sweep"),
    (["market", "rnu", str(CONFIGS / "market_gsm8k_majority.yaml")], "run"),
    (["market", "--out", "/tmp/x", "sweeep", str(CONFIGS / "market_gsm8k_majority.yaml")], "sweep"),
])
def test_mistyped_action_says_did_you_mean(argv, close, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ttclab: error: market: "), err
    assert f"did you mean {close!r}?" in err[0] and "no such file" not in err[0]


def test_mistyped_action_subprocess_is_one_line_without_traceback():
    r = subprocess.run([sys.executable, "-m", "ttclab", "market", "swep", str(CONFIGS / "market_gsm8k_majority.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "did you mean 'sweep'?" in lines[0]


def test_a_file_named_like_an_action_is_still_a_config(tmp_path, monkeypatch, capsys):
    """``swep`` that exists is the config (its own error), a path or a .yaml name is never an action."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "swep").write_text("name: t\n")
    assert main(["market", "swep"]) == 2
    err = capsys.readouterr().err
    assert "did you mean" not in err and "providers" in err
    assert with_default_action(["market", "swep"]) == ["market", "run", "swep"]
    assert with_default_action(["market", "sweep.yaml"]) == ["market", "run", "sweep.yaml"]
    assert with_default_action(["market", "configs/swep"]) == ["market", "run", "configs/swep"]
    assert main(["market", "nosuch.yaml"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_default_action_reads_the_first_positional():
    cfg = "configs/market_gsm8k_majority.yaml"
    assert with_default_action(["market", cfg]) == ["market", "run", cfg]
    assert with_default_action(["market", cfg, "--out", "run"]) == ["market", "run", cfg, "--out", "run"]
    assert with_default_action(["market", "--out", "d", cfg]) == ["market", "run", "--out", "d", cfg]
    assert with_default_action(["market", "sweep", cfg]) == ["market", "sweep", cfg]
    assert with_default_action(["market", cfg, "-h"]) == ["market", "run", cfg, "-h"]
    assert with_default_action(["market", "-h"]) == ["market", "-h"]
    assert with_default_action(["market"]) == ["market", "run"]


@pytest.mark.parametrize("argv", [["market"], ["market", "sweep"], ["market", "run"]])
def test_no_config_says_what_to_give(argv):
    """``ttclab market`` alone: both forms and the shipped configs, not argparse's 'market run: ... required'."""
    r = subprocess.run([sys.executable, "-m", "ttclab", *argv], capture_output=True, text=True, timeout=60,
                       cwd=CONFIGS.parent)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    [line] = r.stderr.strip().splitlines()
    assert "`ttclab market CONFIG`" in line and "`ttclab market sweep CONFIG`" in line
    assert "configs/market_gsm8k_majority.yaml" in line and "required" not in line


NEGATIVE = {  # answers worth 0.0005 USD, sold for 0.001-0.036 USD: users and providers lose money
    "small": {"levels": [1, 2, 4], "accuracy": [0.5, 0.6, 0.65], "tokens_per_query": [100, 200, 400], "price": 10},
    "big": {"levels": [1, 2, 4], "accuracy": [0.7, 0.8, 0.82], "tokens_per_query": [300, 600, 1200], "price": 30},
}


def test_an_undefined_poa_says_why_in_the_terminal_and_the_page(tmp_path, capsys):
    """PoA = SW* / SW was a bare '-' when the equilibrium welfare is negative or 0: a note under the table
    names the β values and the reason, in the text and in market.html; the sweep no longer says 'nan%'."""
    import yaml

    cfg = tmp_path / "negative.yaml"
    cfg.write_text(yaml.safe_dump({"name": "negative", "providers": {"source": "curves", "curves": NEGATIVE},
                                   "alpha": 0.0005, "betas": [100, 10000, 1e6],
                                   "sweep": {"betas": [100, 1e6]}}))
    assert main(["market", str(cfg), "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    negative = ("PoA, inefficiency, worst PoA, PoS undefined at β = 100, 10,000: the welfare SW of the equilibrium "
                "reached is negative")
    zero = "PoA, inefficiency, worst PoA, PoS undefined at β = 1,000,000: the welfare SW of the equilibrium reached is 0"
    for needle in (negative, zero):
        assert text.count(needle) == 1, text
    welfare = text[:text.index("the published statistics")]
    assert welfare.index("PoS") < welfare.index(negative)  # under the table whose cells it explains
    page = (tmp_path / "out" / "market.html").read_text()
    notes = re.findall(r"<li>([^<]*)</li>", page)
    assert any(n.startswith(negative) for n in notes) and any(n.startswith(zero) for n in notes), notes
    assert main(["market", "sweep", str(cfg), "--out", str(tmp_path / "sweep"), "--no-figures"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert "nan" not in head and "PoA undefined at 2 of them" in head, head


def test_equilibria_not_enumerated_say_so():
    """The GSM8K market has 6^9 profiles: its empty 'equilibria', 'worst PoA', 'PoS' cells are explained."""
    [note] = run_market(CONFIGS / "market_gsm8k_majority.yaml").tables()[0].notes
    assert note.startswith("equilibria, worst PoA and PoS not enumerated at β = 200, 1,000, 100,000: "
                           "6^9 = 10,077,696 profiles is more than enumerate_limit (200,000)"), note


def test_the_inefficiency_figure_says_where_the_poa_is_undefined(tmp_path):
    """An empty panel (PoA undefined at every β) or a broken line says why in the panel."""
    import matplotlib

    from ttclab.market.plots import inefficiency_vs_beta

    rows = [{"varied": "base", "beta": b, "inefficiency_pct": v} for b, v in ((100, float("nan")), (1e4, 3.0),
                                                                              (1e6, float("nan")))]
    rows += [{"varied": "margin", "margin": m, "beta": b, "inefficiency_pct": float("nan")}
             for m in (0.1, 0.5) for b in (100, 1e6)]
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text stays text in the SVG
        paths = inefficiency_vs_beta(rows, tmp_path)
    svg = next(p for p in paths if p.suffix == ".svg").read_text()
    assert "PoA undefined at 2 of 3 β" in svg and "PoA undefined at every β" in svg
    assert svg.count("see the welfare table") == 2
