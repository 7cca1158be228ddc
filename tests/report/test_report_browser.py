"""The report as a reader sees it: rendered by headless Chromium (Debian's ``chromium``), figures load,
nothing overflows the page width, and the per-question page's filters work."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from support.chromium import Browser, find_or_install  # noqa: E402

from ttclab.analysis import evaluate_runs  # noqa: E402
from ttclab.report import write_report  # noqa: E402
from ttclab.store.schema import SAMPLES_SCHEMA  # noqa: E402
from ttclab.store.writer import META_FILE, SampleWriter, atomic_write_json, write_questions  # noqa: E402

pytestmark = pytest.mark.slow

N_Q, N = 12, 6


def _run(root: Path, run_id: str, model: str, skill: float | Callable[[int], float]) -> None:
    """A run with correct, wrong, truncated and failed samples, written by the store's writers (``skill``:
    the share of correct samples, or a function of the question index giving it)."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    atomic_write_json(run_dir / META_FILE, {"run_id": run_id, "status": "complete", "samples": N,
                                            "model": {"name": model, "label": model}, "task": {"name": "arith"}})
    write_questions(run_dir, [{"question_index": q, "question_id": f"q{q}", "question": f"What is {q} + {q}? " * 3,
                               "prompt": "", "gold": str(2 * q), "difficulty": None, "metadata": "{}"}
                              for q in range(N_Q)])
    rows, now = [], datetime.now(UTC)
    base = {name: None for name in SAMPLES_SCHEMA.names}
    for q in range(N_Q):
        for j in range(N):
            ok = (q * 7 + j * 3) % 10 < (skill(q) if callable(skill) else skill) * 10
            error = j == N - 1 and q % 4 == 0
            answer = None if error else (str(2 * q) if ok else str(2 * q + 1 + j % 3))
            rows.append({**base, "run_id": run_id, "model": model, "question_id": f"q{q}", "question_index": q,
                         "sample_index": j, "created_at": now, "prompt_tokens": 40, "completion_tokens": 20 + 5 * j + q,
                         "latency_s": 0.1 * (1 + j), "text": None if error else f"Let me think... {q}+{q} = {answer}. " * 4,
                         "finish_reason": None if error else ("length" if j == 0 and q % 3 == 0 else "stop"),
                         "error": "HTTP 500 from the server" if error else None, "answer": answer,
                         "verdict": "error" if error else ("correct" if ok else "incorrect"), "correct": bool(ok and not error),
                         "verify_reason": None if error else ("numeric match" if ok else "numeric mismatch")})
    writer = SampleWriter(run_dir)
    writer.add(rows)
    writer.close()


@pytest.fixture(scope="module")
def browser():
    exe, reason = find_or_install()
    if exe is None:
        pytest.skip(reason)
    b = Browser(exe)
    yield b
    b.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    _run(root, "arith-small-model", "small-model", 0.4)
    _run(root, "arith-large-model", "large-model", 0.7)
    out = tmp_path_factory.mktemp("report")
    ev = evaluate_runs(None, store=root, seed=0)
    return write_report(ev, out, title="browser test"), out


OVERFLOW_JS = """(() => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  const width = document.documentElement.clientWidth;
  const scrollers = [...document.querySelectorAll('.tablewrap')];
  const bad = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (scrollers.some(s => s !== el && s.contains(el))) continue;  // inside a horizontally scrolling table box
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > width + 1) bad.push(el.tagName + '.' + el.className + ' ' + Math.round(r.right));
  }
  return {width, scrollWidth: document.documentElement.scrollWidth, bad: bad.slice(0, 10)};
})()"""


SCROLLING_TABLES_JS = """[...document.querySelectorAll('.tablewrap')].filter(w => w.scrollWidth > w.clientWidth + 1)
  .map(w => [...w.querySelectorAll('thead th')].map(t => t.innerText).join('|'))"""


def test_report_renders_figures_and_fits_the_page(browser, report):
    path, _ = report
    browser.goto(path.as_uri())
    figures = browser.evaluate("""[...document.querySelectorAll('figure.fig')].map(f => {
        const s = f.querySelector('svg'); const r = s ? s.getBoundingClientRect() : {width: 0, height: 0};
        return {id: f.id, w: r.width, h: r.height, paths: s ? s.querySelectorAll('path, use').length : 0};})""")
    ids = [f["id"] for f in figures]
    assert ids[:2] == ["fig-overview", "fig-compute_optimal"]  # the overview comes first
    assert {"fig-per_difficulty", "fig-pareto"} <= set(ids)
    for f in figures:
        assert f["w"] > 300 and f["h"] > 150 and f["paths"] > 10, f  # drawn, not an empty box
    layout = browser.evaluate(OVERFLOW_JS)
    assert layout["scrollWidth"] <= layout["width"] and not layout["bad"], layout
    text = browser.evaluate("document.body.innerText")
    assert "nan" not in text.lower().split() and "n/a" not in text
    assert browser.evaluate("document.querySelectorAll('details').length") >= 4  # tables collapsed in <details>
    links = browser.evaluate("[...document.querySelectorAll('a[href^=\"questions/\"]')].map(a => a.href)")
    assert len(links) == 2


def test_runs_table_of_long_run_ids_fits_the_page(browser, tmp_path):
    """Run ids as ``ttclab sample`` names them (the demo's): the runs table's long headers wrap instead of
    making it scroll sideways."""
    for model, skill in (("smollm2-135m", 0.4), ("gemma3-270m", 0.6)):
        _run(tmp_path / "store", f"demo-{model}-89a0ce6f6528", model, skill)
    path = write_report(evaluate_runs(None, store=tmp_path / "store", seed=0), tmp_path / "out", title="runs")
    browser.goto(path.as_uri())
    assert not [t for t in browser.evaluate(SCROLLING_TABLES_JS) if t.startswith("model|task|questions")]


def test_question_page_filters(browser, report):
    _, out = report
    browser.goto((out / "questions" / "arith-small-model.html").as_uri())
    count = """(() => { const s = [...document.querySelectorAll('details.s')].filter(e => !e.classList.contains('hidden'));
        const q = [...document.querySelectorAll('article.q')].filter(e => !e.classList.contains('hidden'));
        return {samples: s.length, questions: q.length, kinds: [...new Set(s.map(e => e.dataset.kind))].sort(),
                truncated: s.filter(e => e.dataset.truncated === '1').length}; })()"""
    everything = browser.evaluate(count)
    assert everything["samples"] == N_Q * N and everything["questions"] == N_Q
    assert everything["kinds"] == ["correct", "error", "wrong"]
    seen = {}
    for name in ("correct", "wrong", "truncated", "error"):
        browser.evaluate(f"document.querySelector(\"button[data-filter='{name}']\").click()")
        seen[name] = browser.evaluate(count)
        assert seen[name]["samples"] > 0, name
    assert seen["correct"]["kinds"] == ["correct"] and seen["wrong"]["kinds"] == ["wrong"]
    assert seen["error"]["kinds"] == ["error"] and seen["error"]["questions"] == N_Q // 4
    assert seen["truncated"]["samples"] == seen["truncated"]["truncated"] == N_Q // 3
    assert seen["correct"]["samples"] + seen["wrong"]["samples"] + seen["error"]["samples"] == N_Q * N
    browser.evaluate("document.querySelector(\"button[data-filter='all']\").click()")
    assert browser.evaluate(count)["samples"] == N_Q * N
    # a sample's full text, verdict, reason and finish reason are on the page
    first = browser.evaluate("document.querySelector('details.s').textContent")
    assert "Let me think" in first and "correct" in first and "reason: numeric match" in first and "length" in first
    error = browser.evaluate("document.querySelector(\"details.s[data-kind='error']\").textContent")
    assert "HTTP 500" in error
    layout = browser.evaluate(OVERFLOW_JS)
    assert layout["scrollWidth"] <= layout["width"] and not layout["bad"], layout


def test_market_page_is_styled_like_the_report(browser, tmp_path):
    from ttclab.market.api import run_sweep

    cfg = Path(__file__).resolve().parents[2] / "configs" / "market_gsm8k_majority.yaml"
    import yaml

    data = yaml.safe_load(cfg.read_text())  # the shipped curves (providers.path: ttc_games_gsm8k)
    data["sweep"] = {"betas": {"min": 100, "max": 1e5, "points": 6}, "margins": [0.1, 0.5]}
    small = tmp_path / "m.yaml"
    small.write_text(yaml.safe_dump(data))
    result = run_sweep(small, tmp_path / "out")
    page = next(f for f in result.files if f.name == "market.html")
    browser.goto(page.as_uri())
    layout = browser.evaluate(OVERFLOW_JS)
    assert layout["scrollWidth"] <= layout["width"] and not layout["bad"], layout
    captions = browser.evaluate("[...document.querySelectorAll('figcaption')].map(c => c.innerText)")
    assert len(captions) >= 5 and not any(c.endswith((".svg", ".png")) or "_" in c for c in captions)
    text = browser.evaluate("document.body.innerText")
    assert "USD per" in text and "PoA" in text and "price of anarchy" in text
    headers = browser.evaluate("[...document.querySelectorAll('th')].map(t => t.innerText)")
    assert "user_surplus" not in headers and "provider_profit" not in headers
    assert browser.evaluate("getComputedStyle(document.body).fontFamily").startswith("system-ui")


@pytest.fixture(scope="module")
def two_specialists(tmp_path_factory):
    """Two models with long names, each the better one on other questions: both win some difficulty."""
    root = tmp_path_factory.mktemp("specialists")
    _run(root, "arith-smollm2", "smollm2-135m-instruct", lambda q: 0.9 if q < N_Q // 2 else 0.1)
    _run(root, "arith-gemma3", "gemma3-270m-it", 0.5)
    ev = evaluate_runs(None, store=root, seed=0)
    out = tmp_path_factory.mktemp("specialists-report")
    return ev, write_report(ev, out, title="specialists")


CELLS_JS = """(() => {
  const svg = document.querySelector('#fig-per_difficulty svg');
  const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
  return [...svg.querySelectorAll('g[id^="text_"]')].map(g => [...g.querySelectorAll('text')])
    .filter(ts => ts.length > 1 && /^[+-]\\d\\.\\d\\d$/.test(ts[ts.length - 1].textContent))
    .map(ts => ({lines: ts.map(t => t.textContent), px: parseFloat(ts[0].style.fontSize) * scale}));
})()"""


def test_heatmap_names_models_in_full_at_a_readable_size(browser, two_specialists):
    ev, path = two_specialists
    browser.goto(path.as_uri())
    cells = browser.evaluate(CELLS_JS)
    models = {"smollm2-135m-instruct", "gemma3-270m-it"}
    named = {"".join(c["lines"][1:-1]) for c in cells}  # a wrapped name is its lines joined
    assert cells and named == models, named  # both compete; never cut to "smollm2-13"
    assert all(re.fullmatch(r"[a-z-]+@\d+", c["lines"][0]) for c in cells)
    assert min(c["px"] for c in cells) >= 10, cells[0]  # the cell text as shown on the page, in CSS px
    layout = browser.evaluate(OVERFLOW_JS)
    assert layout["scrollWidth"] <= layout["width"] and not layout["bad"], layout


def test_overview_frontier_is_the_line_its_caption_describes(browser, two_specialists):
    from ttclab.analysis import optimize
    from ttclab.report import plots

    ev, path = two_specialists
    opt = optimize(ev)
    table = ev.table()
    cost = np.asarray(table["total_tokens"].to_pylist(), dtype=float)
    widest = float(cost[np.isfinite(cost) & (cost > 0)].max())
    for frontier in (opt.frontier, opt.frontier[:1]):  # a frontier of one point is a line too
        fig = plots.overview(table, "total_tokens", "tokens", frontier, ("pass_at_k",))
        line = next(ln for ln in fig.axes[0].lines if ln.get_color() == "black")
        x, y = line.get_xydata().T
        assert len(x) >= 2 and x[0] == min(r["cost"] for r in frontier) and x[-1] == widest
        assert y[-1] == max(r["accuracy"] for r in frontier) and np.all(np.diff(y) >= 0)
    browser.goto(path.as_uri())
    caption = browser.evaluate("document.querySelector('#fig-overview figcaption').innerText")
    first = opt.frontier[0]
    assert "black line is the compute-optimal frontier" in caption
    assert f"circled points ({first['model']} {first['strategy']}@{first['k']}" in caption


DIFFICULTY_JS = """(() => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  const d = [...document.querySelectorAll('details')].find(e => e.querySelector('summary').innerText
    .startsWith('the choice per difficulty'));
  const lines = el => { const r = document.createRange(); r.selectNodeContents(el);
    return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; };  // line boxes of the text
  return {rows: [...d.querySelectorAll('tbody tr')].map(tr => {
    const td = [...tr.children];
    return {label: td[0].innerText, labelLines: lines(td[0]),
            wide: td.filter(c => c.querySelector('div.w')).map(c => c.getBoundingClientRect().width),
            ties: td[td.length - 2].innerText};
  })};
})()"""


def test_per_difficulty_table_reads_on_one_line_per_label(browser, report):
    import csv

    path, out = report
    browser.goto(path.as_uri())
    table = browser.evaluate(DIFFICULTY_JS)
    assert table["rows"], table
    for row in table["rows"]:
        assert "(pass rate " in row["label"]
        assert row["labelLines"] == 1, row  # "easy (pass rate 0.58–0.70)" on one line, not five
        assert all(w >= 200 for w in row["wide"]), row  # long text wraps in a column, not a sliver
    with open(out / "per_difficulty_collapsed.csv", newline="") as fh:  # every tie is in the CSV; the page shows a few
        full = [r["ties"] for r in csv.DictReader(fh) if not r["reason"]]
    shown = [r["ties"] for r in table["rows"]]
    assert len(full) == len(shown) and (out / "per_difficulty.csv").is_file()
    for ties in shown:
        if ties == "–":  # no tie
            continue
        names = [t for t in re.split(r", | and \d+ more$", ties) if t]
        more = re.search(r" and (\d+) more$", ties)
        total = len(names) + (int(more.group(1)) if more else 0)
        assert any(len([t for t in f.split(", ") if t]) == total and f.startswith(", ".join(names)) for f in full), \
            (ties, full)
        assert (more is None) == (total <= 3)
    from ttclab.report.build import few

    assert few(["a", "b", "c", "d"], 2) == "a, b and 2 more" and few(["a", "b", "c"], 2) == "a, b, c"
