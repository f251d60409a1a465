"""Normalisation: the units, defaults and deadbands that make equal things compare equal.

Everything is brought to kW, kWh, kW/s and seconds before comparing; a register read back
as 100.0 kW/s equals a desired ``ramp_up_kw_per_s: 100``; a power within the control
deadband or tracking tolerance of another is the same power.
"""

from __future__ import annotations

import math

from reconciler.config.model import Site

#: Register resolution of the shipped profiles' kW/s values (scale 0.001).
RAMP_RESOLUTION_KW_PER_S = 0.001


def power_tolerance_kw(site: Site) -> float:
    """How far apart two powers may be and still be the same operating point (kW): the
    loop's own tracking tolerance, never less than its write deadband."""
    return max(site.control.deadband_kw, site.control.tracking_tolerance_kw)


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
