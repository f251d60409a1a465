"""Drivers for every device of a site, chosen by each profile's ``kind``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.clock import Clock
from reconciler.config.model import BatteryDevice, MeterDevice, Site
from reconciler.config.profiles import Profile
from reconciler.config.resolve import resolve_profile
from reconciler.devices.acuvim import AcuvimMeter
from reconciler.devices.base import Battery, Meter
from reconciler.devices.powerpack import PowerPackBattery
from reconciler.devices.registers import RegisterTransport
from reconciler.devices.transport import ModbusTransport

#: Builds a device's transport from its name, site-file entry and resolved profile.
TransportFactory = Callable[[str, BatteryDevice | MeterDevice, Profile], RegisterTransport]


def open_site_devices(
    site: Site,
    *,
    clock: Clock | None = None,
    transports: TransportFactory | None = None,
    **transport_options: Any,
) -> tuple[PowerPackBattery, dict[str, AcuvimMeter]]:
    """The battery and the meters (by name) of ``site``. Nothing connects until the first
    request (or ``battery.start()``). ``transport_options`` go to every ModbusTransport
    (e.g. ``read_only=True``); ``transports`` builds another kind of transport instead
    (the simulator's in-process one). Raises ValueError for a profile of the wrong kind."""

    def transport(name: str, dev: BatteryDevice | MeterDevice, prof: Profile) -> RegisterTransport:
        if transports is not None:
            return transports(name, dev, prof)
        return ModbusTransport.for_device(name, dev, prof, **transport_options)

    bat = site.devices.battery
    profile = resolve_profile(site, bat.profile)
    if profile.kind != "battery":
        raise ValueError(f"battery {bat.name}: profile {profile.name!r} is a {profile.kind} map")
    battery = PowerPackBattery(
        bat,
        profile,
        clock=clock,
        transport=transport(bat.name, bat, profile),
    )
    meters: dict[str, AcuvimMeter] = {}
    for name, dev in site.devices.meters.items():
        mprofile = resolve_profile(site, dev.profile)
        if mprofile.kind != "meter":
            raise ValueError(f"meter {name}: profile {mprofile.name!r} is a {mprofile.kind} map")
        meters[name] = AcuvimMeter(
            name,
            dev,
            mprofile,
            clock=clock,
            transport=transport(name, dev, mprofile),
        )
    return battery, meters


def _implements(battery: PowerPackBattery, meter: AcuvimMeter) -> tuple[Battery, Meter]:
    """Never called: mypy proves here that the drivers implement the agent's protocols."""
    return battery, meter
