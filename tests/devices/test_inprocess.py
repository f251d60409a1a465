"""The real drivers on the simulator's register banks with no socket (the in-process
transport), and a contract: in-process and Modbus TCP give the same readings, the same
words written and the same refusals for the same plant state."""

from __future__ import annotations

import pytest

from reconciler.clock import ManualClock
from reconciler.config.model import Site
from reconciler.config.resolve import resolve_profile
from reconciler.devices.errors import ModbusExceptionReply, WriteRefused
from reconciler.devices.factory import open_site_devices
from reconciler.devices.plan import Block
from reconciler.devices.registers import NamedRegisters
from reconciler.sim.inprocess import InProcessTransport
from reconciler.sim.simulator import SiteSimulator

from .conftest import NOON, command


@pytest.fixture
def local(demo_site: Site, clock: ManualClock) -> SiteSimulator:
    """The demo's simulated devices, never listening on any port."""
    return SiteSimulator(demo_site, clock=clock, ports="ephemeral")


def register_writes(sim: SiteSimulator, site: Site) -> list[tuple[str, int]]:
    profile = resolve_profile(site, site.devices.battery.profile)
    by_address = {reg.address: name for name, reg in profile.registers.items()}
    return [
        (by_address[req.address + i], word)
        for req in sim.writes(site.devices.battery.name)
        for i, word in enumerate(req.values)
        if req.address + i in by_address
    ]


async def test_drivers_run_the_plant_with_no_socket(local: SiteSimulator) -> None:
    battery, meters = local.in_process_devices()
    assert isinstance(battery.transport, InProcessTransport)
    assert not any(s.listening for s in local.servers.values())
    await battery.start()
    b = local.plant.battery
    assert (b.ramp_up_kw_per_s, b.ramp_down_kw_per_s, b.always_active) == (100.0, 100.0, 1)
    assert not b.direct  # direct mode only after the first command
    await command(battery, 300.0)
    assert b.direct and b.setpoint_kw == pytest.approx(300.0)
    await local.step(5)  # 100 kW/s ramp
    reading = await battery.read()
    assert reading.target_power_kw == pytest.approx(300.0)
    assert reading.soe_kwh == pytest.approx(local.plant.soe_kwh, abs=0.001)
    assert reading.command_source == 1 and reading.at == local.clock.now()
    grid = await meters[local.site.grid_meter_name].read()
    # The grid meter's CT ratio is 400/5: the driver decodes the physical value.
    assert grid.power_kw == pytest.approx(local.plant.grid_kw, abs=0.05)
    assert (await meters["battery_meter"].read()).power_kw == pytest.approx(-300.0, abs=0.05)


async def test_command_sequence_and_heartbeat_timeout(local: SiteSimulator) -> None:
    battery, _ = local.in_process_devices()
    await battery.start()
    local.plant.battery.heartbeat_timeout_s = 30  # as delivered: not the site's timeout
    for kw in (10.0, 20.0, -30.0, 40.0):
        await command(battery, kw)
    sequence = register_writes(local, local.site)[3:]
    beats = [w for n, w in sequence if n == "heartbeat"]
    assert beats == [0xAA55, 0x55AA, 0xAA55, 0x55AA]
    names = [n for n, _ in sequence]
    assert names[:2] == ["power_command", "heartbeat"]
    assert set(names[2:4]) == {"real_power_mode", "heartbeat_timeout"}
    assert names.count("real_power_mode") == 1
    assert local.plant.battery.heartbeat_timeout_s == 10
    for _ in range(3):
        await command(battery, 200.0)
        await local.step(4)
    assert not local.plant.battery.heartbeat_lost
    await local.step(10.5)  # no heartbeat for 14.5 s: past the 10 s timeout
    assert local.plant.battery.heartbeat_lost
    await local.step(3)
    assert (await battery.read()).target_power_kw == 0.0


async def test_refused_writes_send_nothing(local: SiteSimulator) -> None:
    battery, _ = local.in_process_devices()
    await battery.start()
    sent = len(local.requests)
    with pytest.raises(WriteRefused, match="above the allowed maximum 5000"):
        await battery.command(5000.5)
    with pytest.raises(WriteRefused, match="read-only"):
        await battery.transport.write("soe", 100.0)
    assert len(local.requests) == sent
    assert local.plant.battery.setpoint_kw == 0.0
    reader, _ = local.in_process_devices(read_only=True)
    with pytest.raises(WriteRefused, match="read-only"):
        await reader.command(10.0)
    assert len(local.requests) == sent


async def test_faults_an_exception_and_frozen_registers(local: SiteSimulator) -> None:
    _, meters = local.in_process_devices()
    meter = meters["site"]
    first = await meter.read()
    local.faults["site"].frozen = True
    await local.step(30)
    frozen = await meter.read()
    assert frozen.frequency_hz == first.frequency_hz and frozen.at > first.at
    local.faults["site"].exception_code = 4
    with pytest.raises(ModbusExceptionReply) as err:
        await meter.read()
    assert err.value.code == 4 and err.value.device == "site"


# --------------------------------------------------------------------------- contract


def transports(sim: SiteSimulator, tcp_site: Site) -> list[tuple[NamedRegisters, NamedRegisters]]:
    """(TCP, in-process) transport pairs for every device of the site."""
    tcp_bat, tcp_meters = open_site_devices(tcp_site, clock=sim.clock)
    local_bat, local_meters = sim.in_process_devices()
    pairs = [(tcp_bat.transport, local_bat.transport)]
    pairs += [(tcp_meters[n].transport, local_meters[n].transport) for n in tcp_meters]
    out: list[tuple[NamedRegisters, NamedRegisters]] = []
    for a, b in pairs:
        assert isinstance(a, NamedRegisters) and isinstance(b, NamedRegisters)
        out.append((a, b))
    return out


async def test_in_process_and_tcp_read_the_same_values(sim: SiteSimulator, sim_site: Site) -> None:
    battery, _ = sim.in_process_devices()
    await battery.start()
    for _ in range(30):  # two minutes of charging: counters, SoE and powers have moved
        await command(battery, -250.0)
        await sim.step(4)
    for tcp, local in transports(sim, sim_site):
        # No time passes between the two reads (manual clock): every register agrees.
        assert await tcp.read() == await local.read(), tcp.name
        # A request that cuts a register in two gets the same words both ways.
        for name, reg in tcp.profile.registers.items():
            if reg.words == 2:
                cut = Block(reg.address + 1, 1, (name,))
                assert await tcp.read_block(cut) == await local.read_block(cut), name
        await tcp.close()


async def test_in_process_and_tcp_write_the_same_words(demo_site: Site) -> None:
    async def run(in_process: bool) -> tuple[list[tuple[int, int, tuple[int, ...]]], object]:
        clock = ManualClock(NOON)
        async with SiteSimulator(demo_site, clock=clock, ports="ephemeral") as sim:
            if in_process:
                battery, _ = sim.in_process_devices()
            else:
                battery, _ = open_site_devices(sim.site_for_ephemeral_ports(), clock=clock)
            await battery.start()
            for kw in (100.0, -250.5, 0.0, 565.0):
                await command(battery, kw)
                await sim.step(4)
            await battery.close()
            writes = [(r.function_code, r.address, r.values) for r in sim.writes()]
            return writes, sim.values(demo_site.devices.battery.name)

    tcp_writes, tcp_state = await run(in_process=False)
    local_writes, local_state = await run(in_process=True)
    assert local_writes == tcp_writes and len(tcp_writes) >= 5
    assert local_state == tcp_state


async def test_in_process_and_tcp_refuse_the_same_requests(
    sim: SiteSimulator, sim_site: Site
) -> None:
    (tcp, local), *_ = transports(sim, sim_site)
    profile = tcp.profile
    soe = profile.registers["soe"]
    beyond = max(r.address + r.words for r in profile.registers.values()) + 50
    for block, words in ((Block(beyond, 2, ("nothing",)), None), (None, soe.address)):
        codes = []
        for t in (tcp, local):
            with pytest.raises(ModbusExceptionReply) as err:
                if block is not None:
                    await t.read_block(block)  # no register there
                else:
                    assert words is not None
                    await t.write_words(words, [0] * soe.words, "soe")  # read-only
            codes.append(err.value.code)
        assert codes[0] == codes[1], codes
    await tcp.close()


async def test_a_frozen_device_shows_the_same_words_both_ways(demo_site: Site) -> None:
    async def run(in_process: bool) -> dict[str, object]:
        clock = ManualClock(NOON)
        async with SiteSimulator(demo_site, clock=clock, ports="ephemeral") as sim:
            if in_process:
                battery, _ = sim.in_process_devices()
            else:
                battery, _ = open_site_devices(sim.site_for_ephemeral_ports(), clock=clock)
            await battery.start()
            await command(battery, 100.0)
            await sim.step(4)
            await battery.transport.read()
            sim.faults["bess"].frozen = True
            await command(battery, -200.0)  # written while frozen
            await sim.step(4)
            held = dict(await battery.transport.read())
            await battery.close()
            return held

    local = await run(in_process=True)
    assert local["power_command"] == -200.0  # the write shows; the rest is as last read
    assert local == await run(in_process=False)
