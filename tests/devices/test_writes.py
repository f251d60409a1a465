"""Writes outside the declared range, to read-only registers or from a read-only session
are refused before anything is sent (the simulator's request log proves it)."""

from __future__ import annotations

import pytest

from reconciler.config.model import Site
from reconciler.devices.errors import WriteRefused
from reconciler.devices.factory import open_site_devices
from reconciler.sim.simulator import SiteSimulator


async def test_out_of_range_setpoint_is_refused_before_sending(
    sim: SiteSimulator, sim_site: Site
) -> None:
    battery, _ = open_site_devices(sim_site, clock=sim.clock)
    await battery.start()
    sent = len(sim.requests)
    with pytest.raises(WriteRefused, match="above the allowed maximum 5000") as err:
        await battery.command(5000.5)
    assert err.value.device == "bess"
    assert err.value.register == "power_command"
    assert len(sim.requests) == sent
    assert sim.plant.battery.setpoint_kw == 0.0
    # the heartbeat did not advance either: the next command starts the sequence
    await battery.command(10.0)
    assert sim.writes("bess")[-1].values[-1] == 0xAA55
    await battery.close()


async def test_write_to_read_only_register_is_refused(sim: SiteSimulator, sim_site: Site) -> None:
    battery, _ = open_site_devices(sim_site, clock=sim.clock)
    sent = len(sim.requests)
    with pytest.raises(WriteRefused, match="read-only"):
        await battery.transport.write("soe", 100.0)
    with pytest.raises(WriteRefused, match="no such register"):
        await battery.transport.write("warp_drive", 1)
    # one bad value in a batch stops the whole batch
    with pytest.raises(WriteRefused, match="heartbeat"):
        await battery.transport.write_many({"power_command": 10.0, "heartbeat": 7})
    assert len(sim.requests) == sent
    await battery.close()


async def test_read_only_session_never_writes(sim: SiteSimulator, sim_site: Site) -> None:
    battery, _ = open_site_devices(sim_site, clock=sim.clock, read_only=True)
    await battery.read()
    with pytest.raises(WriteRefused, match="read-only"):
        await battery.command(10.0)
    assert sim.writes() == []
    await battery.close()
