"""The agent end to end with a real config repository, the simulator and the health gate:
control never stops, whatever the commits do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.agent.run import Agent, AgentOptions
from reconciler.clock import ManualClock
from reconciler.config import load_site
from reconciler.devices.factory import open_site_devices
from reconciler.sim.simulator import SiteSimulator
from reconciler.source.controller import GitSource
from reconciler.status.model import ConditionType
from reconciler.telemetry.outbox import Outbox
from tests.rigs import git_agent, site_text_for
from tests.source.conftest import DEMO_TEXT, START, Upstream, allowed_signers, keypair


def site_text(sim: SiteSimulator, homes: int = 54) -> str:
    """The demo site file, with ``homes`` homes, pointing at the simulator."""
    return site_text_for(sim, DEMO_TEXT.replace("  homes: 54\n", f"  homes: {homes}\n"))


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
    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        git_agent(tmp_path, sim, clock) as rig,
    ):
        yield World(rig.upstream, sim, rig.source, rig.agent, clock)


async def test_good_commit_is_applied_after_the_health_gate(world: World) -> None:
    await world.source.sync_once()
    first = world.controlling_sha
    await world.ticks(4)
    status = world.source.status().snapshot()
    assert status.revisions.last_known_good == first
    assert status.condition(ConditionType.READY).status == "True"

    second = world.upstream.commit(site_text(world.sim, homes=60), "more homes")
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
        site_text(world.sim).replace("  tick_s: 4\n", "  tick_s: fast\n"), "oops"
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

    suspect = world.upstream.commit(site_text(world.sim, homes=70), "suspect")
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

    newer = world.upstream.commit(site_text(world.sim, homes=71), "fixed")
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


async def test_a_restarted_battery_shows_in_the_battery_settings_condition(
    world: World,
) -> None:
    await world.source.sync_once()
    await world.ticks(4)
    cond = world.source.status().condition(ConditionType.BATTERY_SETTINGS)
    assert (cond.status, cond.reason) == ("True", "AsDesired")
    world.sim.restart_battery()
    await world.ticks(3)
    snap = world.source.status().snapshot()
    found = [
        t
        for t in snap.transitions
        if t.type == ConditionType.BATTERY_SETTINGS and t.reason == "Reapplied"
    ]
    assert found, [(t.type, t.reason) for t in snap.transitions]
    assert "real_power_mode 0 -> 1" in found[-1].message
    # taken back: the next read-back finds everything as desired again
    assert snap.condition(ConditionType.BATTERY_SETTINGS).status == "True"
    assert world.sim.plant.battery.direct


async def test_a_solar_meter_blip_does_not_quarantine_a_good_revision(world: World) -> None:
    """The gate judges what the revision controls: a meter control does not use may fail a
    read without the revision being reverted."""
    await world.source.sync_once()
    await world.ticks(4)
    second = world.upstream.commit(site_text(world.sim, homes=60), "more homes")
    await world.source.sync_once()
    await world.ticks(1)
    world.sim.faults.exception("solar")
    blip = await world.agent.step()
    world.clock.advance(4)
    world.sim.faults.clear("solar")
    assert blip is not None and "solar" in blip.observation.errors
    await world.ticks(3)
    snap = world.source.status().snapshot()
    assert snap.quarantined == []
    assert snap.revisions.last_known_good == second


async def test_one_grid_meter_blip_is_tolerated_but_a_dead_grid_meter_is_not(
    world: World,
) -> None:
    await world.source.sync_once()
    good = world.controlling_sha
    await world.ticks(4)
    second = world.upstream.commit(site_text(world.sim, homes=60), "more homes")
    await world.source.sync_once()
    await world.ticks(1)
    world.sim.faults.exception("site")
    blip = await world.agent.step()
    world.clock.advance(4)
    world.sim.faults.clear("site")
    assert blip is not None and "site" in blip.observation.errors
    await world.ticks(3)
    snap = world.source.status().snapshot()
    assert snap.quarantined == [] and snap.revisions.last_known_good == second

    third = world.upstream.commit(site_text(world.sim, homes=61), "even more homes")
    await world.source.sync_once()
    world.sim.faults.exception("site")
    await world.ticks(2)
    assert world.controlling_sha == second
    snap = world.source.status().snapshot()
    assert [q.sha for q in snap.quarantined] == [third]
    assert good != second


def gate_of(text: str, ticks: int) -> str:
    return text.replace(
        "control:\n  tick_s: 4\n", f"control:\n  tick_s: 4\n  health_gate_ticks: {ticks}\n"
    )


async def test_the_site_files_health_gate_ticks_is_honoured_and_the_flag_overrides_it(
    tmp_path: Path,
) -> None:
    clock = ManualClock(START)
    site = load_site(Path(__file__).resolve().parents[2] / "sites" / "demo.yaml")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        git_agent(tmp_path / "a", sim, clock, gate_of(DEMO_TEXT, 2), health_gate_ticks=None) as rig,
    ):
        await rig.source.sync_once()
        first = rig.source.current()
        await rig.agent.step()
        clock.advance(4)
        assert rig.source.status().snapshot().revisions.last_known_good is None
        await rig.agent.step()
        clock.advance(4)
        snap = rig.source.status().snapshot()
        assert first is not None and snap.revisions.last_known_good == first.sha
    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        git_agent(tmp_path / "b", sim, clock, gate_of(DEMO_TEXT, 2), health_gate_ticks=4) as rig,
    ):
        await rig.source.sync_once()
        for _ in range(3):
            await rig.agent.step()
            clock.advance(4)
        applied = rig.source.status().snapshot().condition(ConditionType.APPLIED)
        assert "3/4 healthy ticks" in applied.message
        assert "--health-gate-ticks" in applied.message
        await rig.agent.step()
        assert rig.source.status().snapshot().revisions.last_known_good is not None


async def test_an_unverifiable_last_known_good_leaves_the_battery_uncommanded(
    tmp_path: Path,
) -> None:
    """With verification on, a restart on an unsigned last-known-good runs nothing: the
    battery gets no command (its heartbeat timeout holds it at 0 kW) until a signed commit
    arrives."""
    clock = ManualClock(START)
    site = load_site(Path(__file__).resolve().parents[2] / "sites" / "demo.yaml")
    keys = tmp_path / "keys"
    keys.mkdir()
    key = keypair(keys, "release")
    signers = allowed_signers(keys, key)
    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        git_agent(tmp_path, sim, clock) as rig,
    ):
        await rig.source.sync_once()
        for _ in range(4):
            await rig.agent.step()
            clock.advance(4)
        assert rig.source.status().snapshot().revisions.last_known_good is not None
        await rig.agent.loop.close()  # type: ignore[union-attr]

        settings = rig.source.settings.model_copy(
            update={"verify": "ssh", "allowed_signers_file": signers}
        )
        source = GitSource(settings, clock=clock)
        outbox = Outbox(tmp_path / "outbox-2.sqlite")
        agent = Agent(
            source,
            clock=clock,
            store=outbox,
            options=AgentOptions(http_port=None),
            devices=lambda s, c: open_site_devices(s, clock=c),
        )
        try:
            writes = len(sim.writes("bess"))
            for _ in range(3):
                assert await agent.step() is None
                clock.advance(4)
            assert len(sim.writes("bess")) == writes
            ready = source.status().snapshot().condition(ConditionType.READY)
            assert (ready.status, ready.reason) == ("False", "NoRevision")
            assert "Unsigned" in ready.message or "not signed" in ready.message

            signed = rig.upstream.commit(site_text(sim, homes=62), "signed", signing_key=key)
            await source.sync_once()
            result = await agent.step()
            assert result is not None and source.current().sha == signed  # type: ignore[union-attr]
            assert len(sim.writes("bess")) > writes
        finally:
            if agent.loop is not None:
                await agent.loop.close()
            outbox.close()
