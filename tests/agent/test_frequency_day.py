"""A simulated day of frequency response: the grid wanders, events come (steps, drops,
over-frequency), and the SoE is kept in the band the contract needs. The agent's own loop
and drivers on the simulator's registers in-process (as a backtest runs them), the fast
path every 2 s between 4 s ticks."""

from __future__ import annotations

from datetime import timedelta

import pytest

from reconciler.backtest.engine import run_now
from reconciler.clock import ManualClock
from reconciler.config.loader import check_site_text
from reconciler.control.modes.frequency_response import band_kwh
from tests.agent.test_frequency import FR_TEXT
from tests.rigs import in_process
from tests.source.conftest import START

pytestmark = pytest.mark.slow

#: (hour of the day, event): three kinds, some while the SoE is still recovering.
EVENTS = [(1, "drop"), (3, "step"), (3.1, "step"), (6, "high"), (9, "drop"), (9.05, "drop"),
          (14, "high"), (14.02, "high"), (18, "step"), (22, "drop")]  # fmt: skip


def test_a_day_of_wander_and_events_keeps_the_soe_in_the_band() -> None:
    text = FR_TEXT.replace("fast_interval_s: 0.2", "fast_interval_s: 2.0")
    site, problems = check_site_text(text, "fr.yaml")
    assert site is not None, problems
    clock = ManualClock(START)
    sim, loop = in_process(site, clock)
    entry = site.schedule[0]
    low, high = band_kwh(site, entry.params)  # type: ignore[union-attr]
    pending = sorted(EVENTS)
    soe: list[float] = []
    outside_after_recovery = 0
    end = START + timedelta(days=1)
    last_event = START - timedelta(hours=1)
    while clock.now() < end:
        hours = (clock.now() - START).total_seconds() / 3600
        if pending and hours >= pending[0][0]:
            sim.catch_up()
            sim.plant.frequency_event(pending.pop(0)[1])  # type: ignore[arg-type]
            last_event = clock.now()
        tick = run_now(loop.tick())
        assert not tick.decision.safe_stop, tick.decision.reason
        for _ in range(2):  # the fast path between ticks
            clock.advance(2.0)
            run_now(loop.fast_tick())
        clock.set(tick.at + timedelta(seconds=4))
        soe.append(sim.plant.soe_kwh)
        # an hour after the last event the band must have been regained
        if (clock.now() - last_event) > timedelta(hours=1) and not low - 1 <= soe[-1] <= high + 1:
            outside_after_recovery += 1
    assert site.soe_min_kwh - 1e-6 <= min(soe) and max(soe) <= site.soe_max_kwh + 1e-6
    assert outside_after_recovery == 0
    block = loop.frequency.block
    assert block is not None and block.seconds > 3000
    # Delivered within tolerance nearly all the time (misses: the ramp's second at events).
    assert block.seconds_within / block.seconds > 0.97, block
