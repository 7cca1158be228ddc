"""A static per-question page per run (like inspect's log viewer): the question, the gold answer, the
answer histogram across samples and every sample's full text with its verdict, reason and finish
reason, with filters for correct / wrong / truncated / error samples. Plain HTML + a few lines of
JavaScript; no server.
"""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from typing import Any

from ttclab.analysis.evaluate import Evaluation
from ttclab.report.html import CSS
from ttclab.store.reader import Run

PAGE_CSS = """
.filters{display:flex;gap:.5rem;flex-wrap:wrap;align-items:center;margin:.8rem 0}
.filters button{border:1px solid var(--line);background:#fff;border-radius:14px;padding:.2rem .8rem;cursor:pointer;font:inherit}
.filters button.on{background:var(--accent);color:#fff;border-color:var(--accent)}
.filters input{border:1px solid var(--line);border-radius:14px;padding:.2rem .7rem;font:inherit;min-width:14rem}
article.q{border:1px solid var(--line);border-radius:8px;padding:.6rem .9rem;margin:.9rem 0}
article.q h3{margin:.1rem 0 .4rem;font-size:1rem}
.qtext{white-space:pre-wrap;background:var(--soft);padding:.5rem
.7rem;border-radius:6px;font-size:.9rem;max-height:16rem;overflow:auto}
.hist{display:grid;grid-template-columns:minmax(4rem,max-content) 1fr max-content;gap:.15rem
.6rem;font-size:.82rem;margin:.5rem 0;max-width:44rem}
.hist .bar{height:.9rem;border-radius:3px;background:#c9cfdb;align-self:center}
.hist .bar.ok{background:#4caf70}.hist .ans{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;max-width:16rem}
details.s{border:none;border-left:3px solid #c9cfdb;border-radius:0;margin:.25rem 0;padding:.05rem .6rem}
details.s.correct{border-left-color:#4caf70}details.s.wrong{border-left-color:#e0703a}details.s.error{border-left-color:#a33}
details.s>summary{color:var(--ink);font-size:.86rem}
details.s pre{white-space:pre-wrap;word-break:break-word;font-size:.84rem;background:var(--soft);padding:.5rem;border-radius:4px}
.tag{display:inline-block;font-size:.74rem;border-radius:8px;padding:0 .45rem;margin-left:.3rem;background:#eef1f6}
.tag.trunc{background:#fff0d6}.tag.err{background:#fbe0e0}
.hidden{display:none}
"""

PAGE_JS = """
(function(){
  var filter='all', query='';
  function match(s){
    if(filter==='all') return true;
    if(filter==='truncated') return s.dataset.truncated==='1';
    return s.dataset.kind===filter;
  }
  function apply(){
    var shown=0, samples=0;
    document.querySelectorAll('article.q').forEach(function(q){
      var any=false;
      q.querySelectorAll('details.s').forEach(function(s){
        var ok=match(s); s.classList.toggle('hidden',!ok); if(ok){any=true;samples++;}
      });
      var text=(q.dataset.search||'');
      var hit=any && (!query || text.indexOf(query)>=0);
      q.classList.toggle('hidden',!hit); if(hit) shown++;
    });
    document.getElementById('count').textContent=shown+' questions, '+samples+' samples shown';
  }
  document.querySelectorAll('.filters button').forEach(function(b){
    b.addEventListener('click',function(){
      filter=b.dataset.filter;
      document.querySelectorAll('.filters button').forEach(function(x){x.classList.toggle('on',x===b);});
      apply();
    });
  });
  document.getElementById('search').addEventListener('input',function(e){query=e.target.value.toLowerCase();apply();});
  apply();
})();
"""


def _kind(verdict: str | None) -> str:
    if verdict == "correct":
        return "correct"
    if verdict == "error":
        return "error"
    return "wrong"


def question_page(run: Run, *, max_questions: int = 200, title: str = "") -> str:
    """The drill-down page of one run as one HTML document."""
    questions = run.questions().to_pylist()
    cols = ["question_index", "sample_index", "text", "answer", "verdict", "correct", "verify_reason", "finish_reason",
            "error", "completion_tokens"]
    by_q: dict[int, list[dict[str, Any]]] = {}
    for r in run.samples(cols).to_pylist():
        by_q.setdefault(int(r["question_index"]), []).append(r)
    shown = questions[:max_questions]
    parts = []
    totals: Counter[str] = Counter()
    for q in shown:
        samples = by_q.get(int(q["question_index"]), [])
        parts.append(_question_html(q, samples, totals))
    more = len(questions) - len(shown)
    head = (f"<p class='meta'>run {html.escape(run.run_id)} · model {html.escape(run.model)} · {len(questions)} questions"
            + (f" (the first {len(shown)} shown; see all with <code>ttclab show {html.escape(run.run_id)} --question ID "
               f"--full</code>)" if more > 0 else "") + "</p>")
    buttons = "".join(
        f"<button data-filter='{f}' class='{'on' if f == 'all' else ''}'>{f} ({n})</button>"
        for f, n in (("all", sum(totals[k] for k in ("correct", "wrong", "error"))), ("correct", totals["correct"]),
                     ("wrong", totals["wrong"]), ("truncated", totals["truncated"]), ("error", totals["error"])))
    filters = (f"<div class='filters'><span>samples:</span>{buttons}<input id='search' type='search' "
               "placeholder='search question or answer'><span id='count' class='meta'></span></div>")
    name = title or f"Questions of {run.model}"
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{html.escape(name)}</title><style>{CSS}{PAGE_CSS}</style></head><body>"
            f"<header><h1>{html.escape(name)}</h1>{head}<p><a href='../report.html'>back to the report</a></p></header>"
            f"{filters}<main>{''.join(parts)}</main><script>{PAGE_JS}</script></body></html>")


def _question_html(q: dict[str, Any], samples: list[dict[str, Any]], totals: Counter[str]) -> str:
    graded = [s for s in samples if s["verdict"] != "error"]
    counts = Counter(s["answer"] for s in graded)
    right = {s["answer"] for s in graded if s["correct"]}
    n_ok = sum(1 for s in graded if s["correct"])
    top = max(counts.values()) if counts else 1
    hist = "".join(
        f"<span class='ans' title='{html.escape(str(a))}'>{html.escape('(no answer)' if a is None else str(a))}</span>"
        f"<span class='bar{' ok' if a in right and a is not None else ''}' style='width:{100 * c / top:.0f}%'></span>"
        f"<span>{c}</span>" for a, c in counts.most_common(12))
    items = []
    for s in samples:
        kind = _kind(s["verdict"])
        truncated = s["finish_reason"] == "length"
        totals[kind] += 1
        totals["truncated"] += truncated
        tags = f"<span class='tag'>{html.escape(str(s['finish_reason'] or '-'))}</span>"
        if truncated:
            tags += "<span class='tag trunc'>truncated</span>"
        if kind == "error":
            tags += "<span class='tag err'>error</span>"
        body = s["text"] if s["text"] is not None else ""
        reason = s["error"] if kind == "error" else s["verify_reason"]
        items.append(
            f"<details class='s {kind}' data-kind='{kind}' data-truncated='{int(truncated)}'><summary>#{s['sample_index']} · "
            f"{html.escape(str(s['verdict']))} · answer {html.escape(_clip(s['answer']))} · "
            f"{s['completion_tokens'] if s['completion_tokens'] is not None else '?'} tokens{tags}</summary>"
            f"<pre>{html.escape(body)}</pre><p class='meta'>reason: {html.escape(str(reason or '-'))}</p></details>")
    search = html.escape(" ".join([str(q["question_id"]), str(q["question"] or ""), str(q["gold"] or ""),
                                   *map(str, counts)]).lower())
    return (f"<article class='q' data-search='{search}'><h3>#{q['question_index']} · {html.escape(str(q['question_id']))}"
            f" · gold <code>{html.escape(str(q['gold']))}</code> · {n_ok}/{len(graded)} correct</h3>"
            f"<div class='qtext'>{html.escape(str(q['question'] or ''))}</div>"
            f"<div class='hist'>{hist}</div>{''.join(items)}</article>")


def _clip(answer: Any, width: int = 40) -> str:
    text = str(answer)
    return text if len(text) <= width else text[: width - 1] + "…"


def write_question_pages(ev: Evaluation, folder: str | Path, *, max_questions: int = 200) -> dict[str, Path]:
    """One drill-down page per run with samples; returns run_id -> page path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pages = {}
    for part in ev.sample_parts:
        path = folder / f"{part.run.run_id}.html"
        path.write_text(question_page(part.run, max_questions=max_questions), encoding="utf-8")
        pages[part.run.run_id] = path
    return pages


__all__ = ["question_page", "write_question_pages"]
