"""``ttclab search``: search the strategy space under a budget (resumable).

    ttclab search graph CONFIG.yaml       # collaboration graphs (configs/search/graph_embedded.yaml)
    ttclab search controller CONFIG.yaml  # controllers in the replay environment (configs/search/controller_embedded.yaml)
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ttclab.cli._common import add_store

    p = sub.add_parser("search", help="search collaboration graphs or replay controllers under a budget (resumable)",
                       description="ttclab search graph CONFIG | ttclab search controller CONFIG")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    g = actions.add_parser("graph", help="search multi-LLM collaboration graphs (runs them as pipelines)")
    c = actions.add_parser("controller", help="search width-depth controllers over stored traces with probes")
    for q, func in ((g, _graph), (c, _controller)):
        q.add_argument("config", help="a search YAML config (configs/search/)")
        add_store(q)
        q.add_argument("--out", help="output folder (default: the config's out, else STORE/search/NAME)")
        q.add_argument("--evaluations", type=int, help="candidates to evaluate instead of the config's")
        q.add_argument("--no-progress", action="store_true",
                       help="no progress output (a bar on a terminal; a graph search prints a line per graph otherwise)")
        q.set_defaults(func=func)


def _check(args: argparse.Namespace) -> None:
    from ttclab.errors import ConfigError

    if args.evaluations is not None and args.evaluations < 1:
        raise ConfigError(f"--evaluations must be at least 1 (got {args.evaluations})")


def _graph(args: argparse.Namespace) -> int:
    from ttclab.cli._common import progress_of
    from ttclab.cli._table import format_table
    from ttclab.search.graph_search import search_graphs

    _check(args)
    bar, lines = progress_of(args)
    r = search_graphs(args.config, store=args.store, progress=bar, evaluations=args.evaluations, out=args.out,
                      log=lines)
    rows = []
    for rec in r.front:
        h = rec.get("heldout") or {}
        rows.append([rec["describe"], rec["predicted"]["total_tokens"], (rec.get("actual") or {}).get("total_tokens"),
                     rec["accuracy"], h.get("accuracy"), f"[{h['ci'][0]:.2f}, {h['ci'][1]:.2f}]" if h else ""])
    print(format_table(rows, ["Pareto graph", "pred tokens/q", "actual tokens/q", "search acc", "held-out acc",
                              "held-out 95% CI"]))
    print()
    print(format_table([[k, v["describe"], v["accuracy"], (v.get("heldout") or {}).get("accuracy"), v["pipeline_file"]]
                        for k, v in r.best.items()], ["budget", "best graph", "search acc", "held-out acc", "ttclab run"]))
    for note in r.notes:
        print(f"note: {note}")
    print(f"\n{len(r.trials)} candidates ({r.rejected} over budget, not run; {r.agent_rejected} agent proposals "
          f"rejected); everything in {r.out}")
    return 0


def _controller(args: argparse.Namespace) -> int:
    from ttclab.cli._common import progress_of
    from ttclab.cli._table import format_table
    from ttclab.search.controller_search import search_controllers

    _check(args)
    bar, lines = progress_of(args)
    r = search_controllers(args.config, store=args.store, progress=bar, evaluations=args.evaluations, out=args.out,
                           log=lines)
    print(format_table([[c["controller"], c["beta"], c["accuracy"], f"[{c['ci'][0]:.2f}, {c['ci'][1]:.2f}]",
                         c["tokens"], c["sequential_tokens"]] for c in r.front],
                       ["Pareto controller (held-out)", "beta", "acc", "95% CI", "tokens/q", "sequential tokens/q"]))
    for line in r.headline:
        print(line)
    if r.code_trials or r.code_failures:
        print(f"{len(r.code_trials)} proposed code controller(s); {len(r.code_failures)} code controller evaluation(s) "
              "failed in the sandbox (reasons in summary.json's code_failures)")
    print(f"\neverything in {r.out}")
    return 0
