"""How long `flux backtest FILE --base BASE` makes a reviewer wait: the two runs one after
the other (--jobs 1) against side by side in two worker processes (--jobs 2, the default
on a machine of 2 or more CPUs), wall time of the whole command as a user types it, and
whether the two gave the same report (they must).

    .venv/bin/python bench/backtest_base.py [--days 2] [--repeat 1]
        [--site sites/variants/demo-optimise.yaml] [--base sites/demo.yaml]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(args: list[str]) -> tuple[float, str]:
    """Wall time (s) and stdout of one `flux backtest` (through this Python)."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "backtest", *args],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return time.perf_counter() - t0, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--site", default="sites/variants/demo-optimise.yaml")
    parser.add_argument("--base", default="sites/demo.yaml")
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the least counts")
    args = parser.parse_args()
    common = [args.site, "--base", args.base, "--days", str(args.days), "--output", "json"]
    best: dict[int, float] = {}
    reports: dict[int, str] = {}
    for _ in range(max(1, args.repeat)):
        for jobs in (1, 2):
            wall, out = timed([*common, "--jobs", str(jobs)])
            best[jobs] = min(best.get(jobs, wall), wall)
            reports[jobs] = out
    same = reports[1] == reports[2]
    print(
        f"flux backtest {args.site} --base {args.base}, {args.days} day(s) "
        f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}):"
    )
    print(f"  one after the other (--jobs 1): {best[1]:.1f} s")
    print(f"  side by side (--jobs 2):        {best[2]:.1f} s = x{best[1] / best[2]:.2f} faster")
    print(f"  the same report both ways: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
