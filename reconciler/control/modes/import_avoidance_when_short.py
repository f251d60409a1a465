"""Import avoidance, but only while the system is predicted short by at least
``min_niv_mwh`` (imports are dear then). Long predictions are never used."""

from __future__ import annotations

from reconciler.config.model import ImportAvoidanceWhenShortParams
from reconciler.control.context import ModeContext
from reconciler.control.modes.import_avoidance import avoid_import
from reconciler.control.prediction import NEVER
from reconciler.control.types import Component


def propose(ctx: ModeContext, params: ImportAvoidanceWhenShortParams) -> Component | None:
    rules = params.prediction
    prediction = ctx.predict(rules.live_after_s, rules.when_short, NEVER)
    if prediction is None or prediction.volume <= 0 or prediction.volume < params.min_niv_mwh:
        return None
    comp = avoid_import(ctx, params.margin_kw)
    return ctx.component(
        comp.target_kw,
        min_kw=comp.min_kw,
        max_kw=comp.max_kw,
        note=f"NIV {prediction.volume:.0f} MWh short ({prediction.source}); {comp.note}",
    )
