"""What `ttclab optimize` prints, read as a new user reads it: differences of 0 print as 0.000, every
alternative is named like the choice (with @k, and with its model when the choice is made across
models), a difficulty that affords nothing at a budget is explained instead of a row of dashes, and the
held-out table says where its numbers come from."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ttclab.store.schema import SAMPLES_SCHEMA
from ttclab.store.writer import META_FILE, SampleWriter, atomic_write_json, write_questions

N_Q, N = 12, 4


def _correct(model: str, q: int, j: int) -> bool:
    """Mostly right on q % 3 != 0 (tiny-a) or even q (tiny-b); one sample in three says the opposite."""
    usual = q % 3 != 0 if model == "tiny-a" else q % 2 == 0
    return usual if (7 * q + j) % 3 else not usual


def _run(root: Path, model: str, completion_tokens: int) -> str:
    """All samples of a question take the same time (one batch), so first-finish is one random sample:
    it ties majority@1 exactly, up to floating-point noise. Some questions have longer prompts, so the
    cheapest point of the difficulty they fall in costs more than the cheapest over all questions."""
    run_id = f"arith-{model}"
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    atomic_write_json(run_dir / META_FILE, {"run_id": run_id, "status": "complete", "samples": N,
                                            "model": {"name": model, "label": model}, "task": {"name": "arith"}})
    write_questions(run_dir, [{"question_index": q, "question_id": f"q{q}", "question": f"What is {q} + {q}?",
                               "prompt": "", "gold": str(2 * q), "difficulty": None, "metadata": "{}"}
                              for q in range(N_Q)])
    base = {name: None for name in SAMPLES_SCHEMA.names}
    now = datetime.now(UTC)
    rows = []
    for q in range(N_Q):
        for j in range(N):
            ok = _correct(model, q, j)
            answer = str(2 * q) if ok else str(2 * q + 1)
            rows.append({**base, "run_id": run_id, "model": model, "question_id": f"q{q}", "question_index": q,
                         "sample_index": j, "created_at": now, "prompt_tokens": 60 if q % 6 in (2, 4) else 40,
                         "completion_tokens": completion_tokens, "latency_s": 0.5,
                         "text": f"{q}+{q} = {answer}", "finish_reason": "stop", "answer": answer,
                         "verdict": "correct" if ok else "incorrect", "correct": ok,
                         "verify_reason": "numeric match" if ok else "numeric mismatch"})
    writer = SampleWriter(run_dir)
    writer.add(rows)
    writer.close()
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    return root, _run(root, "tiny-a", 20), _run(root, "tiny-b", 30)


def _optimize(root: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "ttclab", "optimize", *args, "--store", str(root)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _table(text: str, title: str) -> tuple[list[dict[str, str]], list[str]]:
    """The rows (header -> cell) of the text table titled ``title...`` and the notes under it."""
    block = next(b for b in text.split("\n\n") if b.startswith(title))
    lines = block.splitlines()
    spans = [m.span() for m in re.finditer(r"-+", lines[2])]
    cut = lambda line: [line[a:b + 2].strip() for a, b in spans]  # noqa: E731 (right-aligned cells may start early)
    headers = cut(lines[1])
    note = re.compile(r"  \S")  # notes are indented by two; a row starts with a cell or a wide right-aligned one
    rows = [dict(zip(headers, cut(line))) for line in lines[3:] if not note.match(line)]
    return rows, [line.strip() for line in lines[3:] if note.match(line)]


def _names(cell: str) -> list[str]:
    return re.sub(r" \(\+\d+ more\)$", "", cell).split(" ≈ ")


def test_across_models_every_alternative_names_its_model_and_k(store):
    root, _, _ = store
    text = _optimize(root, "--difficulty", "heldout")
    best, _ = _table(text, "compute-optimal choice per budget")
    per_bin, notes = _table(text, "per difficulty")
    for rows in (best, per_bin):
        assert rows and "model" not in rows[0]  # the choice names its model: no column repeating it
        for r in rows:
            names = _names(r["choice"])
            assert all(re.fullmatch(r"tiny-[ab] [a-z_]+@\d+", n) for n in names), r["choice"]
    assert len(_names(best[0]["choice"])) > 1  # the strategies tie: alternatives are listed
    assert re.fullmatch(r"tiny-[ab] [a-z_]+@\d+", best[0]["runner-up"])
    # the easy questions' prompts are longer: at the lowest budget only they afford nothing, said once
    assert all("—" not in r["choice"] and r["accuracy"] != "-" for r in per_bin)
    assert {r["difficulty"].split(" (")[0] for r in per_bin} == {"easy", "medium", "hard"}
    lowest = [n for n in notes if n.startswith("budget ")]
    assert len(lowest) == 1 and re.search(r"nothing fits in easy \(cheapest point 7\d\)", lowest[0]), notes
    assert "medium" not in lowest[0] and "hard" not in lowest[0]
    assert any(n.startswith("held-out: each choice is made on one half") for n in notes), notes
    policy, policy_notes = _table(text, "applying each difficulty's choice")
    assert all(r["per-difficulty policy"] != "-" for r in policy) and policy_notes
    assert all(re.fullmatch(r"tiny-[ab] [a-z_]+@\d+", r["one choice for all"]) for r in policy)


def test_a_difference_of_zero_prints_as_zero(store):
    root, _, _ = store
    # one budget, one row: the runner-up (shortest-of-2, one random sample here) ties majority@1, whose
    # paired difference came out as -1.85e-16 and printed so
    best, _ = _table(_optimize(root, "--budgets", "200"), "compute-optimal choice per budget")
    assert len(best) == 1 and best[0]["runner-up"].endswith("shortest_of_k@2")
    assert best[0]["choice − runner-up"] == "0.000" and best[0]["diff CI"] == "[+0.000, +0.000]"
    assert best[0]["gain vs 1 sample"] == "0.000"


def test_one_model_names_strategy_at_k_beside_the_model_column(store):
    root, run_a, _ = store
    text = _optimize(root, run_a)
    best, _ = _table(text, "compute-optimal choice per budget")
    assert best and all(r["model"] == "tiny-a" for r in best)
    names = _names(best[0]["choice"])
    assert len(names) > 1 and all(re.fullmatch(r"[a-z_]+@\d+", n) for n in names), best[0]["choice"]
    per_bin, notes = _table(text, "per difficulty")
    assert not any(n.startswith("held-out") for n in notes)  # oracle bins: same samples, said in the title


def _edge_run(root: Path, run_id: str, n_q: int, correct, n: int = N) -> Path:
    """A run of ``n_q`` questions x ``n`` samples; ``correct(q, j)`` says which samples are right."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    atomic_write_json(run_dir / META_FILE, {"run_id": run_id, "status": "complete", "samples": n,
                                            "model": {"name": "m", "label": "m"}, "task": {"name": "arith"}})
    write_questions(run_dir, [{"question_index": q, "question_id": f"q{q}", "question": "?", "prompt": "",
                               "gold": "1", "difficulty": None, "metadata": "{}"} for q in range(n_q)])
    base = {name: None for name in SAMPLES_SCHEMA.names}
    rows = [{**base, "run_id": run_id, "model": "m", "question_id": f"q{q}", "question_index": q, "sample_index": j,
             "created_at": datetime.now(UTC), "prompt_tokens": 40, "completion_tokens": 10 + j, "latency_s": 0.5,
             "text": "x", "finish_reason": "stop", "answer": "1" if correct(q, j) else str(2 + j),
             "verdict": "correct" if correct(q, j) else "incorrect", "correct": correct(q, j), "verify_reason": "r"}
            for q in range(n_q) for j in range(n)]
    writer = SampleWriter(run_dir)
    writer.add(rows)
    writer.close()
    return run_dir


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ttclab", *args], capture_output=True, text=True, timeout=300)


def test_every_answer_wrong_says_there_is_nothing_to_choose(tmp_path):
    _edge_run(tmp_path, "wrong", 6, lambda q, j: False)
    text = _optimize(tmp_path)
    _, notes = _table(text, "compute-optimal choice per budget")
    assert any("every strategy has accuracy 0.000 at every budget: there is nothing to choose" in n for n in notes), text
    # one difficulty bin: no policy table of a dozen rows equal to the one choice (before: 12 identical rows)
    assert "applying each difficulty's choice" not in text and "per difficulty: 1 bin by" in text
    _, bin_notes = _table(text, "per difficulty")
    assert any(n.startswith("one difficulty bin") for n in bin_notes), bin_notes


def test_a_budget_below_everything_says_why_its_row_is_empty(tmp_path):
    _edge_run(tmp_path, "r", 12, lambda q, j: (q + j) % 3 == 0)
    best, notes = _table(_optimize(tmp_path, "--budgets", "1,500"), "compute-optimal choice per budget")
    assert best[0]["choice"] == "—"
    assert any(re.fullmatch(r"budget 1 total_tokens: no choice \('—'\): budget below the cheapest point \(5\d\.?\d* "
                            r"total_tokens\)", n) for n in notes), notes
    for bad in ("0", "-5,10", "nan"):
        out = _cli("optimize", f"--budgets={bad}", "--store", str(tmp_path))
        assert out.returncode == 2 and "every budget must be a positive number" in out.stderr, out.stderr


def test_the_policy_table_collapses_budgets_that_read_the_same(tmp_path):
    _edge_run(tmp_path, "r", 12, lambda q, j: (q % 3 == 0) or (q % 3 == 1 and j % 2 == 0))
    text = _optimize(tmp_path, "--budgets", ",".join(str(b) for b in range(51, 60)))
    policy, _ = _table(text, "applying each difficulty's choice")
    keys = [tuple(v for k, v in r.items() if k not in ("budget (total_tokens)", "to")) for r in policy]
    assert all(a != b for a, b in zip(keys, keys[1:])), policy  # no two neighbours read the same
    assert len(policy) < 9


def test_one_question_is_not_read_as_a_precise_interval(tmp_path):
    _edge_run(tmp_path, "one", 1, lambda q, j: j == 0)  # accuracy 0.25 on one question: the bootstrap is a point
    ev = _cli("evaluate", "--store", str(tmp_path), "-o", str(tmp_path / "out"))
    assert ev.returncode == 0, ev.stderr
    assert "note: 1 question: intervals are over questions, and one question has no spread to resample" in ev.stdout
    assert "note: 1 question:" in _optimize(tmp_path)
    _edge_run(tmp_path / "few", "few", 4, lambda q, j: j == q)
    assert "note: only 4 questions: intervals over so few questions are rough" in _optimize(tmp_path / "few")


def test_a_run_of_only_errors_says_so(tmp_path):
    run_dir = tmp_path / "errs"
    run_dir.mkdir()
    atomic_write_json(run_dir / META_FILE, {"run_id": "errs", "status": "incomplete", "samples": 2,
                                            "model": {"name": "m", "label": "m"}, "task": {"name": "arith"}})
    write_questions(run_dir, [{"question_index": 0, "question_id": "q0", "question": "?", "prompt": "", "gold": "1",
                               "difficulty": None, "metadata": "{}"}])
    base = {name: None for name in SAMPLES_SCHEMA.names}
    writer = SampleWriter(run_dir)
    writer.add([{**base, "run_id": "errs", "model": "m", "question_id": "q0", "question_index": 0, "sample_index": j,
                 "created_at": datetime.now(UTC), "verdict": "error", "correct": False, "error": "HTTP 503"}
                for j in range(2)])
    writer.close()
    out = _cli("optimize", "--store", str(tmp_path))
    assert out.returncode == 2 and "skipped: all 2 samples are errors" in out.stderr, out.stderr


def test_heldout_with_one_sample_per_question_names_the_way_out(tmp_path):
    _edge_run(tmp_path, "n1", 8, lambda q, j: q % 2 == 0, n=1)
    out = _cli("optimize", "--difficulty", "heldout", "--store", str(tmp_path))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "a held-out split needs >= 2 per question: sample more (--samples) or use --difficulty oracle" in out.stderr
