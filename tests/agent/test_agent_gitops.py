"""The agent end to end with a real config repository, the simulator and the health gate:
control never stops, whatever the commits do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.agent.run import Agent, AgentOptions
from reconciler.agent.status import ConditionType
from reconciler.clock import ManualClock
from reconciler.config import load_site
from reconciler.devices.factory import open_site_devices
from reconciler.sim.simulator import SiteSimulator
from reconciler.source.controller import GitSource
from reconciler.source.settings import SourceSettings
from reconciler.telemetry.outbox import Outbox
from tests.source.conftest import DEMO_TEXT, START, Upstream, git


def site_text_for(sim: SiteSimulator, homes: int = 54) -> str:
    """The demo site file pointing at the simulator's ephemeral ports."""
    text = DEMO_TEXT.replace("  homes: 54\n", f"  homes: {homes}\n")
    for name, port in (
        ("bess", 15020),
        ("site", 15021),
        ("battery_meter", 15022),
        ("solar", 15023),
    ):
        text = text.replace(f"port: {port}\n", f"port: {sim.port_of(name)}\n")
    return text


@dataclass
class World:
    upstream: Upstream
    sim: SiteSimulator
    source: GitSource
    agent: Agent
    clock: ManualClock

    async def ticks(self, n: int) -> None:
        for _ in range(n):
            await self.agent.step()
            self.clock.advance(4)

    @property
    def controlling_sha(self) -> str | None:
        rev = self.source.current()
        return rev.sha if rev else None


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = ManualClock(START)
    site = load_site(Path(__file__).resolve().parents[2] / "sites" / "demo.yaml")
    async with SiteSimulator(site, clock=clock, ports="ephemeral") as sim:
        repo = tmp_path / "config"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        upstream = Upstream(repo)
        upstream.commit(site_text_for(sim), "first")
        settings = SourceSettings(
            repo=str(repo),
            site="demo",
            branch="main",
            interval_s=60,
            jitter_s=0,
            health_gate_ticks=3,
            state_dir=tmp_path / "state",
        )
        source = GitSource(settings, clock=clock)
        outbox = Outbox(tmp_path / "outbox.sqlite")
        agent = Agent(
            source,
            clock=clock,
            outbox=outbox,
            options=AgentOptions(http_port=None),
            devices=lambda s, c: open_site_devices(s, clock=c),
        )
        yield World(upstream, sim, source, agent, clock)
        if agent.loop is not None:
            await agent.loop.close()
        outbox.close()


async def test_good_commit_is_applied_after_the_health_gate(world: World) -> None:
    await world.source.sync_once()
    first = world.controlling_sha
    await world.ticks(4)
    status = world.source.status().snapshot()
    assert status.revisions.last_known_good == first
    assert status.condition(ConditionType.READY).status == "True"

    second = world.upstream.commit(site_text_for(world.sim, homes=60), "more homes")
    await world.source.sync_once()
    assert world.controlling_sha == second  # staged: in control, not yet trusted
    assert world.source.status().snapshot().revisions.last_known_good == first
    await world.ticks(4)
    assert world.source.status().snapshot().revisions.last_known_good == second
    assert world.agent.loop is not None
    assert world.agent.loop.ticks == 8


async def test_invalid_commit_is_refused_and_control_goes_on(world: World) -> None:
    await world.source.sync_once()
    good = world.controlling_sha
    await world.ticks(4)
    bad = world.upstream.commit(
        site_text_for(world.sim).replace("  tick_s: 4\n", "  tick_s: fast\n"), "oops"
    )
    await world.source.sync_once()
    assert world.controlling_sha == good
    validated = world.source.status().snapshot().condition(ConditionType.VALIDATED)
    assert validated.status == "False"
    assert "sites/demo.yaml:" in validated.message and "control.tick_s" in validated.message
    writes_before = len(world.sim.writes("bess"))
    await world.ticks(3)
    assert world.agent.loop is not None and world.agent.loop.ticks == 7
    assert len(world.sim.writes("bess")) > writes_before  # still commanding the battery
    assert bad not in {world.controlling_sha}


async def test_failing_health_gate_reverts_and_quarantines_until_a_newer_commit(
    world: World,
) -> None:
    await world.source.sync_once()
    good = world.controlling_sha
    await world.ticks(4)

    suspect = world.upstream.commit(site_text_for(world.sim, homes=70), "suspect")
    await world.source.sync_once()
    assert world.controlling_sha == suspect
    # The battery stops following: every inverter block trips.
    world.sim.plant.battery.available_blocks = 0
    await world.ticks(3)
    assert world.controlling_sha == good
    snap = world.source.status().snapshot()
    assert suspect in {q.sha for q in snap.quarantined}

    # Not retried while it is the head, even once the battery follows again.
    world.sim.plant.battery.available_blocks = world.sim.plant.battery.total_blocks
    await world.source.sync_once()
    await world.ticks(3)
    assert world.controlling_sha == good

    newer = world.upstream.commit(site_text_for(world.sim, homes=71), "fixed")
    await world.source.sync_once()
    assert world.controlling_sha == newer
    await world.ticks(4)
    assert world.source.status().snapshot().revisions.last_known_good == newer


async def test_unreachable_remote_keeps_control_on_the_last_known_good(
    world: World, tmp_path: Path
) -> None:
    await world.source.sync_once()
    good = world.controlling_sha
    await world.ticks(4)
    world.upstream.path.rename(tmp_path / "gone")
    await world.source.sync_once()
    ready = world.source.status().snapshot().condition(ConditionType.SOURCE_READY)
    assert ready.status == "False"
    await world.ticks(3)
    assert world.controlling_sha == good
    assert world.agent.loop is not None and world.agent.loop.ticks == 7
