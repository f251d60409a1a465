"""The guard before any decision: are the readings the core needs fresh and sound?"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from reconciler.config.model import Site
from reconciler.control.types import Observation


@dataclass(frozen=True)
class Fresh:
    """Readings that passed the guard: SoE kWh, grid (site) power kW (+ import), and the
    battery's measured power kW (+ discharge) at the instant the grid meter was read."""

    soe_kwh: float
    site_power_kw: float
    battery_power_kw: float

    @property
    def residual_kw(self) -> float:
        """Site power with the battery taken out (load minus generation), kW: what the
        site would import with the battery at 0 kW."""
        return self.site_power_kw + self.battery_power_kw


def check(site: Site, at: datetime, obs: Observation, last_target_kw: float = 0.0) -> Fresh | str:
    """The readings to decide on, or why there are none to trust (a human sentence).

    ``last_target_kw`` is the setpoint last commanded: the battery ramps toward it, which
    is how its power is carried forward to the grid meter's read time."""
    limit = site.limits.max_reading_age_s
    battery_name = site.devices.battery.name
    grid = site.grid_meter_name
    problems: list[str] = []

    for name in (battery_name, grid):
        if name in obs.errors:
            problems.append(f"{name} read failed: {obs.errors[name]}")

    battery = obs.battery
    if battery is None:
        problems.append(f"no reading yet from battery {battery_name}")
    else:
        age = (at - battery.at).total_seconds()
        if age > limit:
            problems.append(f"battery {battery_name} reading is {age:.1f} s old (max {limit:g} s)")
        elif not math.isfinite(battery.soe_kwh):
            problems.append(f"battery {battery_name} SoE is not a number")

    meter = obs.meters.get(grid)
    if meter is None:
        problems.append(f"no reading yet from grid meter {grid}")
    else:
        age = (at - meter.at).total_seconds()
        if age > limit:
            problems.append(f"grid meter {grid} reading is {age:.1f} s old (max {limit:g} s)")
        elif not math.isfinite(meter.power_kw):
            problems.append(f"grid meter {grid} power is not a number")

    if problems or battery is None or meter is None:
        return "; ".join(problems)
    return Fresh(
        battery.soe_kwh, meter.power_kw, battery_power_at(site, obs, meter.at, last_target_kw)
    )


def battery_power_at(site: Site, obs: Observation, when: datetime, last_target_kw: float) -> float:
    """The battery's measured power (kW, + discharge) at ``when``.

    Measured by the battery's own meter when the site has a fresh one (``role: battery``,
    + import there, so charging), else the battery's reported power. A reading older than
    ``when`` is carried forward along the ramp toward ``last_target_kw``: the battery is
    still moving between reads, and a grid reading taken later already includes the move.
    """
    power, read_at = measured_battery_power(site, obs, when)
    gap_s = (when - read_at).total_seconds()
    if gap_s <= 0:
        return power
    return power + ramp_step(site, power, last_target_kw, gap_s)


def measured_battery_power(site: Site, obs: Observation, when: datetime) -> tuple[float, datetime]:
    """The battery's power as measured (kW, + discharge) and when it was read: its own
    meter's (``role: battery``, + import there) when that reading is at most
    ``max_reading_age_s`` old at ``when``, else the battery's reported power. Needs a
    battery reading."""
    battery = obs.battery
    assert battery is not None
    for name, cfg in site.devices.meters.items():
        reading = obs.meters.get(name)
        if cfg.role != "battery" or reading is None or name in obs.errors:
            continue
        age = (when - reading.at).total_seconds()
        if math.isfinite(reading.power_kw) and age <= site.limits.max_reading_age_s:
            return 0.0 - reading.power_kw, reading.at
    return battery.target_power_kw, battery.at


def ramp_step(site: Site, power_kw: float, toward_kw: float, seconds: float) -> float:
    """How far (kW, signed) a battery at ``power_kw`` moves toward ``toward_kw`` in
    ``seconds`` at its ramp (kW/s; an unset ramp is taken as full power in a second)."""
    device = site.devices.battery
    rising = abs(toward_kw) > abs(power_kw) and toward_kw * power_kw >= 0
    rate = (device.ramp_up_kw_per_s if rising else device.ramp_down_kw_per_s) or (
        device.nameplate_power_kw
    )
    step = rate * seconds
    return max(-step, min(step, toward_kw - power_kw))
