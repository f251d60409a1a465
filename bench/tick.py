"""How long one control tick takes on sites/demo.yaml.

1. The decide step alone (pure: schedule, modes, fold, envelope) over ``--decisions``
   ticks spread across a weekday and a weekend day, with a toy plant moving the SoE and
   the site power and January 2024 imbalance prices replayed. Goal: p99 under 1 ms.
   As a baseline in the same run it times the schedule evaluation that the day memo
   (``DayPlans`` in control/schedule.py, held in the ControlState) replaces, evaluated
   from scratch on each tick, and prints the ratio.
2. A whole tick of the reconcile loop (poll battery and meters over Modbus TCP on
   loopback, decide, write setpoint + heartbeat) against `flux sim` running in its own
   process on free ports. Goal: p99 under 25 ms. Skipped with a message if the simulator
   cannot start.

    .venv/bin/python bench/tick.py [--decisions 20000] [--ticks 500] [--site sites/demo.yaml]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without an install
    sys.path.insert(0, str(ROOT))

from simproc import SimDidNotStart, sim_process, site_with_free_ports  # noqa: E402

from reconciler.config.loader import load_site  # noqa: E402
from reconciler.config.model import Site  # noqa: E402
from reconciler.control.core import decide  # noqa: E402
from reconciler.control.schedule import DayPlans, active_entries, rates_at, zone  # noqa: E402
from reconciler.control.signals import FeedSignals  # noqa: E402
from reconciler.control.types import (  # noqa: E402
    BatteryReading,
    ControlState,
    MeterReading,
    Observation,
)
from reconciler.markets.memory import ReplayImbalanceFeed  # noqa: E402


def quantiles_ms(samples: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return q[49] * 1000, q[98] * 1000, max(samples) * 1000


# --------------------------------------------------------------------------- decide


def measure_decide(site: Site, decisions: int) -> dict[str, float]:
    """p50/p99/max of decide() (s -> ms), and of the from-scratch schedule baseline."""
    feed = FeedSignals(imbalance=ReplayImbalanceFeed.january_2024(publish_delay_s=120))
    grid = site.grid_meter_name
    tz = zone(site.site.timezone)
    days = [datetime(2024, 1, 10, tzinfo=UTC), datetime(2024, 1, 13, tzinfo=UTC)]
    step = timedelta(seconds=2 * 86400 / decisions)
    soe = site.energy_kwh(site.simulation.initial_soe)
    plans = DayPlans()  # as the loop does: one memo for the run
    state = ControlState(plans=plans)
    took: list[float] = []
    cpu: list[float] = []
    baseline: list[float] = []
    for i in range(decisions):
        day = days[0] if i < decisions // 2 else days[1]
        at = day + step * (i % (decisions // 2))
        hour = at.hour + at.minute / 60
        load = 90 + 60 * math.sin(math.pi * (hour - 6) / 12) ** 2
        solar = max(0.0, 150 * math.sin(math.pi * (hour - 8) / 8)) if 8 <= hour <= 16 else 0.0
        site_kw = load - solar - state.last_target_kw
        obs = Observation(
            battery=BatteryReading(at, soe, state.last_target_kw),
            meters={grid: MeterReading(at, site_kw)},
        )
        signals = feed.signals_at(at)
        c0, t0 = time.thread_time(), time.perf_counter()
        d = decide(site, at, obs, signals, state)
        took.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        t0 = time.perf_counter()
        active_entries(site, at)
        rates_at(site.rates, at, tz)
        baseline.append(time.perf_counter() - t0)
        dt_h = step.total_seconds() / 3600
        if d.target_kw > 0:
            soe -= d.target_kw * dt_h
        else:
            soe -= d.target_kw * dt_h * site.limits.charge_efficiency
        state = ControlState(d.target_kw, at, plans)
    p50, p99, worst = quantiles_ms(took)
    c50, c99, _ = quantiles_ms(cpu)
    b50, b99, _ = quantiles_ms(baseline)
    return {
        "p50": p50,
        "p99": p99,
        "max": worst,
        "cpu_p50": c50,
        "cpu_p99": c99,
        "base_p50": b50,
        "base_p99": b99,
    }


# --------------------------------------------------------------------------- whole tick


async def measure_whole_tick(site_path: Path, ticks: int) -> tuple[dict[str, float], str] | str:
    """p50/p99/max of ReconcileLoop.tick() against `flux sim`, or why it was not measured."""
    from reconciler.agent.loop import ReconcileLoop
    from reconciler.clock import WallClock
    from reconciler.devices.factory import open_site_devices

    with tempfile.TemporaryDirectory() as tmp:
        # Every device polled on every tick, so each tick reads.
        path = site_with_free_ports(site_path, Path(tmp), poll_interval_s=0.001)
        site = load_site(path)
        try:
            async with sim_process(path):
                battery, meters = open_site_devices(site)
                loop = ReconcileLoop(
                    site_fn=lambda: (site, None),
                    battery=battery,
                    meters=meters,
                    clock=WallClock(),
                    signals=FeedSignals(imbalance=ReplayImbalanceFeed.january_2024()),
                )
                for _ in range(20):  # warm up: connections made, start-up settings written
                    await loop.tick()
                took: list[float] = []
                writes = safe = 0
                for _ in range(ticks):
                    t0 = time.perf_counter()
                    result = await loop.tick()
                    took.append(time.perf_counter() - t0)
                    writes += result.written_kw is not None
                    safe += result.decision.safe_stop
                last = result.decision.reason
                await loop.close()
        except SimDidNotStart as exc:
            return f"flux sim did not start: {exc}"
    p50, p99, worst = quantiles_ms(took)
    figures = {"p50": p50, "p99": p99, "max": worst, "writes": writes / ticks, "safe": safe / ticks}
    return figures, last


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--ticks", type=int, default=500)
    parser.add_argument("--site", type=Path, default=ROOT / "sites" / "demo.yaml")
    args = parser.parse_args()

    site = load_site(args.site)
    r = measure_decide(site, args.decisions)
    print(f"decide step, {args.decisions} decisions on {args.site.name} over two days:")
    print(f"  p50 {r['p50']:.3f} ms   p99 {r['p99']:.3f} ms   max {r['max']:.3f} ms")
    print(f"  p99 is {r['p99'] / 1.0:.0%} of the 1 ms goal")
    print(
        f"  CPU time of this thread: p50 {r['cpu_p50']:.3f} ms   p99 {r['cpu_p99']:.3f} ms "
        f"(wall p99 above includes time the OS ran other work; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    print(
        f"  baseline (schedule + rates from scratch, per tick): p50 {r['base_p50']:.3f} ms, "
        f"p99 {r['base_p99']:.3f} ms; the whole decide p50 is "
        f"{r['p50'] / r['base_p50']:.2f}x that baseline"
    )

    try:
        measured = asyncio.run(measure_whole_tick(args.site, args.ticks))
    except Exception as exc:  # the bench reports, it does not crash
        measured = f"{type(exc).__name__}: {exc}"
    if isinstance(measured, str):
        print(f"whole tick: not measured ({measured.strip()})")
        return 0
    w, last = measured
    print(f"whole tick (poll 4 devices over Modbus TCP, decide, act), {args.ticks} ticks:")
    print(f"  p50 {w['p50']:.3f} ms   p99 {w['p99']:.3f} ms   max {w['max']:.3f} ms")
    print(
        f"  p99 is {w['p99'] / 25.0:.0%} of the 25 ms goal; {w['writes']:.0%} of ticks "
        f"wrote a setpoint, {w['safe']:.0%} were safe stops"
    )
    print(f"  last decision: {last}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
