"""The ``ttclab`` command: a thin layer over the library API.

Each verb lives in its own module under ``ttclab.cli`` and exposes ``register(subparsers)``;
heavy imports happen inside the verb's handler, so ``ttclab --help`` stays fast.
User errors (:class:`ttclab.errors.TTCLabError`) print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

from ttclab import __version__
from ttclab.errors import TTCLabError

# Verb modules, in the order they appear in ``ttclab --help``.
VERB_MODULES = ("sample", "run", "runs", "show", "rm", "repair", "importer", "evaluate", "optimize", "report", "market",
                "strategies", "prices", "serve", "search")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (its sub-command parsers too): the problem, a close choice, where help is."""

    def error(self, message: str) -> NoReturn:
        import difflib
        import re

        bad = re.match(r"argument \S+: invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if bad:
            close = difflib.get_close_matches(bad.group(1), re.findall(r"'([^']*)'", bad.group(2)), n=1, cutoff=0.6)
            message += f"; did you mean {close[0]!r}?" if close else ""
        verb = self.prog.removeprefix("ttclab").strip()  # "search" for ``ttclab search``; the one prefix as elsewhere
        self.exit(2, f"ttclab: error: {verb + ': ' if verb else ''}{message} (`{self.prog} --help` shows the usage)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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

    unknown = _unknown_verb(parser, argv)
    if unknown is None:  # no command at all: the commands, not "the following arguments are required: VERB"
        parser.print_help(sys.stderr)
        return 2
    if unknown:
        print(f"ttclab: error: {unknown}", file=sys.stderr)
        return 2
    parsed, extra = parser.parse_known_args(argv)
    if extra:  # argparse names the top-level parser here; the verb's help is where the options are
        verb = " ".join(str(w) for w in (getattr(parsed, "verb", None), getattr(parsed, "action", None)) if w)
        where = f"ttclab {verb} --help" if verb else "ttclab --help"  # the action's help: ``ttclab search graph``
        print(f"ttclab: error: unrecognized arguments: {' '.join(extra)} (`{where}` shows the usage)", file=sys.stderr)
        return 2
    args = apply_global(parsed)
    terminated: list[int] = []
    previous = _stop_on_sigterm(terminated)
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
        if terminated:  # SIGTERM (timeout, Slurm, docker stop): stopped as cleanly as by Ctrl-C
            print("ttclab: terminated by SIGTERM (finished work is saved; run the same command again to resume)",
                  file=sys.stderr)
            return 128 + signal.SIGTERM
        print("ttclab: interrupted (finished work is saved; run the same command again to resume)", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return int(code or 0)


def _stop_on_sigterm(seen: list[int]) -> Any:
    """SIGTERM stops the command the way Ctrl-C does (runs marked interrupted, journals closed, exit 143),
    instead of killing it with run.json still saying running. Returns the handler it replaced (None
    off the main thread, where signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_term(signum: int, frame: Any) -> None:
        seen.append(signum)
        if signal.getsignal(signal.SIGINT) not in (signal.SIG_IGN, signal.SIG_DFL, None, signal.default_int_handler):
            signal.raise_signal(signal.SIGINT)  # asyncio.run's handler: it cancels its main task
            return
        loop = _running_loop()
        if loop is None:
            raise KeyboardInterrupt
        # SIGINT ignored (a script's background job) or a loop without asyncio.run's handler: raised here it
        # would land inside whichever task is running ("Task exception was never retrieved", a traceback);
        # raised by the loop between tasks, asyncio.run cancels every task and re-raises it
        loop.call_soon_threadsafe(_interrupt)

    return signal.signal(signal.SIGTERM, on_term)


def _running_loop() -> Any:
    asyncio = sys.modules.get("asyncio")  # not imported: no loop is running
    try:
        return asyncio.get_running_loop() if asyncio is not None else None
    except RuntimeError:
        return None


def _interrupt() -> None:
    raise KeyboardInterrupt


def _unknown_verb(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str | None:
    """One line for a first positional that is no verb (with the closest verb); "" for a verb (or
    ``--help`` / ``--version``); None when there is no command at all.

    argparse would print the usage and every verb; the global options before the verb are skipped.
    """
    import difflib

    verbs = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    tokens = iter(argv)
    unknown_option = None
    for token in tokens:
        if token == "--":
            token = next(tokens, "")
        elif token.startswith("-"):
            if token in ("-h", "--help", "--version"):
                return ""
            action = parser._option_string_actions.get(token.split("=", 1)[0])
            if action is None:  # an unknown option: argparse names it when a command follows
                unknown_option = unknown_option or token.split("=", 1)[0]
            elif action.nargs != 0 and "=" not in token:
                next(tokens, None)  # the option's value (``--store DIR``)
            continue
        if not token or token in verbs or unknown_option:
            return ""
        close = difflib.get_close_matches(token, list(verbs), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown command {token!r}{hint} (ttclab --help lists the commands)"
    if unknown_option:
        return f"unknown option {unknown_option!r} and no command (ttclab --help lists the options and commands)"
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
