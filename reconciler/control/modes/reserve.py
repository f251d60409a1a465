"""Reserve: keep a backup SoE for outages.

At or below the reserve nothing may discharge (upper bound <= 0); below it the battery
recharges at ``recharge_kw`` (lower priorities may charge harder). Above it the upper bound
is the discharge that would reach the reserve in one tick, so no tick overshoots it; when
that is more than the battery can do anyway the mode has nothing to say.
"""

from __future__ import annotations

from reconciler.config.model import ReserveParams
from reconciler.control.context import ModeContext
from reconciler.control.types import Component


def propose(ctx: ModeContext, params: ReserveParams) -> Component | None:
    reserve = ctx.site.energy_kwh(params.reserve_soe)
    soe = ctx.soe_kwh
    if soe < reserve:
        power = min(params.recharge_kw, ctx.charge_cap_kw)
        return ctx.at_least_this_charge(
            -power, note=f"SoE {soe:.0f} kWh below reserve {reserve:.0f} kWh: recharge"
        )
    if soe == reserve:
        return ctx.component(max_kw=0.0, note=f"SoE at reserve {reserve:.0f} kWh")
    most = (soe - reserve) / (ctx.tick_s / 3600.0)
    if most >= ctx.discharge_cap_kw:
        return None
    return ctx.component(
        max_kw=most, note=f"SoE {soe - reserve:.1f} kWh above reserve {reserve:.0f} kWh"
    )
