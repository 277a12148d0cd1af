"""Runs every benchmark in load_tests/ (``make bench``); each prints JSON lines of its figures.

The soak benchmark (``bench_soak.py``, ten minutes) is not part of it: run it on its own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LONG = {"bench_soak.py"}  # minutes each: run on their own


def main() -> int:
    failed = 0
    for script in sorted(HERE.glob("bench_*.py")):
        if script.name in LONG:
            continue
        print(f"# {script.name}", file=sys.stderr, flush=True)
        failed += subprocess.call([sys.executable, str(script)]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
