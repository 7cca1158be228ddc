"""The ``ttclab`` command: a thin layer over the library API.

Each verb lives in its own module under ``ttclab.cli`` and exposes ``register(subparsers)``;
heavy imports happen inside the verb's handler, so ``ttclab --help`` stays fast.
User errors (:class:`ttclab.errors.TTCLabError`) print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ttclab import __version__
from ttclab.errors import TTCLabError

# Verb modules, in the order they appear in ``ttclab --help``.
VERB_MODULES = ("sample", "run", "runs", "show", "rm", "repair", "importer", "evaluate", "optimize", "report", "market",
                "strategies", "prices", "serve", "search")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ttclab",
        description="Test-time compute for LLMs: sample, verify, store, evaluate, optimise, market.",
    )
    parser.add_argument("--version", action="version", version=f"ttclab {__version__}")
    from ttclab.cli._common import add_global

    add_global(parser)  # --store and --format also work before the verb
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(f"ttclab.cli.{name}")
        except ModuleNotFoundError as exc:  # a verb not built yet
            if exc.name == f"ttclab.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    for name in VERB_MODULES:  # verbs with sub-commands and a default one (``ttclab market CONFIG``)
        module = sys.modules.get(f"ttclab.cli.{name}")
        if module is not None and hasattr(module, "with_default_action"):
            argv = module.with_default_action(argv)
    from ttclab.cli._common import apply_global

    args = apply_global(parser.parse_args(argv))
    try:
        code = args.func(args)
    except TTCLabError as exc:
        print(f"ttclab: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # e.g. `ttclab runs | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("ttclab: interrupted (finished work is saved; run the same command again to resume)", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
