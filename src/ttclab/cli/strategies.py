"""``ttclab strategies``: the registered strategies, one line each."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ttclab.cli._common import add_format, add_store

    p = sub.add_parser("strategies", help="list the offline strategies: what each is, exact or resampled, data needed")
    add_format(p)
    add_store(p, "accepted like on every verb (not used: the list does not depend on a store)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.cli._common import emit
    from ttclab.strategies.registry import describe
    from ttclab.tables import Table

    rows = describe()
    table = Table.from_records(rows, ["strategy", "estimator", "needs", "description"])
    emit(table, args, ["oracle strategies (pass_at_k) need the gold answer: reported, never chosen as compute-optimal"])
    return 0
