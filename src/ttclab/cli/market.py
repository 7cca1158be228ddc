"""``ttclab market``: the test-time compute game and the reverse auction from a config.

    ttclab market CONFIG                # equilibrium, optimum, PoA, statistics at each beta, plus the auction
    ttclab market sweep CONFIG [--out]  # beta / margin / alpha / value-curve sweeps -> CSV + PNG/SVG
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("market", help="market game between providers: equilibrium, optimum, PoA, auction, sweeps",
                       description="ttclab market CONFIG | ttclab market sweep CONFIG [--out DIR]")
    p.add_argument("args", nargs="+", metavar="[sweep] CONFIG", help="a market YAML config (configs/market_*.yaml)")
    p.add_argument("--out", help="sweep: output folder (default: sweep.out in the config or out/market/NAME)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of tables")
    p.add_argument("--no-figures", action="store_true", help="sweep: write the CSV files only")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.errors import ConfigError

    rest = list(args.args)
    if rest[0] == "sweep":
        if len(rest) != 2:
            raise ConfigError("usage: ttclab market sweep CONFIG [--out DIR]; give exactly one config file")
        from ttclab.market.api import run_sweep

        result = run_sweep(rest[1], args.out, figures=not args.no_figures)
        base = [r for r in result.rows if r["varied"] == "base"]
        worst = max(base, key=lambda r: r["inefficiency_pct"])
        print(f"{len(result.rows)} sweep rows ({len(base)} betas at the base parameters); "
              f"max inefficiency {worst['inefficiency_pct']:.2f}% at beta={worst['beta']:.4g}")
        for f in result.files:
            print(f"wrote {f}")
        return 0
    if len(rest) != 1:
        raise ConfigError("usage: ttclab market CONFIG or ttclab market sweep CONFIG; give exactly one config file")
    from ttclab.market.api import run_market

    report = run_market(rest[0])
    print(json.dumps(report.to_dict(), indent=1) if args.json else report.text())
    return 0
