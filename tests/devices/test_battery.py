"""The PowerPack driver against the simulated battery: start-up and command sequence,
setpoints, heartbeat, and the battery's physics."""

from __future__ import annotations

import pytest

from reconciler.clock import ManualClock
from reconciler.config.model import Site
from reconciler.config.resolve import resolve_profile
from reconciler.devices.factory import open_site_devices
from reconciler.devices.powerpack import PowerPackBattery
from reconciler.sim.simulator import SiteSimulator

from .conftest import NOON, command


def writes_by_register(sim: SiteSimulator, site: Site) -> list[tuple[str, int]]:
    """(register name, first word) of every register each write request touched, in order."""
    profile = resolve_profile(site, site.devices.battery.profile)
    by_address = {reg.address: name for name, reg in profile.registers.items()}
    out: list[tuple[str, int]] = []
    for req in sim.writes(site.devices.battery.name):
        for i, word in enumerate(req.values):
            name = by_address.get(req.address + i)
            if name is not None:
                out.append((name, word))
    return out


async def started(sim_site: Site, sim: SiteSimulator) -> PowerPackBattery:
    battery, _ = open_site_devices(sim_site, clock=sim.clock)
    await battery.start()
    return battery


async def test_start_writes_ramps_and_always_active(sim: SiteSimulator, sim_site: Site) -> None:
    battery = await started(sim_site, sim)
    names = [n for n, _ in writes_by_register(sim, sim_site)]
    assert sorted(names) == ["always_active", "ramp_down", "ramp_up"]
    b = sim.plant.battery
    assert b.ramp_up_kw_per_s == pytest.approx(100.0)
    assert b.ramp_down_kw_per_s == pytest.approx(100.0)
    assert b.always_active == 1
    assert not b.direct  # direct mode only after the first command
    await battery.close()


async def test_setpoint_written_through_the_driver_shows_in_the_battery(
    sim: SiteSimulator, sim_site: Site
) -> None:
    battery = await started(sim_site, sim)
    await command(battery, 300.0)
    assert sim.plant.battery.setpoint_kw == pytest.approx(300.0)
    assert sim.plant.battery.direct
    await sim.step(1)
    assert sim.plant.battery_kw == pytest.approx(100.0)  # ramping at 100 kW/s
    await sim.step(4)
    assert sim.plant.battery_kw == pytest.approx(300.0)
    reading = await battery.read()
    assert reading.target_power_kw == pytest.approx(300.0)
    assert reading.command_source == 1
    assert reading.available_blocks == sim.plant.battery.available_blocks
    assert reading.soe_kwh == pytest.approx(sim.plant.soe_kwh, abs=0.001)
    assert reading.at == sim.clock.now()
    await battery.close()


async def test_command_sequence_toggles_heartbeat_and_enables_direct_mode_once(
    sim: SiteSimulator, sim_site: Site
) -> None:
    battery = await started(sim_site, sim)
    sim.plant.battery.heartbeat_timeout_s = 30  # as delivered: not the site's timeout
    before = len(sim.writes())
    for kw in (10.0, 20.0, -30.0, 40.0):
        await command(battery, kw)
    sequence = writes_by_register(sim, sim_site)[3:]
    # one per command, plus mode and timeout once: later read-backs find them as wanted
    assert len(sim.writes()) - before == 4 + 2
    beats = [w for n, w in sequence if n == "heartbeat"]
    assert beats == [0xAA55, 0x55AA, 0xAA55, 0x55AA]
    names = [n for n, _ in sequence]
    assert names[:2] == ["power_command", "heartbeat"]
    assert names.count("real_power_mode") == 1 and names.count("heartbeat_timeout") == 1
    # mode and timeout come right after the first command, before the second
    assert set(names[2:4]) == {"real_power_mode", "heartbeat_timeout"}
    assert sim.plant.battery.heartbeat_timeout_s == sim_site.devices.battery.heartbeat_timeout_s
    assert sim.plant.battery.setpoint_kw == pytest.approx(40.0)
    await battery.close()


async def test_heartbeat_timeout_stops_the_battery(sim: SiteSimulator, sim_site: Site) -> None:
    battery = await started(sim_site, sim)
    for _ in range(6):  # commands every 4 s keep it going
        await command(battery, 200.0)
        await sim.step(4)
    assert sim.plant.battery_kw == pytest.approx(200.0)
    assert not sim.plant.battery.heartbeat_lost
    await sim.step(10.5)  # 14.5 s since the last heartbeat: past the 10 s timeout
    assert sim.plant.battery.heartbeat_lost
    await sim.step(3)  # ramps down at 100 kW/s
    assert sim.plant.battery_kw == 0.0
    assert (await battery.read()).target_power_kw == 0.0
    # A new command (with a new heartbeat) brings it back.
    await command(battery, 100.0)
    await sim.step(2)
    assert sim.plant.battery_kw == pytest.approx(100.0)
    await battery.close()


async def test_charging_stores_power_times_efficiency(sim: SiteSimulator, sim_site: Site) -> None:
    battery = await started(sim_site, sim)
    soe0 = sim.plant.soe_kwh
    await command(battery, -500.0)
    await sim.step(10)  # ramp done after 5 s
    soe1 = sim.plant.soe_kwh
    for _ in range(225):  # 30 minutes at -500 kW, a command every 8 s
        await command(battery, -500.0)
        await sim.step(8)
    # 500 kW for 0.5 h is 250 kWh drawn and 212.5 kWh stored at 0.85
    assert sim.plant.soe_kwh - soe1 == pytest.approx(250.0 * 0.85, rel=1e-6)
    assert soe1 > soe0
    await battery.close()


async def test_battery_respects_nameplate_power_and_energy(demo_site: Site) -> None:
    site = demo_site.model_copy(
        update={"simulation": demo_site.simulation.model_copy(update={"initial_soe": "99%"})}
    )
    mclock = ManualClock(NOON)
    async with SiteSimulator(site, clock=mclock, ports="ephemeral") as sim:
        battery, _ = open_site_devices(sim.site_for_ephemeral_ports(), clock=mclock)
        await battery.start()
        for _ in range(60):  # ask for more than nameplate, for 5 minutes
            await command(battery, -2000.0)
            await sim.step(5)
            assert sim.plant.battery_kw >= -565.0 - 1e-9
        # full: charging stopped by itself at nameplate energy
        assert sim.plant.soe_kwh == pytest.approx(1280.0)
        assert sim.plant.battery_kw == 0.0
        await battery.close()
