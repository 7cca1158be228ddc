"""``ttclab show RUN``: a per-question view of one run."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="per-question view of a run (answers, votes, correctness)")
    p.add_argument("run", help="run id, unique prefix, or run folder")
    p.add_argument("--store", help="store folder (default: $TTCLAB_STORE or ./runs)")
    p.add_argument("--question", help="show every sample of this question (id or index)")
    p.add_argument("--limit", type=int, default=50, help="questions to list (default 50)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.cli._table import format_table
    from ttclab.errors import DataError
    from ttclab.store import open_run
    from ttclab.store.summary import question_summaries, run_summary

    run = open_run(args.run, args.store)
    if args.question is not None:
        table = run.samples().to_pylist()
        picked = [r for r in table if r["question_id"] == args.question or str(r["question_index"]) == args.question]
        if not picked:
            raise DataError(f"run {run.run_id} has no question {args.question!r}; see `ttclab show {run.run_id}`")
        q = run.questions().to_pylist()[picked[0]["question_index"]]
        print(f"question {q['question_id']}  gold: {q['gold']}\n{q['question']}\n")
        rows = [[r["sample_index"], r["verdict"], r["answer"], r["completion_tokens"], _snippet(r["text"] or r["error"])]
                for r in picked]
        print(format_table(rows, ["sample", "verdict", "answer", "tokens", "text"]))
        return 0
    s = run_summary(run)
    print(f"run {s['run_id']}  model {s['model']}  task {s['task']}  status {s['status']}")
    print(f"accuracy {s['accuracy']:.3f}  majority@N {s['majority_accuracy']:.3f}  samples {s['rows']}  errors {s['errors']}\n")
    per_q = question_summaries(run)
    rows = []
    for q in per_q[: args.limit]:
        dist = ", ".join(f"{'∅' if a is None else _snippet(a, 12)}×{c}" for a, c in q.answers[:4])
        rows.append([q.question_index, q.question_id, _snippet(q.gold, 14), q.n, q.accuracy, q.majority_accuracy, dist])
    print(format_table(rows, ["#", "id", "gold", "n", "acc", "maj", "answers (count)"]))
    if len(per_q) > args.limit:
        print(f"... {len(per_q) - args.limit} more (use --limit)")
    return 0


def _snippet(text: object, width: int = 60) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= width else s[: width - 1] + "…"
