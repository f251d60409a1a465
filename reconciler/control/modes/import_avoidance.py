"""Import avoidance: discharge to cancel any import at the site boundary.

Target = site power + the battery's measured power (+ margin): the power that brings the site to
zero (or ``margin_kw`` of export). Lower priorities may discharge harder. When the site is
exporting there is nothing to cancel, so only a lower bound remains: charging no harder
than the export, so lower-priority modes cannot cause an import.
"""

from __future__ import annotations

from reconciler.config.model import AvoidanceParams
from reconciler.control.context import ModeContext
from reconciler.control.types import Component


def avoid_import(ctx: ModeContext, margin_kw: float) -> Component:
    """The import-avoidance component (also used by axle and the when_short variant)."""
    power = ctx.residual_kw + margin_kw
    if power >= 0:
        return ctx.at_least_this_discharge(
            power,
            note=f"site importing {round(ctx.site_power_kw)} kW with the battery at "
            f"{round(ctx.battery_power_kw)} kW",
        )
    return ctx.component(
        min_kw=power,
        note=f"site exporting {round(-ctx.site_power_kw)} kW: charge at most {-power:.0f} kW",
    )


def propose(ctx: ModeContext, params: AvoidanceParams) -> Component:
    return avoid_import(ctx, params.margin_kw)
