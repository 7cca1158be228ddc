"""``ttclab prices [NAME]``: the built-in price files and their models (USD per 1M tokens)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ttclab.cli._common import add_format, add_store

    p = sub.add_parser("prices", help="list the price files and their models (USD per 1M tokens)")
    p.add_argument("name", nargs="?", help="one price file (name or path): list its models and prices")
    add_format(p)
    add_store(p, "accepted like on every verb (not used: the list does not depend on a store)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.cli._common import emit
    from ttclab.errors import ConfigError, DataError
    from ttclab.ledger.prices import builtin_price_files, load_prices
    from ttclab.tables import Table

    if args.name:
        try:
            table = load_prices(args.name)
        except DataError as exc:
            raise ConfigError(str(exc)) from None
        rows = [[m, p.input, p.output, p.cached_input] for m, p in sorted(table.prices.items())]
        emit(Table(["model", "input", "output", "cached input"], rows,
                   title=f"{table.path} (version {table.version}; USD per 1M tokens)"), args,
             [f"source: {table.source}"] if table.source else [])
        return 0
    rows = []
    for name in builtin_price_files():
        table = load_prices(name)
        models = sorted(table.prices)
        shown = ", ".join(models[:6]) + (f", ... ({len(models)} models)" if len(models) > 6 else "")
        rows.append([name, table.version, len(models), shown])
    emit(Table(["price file", "version", "models", "model names"], rows), args,
         ["use one with --prices NAME, or give --prices PATH to your own YAML file; `ttclab prices NAME` lists its prices"])
    return 0
