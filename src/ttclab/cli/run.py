"""``ttclab run PIPELINE.yaml``: run an online pipeline over a task's questions (resumable)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run an online pipeline (reflection, aggregation, search, budget forcing; resumable)")
    p.add_argument("pipeline", help="pipeline YAML file (see configs/pipelines/)")
    p.add_argument("--task", help="task instead of the file's: a reasoning-gym name or a YAML mapping")
    p.add_argument("--model", help="model instead of the file's: a built-in name, a .gguf path or a YAML mapping")
    p.add_argument("--limit", type=int, help="run the first N questions")
    p.add_argument("--seed", type=int, help="pipeline seed instead of the file's")
    p.add_argument("--concurrency", type=int, help="questions in flight (default: 1 embedded, 8 on a server)")
    p.add_argument("--continuation-format", choices=["chatml", "gemma", "llama3", "plain"],
                   help="the model's chat template, for pipelines that continue partial answers (extend, search, "
                        "budget forcing, DeepConf) on a server model (instead of the file's continuation_format)")
    p.add_argument("--store", help="store folder (default: $TTCLAB_STORE or ./runs)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (without a terminal, a line every few seconds instead of the bar)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.cli._common import progress_of
    from ttclab.cli._table import format_table
    from ttclab.errors import ConfigError
    from ttclab.online.results import pipeline_outcome
    from ttclab.online.runner import parse_override, run_pipeline

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1 (got {args.limit})")
    if args.concurrency is not None and args.concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1 (got {args.concurrency})")
    bar, lines = progress_of(args)
    r = run_pipeline(args.pipeline, task=parse_override(args.task, "--task"),
                     model=parse_override(args.model, "--model"),
                     limit=args.limit, seed=args.seed, store=args.store, concurrency=args.concurrency,
                     progress=bar, log=lines,
                     overrides={"continuation_format": args.continuation_format} if args.continuation_format else None)
    outcome = pipeline_outcome(r.run)
    name = r.pipeline + (" (oracle)" if outcome.oracle else "")  # as evaluate and report name it
    print(format_table([[name, r.questions, r.ran, r.skipped, r.failed, outcome.accuracy, r.stats.calls,
                         r.stats.replayed, r.stats.tokens, r.wall_s, str(r.run.path)]],
                       ["pipeline", "questions", "ran", "skipped", "failed", "acc", "calls", "replayed", "tokens",
                        "wall s", "run"]))
    roles = outcome.by_role()
    if roles:
        finished = int((outcome.correct == outcome.correct).sum())  # not NaN: the questions with a result
        print(f"\nthe run's calls by role, over its {finished} finished question(s), replayed ones included (the table "
              "above counts this command's calls):" if r.skipped else "")
        print(format_table([[k, v["calls"], v["prompt_tokens"], v["completion_tokens"], v["latency_s"]]
                            for k, v in roles.items()], ["role", "calls", "prompt tokens", "completion tokens",
                                                          "latency s (sum)"]))
    if outcome.oracle:
        print("\noracle: the pipeline uses the gold answer (critique or score by oracle): an upper bound, never chosen "
              "as compute-optimal")
    if r.failed:
        print(f"\n{r.failed} question(s) failed (a model call failed); run the same command again to retry them")
    return 1 if r.failed else 0
