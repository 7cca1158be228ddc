"""Providers from tables / curves / the real logs, and every kind of bad input (one-line errors, exit 2)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ttclab.cli import main
from ttclab.errors import ConfigError, DataError
from ttclab.market.api import run_market
from ttclab.market.auction import run_auction
from ttclab.market.game import MarketGame
from ttclab.market.providers import load_provider_table, providers_from_curves, providers_from_pricing_reversal

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "src" / "ttclab" / "market" / "data" / "ttc_games_gsm8k.json"

CURVES = {
    "small": {"levels": [1, 2, 4], "accuracy": [0.5, 0.6, 0.65], "tokens_per_query": [100, 200, 400], "price": 0.1},
    "big": {"levels": [1, 2, 4], "accuracy": [0.7, 0.8, 0.82], "tokens_per_query": [300, 600, 1200], "price": 0.3},
}


def _cfg(tmp_path: Path, providers: dict, **extra) -> Path:
    data = {"name": "t", "providers": providers, "betas": [100.0, 1e6], **extra}
    p = tmp_path / "market.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_curves_and_table_formats_agree(tmp_path):
    from_curves = providers_from_curves(CURVES)
    rows = [{"provider": n, "level": lv, "accuracy": a, "tokens": t, "price": c["price"]}
            for n, c in CURVES.items() for lv, a, t in zip(c["levels"], c["accuracy"], c["tokens_per_query"])]
    with (tmp_path / "t.csv").open("w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows[::-1])  # row order does not matter in a CSV
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({"providers": {
        n: {"levels": c["levels"], "accuracy_pct": [100 * a for a in c["accuracy"]], "tokens": c["tokens_per_query"],
            "price": c["price"]} for n, c in CURVES.items()}}))
    for path in (tmp_path / "t.csv", tmp_path / "t.yaml"):
        got = load_provider_table(path)
        assert [p.name for p in sorted(got, key=lambda p: p.name)] == sorted(CURVES)
        for p in got:
            ref = next(r for r in from_curves if r.name == p.name)
            assert np.allclose(p.accuracy, ref.accuracy) and np.allclose(p.price_per_query(), ref.price_per_query())


def test_price_from_price_file():
    curves = {"Qwen2.5-7B": {k: v for k, v in CURVES["small"].items() if k != "price"}}
    (p,) = providers_from_curves(curves, "ttc_games_gsm8k")
    assert p.output_price == 0.1465


@pytest.mark.parametrize(
    "change, needles",
    [
        ({"levels": [1, 4, 2]}, ["small", "levels", "strictly increasing"]),
        ({"accuracy": [0.5, float("nan"), 0.6]}, ["small", "accuracy is NaN", "level(s) [2.0]"]),
        ({"price": -0.1}, ["small", "negative"]),
        ({"accuracy": [50, 60, 65]}, ["small", "outside [0, 1]"]),
        ({"tokens_per_query": [100, 200]}, ["small", "3 levels but"]),
    ],
)
def test_bad_curves(change, needles):
    curves = {**CURVES, "small": {**CURVES["small"], **change}}
    with pytest.raises(DataError) as exc:
        providers_from_curves(curves)
    msg = str(exc.value)
    assert "\n" not in msg and all(n in msg for n in needles), msg


def test_missing_level_names_the_provider():
    curves = {**CURVES, "big": {**CURVES["big"], "levels": [1, 2, 8]}}
    with pytest.raises(DataError) as exc:
        providers_from_curves(curves)
    assert "'big' has levels" in str(exc.value) and "missing/extra: [4.0, 8.0]" in str(exc.value)


def test_single_provider_auction_is_an_error():
    game = MarketGame(providers_from_curves({"small": CURVES["small"]}))
    with pytest.raises(ConfigError, match="at least 2 providers"):
        game.auction()
    with pytest.raises(ConfigError, match="at least 2 providers"):
        run_auction(np.ones((1, 3)), np.zeros((1, 3)))


def _one_line_exit2(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ttclab: error: "), err
    for n in needles:
        assert n in err[0], (n, err[0])


def test_cli_bad_inputs(tmp_path, capsys):
    bad_table = tmp_path / "bad.csv"
    bad_table.write_text("provider,level,accuracy,tokens,price\na,1,0.5,100,0.1\na,2,nan,200,0.1\nb,1,0.5,100,0.1\nb,2,0.6,200,0.1\n")
    _one_line_exit2(capsys, ["market", str(_cfg(tmp_path, {"source": "table", "path": str(bad_table)}))],
                    "bad.csv", "'a'", "NaN")
    _one_line_exit2(capsys, ["market", str(_cfg(tmp_path, {"source": "curves", "curves": {"small": CURVES["small"]}}))],
                    "at least 2 providers")
    _one_line_exit2(capsys, ["market", str(_cfg(tmp_path, {"source": "table"}))], "market.yaml", "providers", "path")
    _one_line_exit2(capsys, ["market", str(_cfg(tmp_path, {"source": "curves", "curves": CURVES}, betas=[-1]))],
                    "betas", "positive")
    _one_line_exit2(capsys, ["market", str(_cfg(tmp_path, {"source": "curves", "curves": CURVES}, bogus=1))],
                    "bogus", "unknown setting")
    _one_line_exit2(capsys, ["market", str(tmp_path / "nope.yaml")], "nope.yaml", "no such file")
    _one_line_exit2(capsys, ["market", str(_cfg(tmp_path, {"source": "ttc_games_spec", "path": str(SPEC),
                                                           "strategy": "majority"}, prices="no-such-prices"))],
                    "price file", "no-such-prices")
    _one_line_exit2(capsys, ["market", str(_cfg(tmp_path, {"source": "ttc_games_spec", "path": "ttc_games_gsm9k",
                                                           "strategy": "majority"}, prices="ttc_games_gsm8k"))],
                    "ttc_games_gsm9k", "use one of: ttc_games_gsm8k")


def test_cli_subprocess_exit_code(tmp_path):
    cfg = _cfg(tmp_path, {"source": "curves", "curves": {**CURVES, "big": {**CURVES["big"], "price": -1}}})
    r = subprocess.run([sys.executable, "-m", "ttclab", "market", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "'big'" in lines[0] and "negative" in lines[0]


def test_cli_market_and_sweep(tmp_path, capsys):
    cfg = _cfg(tmp_path, {"source": "curves", "curves": CURVES},
               sweep={"betas": {"min": 1, "max": 1e4, "points": 5}, "margins": [0.5], "value_curves": ["exp"]})
    assert main(["market", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "reverse second-price auction" in out and "market equilibrium vs auction" in out
    out_dir = tmp_path / "sweep"
    assert main(["market", "sweep", str(cfg), "--out", str(out_dir)]) == 0
    with (out_dir / "sweep.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 15 and {r["varied"] for r in rows} == {"base", "margin", "value_curve"}
    assert all(float(r["poa"]) >= 1 - 1e-12 for r in rows)
    for stem in ("inefficiency_vs_beta", "welfare_vs_beta", "value_curves", "dynamics", "market_shares"):
        assert (out_dir / f"{stem}.png").stat().st_size > 0 and (out_dir / f"{stem}.svg").stat().st_size > 0
    page = (out_dir / "market.html").read_text()
    assert "reverse second-price auction" in page.lower() and page.count("<svg") == 5


def test_pricing_reversal_market(shared_data):
    root = shared_data / "traj_pricing_reversal"
    if not root.is_dir():
        pytest.skip("traj_pricing_reversal is absent")
    budgets = [1024, 4096, 16384, 65536, 1_000_000]
    ps = providers_from_pricing_reversal(root, "aime", budgets, "pricing_reversal_2026-02-28")
    assert len(ps) == 8
    for p in ps:
        assert np.all(np.diff(p.accuracy) >= 0) and np.all(np.diff(p.tokens) >= 0)
        assert p.accuracy[-1] == pytest.approx(p.meta["logged_accuracy"])  # no cap: the model as logged
        assert p.tokens[-1] == pytest.approx(p.meta["logged_completion_tokens"])
    mini = next(p for p in ps if p.name == "gpt-5-mini")
    assert mini.accuracy[-1] == pytest.approx(0.85) and mini.input_usd > 0
    report = run_market(REPO / "configs" / "market_pricing_reversal.yaml")
    assert len(report.game.names) == 8 and all(r["equilibrium_checked"] for r in report.summary_rows())
    assert all(r["poa"] >= 1 - 1e-12 for r in report.summary_rows())


@pytest.mark.parametrize("price", [".inf", "-.inf", ".nan", "-0.5", "1e400"])
def test_non_finite_or_negative_price_is_one_line_naming_the_provider(tmp_path, price):
    """`price: .inf` printed numpy RuntimeWarnings and then an error naming no field."""
    cfg = _cfg(tmp_path, {"source": "curves", "curves": CURVES})
    cfg.write_text(cfg.read_text().replace("price: 0.3", f"price: {price}"))
    assert f"price: {price}" in cfg.read_text()
    r = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "ttclab", "market", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and "Traceback" not in r.stderr and "RuntimeWarning" not in r.stderr, r.stderr
    assert len(lines) == 1 and "'big'" in lines[0] and "price" in lines[0], lines
    assert "finite" in lines[0] or "negative" in lines[0] or "NaN" in lines[0], lines


@pytest.mark.parametrize("field, value", [("input_usd", float("inf")), ("price", float("nan"))])
def test_make_provider_rejects_non_finite_prices(field, value):
    from ttclab.market.providers import make_provider

    kwargs = {"output_price": value} if field == "price" else {"output_price": 0.1, "input_usd": value}
    with pytest.raises(DataError, match=r"provider 'p'.*(finite|NaN)"):
        make_provider("p", [1, 2], [0.5, 0.6], [10, 20], **kwargs)


def test_a_wrong_providers_path_names_the_config_the_field_and_the_fix(tmp_path, capsys):
    """A providers.path that is missing, of the wrong kind or unreadable was an error naming only the path
    (and 'no such file and no shipped provider curves' for a folder): one line, exit 2, naming the config
    file, providers.path, the path and what to give."""
    import socket

    (tmp_path / "folder").mkdir()
    sock = socket.socket(socket.AF_UNIX)  # a file that exists but no one can open
    sock.bind(str(tmp_path / "table.sock"))
    table_fix = "give the path of a .yaml, .json or .csv provider table"
    cases = [
        ({"source": "table", "path": "nope/t.csv"}, "nope/t.csv: no such file (looked up from the current folder, "
                                                    "beside the config and one folder up); " + table_fix),
        ({"source": "table", "path": str(tmp_path / "folder")}, "folder: is a folder, not a file; " + table_fix),
        ({"source": "table", "path": str(tmp_path / "table.sock")}, "table.sock: cannot be read ("),
        ({"source": "ttc_games_spec", "path": str(tmp_path / "folder"), "strategy": "majority"},
         "folder: is a folder, not a file; give the path of a ttc_games_*.json file, or use one of: ttc_games_gsm8k"),
        ({"source": "pricing_reversal", "path": str(SPEC), "dataset": "aime", "budgets": [1024]},
         "ttc_games_gsm8k.json: is a file, not a folder; give the traj_pricing_reversal folder"),
        ({"source": "pricing_reversal", "path": str(tmp_path / "folder"), "dataset": "aime", "budgets": [1024]},
         "folder: has no consolidated/ folder of logs"),
    ]
    try:
        for providers, needle in cases:
            cfg = _cfg(tmp_path, providers, prices="ttc_games_gsm8k")
            _one_line_exit2(capsys, ["market", str(cfg)], f"ttclab: error: {cfg}: providers.path: ", needle)
    finally:
        sock.close()
    # a shipped name, and a path relative to the config's folder, still work
    assert run_market(_cfg(tmp_path, {"source": "ttc_games_spec", "path": "ttc_games_gsm8k", "strategy": "majority"},
                           prices="ttc_games_gsm8k")).game.n == 9
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({"providers": {
        n: {"levels": c["levels"], "accuracy": c["accuracy"], "tokens": c["tokens_per_query"], "price": c["price"]}
        for n, c in CURVES.items()}}))
    assert run_market(_cfg(tmp_path, {"source": "table", "path": "t.yaml"})).game.names == ("big", "small")  # sorted
