"""Follow the plan: the SoE path a planner made outside the tick (``reconciler.planning``).

Each tick the mode steers towards the SoE the plan wants at the end of the current
settlement period: power = energy still to move / time left in the period (divided by the
charge efficiency when charging), capped by the battery. Steering to the SoE rather than
repeating the planned kW puts back what another mode, the envelope or a ramp took away.
With no plan, or one older than ``plan_max_age_min`` or not covering now, the mode
proposes nothing and lower priorities take over.
"""

from __future__ import annotations

from reconciler.config.model import OptimiseParams
from reconciler.control.context import ModeContext
from reconciler.control.types import Component

#: In the last seconds of a period the SoE gap would ask for huge power: follow the
#: plan's own kW instead.
MIN_STEER_S = 60.0


def propose(ctx: ModeContext, params: OptimiseParams) -> Component | None:
    plan = ctx.signals.plan
    if plan is None:
        return None
    age_min = plan.age_s(ctx.at) / 60.0
    step = plan.step_at(ctx.at)
    if step is None or age_min > params.plan_max_age_min:
        return None
    left_s = (step.end - ctx.at).total_seconds()
    if left_s < MIN_STEER_S:
        power = step.battery_kw
    else:
        gap_kwh = ctx.soe_kwh - step.soe_end_kwh  # > 0: energy to discharge
        hours = left_s / 3600.0
        power = gap_kwh / hours if gap_kwh >= 0 else gap_kwh / ctx.efficiency / hours
    power = max(-ctx.charge_cap_kw, min(ctx.discharge_cap_kw, power))
    note = (
        f"plan of {plan.made_at:%H:%M}Z ({age_min:.0f} min old): SoE {ctx.soe_kwh:.0f} to "
        f"{step.soe_end_kwh:.0f} kWh by {step.end:%H:%M}Z, planned {step.battery_kw:+.0f} kW "
        f"at {step.price:.1f} p/kWh"
    )
    return ctx.component(power, note=note)
