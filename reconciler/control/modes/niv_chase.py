"""NIV chase: charge when imbalance prices are low, discharge when they are high.

Charge price = predicted imbalance price + import rates; discharge price = imbalance
price - export rates; both shifted up by ``curve_shift_short`` when the system is short
and down by ``curve_shift_long`` when it is long. Each curve maps a price to an SoE: below
the charge curve the battery charges up to it, above the discharge curve it discharges
down to it. The energy (charge energy / efficiency) is spread over the rest of the
settlement period. A charge lets lower priorities charge harder; a discharge lets them
discharge harder. No prediction and no ``default_price``: inactive.
"""

from __future__ import annotations

from reconciler.config.model import CurvePoint, NivChaseParams
from reconciler.control.context import ModeContext
from reconciler.control.curve import Point, vertical_distance
from reconciler.control.types import Component


def _points(curve: list[CurvePoint]) -> tuple[Point, ...]:
    return tuple((p.price, p.soe) for p in curve)


def propose(ctx: ModeContext, params: NivChaseParams) -> Component | None:
    rules = params.prediction
    prediction = ctx.predict(rules.live_after_s, rules.when_short, rules.when_long)
    if prediction is not None:
        price, volume, about = prediction.price, prediction.volume, prediction.describe()
    elif params.default_price is not None:
        price, volume = params.default_price, 0.0
        about = f"default price {price:.1f} p/kWh"
    else:
        return None

    shift = 0.0
    if volume > 0:
        shift = params.curve_shift_short
    elif volume < 0:
        shift = -params.curve_shift_long
    charge_price = price + ctx.import_rate + shift
    discharge_price = price - ctx.export_rate + shift

    soe = ctx.soe_kwh
    # The curves' points, kept for the day (the site file's curves do not change).
    charge_curve = ctx.remember(("charge", ctx.entry.index), lambda: _points(params.charge_curve))
    below_charge = vertical_distance(charge_curve, charge_price, soe)
    if below_charge is not None and below_charge > 0:
        drawn_kwh = below_charge / ctx.efficiency
        power = drawn_kwh / (ctx.seconds_left_in_period / 3600.0)
        return ctx.at_least_this_charge(
            -power,
            note=f"{about}, SoE {soe:.0f} kWh {below_charge:.0f} kWh below charge curve "
            f"at {charge_price:.1f} p/kWh",
        )
    discharge_curve = ctx.remember(
        ("discharge", ctx.entry.index), lambda: _points(params.discharge_curve)
    )
    below_discharge = vertical_distance(discharge_curve, discharge_price, soe)
    if below_discharge is not None and below_discharge < 0:
        power = -below_discharge / (ctx.seconds_left_in_period / 3600.0)
        return ctx.at_least_this_discharge(
            power,
            note=f"{about}, SoE {soe:.0f} kWh {-below_discharge:.0f} kWh above discharge "
            f"curve at {discharge_price:.1f} p/kWh",
        )
    return None
