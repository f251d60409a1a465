"""Each simulated fault produces its typed error, and the transport recovers after it."""

from __future__ import annotations

import asyncio

import pytest

from reconciler.config.model import Site
from reconciler.config.resolve import resolve_profile
from reconciler.devices.errors import (
    ConnectionLost,
    ConnectionRefused,
    DeviceTimeout,
    MalformedReply,
    ModbusExceptionReply,
)
from reconciler.devices.plan import Block
from reconciler.devices.transport import ModbusTransport
from reconciler.sim.simulator import SiteSimulator
from tests.net import free_port


def meter_transport(site: Site, name: str = "site", **options: object) -> ModbusTransport:
    dev = site.devices.meters[name]
    return ModbusTransport.for_device(
        name, dev, resolve_profile(site, dev.profile), backoff_initial_s=0.01, **options
    )


async def test_dropped_connection_is_connection_lost_then_reconnects(
    sim: SiteSimulator, sim_site: Site
) -> None:
    t = meter_transport(sim_site)
    await t.read(["power_total"])
    sim.faults.drop("site")
    with pytest.raises(ConnectionLost) as err:
        await t.read(["power_total"])
    assert err.value.device == "site"
    assert "power_total" in (err.value.register or "")
    value = await t.read(["power_total"])
    assert float(value["power_total"]) == pytest.approx(sim.plant.grid_kw, rel=1e-5)
    assert t.connects == 2
    await t.close()


async def test_connections_dropped_between_requests_reconnect_silently(
    sim: SiteSimulator, sim_site: Site
) -> None:
    t = meter_transport(sim_site)
    await t.read(["frequency"])
    sim.faults.drop_now("site")
    for _ in range(100):  # until the client has seen the close
        if not t.connected:
            break
        await asyncio.sleep(0.01)
    assert not t.connected
    await t.read(["frequency"])
    assert t.connects == 2
    await t.close()


async def test_delayed_reply_is_a_timeout_then_recovers(sim: SiteSimulator, sim_site: Site) -> None:
    t = meter_transport(sim_site, timeout_s=0.2)
    sim.faults.delay("site", 0.6)
    with pytest.raises(DeviceTimeout, match=r"no reply within 0\.2 s"):
        await t.read(["power_total"])
    sim.faults.delay("site", 0)
    assert "power_total" in await t.read(["power_total"])
    await t.close()


@pytest.mark.parametrize(
    ("code", "meaning"), [(2, "illegal data address"), (4, "device failure"), (6, "busy")]
)
async def test_exception_reply_names_code_and_meaning(
    sim: SiteSimulator, sim_site: Site, code: int, meaning: str
) -> None:
    t = meter_transport(sim_site)
    sim.faults.exception("site", code)
    with pytest.raises(ModbusExceptionReply) as err:
        await t.read(["power_total"])
    assert err.value.code == code
    assert meaning in err.value.meaning
    assert f"Modbus exception {code}" in str(err.value)
    sim.faults.clear("site")
    assert "power_total" in await t.read(["power_total"])
    await t.close()


async def test_short_reply_is_malformed_then_recovers(sim: SiteSimulator, sim_site: Site) -> None:
    t = meter_transport(sim_site)
    sim.faults.short_reply("site")
    with pytest.raises(MalformedReply, match="asked for 2 registers, got 1"):
        await t.read(["frequency"])
    assert "frequency" in await t.read(["frequency"])
    await t.close()


async def test_frozen_values_stay_stale_while_the_plant_moves(
    sim: SiteSimulator, sim_site: Site
) -> None:
    t = meter_transport(sim_site)
    first = await t.read(["frequency", "energy_import", "power_total"])
    sim.faults.freeze("site")
    await sim.step(120)
    assert await t.read(["frequency", "energy_import", "power_total"]) == first
    sim.faults.freeze("site", False)
    assert await t.read(["frequency", "energy_import", "power_total"]) != first
    await t.close()


async def test_meter_away_refuses_connections_then_comes_back(
    sim: SiteSimulator, sim_site: Site
) -> None:
    t = meter_transport(sim_site, name="solar", connect_attempts=2)
    await t.read(["power_total"])
    sim.faults.away("solar", 30)
    with pytest.raises((ConnectionLost, ConnectionRefused)):
        await t.read(["power_total"])
    with pytest.raises(ConnectionRefused, match="cannot connect"):
        await t.read(["power_total"])
    await sim.step(29)
    with pytest.raises(ConnectionRefused):
        await t.read(["power_total"])
    await sim.step(2)
    assert float((await t.read(["power_total"]))["power_total"]) == pytest.approx(
        -sim.plant.solar_kw, rel=1e-5, abs=1e-6
    )
    assert sim.port_of("solar") == sim_site.devices.meters["solar"].port
    await t.close()


async def test_nothing_listening_is_connection_refused(demo_site: Site) -> None:
    dev = demo_site.devices.meters["site"].model_copy(update={"port": free_port()})
    t = ModbusTransport.for_device(
        "site", dev, resolve_profile(demo_site, "acuvim-ii"), backoff_initial_s=0.01
    )
    with pytest.raises(ConnectionRefused) as err:
        await t.read()
    assert err.value.device == "site"
    assert f"127.0.0.1:{dev.port}" in str(err.value)
    assert "check the host and port" in str(err.value)
    assert t.requests == 0


async def test_a_read_across_a_wide_gap_is_refused_by_the_device(
    sim: SiteSimulator, sim_site: Site
) -> None:
    """The simulator enforces the profile's gap limit as a real device would."""
    t = meter_transport(sim_site)
    # frequency (12288) and voltage (12304) are 14 words apart; the meter tolerates 8.
    with pytest.raises(ModbusExceptionReply) as err:
        await t.read_block(Block(12288, 18, ("frequency", "voltage_line_avg")))
    assert err.value.code == 2
    await t.close()
