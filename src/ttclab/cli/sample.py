"""``ttclab sample CONFIG``: sample, verify and store; re-running resumes."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ttclab.cli._common import add_format, add_store

    p = sub.add_parser("sample", help="sample models on a task N times per question, verify, store (resumable)")
    p.add_argument("config", help="YAML config (see configs/)")
    add_store(p, "store folder (default: the config's store, $TTCLAB_STORE or ./runs)")
    add_format(p)
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (without a terminal, a line every few seconds instead of the bar)")
    quick = p.add_argument_group("quick-study overrides (part of the run identity, like editing the YAML)")
    quick.add_argument("--limit", type=int, help="questions: the task's limit (files) or size (generators)")
    quick.add_argument("--samples", type=int, help="samples per question")
    quick.add_argument("--model", help="keep the config's model of this name / label, or rename its only model")
    quick.add_argument("--max-tokens", type=int, help="sampling.max_tokens")
    quick.add_argument("--temperature", type=float, help="sampling.temperature")
    quick.add_argument("--seed", type=int, help="sampling.seed")
    probes = p.add_argument_group("probes (an extra table of the run; the samples are unchanged)")
    probes.add_argument("--probe-every", type=int, metavar="D",
                        help="also store each trace's forced answer after every D tokens (embedded engine)")
    probes.add_argument("--probe-tokens", type=int, default=8, help="tokens decoded per probe (default 8)")
    probes.add_argument("--probe-cue", default="\nAnswer:", help="text appended to the prefix (default '\\nAnswer:')")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    import sys

    from ttclab.cli._common import emit, progress_of
    from ttclab.experiment import sample
    from ttclab.tables import Table

    progress, lines = progress_of(args)
    from ttclab.errors import ConfigError

    if args.probe_every is not None and args.probe_every < 1:
        raise ConfigError(f"--probe-every must be at least 1 token (got {args.probe_every})")
    if args.probe_tokens < 1:
        raise ConfigError(f"--probe-tokens must be at least 1 (got {args.probe_tokens})")
    probe = None if args.probe_every is None else {"every": args.probe_every, "max_tokens": args.probe_tokens,
                                                    "cue": args.probe_cue.encode().decode("unicode_escape")}
    results = sample(args.config, progress=progress, store=args.store, probe=probe, log=lines, limit=args.limit,
                     samples=args.samples,
                     model=args.model, max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed)
    rows, notes = [], []
    for r in results:
        s = r.summary
        generated = r.stats.generated
        rate = r.stats.tokens_per_s if generated else None  # the throughput of what this call generated
        rows.append([s["model"], s["questions"], s["rows"], s["errors"], s["truncated"], s["accuracy"],
                     s["majority_accuracy"], s["completion_tokens"], rate, generated, str(r.run.path)])
        if s["errors"]:
            notes.append(f"{s['model']}: {s['errors']} of {s['errors'] + s['rows']} samples failed ({_first_error(r.run)}); "
                         "they are stored as error rows, never graded, and the same command retries them")
        if s["truncated"]:
            max_tokens = (r.run.meta.get("sampling") or {}).get("max_tokens")
            notes.append(f"{s['model']}: {s['truncated']} of {s['rows']} samples ({s['truncated_pct']:.1f}%) hit "
                         f"max_tokens={max_tokens} and were cut off; max_tokens may be too small "
                         "(evaluate --truncated drop|wrong treats them differently)")
    table = Table(["model", "questions", "samples", "errors", "truncated", "acc", "maj@N", "completion tokens",
                   "completion tok/s (this call)", "new", "run"], rows)
    emit(table, args)
    for n in notes:  # the warning comes last, where it is seen
        print(f"warning: {n}", file=sys.stderr)
    return 0 if all(r.summary["errors"] == 0 for r in results) else 1


def _first_error(run) -> str:
    """The first failed call's error, on one line (what the user needs to see to fix it)."""
    import pyarrow.compute as pc

    table = run.samples(["verdict", "error"])
    errors = table.filter(pc.equal(table["verdict"], "error"))["error"].to_pylist()
    first = next((e for e in errors if e), None)
    return "first error: " + " ".join(str(first).split())[:200] if first else "no error message stored"
