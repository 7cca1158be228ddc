"""File tasks: presets on the real datasets in ../shared/data, GPQA layout, generic mapping, bad input."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ttclab.errors import ConfigError, DataError
from ttclab.tasks import FileTask, last_boxed, load_task

# ---------------------------------------------------------------- real datasets

def test_gsm8k(shared_data):
    task = load_task({"source": "file", "path": str(shared_data / "gsm8k/test.jsonl"), "preset": "gsm8k"})
    qs = task.questions()
    assert len(qs) == 1319
    assert qs[0].gold == "18" and qs[0].id == "0" and qs[0].question.startswith("Janet")
    assert task.default_verifier() == "numeric" and task.name == "gsm8k-test"
    assert len({q.id for q in qs}) == 1319
    raw = [json.loads(line) for line in (shared_data / "gsm8k/test.jsonl").read_text().splitlines()]
    with_commas = [i for i, r in enumerate(raw) if "," in r["answer"].rsplit("####", 1)[1]]
    for i in with_commas:  # "#### 1,000" → "1000"
        assert "," not in qs[i].gold and qs[i].gold == raw[i]["answer"].rsplit("####", 1)[1].strip().replace(",", "")
    assert all(q.gold.lstrip("-").replace(".", "").isdigit() for q in qs)
    assert "####" not in qs[0].metadata["solution"]


def test_math500(shared_data):
    qs = FileTask(shared_data / "math500/test.jsonl", preset="math500").questions()
    assert len(qs) == 500
    assert qs[0].id == "test/precalculus/807.json" and qs[0].gold == r"\left( 3, \frac{\pi}{2} \right)"
    assert qs[0].difficulty == 2.0 and qs[0].metadata["subject"] == "Precalculus"
    assert sorted({q.difficulty for q in qs}) == [1.0, 2.0, 3.0, 4.0, 5.0]
    # the answer field agrees with the last \boxed{} of the reference solution for every problem
    assert all(last_boxed(q.metadata["solution"]) == q.gold for q in qs)


def test_math_gold_is_last_boxed_and_agrees_with_math500(shared_data):
    task = FileTask(shared_data / "math/test.jsonl", preset="math")
    qs = task.questions()
    assert len(qs) == 5000 and task.default_verifier() == "math"
    assert [q.id for q in qs[:3]] == ["0", "1", "2"]
    levels = {}
    for q in qs:
        levels[q.difficulty] = levels.get(q.difficulty, 0) + 1
    assert levels == {1.0: 437, 2.0: 894, 3.0: 1131, 4.0: 1214, 5.0: 1324}  # counts from the dataset README
    by_problem = {q.question: q.gold for q in qs}
    m500 = FileTask(shared_data / "math500/test.jsonl", preset="math500").questions()
    assert all(by_problem[q.question] == q.gold for q in m500)  # MATH-500 ⊂ MATH, same gold


@pytest.mark.parametrize("folder, first_id, first_gold", [("aime24", "60", "204"), ("aime25", "2025-I-1", "70")])
def test_aime(shared_data, folder, first_id, first_gold):
    qs = FileTask(shared_data / folder / "test.jsonl", preset="aime").questions()
    assert len(qs) == 30 and qs[0].id == first_id and qs[0].gold == first_gold
    assert all(q.gold.isdigit() and 0 <= int(q.gold) <= 999 and (q.gold == "0" or not q.gold.startswith("0"))
               for q in qs)
    raw = [json.loads(line) for line in (shared_data / folder / "test.jsonl").read_text().splitlines()]
    assert [int(q.gold) for q in qs] == [int(r["answer"]) for r in raw]  # "025" → "25"


def test_amc(shared_data):
    qs = FileTask(shared_data / "amc23/test.jsonl", preset="amc").questions()
    assert len(qs) == 40 and qs[0].gold == "27" and "-1" in {q.gold for q in qs}
    assert all("." not in q.gold for q in qs)


def test_limit_and_determinism(shared_data):
    cfg = {"source": "file", "path": str(shared_data / "gsm8k/test.jsonl"), "preset": "gsm8k", "limit": 50}
    a, b = load_task(cfg).questions(), load_task(cfg).questions()
    assert len(a) == 50 and a == b
    assert a == load_task({**cfg, "limit": None}).questions()[:50]


def test_gpqa_real_file_if_present(shared_data):
    path = Path(os.environ.get("GPQA_CSV", shared_data / "gpqa_diamond" / "gpqa_diamond.csv"))
    if not path.is_file():
        pytest.skip("GPQA Diamond CSV is not present (it is not redistributed); set GPQA_CSV to test it")
    qs = FileTask(path, preset="gpqa").questions()
    assert len(qs) == 198 and {q.gold for q in qs} <= set("ABCD")


# ---------------------------------------------------------------- GPQA layout (a tiny invented CSV)

GPQA_COLUMNS = ["Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3",
                "Record ID", "High-level domain", "Subdomain"]


def _gpqa_csv(path: Path, n: int = 12) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(GPQA_COLUMNS)
        for i in range(n):
            w.writerow([f"Which number is {i}?\nThink, then answer.", f" right {i} ", f"wrong {i}a", f"wrong {i}b",
                        f"wrong, {i}c", f"rec{i:03d}", "Physics", "Toy"])
    return path


def test_gpqa_preset_shuffles_with_a_fixed_per_question_order(tmp_path):
    path = _gpqa_csv(tmp_path / "gpqa.csv")
    task = FileTask(path, preset="gpqa")
    qs = task.questions()
    assert len(qs) == 12 and task.default_verifier() == "choice"
    letters = [q.gold for q in qs]
    assert set(letters) <= set("ABCD") and len(set(letters)) > 1  # not always the same position
    for i, q in enumerate(qs):
        assert q.id == f"rec{i:03d}"
        choices = q.metadata["choices"]
        assert sorted(choices) == sorted([f"right {i}", f"wrong {i}a", f"wrong {i}b", f"wrong, {i}c"])
        assert choices["ABCD".index(q.gold)] == f"right {i}"
        assert q.question.startswith(f"Which number is {i}?") and f"\n\nA) {choices[0]}\nB) {choices[1]}" in q.question
        assert q.metadata["domain"] == "Physics"
    # same Record ID → same order, whatever the row order of the file
    rows = list(csv.reader(path.open(newline="")))
    (tmp_path / "reversed.csv").write_text("")
    with (tmp_path / "reversed.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([rows[0], *reversed(rows[1:])])
    again = {q.id: q for q in FileTask(tmp_path / "reversed.csv", preset="gpqa").questions()}
    assert all(again[q.id] == q for q in qs)


def test_gpqa_missing_column(tmp_path):
    path = tmp_path / "gpqa.csv"
    path.write_text("Question,Correct Answer,Incorrect Answer 1,Record ID\nq,a,b,r1\n")
    with pytest.raises(DataError, match=r"gpqa.csv:2: no field 'Incorrect Answer 2'"):
        FileTask(path, preset="gpqa").questions()


# ---------------------------------------------------------------- generic mapping, formats

RECORDS = [{"uid": f"u{i}", "q": f"What is {i}+{i}?", "a": 2 * i, "lvl": f"Level {i % 3 + 1}", "topic": "add",
            "extra": [i]} for i in range(5)]
FIELDS = {"id": "uid", "question": "q", "gold": "a", "difficulty": "lvl", "metadata": ["topic", "extra"]}


def _check_generic(qs):
    assert [q.id for q in qs] == [f"u{i}" for i in range(5)]
    assert [q.gold for q in qs] == [str(2 * i) for i in range(5)]
    assert [q.difficulty for q in qs] == [1.0, 2.0, 3.0, 1.0, 2.0]
    assert qs[1].question == "What is 1+1?" and qs[1].metadata["topic"] == "add"


def test_generic_jsonl_csv_parquet_json(tmp_path):
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS) + "\n")  # trailing blank line ok
    (tmp_path / "d.json").write_text(json.dumps(RECORDS))
    pq.write_table(pa.Table.from_pylist(RECORDS), tmp_path / "d.parquet")
    with (tmp_path / "d.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(RECORDS[0]))
        w.writeheader()
        w.writerows(RECORDS)
    for name in ("d.jsonl", "d.json", "d.parquet", "d.csv"):
        task = load_task({"path": str(tmp_path / name), "fields": FIELDS})
        qs = task.questions()
        _check_generic(qs)
        if name != "d.csv":  # CSV cells are text
            assert qs[1].metadata["extra"] == [1]
        assert json.dumps(task.describe())
    # defaults of the generic preset: question / answer, ids are record indices
    (tmp_path / "plain.jsonl").write_text('{"question": "2+2?", "answer": 4.0}\n{"question": "1/2?", "answer": 0.5}\n')
    qs = FileTask(tmp_path / "plain.jsonl").questions()
    assert [(q.id, q.gold) for q in qs] == [("0", "4"), ("1", "0.5")]


def test_preset_fields_can_be_overridden(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"prompt": "x?", "answer": "#### 1,234", "key": "k1"}\n')
    q = load_task({"path": str(tmp_path / "t.jsonl"), "preset": "gsm8k",
                   "fields": {"question": "prompt", "id": "key"}}).questions()[0]
    assert (q.id, q.question, q.gold) == ("k1", "x?", "1234")


def test_last_boxed():
    assert last_boxed(r"so \boxed{1} and then \boxed{\frac{1}{2}}.") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{\{1, 2\}}") == r"\{1, 2\}"
    assert last_boxed(r"$\boxed 5$") == "5"
    assert last_boxed(r"\fbox{x^{2}}") == "x^{2}"
    assert last_boxed(r"\boxed{7} then \boxed{unclosed") == "7"
    assert last_boxed("no box") is None


# ---------------------------------------------------------------- bad input: one line, file:line and the fix

def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as exc:
        load_task({"path": str(tmp_path / "x.jsonl"), "preset": "gsm8k"}).questions()
    assert _one_line(exc) == f"{tmp_path / 'x.jsonl'}: no such file; check task.path"


def test_missing_relative_file_names_the_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as exc:
        load_task({"path": "data/x.jsonl", "preset": "gsm8k"}).questions()
    assert _one_line(exc) == f"data/x.jsonl: no such file (relative to the current folder {tmp_path}); check task.path"


def test_malformed_jsonl_line(tmp_path):
    good = '{"question": "1+1?", "answer": "#### 2"}\n'
    lines = [good] * 16 + ['{"question": "x" "answer": 1}\n']
    (tmp_path / "x.jsonl").write_text("".join(lines))
    with pytest.raises(DataError) as exc:
        FileTask(tmp_path / "x.jsonl", preset="gsm8k").questions()
    assert _one_line(exc) == f"{tmp_path / 'x.jsonl'}:17: invalid JSON (Expecting ',' delimiter); fix or remove the line"


def test_missing_field(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"question": "a", "answer": "1"}\n\n{"question": "b", "answer": "2"}\n'
                                      '{"q": "c", "answer": "3"}\n')
    with pytest.raises(DataError) as exc:
        FileTask(tmp_path / "x.jsonl").questions()
    assert _one_line(exc) == f"{tmp_path / 'x.jsonl'}:4: no field 'question'; set task.fields.question or use a preset"
    with pytest.raises(DataError, match=r"x.jsonl:1: no field 'problem' or 'question'; set task.fields.question"):
        (tmp_path / "x.jsonl").write_text('{"text": "a", "answer": "1"}\n')
        FileTask(tmp_path / "x.jsonl", preset="aime").questions()


def test_other_bad_records(tmp_path):
    p = tmp_path / "x.jsonl"
    cases = [
        ('{"question": "a", "answer": "no hashes"}', "gsm8k", r"x.jsonl:1: field 'answer' has no '#### <answer>' line"),
        ('{"problem": "a", "solution": "no box"}', "math", r"x.jsonl:1: field 'solution' has no \\boxed"),
        ('{"question": "a", "answer": ""}', "generic", r"x.jsonl:1: field 'answer' is empty"),
        ('[1, 2]', "generic", r"x.jsonl:1: expected a JSON object, got list"),
        ('{"question": "a", "answer": 1, "id": 7}\n{"question": "b", "answer": 2, "id": 7}', "aime",
         r"x.jsonl:2: duplicate id '7' \(also at .*x.jsonl:1\)"),
    ]
    for text, preset, pattern in cases:
        p.write_text(text + "\n")
        with pytest.raises(DataError, match=pattern):
            FileTask(p, preset=preset).questions()
    (tmp_path / "bad.csv").write_text('question,answer\n"a",1\n"b",2,extra\n')
    with pytest.raises(DataError, match=r"bad.csv:3: 3 values but 2 columns"):
        FileTask(tmp_path / "bad.csv").questions()
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"bad.parquet: not a readable Parquet file"):
        FileTask(tmp_path / "bad.parquet").questions()
    pq.write_table(pa.Table.from_pylist([{"question": "a", "answer": "1"}, {"question": "b"}]), tmp_path / "p.parquet")
    with pytest.raises(DataError, match=r"p.parquet row 2: field 'answer' is empty"):
        FileTask(tmp_path / "p.parquet").questions()
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match=r"x.txt: unknown file type '.txt'; use .jsonl"):
        FileTask(tmp_path / "x.txt").questions()
    (tmp_path / "latin1.jsonl").write_bytes('{"question": "caf\xe9", "answer": "1"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.jsonl:1: not UTF-8 text"):
        FileTask(tmp_path / "latin1.jsonl").questions()


def test_empty_dataset(tmp_path):
    for name, text in (("e.jsonl", "\n\n"), ("e.csv", "question,answer\n")):
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError) as exc:
            FileTask(tmp_path / name).questions()
        assert _one_line(exc).startswith(f"{tmp_path / name}: no questions")


def test_unknown_preset_names_close_matches(tmp_path):
    with pytest.raises(ConfigError, match=r"task.preset: unknown preset 'gsm8'; did you mean gsm8k\?"):
        FileTask(tmp_path / "x.jsonl", preset="gsm8")
