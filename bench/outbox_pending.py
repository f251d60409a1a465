"""Per-call cost of ``Outbox.pending()`` (called once per control tick) with a backlog:
before, a ``SELECT count(*)`` that scans the table; now, a count kept by the outbox.
Both measured in the same run on the same file, and their ratio printed.

    .venv/bin/python bench/outbox_pending.py [--rows 1000000] [--calls 20]

The outbox is filled in a temporary folder (removed after) with half battery, half meter
readings, as an agent's backlog is.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without an install
    sys.path.insert(0, str(ROOT))

from readings import bess_readings, meter_readings  # noqa: E402

from reconciler.telemetry.outbox import Outbox  # noqa: E402


def per_call_s(call: Callable[[], int], calls: int) -> tuple[float, int]:
    """Median seconds per call (after one warm-up call) and the last value."""
    value = call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        value = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=20, help="calls timed per method")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outbox.db"
        with Outbox(path) as box:
            started = time.perf_counter()
            half = args.rows // 2
            box.add_bess_many("bench", "bess", bess_readings(half))
            box.add_meter_many("bench", "grid", meter_readings(args.rows - half))
            print(f"rows: {args.rows:,} (filled in {time.perf_counter() - started:.1f} s)")
        started = time.perf_counter()
        box = Outbox(path)  # counts once, at open
        print(f"open (one count(*)): {1000 * (time.perf_counter() - started):.1f} ms")
        conn = box._conn()

        def count_star() -> int:
            (n,) = conn.execute("SELECT count(*) FROM outbox").fetchone()
            return int(n)

        before_s, before = per_call_s(count_star, args.calls)
        after_s, after = per_call_s(box.pending, max(args.calls, 10_000))
        assert before == after == args.rows, (before, after)
        print(f"before, SELECT count(*): {1e3 * before_s:9.3f} ms per call")
        print(f"after,  kept count:      {1e6 * after_s:9.3f} us per call")
        print(f"ratio: {before_s / after_s:,.0f}x")
        box.close()


if __name__ == "__main__":
    main()
