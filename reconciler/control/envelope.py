"""The hard envelope applied after the fold. No decision ever leaves it.

In order of precedence:

1. battery power: the charge/discharge limits and the inverter nameplate;
2. state of energy: no discharge at/below ``soe_min``, no charge at/above ``soe_max``,
   and never so hard that one tick would cross either;
3. site import/export limits, on the predicted site power
   ``expected_site = site_now - (target - battery_now)``, with ``battery_now`` the
   battery's measured power, not its last target: a battery still ramping from discharge
   toward charge is not yet at its last command (+93 kW measured against a -201 kW
   command let a 410 kW import through a 220 kW limit). The battery moves monotonically
   from its measured power to the target, so when both ends keep the site inside the
   limits every instant of the ramp does too. Honoured whenever the battery
   can (within 1 and 2). When solar export alone (battery at 0 kW) is over the export
   limit the battery charges to absorb the excess rather than sit idle or discharge
   ("solar_export_absorb"), which the reference left open;
4. ramp: ``ramp_kw_per_s`` times the time since the last decision, unless holding it
   would break 1-3.

Each step narrows an interval of allowed targets; a softer step that cannot be met inside
the interval so far takes the interval's point nearest to it. The target is the fold's
target clamped into the final interval, so 1 and 2 always hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.config.model import Site

Interval = tuple[float, float]


@dataclass(frozen=True)
class Enveloped:
    """The target after the envelope, kW, and the names of the limits that cut it."""

    target_kw: float
    bound_by: tuple[str, ...]
    predicted_site_kw: float


def _clamp(x: float, iv: Interval) -> float:
    return min(max(x, iv[0]), iv[1])


def _narrow(current: Interval, wanted: Interval) -> Interval:
    """``current`` ∩ ``wanted``, or the point of ``current`` nearest to ``wanted``."""
    lo, hi = max(current[0], wanted[0]), min(current[1], wanted[1])
    if lo <= hi:
        return lo, hi
    point = current[1] if wanted[0] > current[1] else current[0]
    return point, point


def battery_caps(site: Site) -> tuple[float, float]:
    """Usable (charge, discharge) power, both positive kW: limit and nameplate."""
    nameplate = site.devices.battery.nameplate_power_kw
    return min(site.limits.battery_charge_kw, nameplate), min(
        site.limits.battery_discharge_kw, nameplate
    )


def apply_envelope(
    site: Site,
    target_kw: float,
    *,
    soe_kwh: float,
    site_power_kw: float,
    battery_power_kw: float,
    last_target_kw: float,
    elapsed_s: float | None,
) -> Enveloped:
    """Cut ``target_kw`` to the envelope. ``battery_power_kw`` is the battery's measured
    power when ``site_power_kw`` was read; ``last_target_kw`` the setpoint last commanded
    (what the ramp limit is measured from); ``elapsed_s`` the time since the last decision
    (None: the first decision, no ramp)."""
    limits = site.limits
    bound: list[str] = []
    charge_cap, discharge_cap = battery_caps(site)
    tick_h = site.control.tick_s / 3600.0

    # 1. battery power
    iv: Interval = (-charge_cap, discharge_cap)
    t = _clamp(target_kw, iv)
    if t < target_kw:
        bound.append(
            "battery_discharge_kw"
            if limits.battery_discharge_kw <= site.devices.battery.nameplate_power_kw
            else "nameplate_power_kw"
        )
    elif t > target_kw:
        bound.append(
            "battery_charge_kw"
            if limits.battery_charge_kw <= site.devices.battery.nameplate_power_kw
            else "nameplate_power_kw"
        )

    # 2. state of energy
    soe_min, soe_max = site.soe_min_kwh, site.soe_max_kwh
    most_discharge = 0.0 if soe_kwh <= soe_min else (soe_kwh - soe_min) / tick_h
    most_charge = (
        0.0 if soe_kwh >= soe_max else (soe_max - soe_kwh) / (tick_h * limits.charge_efficiency)
    )
    iv = _narrow(iv, (-most_charge, most_discharge))
    before = t
    t = _clamp(t, iv)
    if t < before:
        bound.append("soe_min")
    elif t > before:
        bound.append("soe_max")

    # 3. site limits on the predicted site power
    residual = site_power_kw + battery_power_kw  # site power if the battery were at 0 kW
    site_iv = (residual - limits.site_import_kw, residual + limits.site_export_kw)
    iv = _narrow(iv, site_iv)
    before = t
    t = _clamp(t, iv)
    if t > before:
        bound.append("site_import_kw")
    elif t < before:
        bound.append("site_export_kw")
        if residual < -limits.site_export_kw and t < 0:
            bound.append("solar_export_absorb")

    # 4. ramp
    ramp = limits.ramp_kw_per_s
    if ramp is not None and elapsed_s is not None and elapsed_s > 0:
        step = ramp * elapsed_s
        iv = _narrow(iv, (last_target_kw - step, last_target_kw + step))
        before = t
        t = _clamp(t, iv)
        if t != before:
            bound.append("ramp")

    if t == 0.0:
        t = 0.0  # no "-0.0" in records
    return Enveloped(t, tuple(bound), residual - t)
