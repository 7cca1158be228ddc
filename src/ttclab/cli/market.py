"""``ttclab market``: the test-time compute game and the reverse auction from a config.

    ttclab market [run] CONFIG [--json] [--out DIR]   # equilibrium, optimum, PoA, statistics per beta, auction
    ttclab market sweep CONFIG [--out DIR] [--no-figures]  # beta / margin / alpha / value-curve sweeps
"""

from __future__ import annotations

import argparse
import json
import math

ACTIONS = ("run", "sweep")
VALUE_OPTIONS = ("-o", "--out", "--store", "--format")  # options of the actions that take a value


def with_default_action(argv: list[str]) -> list[str]:
    """``ttclab market CONFIG`` means ``ttclab market run CONFIG``.

    The first argument after ``market`` that is no option (nor an option's value) is the action or the
    config. A word that is no file and is close to an action (``swep``) is left as the action, so that
    argparse says ``invalid choice: 'swep' ...; did you mean 'sweep'?`` instead of "no such file".
    """
    if "market" not in argv:
        return argv
    i = argv.index("market")
    rest = argv[i + 1:]
    first = _first_positional(rest)
    if first is None:  # ``ttclab market -h``, or nothing: ``market run`` asks for the config
        return argv if any(a in ("-h", "--help") for a in rest) else [*argv[: i + 1], "run", *rest]
    if rest[first] in ACTIONS or any(a in ("-h", "--help") for a in rest[:first]):
        return argv
    if _mistyped_action(rest[first]):  # first, so that argparse names it (not an option's value) as the action
        return [*argv[: i + 1], rest[first], *rest[:first], *rest[first + 1:]]
    return [*argv[: i + 1], "run", *rest]


def _first_positional(args: list[str]) -> int | None:
    skip = False
    for j, a in enumerate(args):
        if skip:
            skip = False
        elif a == "--":
            return j + 1 if j + 1 < len(args) else None
        elif a.startswith("-") and a != "-":
            skip = a in VALUE_OPTIONS  # ``--out DIR`` (not ``--out=DIR``)
        else:
            return j
    return None


def _mistyped_action(word: str) -> bool:
    """A word (no path, no suffix) that names no file and is close to an action: ``swep``, ``rnu``."""
    import difflib
    from pathlib import Path

    if "/" in word or "." in word or Path(word).exists():
        return False
    return bool(difflib.get_close_matches(word, ACTIONS, n=1, cutoff=0.6))


def register(sub: argparse._SubParsersAction) -> None:
    from ttclab.cli._common import add_format, add_out, add_store

    p = sub.add_parser("market", help="market game between providers: equilibrium, optimum, PoA, auction, sweeps",
                       description="ttclab market [run] CONFIG | ttclab market sweep CONFIG")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    run = actions.add_parser("run", help="equilibrium vs optimum at each beta, and the auction (the default)")
    run.add_argument("config", nargs="?", help="a market YAML config (configs/market_*.yaml)")
    add_store(run, "store of the runs for providers.source: runs (default: the config's)")
    add_format(run)
    run.add_argument("--json", action="store_true", help="print the whole report as JSON")
    add_out(run, None, "market.json, tables as CSV and market.html")
    run.set_defaults(func=_run)
    sweep = actions.add_parser("sweep", help="beta / margin / alpha / value-curve sweeps -> CSV, figures, market.html")
    sweep.add_argument("config", nargs="?", help="a market YAML config (configs/market_*.yaml)")
    add_store(sweep, "store of the runs for providers.source: runs (default: the config's)")
    add_out(sweep, None, "the sweep", "default: sweep.out in the config, else out/market/NAME")
    sweep.add_argument("--no-figures", action="store_true", help="write the CSV files only")
    sweep.set_defaults(func=_sweep)


def _config(args: argparse.Namespace):
    from ttclab.market.config import load_market_config

    if args.config is None:  # ``ttclab market``: what to give, not argparse's "market run: ... required: config"
        from pathlib import Path

        from ttclab.errors import ConfigError

        shipped = sorted(str(p) for p in Path("configs").glob("market_*.yaml"))
        raise ConfigError("market: give a market config: `ttclab market CONFIG` (equilibria, welfare, auction) or "
                          "`ttclab market sweep CONFIG`" + (f"; shipped: {', '.join(shipped)}" if shipped else ""))
    cfg = load_market_config(args.config)
    if getattr(args, "store", None) and cfg.providers.source == "runs":
        cfg = cfg.model_copy(update={"providers": cfg.providers.model_copy(update={"store": args.store})})
    return cfg


def _run(args: argparse.Namespace) -> int:
    from ttclab.cli._common import emit, info, out_dir
    from ttclab.market.api import run_market

    report = run_market(_config(args))
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    elif getattr(args, "format", "table") == "table":
        print(report.text())
    else:
        emit(report.tables(), args)
    out = out_dir(args)
    if out is not None:
        from ttclab.report.market import write_market_page
        from ttclab.tables import write_csv

        out.mkdir(parents=True, exist_ok=True)
        (out / "market.json").write_text(json.dumps(report.to_dict(), indent=1))
        write_csv(report.summary_rows(), out / "market_summary.csv")
        page = write_market_page(report, [], out / "market.html")
        info(f"wrote {out / 'market.json'}, {out / 'market_summary.csv'}, {page}", args)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from ttclab.market.api import run_sweep
    from ttclab.market.plots import beta_label

    result = run_sweep(_config(args), args.out, figures=not args.no_figures)
    base = [r for r in result.rows if r["varied"] == "base"]
    defined = [r for r in base if math.isfinite(r["inefficiency_pct"])]
    head = f"{len(result.rows)} sweep rows ({len(base)} betas at the base parameters)"
    if defined:
        worst = max(defined, key=lambda r: r["inefficiency_pct"])
        head += f"; max inefficiency {worst['inefficiency_pct']:.2f}% at β = {beta_label(worst['beta'])}"
    if len(defined) < len(base):  # was: "max inefficiency nan%"
        head += (f"; PoA undefined at {len(base) - len(defined)} of them, where the equilibrium welfare SW is ≤ 0 "
                 "(SW* / SW measures the loss only when SW > 0)")
    print(head)
    for f in result.files:
        print(f"wrote {f}")
    return 0
