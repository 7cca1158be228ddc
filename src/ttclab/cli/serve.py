"""``ttclab serve [CONFIG.yaml]``: an OpenAI-compatible gateway that applies any test-time strategy."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible gateway: strategies and pipelines behind /v1/chat/completions")
    p.add_argument("config", nargs="?", help="serve config YAML (default: embedded smollm2-135m and gemma3-270m, pass-through; "
                                             "examples in configs/serve_*.yaml)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--record", help="store every request with all its calls in this folder (ttclab evaluate reads it)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="info (default): a line as each strategy request starts and ends")
    p.add_argument("--access-log", action="store_true", help="a line for every request, pass-through ones too")
    p.add_argument("--store", help=argparse.SUPPRESS)  # what other commands call it: answered with the fix
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.errors import ConfigError
    from ttclab.serve import serve

    if args.store is not None:
        raise ConfigError(f"--store: ttclab serve records with --record {args.store} (then ttclab runs / evaluate "
                          f"--store {args.store} read it)")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535 (got {args.port})")
    serve(args.config, host=args.host, port=args.port, record=args.record, log_level=args.log_level,
          access_log=args.access_log)
    return 0
