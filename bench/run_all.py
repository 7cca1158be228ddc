"""Run every benchmark in bench/ one after another (each prints its own ratios)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHES = ["strategies.py", "market.py", "sampling.py", "sandbox.py", "pipelines.py", "serve.py", "search.py"]


def main() -> int:
    here = Path(__file__).parent
    failed = 0
    for name in BENCHES:
        print(f"\n===== bench/{name}", flush=True)
        failed += subprocess.call([sys.executable, str(here / name)]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
