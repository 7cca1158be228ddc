"""`make demo`: the main job end to end on the embedded default.

1. Sample both embedded models (SmolLM2-135M chat, Gemma 3 270M few-shot) on a reasoning-gym task,
   several samples per question, verified and stored (re-running resumes / reuses the runs).
2. Summarise per model: accuracy, majority-vote accuracy over the samples, tokens, tokens/s.
3. Evaluate every strategy at every budget k (exact estimators) with the compute ledger.
4. Choose the compute-optimal strategy per budget.
5. A market between the two models, built from their own runs, and the auction.
6. Write the HTML report (out/demo/report.html) with figures.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from ttclab.errors import TTCLabError
    from ttclab.experiment import sample
    from ttclab.tables import Table

    start = time.perf_counter()
    try:
        print("== 1. sample: both embedded models, configs/demo.yaml", flush=True)
        bar = sys.stderr.isatty()  # without a terminal, a progress line every few seconds instead of the bar
        results = sample(ROOT / "configs" / "demo.yaml", progress=bar,
                         log=None if bar else (lambda line: print(f"   {line}", file=sys.stderr, flush=True)))
        rows = [[r.summary["model"], r.summary["questions"], r.summary["rows"], r.summary["errors"],
                 r.summary["truncated_pct"], r.summary["accuracy"], r.summary["majority_accuracy"],
                 r.summary["completion_tokens"], r.stats.tokens_per_s if r.stats.generated else None]
                for r in results]
        print("\n== 2. summary (majority vote over all samples; ties split)")
        print(Table(["model", "questions", "samples", "errors", "truncated %", "accuracy", "majority acc",
                     "completion tokens", "completion tok/s (this run)"], rows, decimals={"truncated %": 1}).text())
        for r in results:
            print(f"   {r.summary['model']}: run {r.run.path}")
            if r.summary["truncated"]:
                print(f"   note: {r.summary['truncated']} samples hit max_tokens (see the report's questions page)")

        from ttclab.analysis import evaluate_runs, optimize
        from ttclab.analysis.optimize import choice_label
        from ttclab.market.api import run_market
        from ttclab.report import write_report

        refs = [str(r.run.path) for r in results]
        print("\n== 3. evaluate: strategies x budgets, exact where a closed form exists (USD: the local price file)")
        ev = evaluate_runs(refs, prices="local", seed=0)
        shown = [r for r in ev.rows() if r["strategy"] in ("majority", "weighted_confidence", "pass_at_k", "esc")]
        print(Table(["model", "strategy", "k", "accuracy", "CI low", "CI high", "completion tokens", "total tokens",
                     "USD", "estimator"],
                    [[r["model"], r["strategy"], r["k"], r["accuracy"], r["ci_low"], r["ci_high"],
                      r["completion_tokens"], r["total_tokens"], r["usd"], r["estimator"]] for r in shown]).text())
        for note in ev.notes:
            print(f"   note: {note}")
        print("\n== 4. optimize: the compute-optimal choice per budget (noise-aware; ties within error marked ≈)")
        opt = optimize(ev)
        print(f"   {opt.unit_note}")
        print(Table(["budget from", "to", "model", "choice", "accuracy", "CI low", "CI high", "gain vs 1 sample"],
                    [[r["budget_from"], r["budget_to"], r["model"], choice_label(r), r["accuracy"], r["ci_low"],
                      r["ci_high"], r["gain_vs_one_sample"]] for r in opt.choices]).text())
        print("\n== 5. market: the two models as providers of majority voting (configs/market_embedded.yaml)")
        market = run_market(ROOT / "configs" / "market_embedded.yaml")
        print(market.text())
        print("\n== 6. report")
        path = write_report(ev, ROOT / "out" / "demo", opt=opt, market=market, title="ttclab demo")
        print(f"   wrote {path} (per-question pages in {path.parent / 'questions'})")
    except TTCLabError as exc:
        print(f"ttclab: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
