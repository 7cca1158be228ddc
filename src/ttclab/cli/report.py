"""``ttclab report RUN...``: a self-contained HTML report with figures (also saved as PNG/SVG)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ttclab.cli.evaluate import add_analysis_args

    p = sub.add_parser("report", help="HTML report: scaling curves, compute-optimal choices, Pareto, saturation")
    add_analysis_args(p)
    p.add_argument("--out", default="out/report", help="output folder (default out/report)")
    p.add_argument("--market", help="also include a market (a `ttclab market` config)")
    p.add_argument("--title", default="ttclab report")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.analysis import write_report
    from ttclab.cli.evaluate import evaluation_from_args

    ev = evaluation_from_args(args)
    market = None
    if args.market:
        from ttclab.market.api import run_market

        market = run_market(args.market)
    path = write_report(ev, args.out, unit=args.unit, market=market, title=args.title)
    print(f"wrote {path} (figures in {path.parent / 'figures'})")
    return 0
