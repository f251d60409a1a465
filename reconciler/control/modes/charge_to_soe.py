"""Charge to an SoE by the end of the active window.

Power = energy still to store / efficiency / time left in the window, so the charge is
spread evenly; capped by ``max_kw`` and the battery. Lower priorities may charge faster
(the component's upper bound is its own target), never slower.
"""

from __future__ import annotations

from reconciler.config.model import ToSoeParams
from reconciler.control.context import ModeContext
from reconciler.control.schedule import zone
from reconciler.control.types import Component


def propose(ctx: ModeContext, params: ToSoeParams) -> Component | None:
    target_soe = ctx.site.energy_kwh(params.target_soe)
    drawn_kwh = (target_soe - ctx.soe_kwh) / ctx.efficiency
    seconds = ctx.seconds_to_window_end
    if drawn_kwh <= 0 or seconds <= 0:
        return None
    power = min(drawn_kwh / (seconds / 3600.0), ctx.charge_cap_kw)
    if params.max_kw is not None:
        power = min(power, params.max_kw)
    by = ctx.entry.end.astimezone(zone(ctx.site.site.timezone)).strftime("%H:%M")
    return ctx.at_least_this_charge(
        -power, note=f"SoE {ctx.soe_kwh:.0f} kWh to {target_soe:.0f} kWh by {by}"
    )
