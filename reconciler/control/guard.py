"""The guard before any decision: are the readings the core needs fresh and sound?"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from reconciler.config.model import Site
from reconciler.control.types import Observation


@dataclass(frozen=True)
class Fresh:
    """Readings that passed the guard: SoE kWh and grid (site) power kW, + import."""

    soe_kwh: float
    site_power_kw: float


def check(site: Site, at: datetime, obs: Observation) -> Fresh | str:
    """The readings to decide on, or why there are none to trust (a human sentence)."""
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
    return Fresh(battery.soe_kwh, meter.power_kw)
