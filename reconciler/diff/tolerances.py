"""How far past a limit counts as a breach, for `flux diff` and `flux backtest` alike.

Kept apart from the rest of the diff (which talks to PostgreSQL and the devices) so a
backtest can use the same numbers without those dependencies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reconciler.config.model import Site


@dataclass(frozen=True)
class Tolerances:
    """How far past a limit a reading must be to count as a breach (kW, kWh), and the
    longest run of empty minutes that is only the recording cadence (minutes)."""

    power_kw: float
    energy_kwh: float
    cadence_gap_min: int = 0


def limit_tolerances(site: Site) -> Tolerances:
    """How far past a limit counts as a breach: the write deadband (kW), and one tick of
    full power (kWh), which is how far SoE can move before the envelope sees it.

    The agent records one reading per record-interval bucket (aligned to the clock), at
    the first tick in it; so consecutive readings are at most max(interval, tick) apart
    and only ceil(that / 60) - 1 empty minutes between them are the cadence (none for the
    default one-minute interval). Only longer gaps are missing telemetry.
    """
    full_kw = max(site.limits.battery_charge_kw, site.limits.battery_discharge_kw)
    spacing_s = max(site.telemetry.record_interval_s, site.control.tick_s)
    return Tolerances(
        power_kw=max(site.control.deadband_kw, 0.1),
        energy_kwh=full_kw * site.control.tick_s / 3600.0,
        cadence_gap_min=max(0, math.ceil(spacing_s / 60) - 1),
    )
