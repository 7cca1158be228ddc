"""``import ttclab`` is the library API: the verbs, lazily imported, typed (py.typed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ttclab


def test_import_is_light():
    code = ("import sys, ttclab; heavy = [m for m in ('numpy', 'pyarrow', 'pydantic', 'ttclab.analysis', "
            "'ttclab.experiment', 'importlib.metadata') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_public_name_resolves():
    assert set(ttclab.__all__) >= {"sample", "evaluate", "optimize", "report", "market", "open_run", "run_pipeline"}
    for name in ttclab.__all__:
        assert getattr(ttclab, name) is not None
    assert set(ttclab.__all__) <= set(dir(ttclab))
    from ttclab.analysis.evaluate import evaluate_runs
    from ttclab.experiment import sample
    from ttclab.store.reader import open_run

    assert ttclab.evaluate is evaluate_runs and ttclab.sample is sample and ttclab.open_run is open_run
    assert isinstance(ttclab.__version__, str) and ttclab.__version__
    for verb in ("optimize", "report", "market"):  # subpackages of the same name, callable as the verb
        assert callable(getattr(ttclab, verb)), verb


def test_the_verbs_end_to_end(tmp_path: Path):
    """import -> open_run -> evaluate -> optimize -> report, through the top-level names only."""
    lines = []
    for q in range(6):
        answers = [f"\\boxed{{{q + (j % 3 == 0)}}}" for j in range(6)]
        lines.append(json.dumps({"qid": f"q{q}", "prompt": f"question {q}", "answers": answers,
                                 "correct": [j % 3 != 0 for j in range(6)], "num_tokens": [40 + j for j in range(6)],
                                 "ground_truths": [str(q)], "model_name": "m"}))
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    from ttclab.store.importers import import_strategic_ttc

    run = import_strategic_ttc(tmp_path / "m.jsonl", task="toy", store=tmp_path / "runs")
    assert ttclab.open_run(run.run_id, tmp_path / "runs").run_id == run.run_id
    ev = ttclab.evaluate([run.run_id], strategies=["majority"], ks=[1, 3, 5], store=tmp_path / "runs")
    opt = ttclab.optimize(ev, unit="completion_tokens")
    from ttclab.analysis.optimize import Optimization

    assert isinstance(opt, Optimization)
    page = ttclab.report(ev, tmp_path / "report", opt=opt, unit="completion_tokens")
    assert Path(page).is_file() and "majority" in Path(page).read_text()


def test_py_typed_is_shipped():
    pkg = Path(ttclab.__file__).parent
    assert (pkg / "py.typed").is_file()
    data = (pkg.parents[1] / "pyproject.toml").read_text()
    assert '"py.typed"' in data
    json.dumps(ttclab.__all__)
