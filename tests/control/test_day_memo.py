"""The day memo a caller keeps in its ControlState (the active entries and rates of a span,
the last settlement period, what modes keep for the day) never changes a decision: the
same instants decided with one memo kept throughout, in time order, and with a fresh one
each time give equal decisions, reasons included, across midnights and clock changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.config.loader import load_site
from reconciler.config.model import Site
from reconciler.control.core import decide
from reconciler.control.types import (
    BatteryReading,
    ControlState,
    MeterReading,
    Observation,
    Signals,
)
from reconciler.markets.memory import ReplayImbalanceFeed

ROOT = Path(__file__).resolve().parents[2]
SITES = [load_site(ROOT / "sites" / f"{name}.yaml") for name in ("demo", "hmce")]
FEED = ReplayImbalanceFeed.january_2024(wrap=True)
# Weekdays and weekends, the nights the clocks change (2024-03-31, 2024-10-27).
STARTS = [
    datetime(2024, 1, 15, 5, tzinfo=UTC),
    datetime(2024, 3, 29, 12, tzinfo=UTC),
    datetime(2024, 10, 25, 12, tzinfo=UTC),
]


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(SITES),
    st.sampled_from(STARTS),
    st.lists(
        st.tuples(
            st.integers(0, 3 * 86400),  # seconds from the start
            st.floats(0, 1280),  # SoE kWh
            st.floats(-400, 300),  # site power kW
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_decisions_with_the_day_memo_equal_decisions_without(
    site: Site, start: datetime, ticks: list[tuple[int, float, float]]
) -> None:
    kept = ControlState()
    for seconds, soe, grid_kw in sorted(ticks):
        at = start + timedelta(seconds=seconds)
        obs = Observation(
            battery=BatteryReading(at, soe, 0.0, 9, 1),
            meters={site.grid_meter_name: MeterReading(at, grid_kw, frequency_hz=50.0)},
        )
        snapshot = Signals(
            imbalance_price=FEED.imbalance_price(at), imbalance_volume=FEED.imbalance_volume(at)
        )
        with_memo = decide(site, at, obs, snapshot, kept)
        fresh = decide(site, at, obs, snapshot, ControlState(kept.last_target_kw, kept.last_at))
        assert with_memo == fresh
        assert with_memo.reason == fresh.reason
        kept = ControlState(with_memo.target_kw, at, kept.plans)
