"""Every register of both profiles decodes, over real Modbus TCP, to what the simulator
put there (including PT/CT scaling of the meters)."""

from __future__ import annotations

import math

import pytest

from reconciler.config.model import Site
from reconciler.config.resolve import resolve_profile
from reconciler.devices.codec import Ratios, Value, factor
from reconciler.devices.factory import open_site_devices
from reconciler.devices.transport import ModbusTransport
from reconciler.sim.simulator import SiteSimulator

from .conftest import command


def assert_decodes_to(profile_name: str, site: Site, got: Value, want: Value, name: str) -> None:
    reg = resolve_profile(site, profile_name).registers[name]
    if isinstance(want, str):
        assert got == want, name
        return
    assert isinstance(got, int | float), name
    if reg.type.value == "f32":
        assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-6), (name, got, want)
    else:
        # Integers carry the value to the nearest raw step (e.g. 0.001 kWh, 0.1 kWh).
        step = abs(factor(reg, Ratios()))
        assert abs(got - want) <= step / 2 + 1e-9, (name, got, want)


async def test_every_register_of_every_device_decodes_to_the_simulated_value(
    sim: SiteSimulator, sim_site: Site
) -> None:
    battery, _meters = open_site_devices(sim_site, clock=sim.clock)
    await battery.start()
    for _ in range(120):  # charging for 10 minutes: counters and SoE have moved
        await command(battery, -250.0)
        await sim.step(5)
    assert sim.plant.battery_kw == pytest.approx(-250.0)
    devices = [(sim_site.devices.battery.name, sim_site.devices.battery)]
    devices += list(sim_site.devices.meters.items())
    for name, dev in devices:
        transport = ModbusTransport.for_device(name, dev, resolve_profile(sim_site, dev.profile))
        got = await transport.read()
        want = sim.values(name)
        profile = resolve_profile(sim_site, dev.profile)
        assert set(got) == set(profile.registers), name
        for reg_name, value in got.items():
            assert_decodes_to(dev.profile, sim_site, value, want[reg_name], reg_name)
        await transport.close()
    await battery.close()


async def test_meter_scaling_by_ct_ratio_is_the_physical_value(
    sim: SiteSimulator, sim_site: Site
) -> None:
    """The demo's site meter has a 400/5 CT: the driver still reads the site's power."""
    _, meters = open_site_devices(sim_site, clock=sim.clock)
    reading = await meters["site"].read()
    assert reading.power_kw == pytest.approx(sim.plant.grid_kw, rel=1e-5)
    assert reading.current_avg == pytest.approx(sim.plant.meters["site"].current_a, rel=1e-5)
    # ... and on the wire the secondary value is 80 times smaller.
    reg = resolve_profile(sim_site, "acuvim-ii").registers["power_total"]
    transport = ModbusTransport.for_device(
        "raw",
        sim_site.devices.meters["site"],
        resolve_profile(sim_site, "acuvim-ii"),
        ratios=Ratios(),
    )
    raw = await transport.read(["power_total"])
    assert float(raw["power_total"]) == pytest.approx(sim.plant.grid_kw / 80.0, rel=1e-5)
    assert reg.scale_by == ["pt", "ct"]
    await transport.close()
    for m in meters.values():
        await m.close()


def test_drivers_are_found_from_the_devices_package(demo_site: Site) -> None:
    from reconciler import devices

    battery, meters = devices.open_site_devices(demo_site)
    assert battery.name == "bess"
    assert sorted(meters) == ["battery_meter", "site", "solar"]
    assert meters["site"].transport.ratios == Ratios(pt=1.0, ct=80.0)
