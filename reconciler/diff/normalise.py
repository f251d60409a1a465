"""Normalisation: the units, defaults and deadbands that make equal things compare equal.

Everything is brought to kW, kWh, kW/s and seconds before comparing; a register read back
as 100.0 kW/s equals a desired ``ramp_up_kw_per_s: 100``; a power within the control
deadband or tracking tolerance of another is the same power.
"""

from __future__ import annotations

import math

from reconciler.config.model import Site
from reconciler.diff.observed import Tolerances

#: Register resolution of the shipped profiles' kW/s values (scale 0.001).
RAMP_RESOLUTION_KW_PER_S = 0.001


def power_tolerance_kw(site: Site) -> float:
    """How far apart two powers may be and still be the same operating point (kW): the
    loop's own tracking tolerance, never less than its write deadband."""
    return max(site.control.deadband_kw, site.control.tracking_tolerance_kw)


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


def same_setting(name: str, desired: float, observed: float) -> bool:
    """A writable setting read back equals the desired one (kW/s to register resolution,
    flags and seconds exactly)."""
    if name.startswith("ramp_"):
        return math.isclose(desired, observed, rel_tol=1e-6, abs_tol=RAMP_RESOLUTION_KW_PER_S)
    return round(desired) == round(observed)


def desired_settings(site: Site) -> dict[str, float]:
    """The battery settings the agent writes (kW/s, 0/1, s), by profile register name.

    Ramps left out of the site file are not written, so any value is accepted; direct
    real-power mode is expected once the agent commands (never in shadow mode).
    """
    bat = site.devices.battery
    wanted: dict[str, float] = {}
    if bat.ramp_up_kw_per_s is not None:
        wanted["ramp_up"] = bat.ramp_up_kw_per_s
    if bat.ramp_down_kw_per_s is not None:
        wanted["ramp_down"] = bat.ramp_down_kw_per_s
    wanted["always_active"] = 1.0 if bat.always_active else 0.0
    wanted["heartbeat_timeout"] = float(bat.heartbeat_timeout_s)
    wanted["real_power_mode"] = 1.0
    return wanted


def kw(value: float | None) -> str:
    """A power for display: ``-12.3 kW`` (+ discharge for batteries, + import at meters)."""
    return "?" if value is None else f"{value:.1f} kW"


def kwh(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f} kWh"


def setting(name: str, value: float | None) -> str:
    if value is None:
        return "?"
    if name.startswith("ramp_"):
        return f"{value:g} kW/s"
    if name == "heartbeat_timeout":
        return f"{value:g} s"
    return f"{value:g}"
