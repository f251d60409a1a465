"""Frequency response on the simulator over Modbus TCP: the fast path delivers a step
event within a second, and a frozen frequency stops the response."""

from __future__ import annotations

import asyncio
from datetime import datetime
from functools import partial
from pathlib import Path

from reconciler.agent.http import render_metrics
from reconciler.agent.loop import TickResult
from reconciler.agent.run import Agent, AgentOptions
from reconciler.clock import ManualClock
from reconciler.config import load_site
from reconciler.config.model import FrequencyResponseParams
from reconciler.control.modes.frequency_response import response_kw
from reconciler.sim.simulator import SiteSimulator
from tests.rigs import file_agent, until
from tests.source.conftest import DEMO_TEXT, ROOT, START

GUARD_S = 60.0  # test-hang protection only

FR_TEXT = (
    DEMO_TEXT.replace("ramp_up_kw_per_s: 100", "ramp_up_kw_per_s: 1000")
    .replace("ramp_down_kw_per_s: 100", "ramp_down_kw_per_s: 1000")
    .replace(
        "schedule:\n",
        "schedule:\n  - name: dynamic containment\n    mode: frequency_response\n"
        "    params: {low_kw: 300, high_kw: 200, fast_interval_s: 0.2}\n",
        1,
    )
)


#: Looks often enough for the assertions on simulated time below.
_until = partial(until, every_s=0.001)


def _ticks(agent: Agent) -> int:
    return agent.loop.ticks if agent.loop is not None else 0


async def test_a_step_to_49_5_hz_is_delivered_within_a_second_and_a_freeze_stops_it(
    tmp_path: Path,
) -> None:
    clock = ManualClock(START)
    site = load_site(ROOT / "sites" / "demo.yaml")
    grid = site.grid_meter_name
    stop = asyncio.Event()
    ticks: list[TickResult] = []
    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        file_agent(
            tmp_path,
            sim,
            clock,
            text=FR_TEXT,
            options=AgentOptions(http_port=None),
            on_tick=ticks.append,
        ) as rig,
    ):
        task = asyncio.create_task(rig.agent.run(stop))
        await _until(lambda: _ticks(rig.agent) >= 3, "a few ticks")
        assert rig.agent.loop is not None
        assert rig.agent.loop.fast_ticks > 0  # between ticks, every 0.2 s
        battery = sim.plant.battery
        before = battery.power_kw
        sim.faults.frequency(grid, "step")
        began: datetime = clock.now()
        crossed: list[datetime] = []

        params = FrequencyResponseParams(low_kw=300, high_kw=200)

        def delivered() -> bool:
            due = response_kw(params, sim.plant.frequency_hz)  # the curve at 49.5 Hz +- noise
            if due > 250 and battery.power_kw >= 0.95 * due and not crossed:
                crossed.append(clock.now())
            return bool(crossed)

        await _until(delivered, "95% of the curve's value delivered")
        took = (crossed[0] - began).total_seconds()
        assert took <= 1.0, f"took {took:.2f} s (battery {before:.0f} -> {battery.power_kw:.0f} kW)"

        await _until(lambda: (clock.now() - crossed[0]).total_seconds() > 3, "3 s delivered")
        block = rig.agent.loop.frequency.block
        assert block is not None and block.entry == "dynamic containment"
        assert block.block_start.hour in (3, 7, 11, 15, 19, 23)  # January: local = UTC
        assert (block.block_end - block.block_start).total_seconds() == 4 * 3600
        # Every second counted once: the ramp's second or so may miss, the rest deliver.
        assert block.seconds >= 4 and block.seconds_within >= block.seconds - 2
        assert block.seconds_stale == 0
        within = block.seconds_within

        # Frozen registers: the frequency stops moving; after 1 s no response is given.
        sim.faults.freeze(grid)
        frozen_at = clock.now()
        await _until(
            lambda: (
                (clock.now() - frozen_at).total_seconds() > 2
                and bool(ticks)
                and ticks[-1].at > frozen_at
            ),
            "a tick after the freeze",
        )
        await _until(lambda: ticks[-1].at > frozen_at + (clock.now() - frozen_at) / 2, "later")
        last = ticks[-1].decision
        assert "frequency stale" in last.reason or last.safe_stop, last.reason
        assert abs(last.target_kw) < 0.5 * 300
        block = rig.agent.loop.frequency.block
        assert block is not None and block.seconds_stale >= 1 and block.seconds_within >= within
        snap = rig.agent.status.snapshot()
        assert snap.frequency is not None and snap.frequency.seconds == block.seconds
        metrics = render_metrics(snap)
        labels = 'site="demo",entry="dynamic containment"'
        assert f"flux_frequency_response_seconds_stale{{{labels}}} {block.seconds_stale}" in metrics
        stop.set()
        await asyncio.wait_for(task, GUARD_S)
