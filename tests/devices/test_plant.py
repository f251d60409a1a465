"""The simulated site: real load and solar profiles, consistent meters, counters."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.clock import ManualClock
from reconciler.config.model import Site
from reconciler.devices.factory import open_site_devices
from reconciler.sim.curves import HalfHourly, load_per_home, parse_energy_csv, solar_per_kwp
from reconciler.sim.plant import Plant
from reconciler.sim.simulator import SiteSimulator

from .conftest import NOON, command


def test_profile_interpolates_between_half_hour_midpoints() -> None:
    start = datetime(2023, 1, 1, tzinfo=UTC)
    p = HalfHourly(start, (10.0, 20.0, 40.0))
    assert p.at(start + timedelta(minutes=15)) == pytest.approx(10.0)
    assert p.at(start + timedelta(minutes=30)) == pytest.approx(15.0)
    assert p.at(start + timedelta(minutes=45)) == pytest.approx(20.0)
    # wraps around: after the last half-hour comes the first again
    assert p.at(start + timedelta(minutes=90 + 15)) == pytest.approx(10.0)
    assert p.at(start + timedelta(minutes=75 + 15)) == pytest.approx(25.0)  # 40 -> 10


def test_energy_csv_becomes_average_power() -> None:
    text = (
        "UTCTime,ClockTime,energy\n"
        "2023-01-01 00:00:00+00:00,2023-01-01 00:00:00+00:00,3.0\n"
        "2023-01-01 00:30:00+00:00,2023-01-01 00:30:00+00:00,\n"
    )
    p = parse_energy_csv(text, per=3.0)
    assert p.kw == (2.0, 0.0)  # 3 kWh in half an hour over 3 units is 2 kW each


def test_shipped_profiles_are_real_and_plausible() -> None:
    load, solar = load_per_home(), solar_per_kwp()
    assert len(load.kw) == len(solar.kw) == 31 * 48
    assert 0.5 < load.mean_kw() < 2.0  # a home averages about 1 kW in January
    night = datetime(2023, 1, 10, 2, 0, tzinfo=UTC)
    noon = datetime(2023, 1, 10, 12, 0, tzinfo=UTC)
    assert solar.at(night) == 0.0
    assert solar.at(noon) > 0.0
    assert 0.0 < max(solar.kw) <= 1.0  # kW per kWp


def test_load_and_solar_scale_with_homes_and_kwp(demo_site: Site) -> None:
    plant = Plant.for_site(demo_site, NOON)
    assert plant.load_kw == pytest.approx(54 * load_per_home().at(NOON))
    assert plant.solar_kw == pytest.approx(210 * solar_per_kwp().at(NOON))
    assert plant.solar_kw > 0


def test_noise_is_seeded(demo_site: Site) -> None:
    noisy = demo_site.model_copy(
        update={"simulation": demo_site.simulation.model_copy(update={"noise_pct": 5.0})}
    )
    a, b = Plant.for_site(noisy, NOON), Plant.for_site(noisy, NOON)
    a.advance_to(NOON + timedelta(seconds=30))
    b.advance_to(NOON + timedelta(seconds=30))
    assert a.load_kw == b.load_kw
    assert a.load_kw != pytest.approx(54 * load_per_home().at(a.at), rel=1e-9)


async def test_meters_are_consistent_with_the_physics(sim: SiteSimulator, sim_site: Site) -> None:
    battery, meters = open_site_devices(sim_site, clock=sim.clock)
    await battery.start()
    before = {n: await m.read() for n, m in meters.items()}
    for _ in range(30):
        await command(battery, 150.0)
        await sim.step(4)
    r = {n: await m.read() for n, m in meters.items()}
    p = sim.plant
    assert p.battery_kw == pytest.approx(150.0)
    # grid = load - solar - battery; battery meter = -battery; solar meter = -solar
    assert r["site"].power_kw == pytest.approx(p.load_kw - p.solar_kw - 150.0, rel=1e-5)
    assert r["battery_meter"].power_kw == pytest.approx(-150.0, rel=1e-5)
    assert r["solar"].power_kw == pytest.approx(-p.solar_kw, rel=1e-5)
    for name, reading in r.items():
        assert 49.8 < reading.frequency_hz < 50.2
        assert 380 < reading.voltage_v < 420
        assert 0.0 <= reading.power_factor <= 1.0
        s = reading.apparent_kva
        assert s == pytest.approx(math.hypot(reading.power_kw, reading.reactive_kvar), rel=1e-4)
        assert reading.power_a_kw * 3 == pytest.approx(reading.power_kw, rel=1e-5)
        amps = s * 1000 / (math.sqrt(3) * reading.voltage_v)
        assert reading.current_avg == pytest.approx(amps, rel=1e-4)
        assert reading.energy_import_kwh >= before[name].energy_import_kwh
        assert reading.energy_export_kwh >= before[name].energy_export_kwh
    # 2 minutes discharging at 150 kW: the battery meter exported 5 kWh
    assert r["battery_meter"].energy_export_kwh == pytest.approx(5.0 - 0.1, abs=0.15)
    await battery.close()


async def test_energy_counters_only_increase(demo_site: Site) -> None:
    clock = ManualClock(NOON)
    async with SiteSimulator(demo_site, clock=clock, ports="ephemeral") as sim:
        last = {n: (0.0, 0.0) for n in demo_site.devices.meters}
        for _ in range(50):
            await sim.step(60)
            for name, m in sim.plant.meters.items():
                assert m.energy_import_kwh >= last[name][0]
                assert m.energy_export_kwh >= last[name][1]
                last[name] = (m.energy_import_kwh, m.energy_export_kwh)
        assert last["site"][0] + last["site"][1] > 0


async def test_accelerated_clock_moves_the_physics_in_the_background(demo_site: Site) -> None:
    from reconciler.clock import ScaledClock

    clock = ScaledClock(NOON, speed=600)
    async with SiteSimulator(demo_site, clock=clock, ports="ephemeral", tick_s=0.01) as sim:
        for _ in range(500):  # no request and no step(): only the background task moves it
            if sim.plant.at >= NOON + timedelta(seconds=30):
                break
            await asyncio.sleep(0.01)
        assert sim.plant.at >= NOON + timedelta(seconds=30)
        with pytest.raises(TypeError, match="ManualClock"):
            await sim.step(1)


def test_fault_specs_parse_like_the_cli_flag() -> None:
    from reconciler.sim.faults import Faults

    dropped: list[str] = []
    away: list[str] = []
    faults = Faults(["bess", "solar"], lambda: NOON, dropped.append, away.append)
    faults.apply("bess:delay:0.5")
    faults.apply("bess:exception:6")
    faults.apply("bess:drop:3")
    faults.apply("solar:away:60")
    faults.apply("solar:frozen")
    faults.apply("solar:short")
    assert faults["bess"].delay_s == 0.5
    assert faults["bess"].exception_code == 6
    assert faults["bess"].drop_requests == 3
    assert faults["solar"].away_until == NOON + timedelta(seconds=60)
    assert faults["solar"].frozen and faults["solar"].short_replies == 1
    assert away == ["solar"]
    for bad in ("bess", "bess:melt", "nope:frozen", "bess:exception:99", "bess:delay:x"):
        with pytest.raises(ValueError):
            faults.apply(bad)
    # A negative time is not "none", and a huge one would overflow the clock.
    for bad in ("bess:delay:-1", "bess:delay:nan", "solar:away:inf", "solar:away:1e300"):
        with pytest.raises(ValueError, match="seconds from 0 to 31536000"):
            faults.apply(bad)
    assert faults["bess"].delay_s == 0.5
    faults.clear()
    assert faults["bess"].exception_code is None and not faults["solar"].frozen
