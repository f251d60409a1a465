"""An agent that restarts reports the same replayed prices, NIV and revision again: the
database stores a value once, and a change (or a return to an earlier value) again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from reconciler.agent.loop import TickResult
from reconciler.agent.run import AgentOptions
from reconciler.clock import ManualClock
from reconciler.config import load_site
from reconciler.control.signals import FeedSignals
from reconciler.markets.memory import ReplayImbalanceFeed
from reconciler.sim.simulator import SiteSimulator
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader
from tests.rigs import file_agent
from tests.source.conftest import ROOT

# Monday 15 January 2024, 15:30 UTC: the shipped prices cover it.
START = datetime(2024, 1, 15, 15, 30, tzinfo=UTC)
GUARD_S = 60.0  # test-hang protection only


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


async def _run_agent(
    tmp_path: Path, sim: SiteSimulator, clock: ManualClock, url: str, ticks: int
) -> None:
    stop = asyncio.Event()
    seen: list[TickResult] = []

    def on_tick(result: TickResult) -> None:
        seen.append(result)
        if len(seen) >= ticks:
            stop.set()

    async with file_agent(
        tmp_path,
        sim,
        clock,
        database_url=url,
        options=AgentOptions(http_port=None),
        replay=FeedSignals(imbalance=ReplayImbalanceFeed.january_2024(publish_delay_s=60)),
        on_tick=on_tick,
    ) as rig:
        await asyncio.wait_for(rig.agent.run(stop), GUARD_S)
        assert rig.outbox.pending() == 0  # the final drain uploaded everything


async def test_a_restart_stores_no_value_or_revision_twice(
    tmp_path: Path, migrated_url: str
) -> None:
    clock = ManualClock(START)
    site = load_site(ROOT / "sites" / "demo.yaml")
    async with SiteSimulator(site, clock=clock, ports="ephemeral") as sim:
        await _run_agent(tmp_path, sim, clock, migrated_url, ticks=40)
        first = _rows(migrated_url, "SELECT type, time, value FROM flux.market_data")
        clock.advance(90)  # restarted a minute and a half later, same settlement period
        await _run_agent(tmp_path, sim, clock, migrated_url, ticks=5)
    assert {t for t, _, _ in first} == {"imbalance_price", "niv"}
    twice = _rows(
        migrated_url,
        "SELECT type, time, value, count(*) FROM flux.market_data"
        " GROUP BY 1, 2, 3 HAVING count(*) > 1",
    )
    assert twice == []
    assert sorted(_rows(migrated_url, "SELECT type, time, value FROM flux.market_data")) == sorted(
        first
    )
    revisions = _rows(
        migrated_url, "SELECT sha, state, count(*) FROM flux.config_revisions GROUP BY 1, 2"
    )
    assert len(revisions) == 1 and revisions[0][1:] == ("in_control", 1)


T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _market(box: Outbox, value: float, fetched_min: int, period: int = 0) -> None:
    start = T0 + timedelta(minutes=30 * period)
    box.add_market(
        "s",
        type="imbalance_price",
        period_start=start,
        settlement_date=start.date(),
        settlement_period=25 + period,
        value=value,
        source="modo",
        fetched_at=T0 + timedelta(minutes=fetched_min),
    )


def test_values_and_revisions_are_stored_when_they_change(
    migrated_url: str, outbox: Outbox
) -> None:
    uploader = Uploader(outbox, migrated_url, batch_size=3)
    # Period 0: A, A (a restart), B (revised), A (back again), A. Period 1: C, C.
    for value, fetched in ((10.0, 0), (10.0, 1), (12.5, 2), (10.0, 3), (10.0, 4)):
        _market(outbox, value, fetched)
    _market(outbox, 7.0, 5, period=1)
    _market(outbox, 7.0, 6, period=1)
    assert uploader.drain().ok  # three batches: repeats on both sides of their edges
    _market(outbox, 7.0, 7, period=1)  # after another restart, in a later upload
    # In control: a, a (restart), b, a (reverted to it), a (restart).
    for minute, sha in enumerate(("a", "a", "b", "a", "a")):
        outbox.add_revision("s", sha, T0 + timedelta(minutes=minute), state="in_control")
    assert uploader.drain().ok
    minute = timedelta(minutes=1)
    assert _rows(
        migrated_url, "SELECT time, value, fetched_at FROM flux.market_data ORDER BY 1, 3"
    ) == [
        (T0, 10.0, T0),
        (T0, 12.5, T0 + 2 * minute),
        (T0, 10.0, T0 + 3 * minute),
        (T0 + 30 * minute, 7.0, T0 + 5 * minute),
    ]
    assert _rows(migrated_url, "SELECT time, sha FROM flux.config_revisions ORDER BY 1") == [
        (T0, "a"),
        (T0 + 2 * minute, "b"),
        (T0 + 3 * minute, "a"),
    ]
    uploader.close()
