"""``ttclab report RUN...``: a self-contained HTML report with figures (also saved as PNG/SVG)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ttclab.cli._common import add_out
    from ttclab.cli.evaluate import add_analysis_args

    p = sub.add_parser("report", help="HTML report: overview, compute-optimal choices, difficulty, Pareto, questions")
    add_analysis_args(p)
    add_out(p, "out/report", "report.html, figures/, questions/ and CSV tables")
    p.add_argument("--market", help="also include a market (a `ttclab market` config)")
    p.add_argument("--search", action="append", metavar="DIR",
                   help="also include a `ttclab search` output folder (Pareto fronts, trajectory, chosen graph); repeatable")
    p.add_argument("--title", default="ttclab report")
    p.add_argument("--max-questions", type=int, default=200, help="questions per run on the drill-down page (default 200)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.cli.evaluate import evaluation_from_args
    from ttclab.report import write_report

    ev = evaluation_from_args(args)
    market = None
    if args.market:
        from ttclab.market.api import run_market

        market = run_market(args.market)
    path = write_report(ev, args.out, unit=args.unit, market=market, title=args.title, max_questions=args.max_questions,
                        search=args.search)
    print(f"wrote {path} (figures in {path.parent / 'figures'}, per-question pages in {path.parent / 'questions'})")
    for n in ev.notes:
        print(f"note: {n}")
    return 0
