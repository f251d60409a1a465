"""Axle Energy dispatch: follow the schedule step that covers the instant.

- ``charge_max`` / ``discharge_max``: charge / discharge at the battery's full power, held
  (nothing lower may change it);
- ``avoid_import`` / ``avoid_export``: as the import / export avoidance modes.

A step with ``allow_deviation`` (when ``honour_allow_deviation``) keeps its full-power
target but lets lower priorities move it toward 0 kW, never past it: the bound is
``[-charge, 0]`` for charge_max and ``[0, discharge]`` for discharge_max. We chose this over
a bare bound (no target) because a bound alone would leave the battery idle whenever no
other mode wants to move it, and so fail the dispatch Axle asked for; the avoidance
actions already let lower priorities go further and are the same either way.
"""

from __future__ import annotations

from reconciler.config.model import AxleParams
from reconciler.control.context import ModeContext
from reconciler.control.modes.export_avoidance import avoid_export
from reconciler.control.modes.import_avoidance import avoid_import
from reconciler.control.types import AxleStep, Component


def step_at(ctx: ModeContext) -> AxleStep | None:
    for step in ctx.signals.axle_steps:
        if step.start <= ctx.at < step.end:
            return step
    return None


def propose(ctx: ModeContext, params: AxleParams) -> Component | None:
    step = step_at(ctx)
    if step is None:
        return None
    loose = step.allow_deviation and params.honour_allow_deviation
    note = f"axle {step.action}" + (" (deviation allowed)" if loose else "")
    if step.action == "charge_max":
        power = -ctx.charge_cap_kw
        if loose:
            return ctx.component(power, min_kw=power, max_kw=0.0, note=note)
        return ctx.hold(power, note=note)
    if step.action == "discharge_max":
        power = ctx.discharge_cap_kw
        if loose:
            return ctx.component(power, min_kw=0.0, max_kw=power, note=note)
        return ctx.hold(power, note=note)
    comp = avoid_import(ctx, 0.0) if step.action == "avoid_import" else avoid_export(ctx, 0.0)
    return ctx.component(
        comp.target_kw, min_kw=comp.min_kw, max_kw=comp.max_kw, note=f"{note}; {comp.note}"
    )
