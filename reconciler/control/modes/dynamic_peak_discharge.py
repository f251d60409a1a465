"""Dynamic peak discharge: empty the battery into a peak (DUoS red band) by its end.

- Never charge during the peak: every component bounds lower priorities at >= 0 kW.
- Once the energy above ``target_soe`` needs all the time left at the most the battery
  can discharge now (battery limit, and the site export limit at the current load),
  discharge at full power.
- Before that, when the system is predicted short: discharge at full power; but with
  ``prioritise_residual_load`` only while the energy above the target exceeds what the
  site's residual load (load - solar, assumed constant) needs to the peak's end, and
  otherwise cancel the site's import (held import avoidance).
- When the system is long or unknown: with ``prioritise_residual_load`` cancel the import,
  else wait (no target, only the no-charge bound).
Only "was short" previous-period predictions are used; a long prediction never is.
"""

from __future__ import annotations

from reconciler.config.model import DynamicPeakDischargeParams
from reconciler.control.context import ModeContext
from reconciler.control.prediction import NEVER
from reconciler.control.types import Component

#: The live estimate is trusted this far into a period (the reference's 10 minutes), s.
LIVE_AFTER_S = 600.0


def _cancel_import(ctx: ModeContext, why: str) -> Component:
    power = ctx.residual_kw
    if power > 0:
        return ctx.hold(power, note=f"{why}: cover residual load {power:.0f} kW")
    return ctx.component(min_kw=0.0, note=f"{why}: no residual load, no charging in peak")


def propose(ctx: ModeContext, params: DynamicPeakDischargeParams) -> Component:
    target_soe = max(ctx.site.energy_kwh(params.target_soe), ctx.site.soe_min_kwh)
    available = ctx.soe_kwh - target_soe
    if available <= 0:
        return ctx.component(
            min_kw=0.0, note=f"SoE {ctx.soe_kwh:.0f} kWh at target: no charging in peak"
        )
    seconds_left = ctx.seconds_to_window_end
    rate = min(ctx.discharge_cap_kw, ctx.residual_kw + ctx.site.limits.site_export_kw)
    if rate <= 0 or available / rate * 3600.0 >= seconds_left:
        return ctx.hold(
            ctx.discharge_cap_kw,
            note=f"{available:.0f} kWh above target needs the {seconds_left / 60:.0f} min left",
        )

    prediction = ctx.predict(LIVE_AFTER_S, params.when_short, NEVER)
    if prediction is None or prediction.volume <= 0:
        why = "system not short" if prediction is not None else "no prediction"
        if params.prioritise_residual_load:
            return _cancel_import(ctx, why)
        return ctx.component(min_kw=0.0, note=f"{why}: wait, no charging in peak")

    short = f"NIV {prediction.volume:.0f} MWh short ({prediction.source})"
    if not params.prioritise_residual_load or ctx.residual_kw <= 0:
        return ctx.hold(ctx.discharge_cap_kw, note=short)
    reserve_kwh = ctx.residual_kw * seconds_left / 3600.0
    if available > reserve_kwh:
        return ctx.hold(
            ctx.discharge_cap_kw,
            note=f"{short}, {available:.0f} kWh spare over {reserve_kwh:.0f} kWh residual",
        )
    return _cancel_import(ctx, f"{short} but energy kept for residual load")
