"""The control core's entry point: one decision from a time, readings and signals.

Pure: no I/O, no clock reads. The loop calls :func:`decide` once per tick.
"""

from __future__ import annotations

from datetime import datetime

from reconciler.config.model import Site
from reconciler.control import guard
from reconciler.control.context import ModeContext
from reconciler.control.envelope import Enveloped, apply_envelope, battery_caps
from reconciler.control.fold import Folded, fold
from reconciler.control.modes import propose
from reconciler.control.periods import PERIOD
from reconciler.control.types import Component, ControlState, Decision, Observation, Signals

#: A settlement period, s.
PERIOD_S = PERIOD.total_seconds()


def decide(
    site: Site, at: datetime, obs: Observation, signals: Signals, state: ControlState
) -> Decision:
    """What the battery should do at ``at`` (kW, + discharge), and why.

    Stale, missing or failed battery or grid-meter readings give a safe stop (0 kW).
    Otherwise every active schedule entry's mode proposes a component; they are folded by
    priority and the result is cut to the hard envelope.

    In the Decision: ``components`` are all proposals, highest priority first;
    ``winner`` is the label of the first of them (an active entry whose mode has nothing
    to do, e.g. NIV chase without a price, proposes nothing and cannot win);
    ``effective`` the labels whose target or bound shaped the folded target; ``bound_by``
    the envelope limits that cut it; ``predicted_site_power_kw`` the site power expected
    once the battery moves from its measured power to the target.

    ``state.plans`` (the caller's memo of the day's schedule) may be filled on the way;
    what it holds never changes a decision, only how much work the next one takes.
    """
    checked = guard.check(site, at, obs, state.last_target_kw)
    if isinstance(checked, str):
        return Decision(
            at=at,
            target_kw=0.0,
            reason=f"safe stop: {checked}",
            safe_stop=True,
            soe_kwh=obs.battery.soe_kwh if obs.battery is not None else None,
            site_power_kw=(
                m.power_kw if (m := obs.meters.get(site.grid_meter_name)) is not None else None
            ),
        )

    components: list[Component] = []
    for ctx in contexts(site, at, checked, signals, state):
        comp = propose(ctx)
        if comp is not None:
            components.append(comp)

    folded = fold(components)
    elapsed = (at - state.last_at).total_seconds() if state.last_at is not None else None
    cut = apply_envelope(
        site,
        folded.target_kw,
        soe_kwh=checked.soe_kwh,
        site_power_kw=checked.site_power_kw,
        battery_power_kw=checked.battery_power_kw,
        last_target_kw=state.last_target_kw,
        elapsed_s=elapsed,
    )
    return Decision(
        at=at,
        target_kw=cut.target_kw,
        reason=reason(folded, cut),
        components=tuple(components),
        effective=tuple(c.source for c in folded.effective),
        bound_by=cut.bound_by,
        winner=components[0].source if components else None,
        site_power_kw=checked.site_power_kw,
        predicted_site_power_kw=cut.predicted_site_kw,
        soe_kwh=checked.soe_kwh,
    )


def contexts(
    site: Site, at: datetime, fresh: guard.Fresh, signals: Signals, state: ControlState
) -> list[ModeContext]:
    """One mode context per schedule entry active at ``at``, highest priority first."""
    plan = state.plans.plan(site, at)
    active = plan.active_entries(at)
    if not active:
        return []
    import_rate, export_rate = plan.rates_at(at)
    period = plan.period_at(at)
    into = (at - period.start).total_seconds()
    charge_cap, discharge_cap = battery_caps(site)
    frequency_age_s = (
        (at - fresh.frequency_since).total_seconds()
        if fresh.frequency_since is not None and fresh.frequency_hz is not None
        else None
    )
    left = PERIOD_S - into
    soe, site_kw, battery_kw = fresh.soe_kwh, fresh.site_power_kw, fresh.battery_power_kw
    return [
        ModeContext(
            at=at,
            site=site,
            entry=entry,
            soe_kwh=soe,
            site_power_kw=site_kw,
            battery_power_kw=battery_kw,
            last_target_kw=state.last_target_kw,
            import_rate=import_rate,
            export_rate=export_rate,
            signals=signals,
            period=period,
            seconds_into_period=into,
            seconds_left_in_period=left,
            charge_cap_kw=charge_cap,
            discharge_cap_kw=discharge_cap,
            frequency_hz=fresh.frequency_hz,
            frequency_age_s=frequency_age_s,
            day=plan,
        )
        for entry in active
    ]


def _action(kw: float) -> str:
    if kw > 0:
        return f"discharge {kw:.0f} kW"
    if kw < 0:
        return f"charge {-kw:.0f} kW"
    return "hold 0 kW"


def reason(folded: Folded, cut: Enveloped) -> str:
    """One line: who asked for what and why, and which limits cut it."""
    driver = folded.driver
    if driver is not None:
        head = f"{driver.source}: {_action(folded.target_kw)}"
        if driver.note:
            head += f" ({driver.note})"
    elif folded.effective:
        held = folded.effective[0]
        head = f"no mode asks for power; {held.source} bounds it to {_action(folded.target_kw)}"
        if held.note:
            head += f" ({held.note})"
    else:
        head = "no active mode: idle at 0 kW"
    if cut.bound_by:
        if cut.target_kw != folded.target_kw:
            to = _action(cut.target_kw) if cut.target_kw else "0 kW"
            head += f"; cut to {to} by {', '.join(cut.bound_by)}"
        else:
            head += f"; bound by {', '.join(cut.bound_by)}"
    return head
