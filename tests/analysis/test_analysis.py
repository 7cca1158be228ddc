"""Imported runs through the whole offline pipeline: importer round trip, evaluate, optimize, report, market."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ttclab.analysis import evaluate_runs, market_curves, optimize, write_report
from ttclab.store import open_run
from ttclab.store.importers import import_strategic_ttc
from ttclab.store.summary import question_summaries, run_summary


def _strategic_file(path, model, seed, n_q=12, n=8, rounds=False):
    rng = np.random.default_rng(seed)
    with path.open("w") as fh:
        for q in range(n_q):
            gold = str(q + 10)
            p = rng.uniform(0.2, 0.9)
            answers, correct, expl, tokens, rewards = [], [], [], [], []
            for _ in range(n):
                ok = bool(rng.random() < p)
                pred = gold if ok else str(q + 11 + int(rng.integers(0, 2)))
                text = f"... so the answer is \\boxed{{{pred}}}"
                e = f"boxed='{pred}'; numeric compare; truth='{gold}'"
                t, r = int(rng.integers(50, 200)), float(rng.normal(1.0 if ok else 0.0, 0.5))
                if rounds:  # newer files: a list over continuation rounds per sample
                    sample = (["first try", text], [False, ok], [None, e], [10, t], [None, r])
                else:
                    sample = (text, ok, e, t, r)
                for column, value in zip((answers, correct, expl, tokens, rewards), sample):
                    column.append(value)
            fh.write(json.dumps({"qid": f"gsm8k-{q}", "prompt": f"question {q}", "answers": answers,
                                 "correct": correct, "explanations": expl, "num_tokens": tokens,
                                 "rewards": rewards, "ground_truths": [gold], "model_name": model}) + "\n")
    return path


@pytest.fixture()
def two_runs(tmp_path):
    store = tmp_path / "runs"
    a = import_strategic_ttc(_strategic_file(tmp_path / "a.jsonl", "Qwen2.5-7B", 0), task="gsm8k", store=store)
    b = import_strategic_ttc(_strategic_file(tmp_path / "b.jsonl", "Llama-3.2-3B", 1, rounds=True), task="gsm8k",
                             store=store)
    return store, a, b


def test_importer_round_trip(tmp_path, two_runs):
    store, a, b = two_runs
    src = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    rows = a.samples().to_pylist()
    assert len(rows) == 12 * 8 and a.meta["status"] == "complete"
    for r in rows:
        rec = src[r["question_index"]]
        assert r["question_id"] == rec["qid"]
        assert r["correct"] == rec["correct"][r["sample_index"]]
        assert r["completion_tokens"] == rec["num_tokens"][r["sample_index"]]
        assert r["reward"] == pytest.approx(rec["rewards"][r["sample_index"]])
        assert r["answer"] == rec["explanations"][r["sample_index"]].split("'")[1]
    # Rounds: the last round is the answer, tokens are summed over rounds.
    rb = b.samples().to_pylist()[0]
    assert rb["text"].startswith("... so the answer") and rb["completion_tokens"] >= 60
    # Idempotent: importing the same file again gives the same run, no duplicate rows.
    again = import_strategic_ttc(tmp_path / "a.jsonl", task="gsm8k", store=store)
    assert again.path == a.path and again.raw_samples().num_rows == 12 * 8


def test_evaluate_matches_direct_counts(two_runs):
    store, a, _ = two_runs
    ev = evaluate_runs([a.run_id], strategies=["majority", "pass_at_k", "best_of_n"], store=store, n_bootstrap=0)
    rows = {(r["strategy"], r["k"]): r for r in ev.rows()}
    summary = run_summary(a)
    assert rows[("majority", 8)]["accuracy"] == pytest.approx(summary["majority_accuracy"])
    assert rows[("pass_at_k", 1)]["accuracy"] == pytest.approx(summary["accuracy"])
    per_q = question_summaries(a)
    assert rows[("pass_at_k", 8)]["accuracy"] == pytest.approx(np.mean([q.accuracy > 0 for q in per_q]))
    assert rows[("majority", 2)]["completion_tokens"] == pytest.approx(2 * rows[("majority", 1)]["completion_tokens"])


def test_optimize_never_picks_the_oracle_and_report_is_self_contained(tmp_path, two_runs):
    store, a, b = two_runs
    ev = evaluate_runs(None, store=store, n_bootstrap=200)
    opt = optimize(ev, unit="completion_tokens")
    assert opt.best and all(r["strategy"] != "pass_at_k" for r in opt.best)
    costs = [r["cost"] for r in opt.best if np.isfinite(r["cost"])]
    assert all(c <= b_ + 1e-9 for c, b_ in zip(costs, [r["budget"] for r in opt.best if np.isfinite(r["cost"])]))
    assert opt.by_difficulty and {r["bin"] for r in opt.by_difficulty} == {0, 1, 2}  # no placeholder rows
    assert [r["difficulty"].split()[0] for r in opt.by_difficulty[:3]] == ["easy", "medium", "hard"]
    assert opt.policy and all(np.isfinite(r["policy_accuracy"]) for r in opt.policy if not r["reason"])
    held = optimize(ev, unit="completion_tokens", difficulty="heldout")
    assert held.by_difficulty and "held-out" in held.difficulty_note
    path = write_report(ev, tmp_path / "report", unit="completion_tokens", opt=opt)
    html = path.read_text()
    assert "<svg" in html and "Compute-optimal choice" in html and "Pareto frontier" in html
    assert (tmp_path / "report" / "figures" / "pareto.png").stat().st_size > 1000
    assert (tmp_path / "report" / "evaluation.csv").read_text().startswith("model,")


def test_market_providers_from_stored_runs(tmp_path, two_runs):
    from datetime import UTC, datetime

    from ttclab.serve.record import RecordedRun
    from ttclab.store.schema import SCHEMA_VERSION

    store, a, b = two_runs
    # served traffic in the same store (a pipeline-kind run): not a provider, and no reason to stop
    served = RecordedRun(store, "serve-majority-2-m", {
        "schema_version": SCHEMA_VERSION, "run_id": "serve-majority-2-m", "kind": "pipeline", "name": "serve",
        "model": {"label": "m (majority@2)", "name": "m", "backend": "openai", "llm": "m"}, "samples": 1})
    index = served.new_question({"question_id": "r0-0", "question": "1 + 1?", "prompt": "[]", "gold": "2",
                                 "difficulty": None, "metadata": "{}"})
    served.add_result({"run_id": served.run_id, "question_index": index, "question_id": "r0-0",
                       "candidate_id": "q0-c0", "text": "2", "answer": "2", "verdict": "correct", "correct": True,
                       "n_calls": 2, "prompt_tokens": 10, "completion_tokens": 5, "latency_s": 0.1, "wall_s": None,
                       "notes": None, "error": None, "created_at": datetime.now(UTC)})
    served.close()
    curves = market_curves(None, strategy="majority", levels=[1, 2, 4, 8], store=store)
    assert set(curves) == {"Qwen2.5-7B", "Llama-3.2-3B"}
    assert curves["Qwen2.5-7B"]["levels"] == [1, 2, 4, 8]
    cfg = tmp_path / "market.yaml"
    cfg.write_text(f"name: t\nproviders: {{source: runs, store: {store}, run_strategy: majority, levels: [1, 2, 4, 8]}}\n"
                   "prices: ttc_games_gsm8k\nalpha: 0.008\nbetas: [1000]\n")
    from ttclab.market.api import run_market

    report = run_market(cfg)
    a0 = report.analyses[0]
    assert a0.equilibrium_checked and a0.max_deviation_gain <= 1e-9
    row = report.summary_rows()[0]
    assert row["opt_sw"] >= row["eq_sw"] > 0 and row["poa"] >= 1.0


def test_cli_evaluate_optimize_report(tmp_path, two_runs):
    store, a, _ = two_runs

    def run(*args):
        return subprocess.run([sys.executable, "-m", "ttclab", *args, "--store", str(store)], capture_output=True,
                              text=True, timeout=300)

    out = run("evaluate", a.run_id, "--strategies", "majority,best_of_n", "--ks", "1,2,4,8",
              "--out", str(tmp_path / "e"))
    assert out.returncode == 0, out.stderr
    assert "majority" in out.stdout and (tmp_path / "e" / "evaluation.csv").exists()
    bad = run("evaluate", a.run_id, "--unit", "parsecs")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "parsecs" in bad.stderr
    out = run("optimize", "--unit", "completion_tokens")
    assert out.returncode == 0 and "compute-optimal" in out.stdout, out.stderr
    out = run("report", "--out", str(tmp_path / "r"), "--unit", "completion_tokens")
    assert out.returncode == 0 and (tmp_path / "r" / "report.html").exists(), out.stderr
    assert open_run(a.run_id, store).run_id == a.run_id
