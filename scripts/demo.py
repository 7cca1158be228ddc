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
    from ttclab.tables import format_table
    from ttclab.errors import TTCLabError
    from ttclab.experiment import sample

    start = time.perf_counter()
    try:
        print("== 1. sample: both embedded models, configs/demo.yaml", flush=True)
        results = sample(ROOT / "configs" / "demo.yaml")
        rows = [[r.summary["model"], r.summary["questions"], r.summary["rows"], r.summary["errors"],
                 r.summary["accuracy"], r.summary["majority_accuracy"], r.summary["completion_tokens"],
                 r.summary["tokens_per_s"]] for r in results]
        print("\n== 2. summary (majority vote over all samples; ties split)")
        print(format_table(rows, ["model", "questions", "samples", "errors", "accuracy", "majority acc",
                                  "tokens", "tok/s"]))
        for r in results:
            print(f"   {r.summary['model']}: run {r.run.path}")

        from ttclab.analysis import evaluate_runs, optimize, write_report
        from ttclab.market.api import run_market

        refs = [str(r.run.path) for r in results]
        print("\n== 3. evaluate: strategies x budgets, exact where a closed form exists (tokens, USD: local prices)")
        ev = evaluate_runs(refs, prices="local", seed=0)
        shown = [r for r in ev.rows() if r["strategy"] in ("majority", "weighted_confidence", "pass_at_k", "first_finish")]
        print(format_table([[r["model"], r["strategy"], r["k"], r["accuracy"], r["ci_low"], r["ci_high"],
                             r["completion_tokens"], r["usd"]] for r in shown],
                           ["model", "strategy", "k", "accuracy", "ci low", "ci high", "tokens", "USD"]))
        print("\n== 4. optimize: compute-optimal choice per budget (tokens per question)")
        opt = optimize(ev, unit="tokens")
        print(format_table([[r["budget"], r["model"], r["strategy"], r["k"], r["accuracy"]] for r in opt.best],
                           ["budget", "model", "strategy", "k", "accuracy"]))
        print("\n== 5. market: the two models as providers of majority voting (configs/market_embedded.yaml)")
        market = run_market(ROOT / "configs" / "market_embedded.yaml")
        print(market.text())
        print("\n== 6. report")
        path = write_report(ev, ROOT / "out" / "demo", unit="tokens", opt=opt, market=market, title="ttclab demo")
        print(f"   wrote {path}")
    except TTCLabError as exc:
        print(f"ttclab: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
