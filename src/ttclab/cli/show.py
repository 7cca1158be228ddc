"""``ttclab show RUN``: a per-question view of one run; ``--question ID`` for its samples (``--full`` text)."""

from __future__ import annotations

import argparse
import math


def register(sub: argparse._SubParsersAction) -> None:
    from ttclab.cli._common import add_format, add_store

    p = sub.add_parser("show", help="per-question view of a run (answers, votes, correctness); --question for samples")
    p.add_argument("run", help="run id, unique prefix, or run folder")
    add_store(p)
    add_format(p)
    p.add_argument("--question", help="show every sample of this question (id or index)")
    p.add_argument("--full", action="store_true",
                   help="with --question: the full text of every sample with answer, verdict, reason, finish reason")
    p.add_argument("--limit", type=int, default=50, help="questions to list (default 50)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ttclab.cli._common import emit, info
    from ttclab.store import open_run
    from ttclab.store.summary import question_summaries, run_summary
    from ttclab.tables import Table

    run = open_run(args.run, args.store)
    if args.question is not None:
        return _question(run, args)
    s = run_summary(run)
    unlabelled = {r["question_index"]: r for r in _unlabelled(run)}
    if unlabelled:  # served traffic: its unlabelled answers are not graded samples, but they were answered
        from ttclab.online.results import pipeline_summary

        s |= pipeline_summary(run)
    info(f"run {s['run_id']}  model {s['model']}  task {s['task']}  status {s['status']}", args)
    acc, maj = ("-" if math.isnan(s[k]) else f"{s[k]:.3f}" for k in ("accuracy", "majority_accuracy"))
    info(f"accuracy {acc}  majority@N {maj}  samples {s['rows']}  errors "
         f"{s['errors']}  truncated {s['truncated']}\n", args)
    per_q = question_summaries(run)
    rows = []
    for q in per_q[: args.limit]:
        if q.n == 0 and (r := unlabelled.get(q.question_index)) is not None:  # answered, with no reference to grade
            rows.append([q.question_index, q.question_id, None, 1, None, None, f"{_snippet(r['answer'], 12) or '∅'}×1"])
            continue
        dist = ", ".join(f"{'∅' if a is None else _snippet(a, 12)}×{c}" for a, c in q.answers[:4])
        rows.append([q.question_index, q.question_id, _snippet(q.gold, 14), q.n, q.accuracy, q.majority_accuracy, dist])
    notes = [f"{len(per_q) - args.limit} more questions (use --limit)"] if len(per_q) > args.limit else []
    if unlabelled:
        notes.append(f"{len(unlabelled)} of {s['rows']} served answers carry no reference (ttc.reference): acc is over "
                     "the labelled ones")
    emit(Table(["#", "id", "gold", "n", "acc", "maj", "answers (count)"], rows), args, notes)
    return 0


def _question(run, args: argparse.Namespace) -> int:
    import pyarrow.compute as pc

    from ttclab.cli._common import emit
    from ttclab.errors import DataError
    from ttclab.tables import Table

    table = run.samples()
    by_id = pc.equal(table["question_id"], args.question)
    if args.question.isdigit():
        by_id = pc.or_(by_id, pc.equal(table["question_index"], int(args.question)))
    picked = table.filter(by_id).to_pylist() or [
        r for r in _unlabelled(run) if r["question_id"] == args.question
        or (args.question.isdigit() and r["question_index"] == int(args.question))]
    if not picked:
        raise DataError(f"run {run.run_id} has no question {args.question!r}; see `ttclab show {run.run_id}`")
    questions = {q["question_index"]: q for q in run.questions().to_pylist()}
    q = questions.get(picked[0]["question_index"], {"question_id": picked[0]["question_id"], "gold": "?", "question": ""})
    header = f"question {q['question_id']}  gold: {'-' if q['gold'] is None else q['gold']}\n{q['question']}\n"
    if args.full and getattr(args, "format", "table") == "table":
        print(header)
        for r in picked:
            reason = r["error"] if r["verdict"] == "error" else r["verify_reason"]
            print(f"--- sample {r['sample_index']}: {r['verdict']}  answer {r['answer']}  finish {r['finish_reason']}  "
                  f"{r['completion_tokens']} tokens\n    reason: {'-' if reason is None else reason}")
            print(r["text"] if r["text"] is not None else "(no text)")
            print()
        from ttclab.online.results import is_pipeline_run, question_calls

        if is_pipeline_run(run):  # the calls that led to the final answer, in order
            for i, c in enumerate(question_calls(run, picked[0]["question_index"])):
                print(f"--- call {i}: step {c['step_id']}  {c['role']}  answer {c['answer']}  finish "
                      f"{'error' if c['error'] else c['finish_reason']}  {c['prompt_tokens']} + "
                      f"{c['completion_tokens']} tokens" + ("  (replayed)" if c["cached_from"] else ""))
                print(c["error"] or c["text"] or "(no text)")
                print()
        return 0
    rows = [
        [
            r["sample_index"],
            r["verdict"],
            r["answer"],
            r["finish_reason"],
            r["completion_tokens"],
            (r["error"] if r["verdict"] == "error" else r["verify_reason"])
            if args.full
            else _snippet(r["verify_reason"] or r["error"], 30),
            (r["text"] if args.full else _snippet(r["text"] or r["error"])),
        ]
        for r in picked
    ]
    if getattr(args, "format", "table") == "table":
        print(header)
    samples = Table(["sample", "verdict", "answer", "finish", "tokens", "reason", "text"], rows)
    calls = _pipeline_calls(run, picked[0]["question_index"], args)
    if calls:
        samples.title = "final answer"
    emit([samples, *calls], args, [] if args.full else ["--full prints every sample's whole text"])
    return 0


def _unlabelled(run) -> list[dict]:
    """The final answers of a pipeline run without a reference (``ttclab serve`` traffic), as sample rows:
    ``samples/`` holds graded answers only, so ``show`` reads these from the results table."""
    from ttclab.online.results import is_pipeline_run

    if not is_pipeline_run(run) or not (run.path / "results").is_dir():
        return []
    from ttclab.store.journal import read_table

    return [{"question_index": r["question_index"], "question_id": r["question_id"], "sample_index": 0,
             "verdict": r["verdict"], "answer": r["answer"], "finish_reason": r["finish_reason"],
             "completion_tokens": r["completion_tokens"], "verify_reason": r["notes"], "error": r["error"],
             "text": r["text"]}
            for r in read_table(run.path, "results").to_pylist() if r["verdict"] == "unlabelled"]


def _pipeline_calls(run, question_index: int, args: argparse.Namespace) -> list:
    """A pipeline run's sample is its final answer: in a text table, the calls that led to it, in order
    (critiques, picks...); csv / json keep the samples alone."""
    from ttclab.online.results import is_pipeline_run, question_calls
    from ttclab.tables import Table

    if getattr(args, "format", "table") != "table" or not is_pipeline_run(run):
        return []
    rows = [[c["step_id"], c["role"], c["prompt_tokens"], c["completion_tokens"], _snippet(c["answer"], 30),
             "error" if c["error"] else c["finish_reason"], "yes" if c["cached_from"] else None,
             _snippet(c["error"] or c["text"], 50)]
            for c in question_calls(run, question_index)]
    return [Table(["step", "role", "prompt tokens", "completion tokens", "answer", "finish", "replayed", "text"], rows,
                  title="calls")]


def _snippet(text: object, width: int = 60) -> str | None:
    """``text`` on one line, cut to ``width``; None stays None (a table shows it as '-', not 'None')."""
    if text is None:
        return None
    s = " ".join(str(text).split())
    return s if len(s) <= width else s[: width - 1] + "…"
