"""One module per mode; :func:`propose` asks the right one for an active entry's component."""

from __future__ import annotations

from reconciler.config.model import (
    AxleEntry,
    ChargeToSoeEntry,
    DischargeToSoeEntry,
    DynamicPeakApproachEntry,
    DynamicPeakDischargeEntry,
    ExportAvoidanceEntry,
    IdleEntry,
    ImportAvoidanceEntry,
    ImportAvoidanceWhenShortEntry,
    NivChaseEntry,
    OptimiseEntry,
    ReserveEntry,
)
from reconciler.control.context import ModeContext
from reconciler.control.modes import (
    axle,
    charge_to_soe,
    discharge_to_soe,
    dynamic_peak_approach,
    dynamic_peak_discharge,
    export_avoidance,
    idle,
    import_avoidance,
    import_avoidance_when_short,
    niv_chase,
    optimise,
    reserve,
)
from reconciler.control.types import Component


def propose(ctx: ModeContext) -> Component | None:
    """The component of the active entry in ``ctx``, or None when its mode has nothing to do."""
    entry = ctx.entry.entry
    match entry:
        case NivChaseEntry():
            return niv_chase.propose(ctx, entry.params)
        case ChargeToSoeEntry():
            return charge_to_soe.propose(ctx, entry.params)
        case DischargeToSoeEntry():
            return discharge_to_soe.propose(ctx, entry.params)
        case DynamicPeakDischargeEntry():
            return dynamic_peak_discharge.propose(ctx, entry.params)
        case DynamicPeakApproachEntry():
            return dynamic_peak_approach.propose(ctx, entry.params)
        case ImportAvoidanceEntry():
            return import_avoidance.propose(ctx, entry.params)
        case ExportAvoidanceEntry():
            return export_avoidance.propose(ctx, entry.params)
        case ImportAvoidanceWhenShortEntry():
            return import_avoidance_when_short.propose(ctx, entry.params)
        case AxleEntry():
            return axle.propose(ctx, entry.params)
        case ReserveEntry():
            return reserve.propose(ctx, entry.params)
        case IdleEntry():
            return idle.propose(ctx, entry.params)
        case OptimiseEntry():
            return optimise.propose(ctx, entry.params)
    raise AssertionError(f"no mode module for {entry.mode!r}")  # pragma: no cover
