"""Dynamic peak approach: charge ahead of a peak so the battery holds ``to_soe`` by then.

The approach curve (SoE against time) rises from 0 kWh to ``to_soe`` over the time a
charge at ``assumed_charge_kw`` would take (times a duration factor, charge efficiency
included), ending ``cushion_min`` before the peak starts, and stays at ``to_soe`` until
the peak ends. While the SoE is below the curve the battery charges the gap over the rest
of the settlement period (lower priorities may charge harder). When the system is
predicted long the "encourage" curve (``encourage_to_soe``, its own factor) is tried
first, charging harder while energy is cheap.

The peak is the next one that has not ended: today's, or tomorrow's once today's is over,
so an approach window that runs past midnight works.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from reconciler.config.model import DynamicPeakApproachParams, parse_hhmm
from reconciler.control.context import ModeContext
from reconciler.control.curve import vertical_distance
from reconciler.control.prediction import NEVER
from reconciler.control.schedule import local_instant, zone
from reconciler.control.types import Component

#: The live estimate is trusted this far into a period (the reference's 10 minutes), s.
LIVE_AFTER_S = 600.0


Peak = tuple[datetime, datetime, str]
"""A peak's [start, end) instants and its local start time ("HH:MM") for notes."""


def _peaks(ctx: ModeContext, params: DynamicPeakApproachParams) -> tuple[Peak, ...]:
    """The peak occurrences starting the day before, on and after ``ctx.at``'s local day."""
    tz = zone(ctx.site.site.timezone)
    day = ctx.at.astimezone(tz).date()
    crosses = parse_hhmm(params.peak_end) <= parse_hhmm(params.peak_start)
    peaks: list[Peak] = []
    for offset in (-1, 0, 1):
        start_day = day + timedelta(days=offset)
        end_day = start_day + timedelta(days=1) if crosses else start_day
        start = local_instant(start_day, params.peak_start, tz)
        end = local_instant(end_day, params.peak_end, tz)
        peaks.append((start, end, start.astimezone(tz).strftime("%H:%M")))
    return tuple(peaks)


def next_peak(ctx: ModeContext, params: DynamicPeakApproachParams) -> Peak:
    """The first peak occurrence that ends after ``ctx.at``."""
    # The same for every instant of the local day: kept in the day memo (zone arithmetic).
    peaks = ctx.remember(("peaks", ctx.entry.index), lambda: _peaks(ctx, params))
    for peak in peaks:
        if peak[1] > ctx.at:
            return peak
    raise AssertionError("a peak ends within two days")  # pragma: no cover


def _gap_kwh(
    ctx: ModeContext,
    peak: tuple[datetime, datetime],
    to_soe: float,
    params: DynamicPeakApproachParams,
    factor: float,
) -> float | None:
    """kWh the SoE is below the approach curve now (None: outside the curve's span)."""
    approach_s = to_soe / params.assumed_charge_kw / ctx.efficiency * factor * 3600.0
    cushion_s = params.cushion_min * 60.0
    start_ts, end_ts = peak[0].timestamp(), peak[1].timestamp()
    points = [
        (start_ts - cushion_s - approach_s, 0.0),
        (start_ts - cushion_s, to_soe),
        (end_ts, to_soe),
    ]
    return vertical_distance(points, ctx.at.timestamp(), ctx.soe_kwh)


def propose(ctx: ModeContext, params: DynamicPeakApproachParams) -> Component | None:
    start, end, local_start = next_peak(ctx, params)
    peak = (start, end)
    hours_left = ctx.seconds_left_in_period / 3600.0
    to_soe = ctx.site.energy_kwh(params.to_soe)

    prediction = ctx.predict(LIVE_AFTER_S, NEVER, params.when_long)
    if prediction is not None and prediction.volume < 0:
        encourage = (
            ctx.site.energy_kwh(params.encourage_to_soe)
            if params.encourage_to_soe is not None
            else to_soe
        )
        gap = _gap_kwh(ctx, peak, encourage, params, params.encourage_charge_duration_factor)
        if gap is not None and gap > 0:
            power = gap / hours_left / ctx.efficiency
            return ctx.at_least_this_charge(
                -power,
                note=f"system long ({prediction.source}): {gap:.0f} kWh below encourage "
                f"curve to {encourage:.0f} kWh before {local_start}",
            )

    gap = _gap_kwh(ctx, peak, to_soe, params, params.force_charge_duration_factor)
    if gap is not None and gap > 0:
        power = gap / hours_left / ctx.efficiency
        return ctx.at_least_this_charge(
            -power,
            note=f"{gap:.0f} kWh below approach curve to {to_soe:.0f} kWh before {local_start}",
        )
    return None
