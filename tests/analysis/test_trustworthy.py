"""Issue 12: compute-optimal answers that noise cannot explain, loud failures, visible truncation.

Runs are written through the real importer / store writer as Parquet and read back like any run.
"""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from ttclab.analysis import evaluate_runs, optimize
from ttclab.errors import ConfigError, TTCLabError
from ttclab.optimize.curves import Curves
from ttclab.optimize.optimal import collapse_budgets, compute_optimal
from ttclab.store import open_run, scan
from ttclab.store.importers import import_strategic_ttc
from ttclab.store.schema import SAMPLES_SCHEMA
from ttclab.store.writer import META_FILE, SampleWriter, atomic_write_json, write_questions


def _strategic(path, model, seed, n_q=30, n=8, rewards=True):
    rng = np.random.default_rng(seed)
    with path.open("w") as fh:
        for q in range(n_q):
            gold = str(q + 10)
            p = float(rng.uniform(0.1, 0.9))
            rec = {"qid": f"q-{q}", "prompt": f"question {q}", "answers": [], "correct": [], "explanations": [],
                   "num_tokens": [], "ground_truths": [gold], "model_name": model}
            if rewards:
                rec["rewards"] = []
            for _ in range(n):
                ok = bool(rng.random() < p)
                pred = gold if ok else str(q + 11 + int(rng.integers(0, 3)))
                rec["answers"].append(f"so \\boxed{{{pred}}}")
                rec["correct"].append(ok)
                rec["explanations"].append(f"boxed='{pred}'; truth='{gold}'")
                rec["num_tokens"].append(int(rng.integers(50, 300)))
                if rewards:
                    rec["rewards"].append(float(rng.normal(1.0 if ok else 0.0, 0.7)))
            fh.write(json.dumps(rec) + "\n")
    return path


@pytest.fixture()
def store(tmp_path):
    root = tmp_path / "runs"
    import_strategic_ttc(_strategic(tmp_path / "a.jsonl", "Model-A", 0), task="gsm8k", store=root)
    import_strategic_ttc(_strategic(tmp_path / "b.jsonl", "Model-B", 1, rewards=False), task="gsm8k", store=root)
    return root


def _write_run(root, run_id, rows, questions, status="complete", model="m"):
    """A run written with the store's own writers (samples as given)."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    atomic_write_json(run_dir / META_FILE, {"run_id": run_id, "status": status, "model": {"name": model, "label": model},
                                            "task": {"name": "t"}, "samples": 4})
    write_questions(run_dir, [{"question_index": i, "question_id": f"q{i}", "question": f"Q{i}", "prompt": "",
                               "gold": "1", "difficulty": None, "metadata": "{}"} for i in range(questions)])
    writer = SampleWriter(run_dir)
    now = datetime.now(UTC)
    base = {name: None for name in SAMPLES_SCHEMA.names}
    writer.add([{**base, "run_id": run_id, "model": model, "created_at": now, **r} for r in rows])
    writer.close()
    return open_run(run_dir)


def _rows(a_run):
    return {(r["model"], r["strategy"], r["k"]): r for r in a_run.rows()}


def test_coinciding_strategies_are_computed_once_exactly(store):
    ev = evaluate_runs(["import-gsm8k-model-a"], strategies=["majority", "esc", "adaptive_consistency", "best_of_n",
                                                          "weighted_reward"], ks=[1, 2, 4, 5, 8], store=store)
    rows = _rows(ev)
    for k in (1, 2, 4, 5):  # ESC cannot stop before its first window of 5: it is majority@k
        esc, maj = rows[("Model-A", "esc", k)], rows[("Model-A", "majority", k)]
        assert esc["accuracy"] == maj["accuracy"] and esc["exact"] and esc["estimator"] == "= majority"
        assert esc["ci_low"] == maj["ci_low"] and esc["mc_se"] == 0.0
    for k in (1, 2, 4):  # the Beta rule at 0.95 can first stop after 4 agreeing samples
        assert rows[("Model-A", "adaptive_consistency", k)]["accuracy"] == rows[("Model-A", "majority", k)]["accuracy"]
    assert rows[("Model-A", "esc", 8)]["estimator"] == "resampled"
    assert rows[("Model-A", "weighted_reward", 1)]["estimator"] == "= majority"
    assert rows[("Model-A", "best_of_n", 2)]["estimator"] == "exact"


def test_a_resampled_estimate_never_beats_an_exact_one_within_its_error():
    # the numbers: esc@1 0.098 (resampled, noisy) over majority@1 0.083 (exact) at the same cost
    curves = Curves.from_points([0.083, 0.098, 0.20], [100.0, 100.0, 400.0], strategy=["majority", "esc", "majority"],
                                k=[1, 1, 4], model="m")
    curves = Curves(curves.model, curves.strategy, curves.k, curves.accuracy, curves.cost, se=np.array([0.0, 0.02, 0.0]),
                    mc_se=np.array([0.0, 0.02, 0.0]), exact=np.array([True, False, True]))
    out = compute_optimal(curves, [150.0, 500.0])
    assert out["strategy"][0] == "majority" and "within one standard error" in out["note"][0]
    assert "esc" in out["ties"][0]  # still said: it cannot be told apart
    # a resampled estimate that wins by more than its error is chosen
    far = Curves(curves.model, curves.strategy, curves.k, np.array([0.083, 0.30, 0.20]), curves.cost,
                 se=np.array([0.0, 0.02, 0.0]), exact=np.array([True, False, True]))
    assert compute_optimal(far, [150.0])["strategy"][0] == "esc"


def test_no_chosen_resampled_point_is_within_error_of_an_exact_one(store):
    ev = evaluate_runs(None, store=store, seed=3)
    opt = optimize(ev, unit="completion_tokens")
    curves = Curves.from_summary(ev.summary, "completion_tokens")
    for r in opt.best:
        if r["reason"] or r["exact"]:
            continue
        ok = curves.valid & curves.exact & (curves.cost <= r["budget"]) & (curves.strategy != "pass_at_k")
        if ok.any():
            e = int(np.flatnonzero(ok)[np.argmax(curves.accuracy[ok])])
            se = ev.paired((r["model"], r["strategy"], r["k"]), (curves.model[e], curves.strategy[e], int(curves.k[e]))).se
            assert r["accuracy"] - curves.accuracy[e] > se
    # budgets that buy nothing better are one row, and every choice has its interval
    keys = [(c["model"], c["strategy"], c["k"]) for c in opt.choices]
    assert all(a != b for a, b in zip(keys, keys[1:]))
    assert all(c["ci_low"] <= c["accuracy"] <= c["ci_high"] for c in opt.choices if not c["reason"])
    assert all(c["budget_from"] <= c["budget_to"] for c in opt.choices)


def test_collapse_budgets_merges_runs_of_the_same_choice():
    rows = [{"budget": b, "model": "m", "strategy": s, "k": k, "reason": "", "ties": t}
            for b, s, k, t in ((1, "a", 1, ""), (2, "a", 1, "b"), (3, "b", 2, ""), (4, "a", 1, ""))]
    out = collapse_budgets(rows)
    assert [(r["budget_from"], r["budget_to"], r["strategy"]) for r in out] == [(1, 2, "a"), (3, 3, "b"), (4, 4, "a")]
    assert out[0]["ties"] == "b"


def test_bootstrap_intervals_do_not_depend_on_the_strategies_asked(store):
    one = _rows(evaluate_runs(["import-gsm8k-model-a"], strategies=["majority"], store=store, seed=5))
    many = _rows(evaluate_runs(["import-gsm8k-model-a"], strategies=["best_of_n", "esc", "majority", "pass_at_k"],
                               store=store, seed=5))
    for key, row in one.items():
        assert (row["ci_low"], row["ci_high"]) == (many[key]["ci_low"], many[key]["ci_high"])


def test_paired_difference_with_its_interval(store):
    ev = evaluate_runs(["import-gsm8k-model-a"], strategies=["majority", "best_of_n"], store=store)
    rows = _rows(ev)
    d = ev.paired(("Model-A", "best_of_n", 8), ("Model-A", "majority", 1))
    assert d.paired and d.n_questions == 30
    assert d.difference == pytest.approx(rows[("Model-A", "best_of_n", 8)]["accuracy"]
                                         - rows[("Model-A", "majority", 1)]["accuracy"])
    assert d.ci_low <= d.difference <= d.ci_high and d.se > 0
    same = ev.paired(("Model-A", "majority", 4), ("Model-A", "majority", 4))
    assert same.difference == 0 and same.ci_low == same.ci_high == 0 and same.within_error
    # paired: the interval of a difference is narrower than adding the two intervals' half-widths
    a, b = rows[("Model-A", "best_of_n", 8)], rows[("Model-A", "majority", 8)]
    d8 = ev.paired(("Model-A", "best_of_n", 8), ("Model-A", "majority", 8))
    assert d8.ci_high - d8.ci_low < (a["ci_high"] - a["ci_low"]) + (b["ci_high"] - b["ci_low"])


def test_difficulty_bins_by_meaning_in_the_right_direction(store):
    ev = evaluate_runs(None, store=store, strategies=["majority", "pass_at_k"])
    opt = optimize(ev, unit="completion_tokens")
    labels = {r["bin"]: r["difficulty"] for r in opt.by_difficulty}
    assert set(labels) == {0, 1, 2} and [labels[b].split()[0] for b in (0, 1, 2)] == ["easy", "medium", "hard"]
    lo = {b: float(labels[b].split("pass rate ")[1].split("–")[0]) for b in labels}
    assert lo[0] > lo[1] > lo[2]  # easy has the highest pass rate
    one = {r["bin"]: r["one_sample_accuracy"] for r in opt.by_difficulty if r["budget"] == opt.by_difficulty[-1]["budget"]}
    assert one[0] > one[2]
    assert "per-bin" not in {r["strategy"] for r in opt.by_difficulty}  # no placeholder rows


def test_saturation_failures_once_per_model_and_extrapolation_flagged(store):
    ev = evaluate_runs(None, store=store, strategies=["majority", "esc"], ks=[1, 2, 4])  # too few points to fit
    opt = optimize(ev, unit="completion_tokens")
    assert len(opt.saturation_notes) == 2 and all("no saturation fit for" in n for n in opt.saturation_notes)
    ev = evaluate_runs(None, store=store, strategies=["majority"])
    for row in optimize(ev, unit="completion_tokens").saturation:
        if row["finding"].startswith("extrapolated"):
            assert not row["within_data"] and np.isnan(row["saturation_cost"]) and "not a finding" in row["finding"]


def test_best_of_n_without_rewards_is_skipped_with_one_line(store):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "All-NaN slice" on the way
        ev = evaluate_runs(["import-gsm8k-model-b"], strategies=["majority", "best_of_n"], store=store)
    assert {r["strategy"] for r in ev.rows()} == {"majority"}
    (note,) = [n for n in ev.notes if "best_of_n" in n]
    assert "no reward-model scores" in note and "reward-model step" in note and "\n" not in note


def test_counts_only_run_feeds_correctness_strategies_and_says_what_voting_needs(tmp_path):
    rows = [{"question_id": f"q{q}", "question_index": q, "sample_index": j, "verdict": "correct" if ok else "incorrect",
             "correct": ok, "answer": None} for q in range(3) for j, ok in enumerate([True, q > 0, False, q == 2])]
    run = _write_run(tmp_path / "runs", "counts-run", rows, 3)
    ev = evaluate_runs([run.run_id], store=tmp_path / "runs", strategies=["majority", "pass_at_k"])
    assert {r["strategy"] for r in ev.rows()} == {"pass_at_k"}
    assert any("majority skipped" in n and "no extracted answers" in n for n in ev.notes)
    pass1 = _rows(ev)[("m", "pass_at_k", 1)]["accuracy"]
    assert pass1 == pytest.approx(np.mean([1 / 4, 2 / 4, 3 / 4]))


def test_truncated_samples_keep_drop_or_wrong(tmp_path):
    # question 0: samples 0-1 correct but cut off (length), 2-3 wrong; question 1: all correct, stopped
    rows = []
    for j in range(4):
        rows.append({"question_id": "q0", "question_index": 0, "sample_index": j, "answer": "1" if j < 2 else "2",
                     "verdict": "correct" if j < 2 else "incorrect", "correct": j < 2,
                     "finish_reason": "length" if j < 2 else "stop", "completion_tokens": 10})
        rows.append({"question_id": "q1", "question_index": 1, "sample_index": j, "answer": "1", "verdict": "correct",
                     "correct": True, "finish_reason": "stop", "completion_tokens": 5})
    root = tmp_path / "runs"
    run = _write_run(root, "trunc-run", rows, 2)
    acc = {}
    for policy in ("keep", "drop", "wrong"):
        ev = evaluate_runs([run.run_id], store=root, strategies=["pass_at_k"], ks=[1], truncated=policy)
        acc[policy] = _rows(ev)[("m", "pass_at_k", 1)]["accuracy"]
        assert any(f"2 of 8 samples (25.0%) hit max_tokens (truncated: {policy})" in n for n in ev.notes)
    assert acc["keep"] == pytest.approx((0.5 + 1) / 2)
    assert acc["drop"] == pytest.approx((0.0 + 1) / 2)  # only the two wrong ones are left for q0
    assert acc["wrong"] == pytest.approx((0.0 + 1) / 2)
    with pytest.raises(ConfigError, match="keep, drop, wrong"):
        evaluate_runs([run.run_id], store=root, truncated="ignore")


def test_empty_runs_are_skipped_with_a_note(tmp_path, store):
    run = _write_run(store, "empty-run", [], 2, status="running")
    ev = evaluate_runs(None, store=store, strategies=["majority"])
    assert run.run_id not in {r.run_id for r in ev.runs}
    assert any("empty-run skipped: no samples (status running)" in n and "ttclab rm" in n for n in ev.notes)


def test_usd_without_or_with_a_missing_price_file_is_one_line(store):
    with pytest.raises(ConfigError) as exc:
        evaluate_runs(None, store=store, unit="usd")
    assert "--prices" in str(exc.value) and "ttc_games_gsm8k" in str(exc.value) and "local" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        evaluate_runs(None, store=store, unit="usd", prices="no-such-prices")
    assert "no-such-prices" in str(exc.value) and "pricing_reversal" in str(exc.value)
    with pytest.raises(TTCLabError, match="no price for model .Model-A.") as err:
        evaluate_runs(None, store=store, unit="usd", prices="local")
    message = str(err.value)  # says what to do: the price files there are, and how to give one's own
    assert "\n" not in message and "ttclab prices" in message and "your own YAML" in message
    assert "pricing_reversal_2026-02-28" in message and "smollm2-135m" in message


def test_imported_runs_without_prompt_tokens_budget_in_completion_tokens(store):
    ev = evaluate_runs(None, store=store, strategies=["majority"])
    unit, note = ev.default_unit()
    assert unit == "completion_tokens" and "no prompt-token counts" in note
    opt = optimize(ev)
    assert opt.unit == "completion_tokens" and opt.best and np.isfinite(opt.best[-1]["accuracy"])


def test_store_scan_and_questions_carry_run_id(store):
    ds = scan(store)
    total = sum(open_run(p).samples().num_rows for p in store.iterdir())
    assert ds.count_rows() == total
    questions = scan(store, "questions").to_table()
    assert questions.num_rows == 60 and None not in questions["run_id"].to_pylist()
    duckdb = pytest.importorskip("duckdb")
    glob = str(store / "*" / "samples" / "*.parquet")
    qglob = str(store / "*" / "questions.parquet")
    got = duckdb.sql(f"select s.model, count(*) n, avg(s.correct::int) acc from '{glob}' s join '{qglob}' q "
                     "on s.run_id = q.run_id and s.question_index = q.question_index group by 1 order by 1").fetchall()
    assert [g[:2] for g in got] == [("Model-A", 240), ("Model-B", 240)]
    pd = pytest.importorskip("pandas")
    frame = scan(store).to_table(columns=["run_id", "correct"]).to_pandas()
    assert isinstance(frame, pd.DataFrame) and len(frame) == total
    assert pa.types.is_string(questions.schema.field("run_id").type)
