"""Export avoidance: charge to soak up any export at the site boundary (mirror of import).

Target = site power + the battery's measured power (- margin), a charge when the site exports;
lower priorities may charge harder. When the site is importing only an upper bound
remains: discharging no harder than the import, so lower modes cannot cause an export.
"""

from __future__ import annotations

from reconciler.config.model import AvoidanceParams
from reconciler.control.context import ModeContext
from reconciler.control.types import Component


def avoid_export(ctx: ModeContext, margin_kw: float) -> Component:
    """The export-avoidance component (also used by axle)."""
    power = ctx.residual_kw - margin_kw
    if power <= 0:
        return ctx.at_least_this_charge(
            power,
            note=f"site exporting {round(-ctx.site_power_kw)} kW with the battery at "
            f"{round(ctx.battery_power_kw)} kW",
        )
    return ctx.component(
        max_kw=power,
        note=f"site importing {round(ctx.site_power_kw)} kW: discharge at most {power:.0f} kW",
    )


def propose(ctx: ModeContext, params: AvoidanceParams) -> Component:
    return avoid_export(ctx, params.margin_kw)
