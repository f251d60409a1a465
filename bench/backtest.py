"""How fast `flux backtest` runs: simulated days per second of wall time, and ticks per
second, for sites/demo.yaml over two days with January 2024 prices replayed.

Each tick is a whole control step (read the plant, decide, write setpoint and heartbeat)
plus the plant's physics in 1 s sub-steps and the metrics of each sub-step.

    .venv/bin/python bench/backtest.py [--site sites/demo.yaml] [--from 2024-01-15] [--days 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without an install
    sys.path.insert(0, str(ROOT))

from reconciler.backtest.commands import signals_for  # noqa: E402
from reconciler.backtest.engine import run_backtest  # noqa: E402
from reconciler.config.loader import load_site  # noqa: E402
from reconciler.control.schedule import local_midnight  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--site", type=Path, default=ROOT / "sites" / "demo.yaml")
    parser.add_argument("--from", dest="first", type=date.fromisoformat, default="2024-01-15")
    parser.add_argument("--days", type=int, default=2)
    args = parser.parse_args()

    site = load_site(args.site)
    start = local_midnight(site, args.first)
    end = local_midnight(site, args.first + timedelta(days=args.days))
    t0, c0 = time.perf_counter(), time.process_time()
    result = run_backtest(site, start, end, signals=signals_for("january-2024"))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    days = result.total.hours / 24.0
    print(
        f"backtest of {args.site.name}, {args.days} day(s) from {args.first.isoformat()}, "
        f"tick {result.tick_s:g} s:"
    )
    print(f"  {result.ticks} ticks in {wall:.2f} s wall ({cpu:.2f} s CPU)")
    print(f"  {days / wall:.3f} simulated days per second of wall time")
    print(
        f"  {result.ticks / wall:,.0f} ticks per second ({wall / result.ticks * 1e6:.0f} µs/tick)"
    )
    print(
        f"  check: imported {result.total.grid_import_kwh:,.1f} kWh, imbalance value "
        f"£{result.total.imbalance_value_gbp:,.2f} (load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
