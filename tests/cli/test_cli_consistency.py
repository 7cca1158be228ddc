"""Issue 12 / 11: one CLI. Global options before the verb, --store on every verb, options before and
after positionals, --out is a folder, --format table|csv|json, and the verbs that keep a study honest
(rm, strategies, prices, show --full, sample overrides and warnings)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ttclab.cli import main
from ttclab.store import list_runs
from ttclab.store.importers import import_strategic_ttc

REPO = Path(__file__).resolve().parents[2]


def _strategic(path, model, seed, n_q=10, n=4):
    rng = np.random.default_rng(seed)
    with path.open("w") as fh:
        for q in range(n_q):
            gold = str(q)
            ok = [bool(rng.random() < 0.6) for _ in range(n)]
            preds = [gold if o else str(q + 1) for o in ok]
            fh.write(json.dumps({"qid": f"q{q}", "prompt": f"question {q}", "answers": [f"\\boxed{{{p}}}" for p in preds],
                                 "correct": ok, "explanations": [f"boxed='{p}'" for p in preds],
                                 "num_tokens": [int(rng.integers(20, 90)) for _ in range(n)], "model_name": model}) + "\n")
    return path


@pytest.fixture()
def store(tmp_path):
    root = tmp_path / "runs"
    run = import_strategic_ttc(_strategic(tmp_path / "a.jsonl", "Model-A", 0), task="gsm8k", store=root)
    return root, run


def _cli(capsys, *argv):
    code = main(list(map(str, argv)))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_global_options_before_the_verb_and_every_verb_takes_store(capsys, store, tmp_path):
    root, run = store
    for argv in (["--store", root, "runs"], ["runs", "--store", root], ["--format", "json", "--store", root, "runs"]):
        code, out, err = _cli(capsys, *argv)
        assert code == 0 and run.run_id in out, (argv, err)
    code, out, _ = _cli(capsys, "--format", "json", "--store", root, "runs")
    assert json.loads(out)[0]["run"] == run.run_id
    # the verb's own option wins over the global one
    code, out, _ = _cli(capsys, "--store", tmp_path / "elsewhere", "runs", "--store", root)
    assert run.run_id in out
    for verb in ("sample", "runs", "show", "rm", "import", "evaluate", "optimize", "report", "market"):
        text = subprocess.run([sys.executable, "-m", "ttclab", verb, *(["run"] if verb == "market" else []), "--help"],
                              capture_output=True, text=True, timeout=60).stdout
        assert "--store" in text, verb


@pytest.mark.parametrize("before", [True, False])
def test_analysis_verbs_accept_options_before_and_after_positionals(capsys, store, tmp_path, before):
    root, run = store
    opts = ["--store", root, "--unit", "completion_tokens", "--strategies", "majority,pass_at_k", "--ks", "1,2,4"]
    for verb, extra in (("evaluate", ["--out", tmp_path / f"e{before}"]), ("optimize", ["--out", tmp_path / f"o{before}"]),
                        ("report", ["-o" if before else "--out", tmp_path / f"r{before}"])):  # -o is --out
        argv = [verb, *opts, *extra, run.run_id] if before else [verb, run.run_id, *opts, *extra]
        code, out, err = _cli(capsys, *argv)
        assert code == 0, (argv, err)
    assert (tmp_path / f"e{before}" / "evaluation.csv").is_file()  # --out is a folder everywhere
    assert (tmp_path / f"o{before}" / "compute_optimal.csv").is_file()
    assert (tmp_path / f"r{before}" / "report.html").is_file()
    argv = ["show", "--store", root, "--question", "3", "--full", run.run_id] if before else \
        ["show", run.run_id, "--question", "3", "--full", "--store", root]
    code, out, _ = _cli(capsys, *argv)
    assert code == 0 and "--- sample 0:" in out and "reason:" in out and "finish" in out and "\\boxed{" in out


@pytest.mark.parametrize("verb", [["runs"], ["strategies"], ["prices"], ["prices", "local"], ["evaluate"], ["optimize"],
                                  ["show", "RUN"]])
def test_every_table_verb_prints_csv_and_json(capsys, store, verb):
    root, run = store
    argv = [run.run_id if v == "RUN" else v for v in verb] + ["--store", root]
    if verb[0] in ("evaluate", "optimize"):
        argv += ["--unit", "completion_tokens", "--strategies", "majority"]
    code, out, err = _cli(capsys, *argv, "--format", "csv")
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out.split("\n\n")[0])))
    assert len(rows) >= 2 and len({len(r) for r in rows}) == 1  # a header and rows of its width
    code, out, err = _cli(capsys, *argv, "--format", "json")
    assert code == 0 and json.loads(out), err


def test_evaluate_marks_missing_prompt_tokens_instead_of_na(capsys, store):
    root, run = store
    code, out, _ = _cli(capsys, "evaluate", run.run_id, "--store", root, "--strategies", "majority")
    assert code == 0 and "n/a" not in out and "nan" not in out.lower()
    line = next(ln for ln in out.splitlines() if ln.startswith("Model-A") and " majority " in ln and " 2 " in ln)
    assert float(line.split()[6]) > 0 and line.split()[7] == "-"  # completion tokens shown, total marked missing
    assert "no prompt-token counts" in out and "truncated samples: keep" in out


def test_evaluate_names_the_budget_axis_of_an_explicit_unit(capsys, store):
    root, run = store
    for unit, axis in (("tokens", "total_tokens per question (--unit tokens is the older name of total_tokens)"),
                       ("completion_tokens", "completion_tokens per question")):
        code, out, err = _cli(capsys, "evaluate", run.run_id, "--store", root, "--strategies", "majority", "--unit", unit)
        assert code == 0, err
        assert f"note: budget axis: {axis}" in out.splitlines(), out


def test_evaluate_notes_budgets_above_the_stored_samples(capsys, store):
    root, run = store  # N = 4 samples per question
    code, out, err = _cli(capsys, "evaluate", run.run_id, "--store", root, "--strategies", "majority", "--ks", "2,6,100")
    assert code == 0, err
    notes = [ln for ln in out.splitlines() if "> N=" in ln]
    assert notes == [f"note: k=6,100 > N=4 samples per question ({run.run_id}): budgets above N cannot be evaluated "
                     "from stored samples ('-' rows)"], out
    code, out, _ = _cli(capsys, "evaluate", run.run_id, "--store", root, "--strategies", "majority", "--ks", "2,4")
    assert code == 0 and "> N=" not in out


def test_usd_without_prices_is_one_line_exit_2(store):
    root, run = store
    for extra in ([], ["--prices", "nope-prices"]):
        res = subprocess.run([sys.executable, "-m", "ttclab", "evaluate", "--store", str(root), "--unit", "usd", *extra],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
        assert "local" in res.stderr and "ttc_games_gsm8k" in res.stderr


def test_best_of_n_without_rewards_one_line_no_warning(store):
    root, run = store
    res = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "ttclab", "evaluate", "--store", str(root),
                          "--strategies", "majority,best_of_n"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "RuntimeWarning" not in res.stderr, res.stderr
    notes = [ln for ln in res.stdout.splitlines() if "best_of_n skipped" in ln]
    assert len(notes) == 1 and "reward-model step" in notes[0]
    assert " best_of_n " not in res.stdout.split("note:")[0]


def test_strategies_and_prices_list_what_exists(capsys):
    code, out, _ = _cli(capsys, "strategies")
    assert code == 0
    for name, est in (("majority", "exact"), ("esc", "resampled"), ("best_of_n", "exact")):
        assert any(ln.startswith(name + " ") and est in ln for ln in out.splitlines())
    assert "rewards" in next(ln for ln in out.splitlines() if ln.startswith("best_of_n "))
    code, out, _ = _cli(capsys, "prices")
    assert code == 0 and "local" in out and "ttc_games_gsm8k" in out and "smollm2-135m" in out
    code, out, _ = _cli(capsys, "prices", "local")
    assert code == 0 and "gemma3-270m" in out


def test_rm_asks_unless_yes(store):
    root, run = store
    res = subprocess.run([sys.executable, "-m", "ttclab", "rm", run.run_id, "--store", str(root)], capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 2 and "--yes" in res.stderr and run.path.is_dir()
    assert res.stderr == ("ttclab: error: not deleting without confirmation (stdin is not a terminal); pass --yes "
                          f"to delete {run.run_id}\n"), res.stderr
    res = subprocess.run([sys.executable, "-m", "ttclab", "--store", str(root), "rm", "--yes", run.run_id],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and not run.path.exists(), res.stderr
    res = subprocess.run([sys.executable, "-m", "ttclab", "rm", "--yes", "no-such-run", "--store", str(root)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stderr.count("\n") == 1


def test_market_sweep_is_a_real_subcommand(capsys, tmp_path):
    cfg = REPO / "configs" / "market_gsm8k_majority.yaml"
    small = tmp_path / "m.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["sweep"] = {"betas": {"min": 100, "max": 1000, "points": 3}}  # providers: the shipped ttc_games_gsm8k
    small.write_text(yaml.safe_dump(data))
    for i, argv in enumerate((["market", "sweep", "--no-figures", "--out", tmp_path / "s0", small],
                              ["market", "sweep", small, "--no-figures", "--out", tmp_path / "s1"])):
        code, out, err = _cli(capsys, *argv)
        assert code == 0, err
        assert (tmp_path / f"s{i}" / "sweep.csv").is_file()
    code, out, _ = _cli(capsys, "market", small)  # `market CONFIG` is `market run CONFIG`
    assert code == 0 and "reverse second-price auction" in out and "symbols:" in out
    code, out, _ = _cli(capsys, "market", "run", "--json", small)
    assert json.loads(out)["auction"]["winner"] == "Qwen2.5-7B"
    code, out, _ = _cli(capsys, "market", small, "--out", tmp_path / "mo")
    assert code == 0 and (tmp_path / "mo" / "market.html").is_file() and (tmp_path / "mo" / "market.json").is_file()


def _sample_config(tmp_path, **changes):
    data = {"name": "my-study", "model": {"backend": "llamacpp", "name": "smollm2-135m", "options": {"n_ctx": 512}},
            "task": {"source": "gym", "name": "syllogism", "size": 3, "seed": 1}, "samples": 3,
            "sampling": {"temperature": 0.7, "max_tokens": 32, "seed": 0}, **changes}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("before", [True, False])
def test_sample_failing_at_start_leaves_no_run(tmp_path, before):
    cfg = _sample_config(tmp_path, model={"backend": "llamacpp", "name": "no-such-model"})
    opts = ["--store", str(tmp_path / "runs"), "--samples", "2", "--no-progress"]
    argv = ["sample", *opts, str(cfg)] if before else ["sample", str(cfg), *opts]
    res = subprocess.run([sys.executable, "-m", "ttclab", *argv], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "no-such-model" in res.stderr and res.stderr.count("\n") == 1
    assert not list_runs(tmp_path / "runs")


def test_prices_options_before_and_after_the_name(capsys):
    for argv in (["prices", "--format", "csv", "local"], ["prices", "local", "--format", "csv"]):
        code, out, _ = _cli(capsys, *argv)
        assert code == 0 and out.splitlines()[0] == "model,input,output,cached input"


@pytest.mark.slow
def test_sample_overrides_name_truncation_warning_and_resume(tmp_path):
    cfg = _sample_config(tmp_path)
    store = tmp_path / "runs"
    args = [sys.executable, "-m", "ttclab", "sample", str(cfg), "--store", str(store), "--limit", "2", "--samples", "2",
            "--max-tokens", "3", "--temperature", "0.9", "--seed", "7"]
    res = subprocess.run(args, capture_output=True, text=True, timeout=600)  # stderr is a pipe: no progress bar
    assert res.returncode == 0, res.stderr
    (run,) = list_runs(store)
    assert run.run_id.startswith("my-study-smollm2-135m-")  # the config's name, not the task's
    assert run.meta["samples"] == 2 and run.meta["sampling"]["max_tokens"] == 3 and run.meta["n_questions"] == 2
    assert run.meta["sampling"]["seed"] == 7 and run.meta["sampling"]["temperature"] == 0.9
    assert "warning:" in res.stderr and "max_tokens=3" in res.stderr and "may be too small" in res.stderr
    assert "it/s" not in res.stderr and "%|" not in res.stderr  # no progress bar printed into a pipe
    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    line = next(ln for ln in again.stdout.splitlines() if ln.startswith("smollm2"))
    assert " 0.000 " not in line and line.split()[-2] == "0"  # nothing new: no fake 0 tok/s
    runs = subprocess.run([sys.executable, "-m", "ttclab", "runs", "--store", str(store), "--format", "json"],
                          capture_output=True, text=True, timeout=60)
    (row,) = json.loads(runs.stdout)
    assert row["truncated %"] > 0 and row["status"] == "complete"
    # seconds per sample (not completion tok/s, which reads as a broken engine when the prompt dominates)
    latency = run.samples(["latency_s"])["latency_s"].to_pylist()
    assert row["s per sample"] == pytest.approx(sum(latency) / len(latency)) and row["s per sample"] > 0
    assert "completion tok/s" in res.stdout


def test_show_question_of_a_pipeline_run_has_no_literal_none(tmp_path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(yaml.safe_dump({
        "name": "p", "model": "smollm2-135m", "task": {"source": "gym", "name": "syllogism", "size": 1, "seed": 0},
        "sampling": {"temperature": 0.7, "max_tokens": 4}, "steps": [{"id": "gen", "op": "generate", "n": 1}]}))
    store = tmp_path / "runs"
    res = subprocess.run([sys.executable, "-m", "ttclab", "run", str(pipeline), "--store", str(store), "--no-progress"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    (run,) = list_runs(store)

    def show(*extra):
        res = subprocess.run([sys.executable, "-m", "ttclab", "show", run.run_id, "--store", str(store),
                              "--question", "0", *extra], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0 and "None" not in res.stdout, res.stdout
        return res.stdout.splitlines()

    assert "    reason: -" in show("--full")  # the sample's verifier gave no reason
    lines = show()
    head = next(ln for ln in lines if ln.startswith("sample "))
    row = lines[lines.index(head) + 2]
    assert row[head.index("reason"):].split()[0] == "-", lines
