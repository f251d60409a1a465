"""How fast `flux backtest` runs through the agent's own loop: simulated days per second,
the cost of one tick, and the time a 31-day month takes at the site's own tick.

Each tick is what a site does (the ReconcileLoop: the real PowerPack and Acuvim drivers
read every device through the in-process transport, the guard and control core decide,
the setpoint and heartbeat are written and the settings read back, the records go to an
in-memory sink) plus the plant's physics in 1 s sub-steps and the accounts of each.

The references: the figure of the old engine (its own tick, no drivers, no codec, no
loop): 0.30 simulated days per second at 4 s ticks on the demo, measured in session 3;
and, measured in this run over the same span, a bare core (the control core deciding on
values taken straight from the plant, the setpoint put straight into the plant, the same
physics; no accounts), so the ratio holds on a busy machine. The machine is shared: the
load average is printed beside the figures, and CPU time beside wall time; with
``--repeat N`` the loop and the bare core run N times in turn and the least CPU time of
each counts (the run least disturbed by other work on the machine).

    .venv/bin/python bench/backtest.py [--site sites/demo.yaml] [--from 2024-01-15]
        [--days 2] [--repeat 1] [--profile 25] [--output json]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import pstats
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without an install
    sys.path.insert(0, str(ROOT))

from reconciler.backtest.commands import signals_for  # noqa: E402
from reconciler.backtest.engine import MemorySink, run_backtest  # noqa: E402
from reconciler.config.loader import load_site  # noqa: E402
from reconciler.config.model import Site  # noqa: E402
from reconciler.control.core import decide  # noqa: E402
from reconciler.control.schedule import local_midnight  # noqa: E402
from reconciler.control.types import (  # noqa: E402
    BatteryReading,
    ControlState,
    MeterReading,
    Observation,
)
from reconciler.sim.plant import Plant  # noqa: E402

#: The old engine (session 3): simulated days per second at 4 s ticks on the demo.
OLD_DAYS_PER_S = 0.30
MONTH_DAYS = 31
#: The goal: one simulated month in under this many seconds.
GOAL_MONTH_S = 60.0


def bare_core(site: Site, start: datetime, end: datetime) -> tuple[int, float]:
    """(ticks, CPU s) of the control core and the plant alone over [start, end)."""
    plant = Plant.for_site(site, start)
    plant.write("real_power_mode", 1)
    signals = signals_for("january-2024")
    assert signals is not None
    state = ControlState()
    tick = timedelta(seconds=site.control.tick_s)
    ticks, at = 0, start
    c0 = time.process_time()
    while at < end:
        b = plant.battery
        obs = Observation(
            battery=BatteryReading(at, b.soe_kwh, b.power_kw, b.available_blocks, 1),
            meters={
                name: MeterReading(at, plant.role_power_kw(m.role))
                for name, m in plant.meters.items()
            },
        )
        decision = decide(site, at, obs, signals.signals_at(at), state)
        plant.write("power_command", decision.target_kw)
        plant.write("heartbeat", ticks % 2)
        state = ControlState(decision.target_kw, at, state.plans)
        at = min(at + tick, end)
        plant.advance_to(at)
        ticks += 1
    return ticks, time.process_time() - c0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--site", type=Path, default=ROOT / "sites" / "demo.yaml")
    parser.add_argument("--from", dest="first", type=date.fromisoformat, default="2024-01-15")
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="N", help="runs of each; the least CPU counts"
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="cProfile: print the top N by time"
    )
    parser.add_argument("--output", choices=["text", "json"], default="text")
    args = parser.parse_args()

    logging.getLogger("flux.agent").setLevel(logging.CRITICAL)  # safe stops: not per line
    site = load_site(args.site)
    start = local_midnight(site, args.first)
    end = local_midnight(site, args.first + timedelta(days=args.days))
    profiler = cProfile.Profile() if args.profile else None
    wall = cpu = bare_cpu = float("inf")
    for _ in range(max(1, args.repeat)):
        sink = MemorySink()
        t0, c0 = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        result = run_backtest(site, start, end, signals=signals_for("january-2024"), sink=sink)
        if profiler is not None:
            profiler.disable()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
        bare_ticks, bare = bare_core(site, start, end)
        bare_cpu = min(bare_cpu, bare)
    days = result.total.hours / 24.0
    tick_us = cpu / result.ticks * 1e6
    month_ticks = MONTH_DAYS * 86400 / result.tick_s
    figures = {
        "site": args.site.name,
        "days": days,
        "tick_s": result.tick_s,
        "ticks": result.ticks,
        "wall_s": wall,
        "cpu_s": cpu,
        "days_per_s_wall": days / wall,
        "days_per_s_cpu": days / cpu,
        "old_days_per_s": OLD_DAYS_PER_S,
        "tick_us_cpu": tick_us,
        "bare_core_tick_us_cpu": bare_cpu / bare_ticks * 1e6,
        "loop_over_bare_core": tick_us / (bare_cpu / bare_ticks * 1e6),
        "tick_us_wall": wall / result.ticks * 1e6,
        "month_s_cpu": month_ticks * tick_us / 1e6,
        "month_s_wall": month_ticks * wall / result.ticks,
        "records": sink.bess_rows + sink.meter_rows + sink.decision_rows,
        "runs": max(1, args.repeat),
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "imported_kwh": result.total.grid_import_kwh,
        "imbalance_value_gbp": result.total.imbalance_value_gbp,
        "safe_stop_hours": result.total.safe_stop_hours,
    }
    if args.output == "json":
        print(json.dumps(figures, indent=2))
    else:
        f = figures
        print(
            f"backtest of {f['site']} through the agent's loop, {days:g} day(s) from "
            f"{args.first.isoformat()}, tick {result.tick_s:g} s:"
        )
        best = f", least of {f['runs']} runs" if f["runs"] > 1 else ""
        print(f"  {result.ticks:,} ticks in {wall:.2f} s wall ({cpu:.2f} s CPU{best})")
        print(
            f"  {f['days_per_s_wall']:.3f} simulated days/s wall, {f['days_per_s_cpu']:.3f} "
            f"CPU (old engine: {OLD_DAYS_PER_S:.2f} days/s; "
            f"x{f['days_per_s_cpu'] / OLD_DAYS_PER_S:.2f})"
        )
        print(f"  {tick_us:.0f} µs per tick (CPU), {f['tick_us_wall']:.0f} µs wall")
        print(
            f"  bare core in this run: {f['bare_core_tick_us_cpu']:.0f} µs per tick (CPU); "
            f"the loop costs x{f['loop_over_bare_core']:.2f} that"
        )
        print(
            f"  a {MONTH_DAYS}-day month at {result.tick_s:g} s ticks: "
            f"{f['month_s_cpu']:.0f} s CPU, "
            f"{f['month_s_wall']:.0f} s wall (goal: under {GOAL_MONTH_S:.0f} s)"
        )
        print(
            f"  check: {f['records']:,} records, imported {f['imported_kwh']:,.1f} kWh, "
            f"imbalance value £{f['imbalance_value_gbp']:,.2f}, "
            f"{f['safe_stop_hours']:.2f} h in safe stop (load average "
            f"{f['load_average']:.1f} on {f['cpus']} CPUs)"
        )
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
