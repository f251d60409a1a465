"""A silent network partition (packets vanish, nothing is closed) never holds up an
upload beyond its deadline, nor the agent's stop beyond the final drain's budget; the
rows stay in the outbox for next time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.agent.loop import TickResult
from reconciler.agent.run import AgentOptions
from reconciler.clock import ManualClock
from reconciler.config import load_site
from reconciler.control.types import BatteryReading
from reconciler.sim.simulator import SiteSimulator
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader
from tests.rigs import file_agent
from tests.source.conftest import ROOT, START

from .conftest import BlackHole, Proxy, url_for

T0 = datetime(2026, 3, 2, tzinfo=UTC)
# Test-hang protection only: far above what a stop takes, far below a TCP timeout.
GUARD_S = 45.0


def _bess(n: int) -> list[BatteryReading]:
    return [BatteryReading(T0 + timedelta(minutes=i), 500.0, 10.0, 4, 1) for i in range(n)]


async def test_an_upload_into_a_silent_partition_ends_at_its_deadline(
    migrated_url: str, dbname: str, outbox: Outbox, proxy: Proxy
) -> None:
    uploader = Uploader(outbox, url_for(dbname, port=proxy.port), attempts=1, attempt_timeout_s=1.0)
    outbox.add_bess_many("s", "bess", _bess(10))
    assert uploader.upload_once().ok  # the session is up
    proxy.freeze()  # then the link goes silent mid-session: no reset, no FIN
    outbox.add_bess_many("s", "bess", _bess(20)[10:])
    result = await asyncio.wait_for(asyncio.to_thread(uploader.upload_once), GUARD_S)
    assert not result.ok
    assert "did not answer" in (result.error or "")
    assert outbox.pending() == 10  # nothing lost: they wait for the next attempt
    uploader.close()


async def test_a_database_that_never_answers_times_out_the_connect(
    outbox: Outbox, black_hole: BlackHole
) -> None:
    uploader = Uploader(outbox, black_hole.url(), attempts=1, connect_timeout_s=1.0)
    outbox.add_bess_many("s", "bess", _bess(5))
    result = await asyncio.wait_for(asyncio.to_thread(uploader.upload_once), GUARD_S)
    assert not result.ok and "timeout" in (result.error or "")
    assert outbox.pending() == 5


async def test_sigterm_is_not_held_up_by_a_database_that_never_answers(
    tmp_path: Path, black_hole: BlackHole
) -> None:
    clock = ManualClock(START)
    site = load_site(ROOT / "sites" / "demo.yaml")
    stop = asyncio.Event()
    ticks: list[TickResult] = []

    def on_tick(result: TickResult) -> None:
        ticks.append(result)
        if len(ticks) >= 5:
            stop.set()  # what SIGTERM does

    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        file_agent(
            tmp_path,
            sim,
            clock,
            database_url=black_hole.url(),
            options=AgentOptions(http_port=None),
            on_tick=on_tick,
        ) as rig,
    ):
        await asyncio.wait_for(rig.agent.run(stop), GUARD_S)
        final = rig.agent.final_upload
        assert final is not None and not final.ok
        assert rig.outbox.pending() > 0  # kept for the next start, not lost
    assert len(ticks) >= 5


async def test_sigterm_is_not_held_up_by_an_upload_hung_in_a_silent_partition(
    tmp_path: Path, migrated_url: str, dbname: str, proxy: Proxy
) -> None:
    clock = ManualClock(START)
    site = load_site(ROOT / "sites" / "demo.yaml")
    stop = asyncio.Event()
    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        file_agent(
            tmp_path,
            sim,
            clock,
            database_url=url_for(dbname, port=proxy.port),
            options=AgentOptions(
                http_port=None,
                upload_interval_s=0.05,
            ),
        ) as rig,
    ):
        task = asyncio.create_task(rig.agent.run(stop))
        uploader = rig.agent.uploader
        for _ in range(600):
            if uploader.state.last_success_at is not None:
                break
            await asyncio.sleep(0.05)
        assert uploader.state.last_success_at is not None, "the first upload never happened"
        proxy.freeze()
        sent = uploader.state.sent_total
        await asyncio.sleep(0.5)  # the next uploads go into the partition and hang there
        assert uploader.state.sent_total == sent
        stop.set()
        await asyncio.wait_for(task, GUARD_S)
        final = rig.agent.final_upload
        assert final is not None and not final.ok
        assert rig.outbox.pending() > 0
