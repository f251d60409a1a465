"""Frequency response: power in proportion to the grid frequency's deviation from 50 Hz.

Below 50 Hz the battery discharges ``low_kw`` times the low curve's share at that
deviation; above, it charges ``high_kw`` times the high curve's share (linear between
points, flat past the last). Between events it steers the SoE back into the band from
which the contracted power can be delivered for ``duration_min``: at least
``low_kw x duration`` above soe_min and room for ``high_kw x duration`` (stored at the
charge efficiency) below soe_max. It aims a margin inside the edge it crossed, so the
steering is still worth writing when the SoE reaches the edge (aimed at the edge itself,
the power would shrink with the distance, fall under the loop's deadband and leave the
SoE hovering just outside). The component holds its target: lower priorities
cannot change a contracted response; the envelope still cuts it, and the decision's
reason then says so.

A frequency older than ``max_frequency_age_s``, or unchanged that long (a frozen meter or
gateway), is stale: no response, only the steering.
"""

from __future__ import annotations

import itertools

from reconciler.config.model import FrequencyResponseParams, ResponsePoint, Site
from reconciler.control.context import ModeContext
from reconciler.control.types import Component

NOMINAL_HZ = 50.0


def share(curve: list[ResponsePoint], deviation_hz: float) -> float:
    """The curve's share (0-1) at ``deviation_hz`` (>= 0): 0 before the first point,
    linear between points, the last point's beyond it."""
    if deviation_hz <= curve[0].deviation_hz:
        return curve[0].percent / 100.0 if deviation_hz == curve[0].deviation_hz else 0.0
    for a, b in itertools.pairwise(curve):
        if deviation_hz <= b.deviation_hz:
            t = (deviation_hz - a.deviation_hz) / (b.deviation_hz - a.deviation_hz)
            return (a.percent + t * (b.percent - a.percent)) / 100.0
    return curve[-1].percent / 100.0


def response_kw(params: FrequencyResponseParams, frequency_hz: float) -> float:
    """The contracted response at ``frequency_hz``: kW, + discharge (under-frequency)."""
    deviation = frequency_hz - NOMINAL_HZ
    if deviation < 0:
        return params.low_kw * share(params.low_curve, -deviation)
    return -params.high_kw * share(params.high_curve, deviation)


def band_kwh(site: Site, params: FrequencyResponseParams) -> tuple[float, float]:
    """The SoE band (kWh) from which the contracted power lasts ``duration_min``."""
    hours = params.duration_min / 60.0
    low = site.soe_min_kwh + params.low_kw * hours
    high = site.soe_max_kwh - params.high_kw * hours * site.limits.charge_efficiency
    return low, max(low, high)


def margin_kwh(site: Site, low: float, high: float) -> float:
    """How far inside the band the steering aims, kWh: 2% of the nameplate energy, at
    most a quarter of the band's width (none for a band of one point)."""
    return min(0.02 * site.devices.battery.nameplate_energy_kwh, (high - low) / 4)


def tolerance_kw(params: FrequencyResponseParams) -> float:
    """How far delivered power may be from the curve's value and still count, kW: 3% of
    the larger side's contracted power (at least 1 kW)."""
    return max(1.0, 0.03 * max(params.low_kw, params.high_kw))


def propose(ctx: ModeContext, params: FrequencyResponseParams) -> Component:
    low, high = band_kwh(ctx.site, params)
    hours = params.duration_min / 60.0
    # Back into the band (a margin inside it) within one duration, with what the battery
    # has beyond the contracted power.
    margin = margin_kwh(ctx.site, low, high)
    steer = 0.0
    if ctx.soe_kwh < low:
        spare = max(0.0, ctx.charge_cap_kw - params.high_kw)
        steer = -min(spare, (low + margin - ctx.soe_kwh) / ctx.efficiency / hours)
    elif ctx.soe_kwh > high:
        spare = max(0.0, ctx.discharge_cap_kw - params.low_kw)
        steer = min(spare, (ctx.soe_kwh - (high - margin)) / hours)
    band = f"SoE band {low:.0f}-{high:.0f} kWh"
    if steer:
        band += f", steering {steer:+.0f} kW"
    f, age = ctx.frequency_hz, ctx.frequency_age_s
    if f is None or age is None or age > params.max_frequency_age_s:
        why = "no frequency read" if f is None or age is None else f"frequency stale ({age:.1f} s)"
        return ctx.hold(steer, note=f"{why}: no response; {band}")
    response = response_kw(params, f)
    return ctx.hold(
        response + steer,
        note=f"{f:.3f} Hz ({f - NOMINAL_HZ:+.3f}): response {response:+.0f} kW; {band}",
    )
