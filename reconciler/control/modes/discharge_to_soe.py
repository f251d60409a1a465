"""Discharge to an SoE by the end of the active window.

Power = energy above the target / time left in the window (discharge assumed lossless,
as in the reference); capped by ``max_kw`` and the battery. Lower priorities may
discharge faster, never slower.
"""

from __future__ import annotations

from reconciler.config.model import ToSoeParams
from reconciler.control.context import ModeContext
from reconciler.control.schedule import zone
from reconciler.control.types import Component


def propose(ctx: ModeContext, params: ToSoeParams) -> Component | None:
    target_soe = ctx.site.energy_kwh(params.target_soe)
    energy_kwh = ctx.soe_kwh - target_soe
    seconds = ctx.seconds_to_window_end
    if energy_kwh <= 0 or seconds <= 0:
        return None
    power = min(energy_kwh / (seconds / 3600.0), ctx.discharge_cap_kw)
    if params.max_kw is not None:
        power = min(power, params.max_kw)
    by = ctx.entry.end.astimezone(zone(ctx.site.site.timezone)).strftime("%H:%M")
    return ctx.at_least_this_discharge(
        power, note=f"SoE {ctx.soe_kwh:.0f} kWh to {target_soe:.0f} kWh by {by}"
    )
