"""Importers: strategic-ttc JSONL (the file's own verdicts by default), counts-only tables, compressed files."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import subprocess
import sys
from fractions import Fraction
from math import comb
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ttclab.errors import DataError
from ttclab.store.importers import import_counts, import_strategic_ttc
from ttclab.strategies.estimators import pass_at_k
from ttclab.strategies.load import arrays_from_samples
from ttclab.strategies.selection import pass_at_k_strategy


def _ttclab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ttclab", *args], capture_output=True, text=True, timeout=300)


def _record(qid: str, gold: str, preds: list[str], flags: list[bool]) -> dict:
    return {"qid": qid, "prompt": f"question {qid}", "answers": [f"so the answer is \\boxed{{{p}}}" for p in preds],
            "correct": flags, "explanations": [f"boxed='{p}'; graded by the study" for p in preds],
            "num_tokens": [10 + i for i in range(len(preds))], "rewards": [0.5] * len(preds),
            "ground_truths": [gold], "model_name": "toy-7b"}


def _mixed_file(path: Path) -> Path:
    """Numeric golds and multiple-choice golds (the case that made the importer abort)."""
    records = [
        _record("q0", "18", ["18", "18", "17"], [True, True, False]),
        _record("q1", "A", ["A", "B", "A"], [True, False, True]),  # not a number: the numeric verifier refuses it
        # the study graded "0.5" wrong against 1/2 (its own grader); re-verifying changes that
        _record("q2", "1/2", ["0.5", "1/3", "2/4"], [False, False, True]),
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_strategic_ttc_keeps_the_files_own_verdicts_by_default(tmp_path):
    run = import_strategic_ttc(_mixed_file(tmp_path / "mixed.jsonl"), store=tmp_path / "runs")
    t = run.samples().to_pydict()
    assert t["correct"] == [True, True, False, True, False, True, False, False, True]
    assert t["verdict"] == ["correct" if c else "incorrect" for c in t["correct"]]
    assert all(r.startswith("boxed='") and "graded by the study" in r for r in t["verify_reason"])
    assert t["answer"][:3] == ["18", "18", "17"] and t["answer"][3:6] == ["a", "b", "a"]
    assert t["answer"][6:] == ["0.5", "1/3", "0.5"]  # canonical: 2/4 votes with 0.5
    assert run.meta["status"] == "complete" and run.meta["source"]["verdicts"] == "file"


def test_strategic_ttc_reverifies_only_when_asked_and_never_stops_half_way(tmp_path):
    path = _mixed_file(tmp_path / "mixed.jsonl")
    proc = _ttclab("import", "strategic-ttc", str(path), "--verifier", "numeric", "--store", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    assert "q1" in proc.stdout and "could not be re-verified" in proc.stdout and "not a number" in proc.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    from ttclab.store import open_run

    run = open_run(run_dir)
    t = run.samples().to_pydict()
    assert len(t["correct"]) == 9  # every question imported
    assert t["correct"][:3] == [True, True, False]
    assert t["correct"][3:6] == [True, False, True]  # kept from the file, and said so
    assert all("not re-verified" in r for r in t["verify_reason"][3:6])
    assert t["correct"][6:] == [True, False, True]  # re-verified: 0.5 == 1/2
    assert run.meta["source"]["verdicts"] == "numeric" and run.meta["import"]["not_reverified"][0]["question_id"] == "q1"
    default = import_strategic_ttc(path, store=tmp_path / "runs")
    assert default.path != run.path  # a re-verified import is a different run than the file's verdicts


@pytest.mark.parametrize("suffix, opener", [(".xz", lzma.open), (".gz", gzip.open), (".bz2", bz2.open), (".zst", None)])
def test_compressed_strategic_ttc_files_are_read(tmp_path, suffix, opener):
    plain = _mixed_file(tmp_path / "plain.jsonl")
    packed = tmp_path / f"mixed.jsonl{suffix}"
    if opener is None:
        with pa.CompressedOutputStream(str(packed), "zstd") as out:
            out.write(plain.read_bytes())
    else:
        with opener(packed, "wb") as fh:
            fh.write(plain.read_bytes())
    proc = _ttclab("import", "strategic-ttc", str(packed), "--store", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    a = import_strategic_ttc(plain, store=tmp_path / "other")
    (b_dir,) = (tmp_path / "runs").iterdir()
    from ttclab.store import open_run

    b = open_run(b_dir)
    for col in ("question_id", "answer", "verdict", "correct", "completion_tokens", "reward"):
        assert a.samples()[col].to_pylist() == b.samples()[col].to_pylist(), col


def test_a_damaged_compressed_file_is_one_line(tmp_path):
    bad = tmp_path / "broken.jsonl.gz"
    packed = gzip.compress("".join(json.dumps({"qid": i, "x": str(i * 7919)}) + "\n" for i in range(2000)).encode())
    bad.write_bytes(packed[: len(packed) // 2])  # a download cut off half-way
    proc = _ttclab("import", "strategic-ttc", str(bad), "--store", str(tmp_path / "runs"))
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(bad) in lines[0] and "gzip" in lines[0]
    odd = tmp_path / "data.jsonl.7z"
    odd.write_bytes(b"7z\xbc\xaf\x27\x1c" + bytes(range(40)))
    proc = _ttclab("import", "strategic-ttc", str(odd), "--store", str(tmp_path / "runs"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and ".7z" in proc.stderr, proc.stderr


# -- counts ------------------------------------------------------------------------------------------
def _counts_rows():
    # a repeated-sampling study: 10,000 samples per problem, very few correct on the hard ones
    return [("p0", 10_000, 1, 0.9), ("p1", 10_000, 0, 0.95), ("p2", 10_000, 250, 0.5), ("p3", 10_000, 9_999, 0.1)]


def _exact_pass(c: int, n: int, k: int) -> float:
    return float(1 - Fraction(comb(n - c, k), comb(n, k)))


@pytest.mark.parametrize("fmt", ["csv", "parquet", "csv.gz"])
def test_counts_import_feeds_pass_at_k(tmp_path, fmt):
    rows = _counts_rows()
    table = pa.table({"problem": [r[0] for r in rows], "n": [r[1] for r in rows], "correct": [r[2] for r in rows],
                      "difficulty": [r[3] for r in rows]})
    path = tmp_path / f"counts.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        text = "problem,n,correct,difficulty\n" + "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in rows)
        path.write_bytes(gzip.compress(text.encode()) if fmt.endswith(".gz") else text.encode())
    (run,) = import_counts(path, model="sampler-1b", store=tmp_path / "runs")
    samples = run.samples()
    assert samples.num_rows == 40_000
    assert samples["answer"].null_count == 40_000 and samples["text"].null_count == 40_000
    assert set(samples["verdict"].to_pylist()) == {"correct", "incorrect"}
    arrays = arrays_from_samples(samples, run.questions())
    ks = np.array([1, 10, 100, 1000, 10_000])
    got = pass_at_k_strategy(arrays, ks).accuracy
    for i, (_, n, c, _) in enumerate(rows):
        for j, k in enumerate(ks):
            assert got[i, j] == pytest.approx(_exact_pass(c, n, int(k)), rel=1e-12, abs=1e-15)
    assert got[0, 0] == pytest.approx(1e-4, rel=1e-12)
    np.testing.assert_allclose(arrays.difficulty, [r[3] for r in rows])
    assert run.meta["source"]["format"] == "counts" and run.meta["data"]["answers"] is False
    np.testing.assert_array_equal(pass_at_k(np.array([1]), np.array([10_000]), np.array([1])), [[1e-4]])


def test_counts_with_a_model_column_give_one_run_per_model(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("model,problem,n,correct\na,p0,8,2\na,p1,8,0\nb,p0,4,4\nb,p1,4,1\n")
    proc = _ttclab("import", "counts", str(path), "--store", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    runs = {r.model: r for r in __import__("ttclab.store", fromlist=["list_runs"]).list_runs(tmp_path / "runs")}
    assert set(runs) == {"a", "b"}
    assert runs["a"].samples().num_rows == 16 and runs["b"].samples().num_rows == 8
    assert sum(runs["b"].samples()["correct"].to_pylist()) == 5
    again = _ttclab("import", "counts", str(path), "--store", str(tmp_path / "runs"))
    assert again.returncode == 0 and len(list((tmp_path / "runs").iterdir())) == 2  # idempotent
    # no answers and no tokens were imported: runs and show print '-' for them, never a vote of 0 or 0 tokens
    listed = _ttclab("runs", "--store", str(tmp_path / "runs"), "--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["model"]: r for r in json.loads(listed.stdout)}
    assert rows["b"]["acc"] == pytest.approx(5 / 8) and rows["b"]["maj@N"] is None
    assert rows["b"]["completion tokens"] is None
    shown = _ttclab("show", runs["b"].run_id, "--store", str(tmp_path / "runs"))
    assert shown.returncode == 0 and "majority@N -" in shown.stderr + shown.stdout and "nan" not in shown.stdout
    assert "None" not in shown.stdout  # a counts import has no gold


@pytest.mark.parametrize("text, words", [
    ("problem,n\np0,3\n", ["correct", "missing"]),
    ("problem,n,correct\np0,3,4\n", ["line 2", "correct", "4", "n"]),
    ("problem,n,correct\np0,-1,0\n", ["line 2", "n"]),
    ("problem,n,correct\np0,3,x\n", ["correct"]),
    ("problem,n,correct\np0,3,1\np0,5,2\n", ["p0", "twice"]),
    ("problem,n,correct\n", ["no rows"]),
])
def test_bad_counts_are_one_line_errors(tmp_path, text, words):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        import_counts(path, store=tmp_path / "runs")
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    for word in words:
        assert word in message, message
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
