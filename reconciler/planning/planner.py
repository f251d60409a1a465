"""A plan for the battery from what is known at an instant: forecasts in, the linear
programme (lp.py) solved over the horizon, a :class:`~reconciler.control.types.Plan` out.

Runs outside the tick (the agent in a worker thread at period boundaries, the backtest
at the same simulated instants); control only follows the result.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from reconciler.config.model import OptimiseParams, Site
from reconciler.control.periods import PERIOD, period_start
from reconciler.control.schedule import DayPlans, zone
from reconciler.control.types import Plan, PlanStep
from reconciler.planning import lp
from reconciler.planning.forecast import NetLoadForecaster, PriceForecaster


def battery_of(site: Site) -> lp.Battery:
    """The site file's plant and limits as the programme sees them."""
    limits = site.limits
    nameplate = site.devices.battery
    return lp.Battery(
        charge_kw=min(limits.battery_charge_kw, nameplate.nameplate_power_kw),
        discharge_kw=min(limits.battery_discharge_kw, nameplate.nameplate_power_kw),
        soe_min_kwh=site.soe_min_kwh,
        soe_max_kwh=site.soe_max_kwh,
        charge_efficiency=limits.charge_efficiency,
        import_limit_kw=limits.site_import_kw,
        export_limit_kw=limits.site_export_kw,
    )


def horizon(at: datetime, hours: float) -> list[tuple[datetime, datetime]]:
    """Settlement periods from the one containing ``at`` for ``hours``; the first starts
    at ``at`` (what is left of it)."""
    first = period_start(at)
    count = max(1, round(hours * 2))
    spans = [(first + k * PERIOD, first + (k + 1) * PERIOD) for k in range(count)]
    spans[0] = (at, spans[0][1])
    return spans


def site_rates(
    site: Site, spans: list[tuple[datetime, datetime]]
) -> tuple[list[float], list[float]]:
    """Import and export rates (p/kWh) at the middle of each span (one schedule
    evaluation per local day, as a tick does)."""
    days = DayPlans()
    pairs = [days.plan(site, mid).rates_at(mid) for mid in (a + (b - a) / 2 for a, b in spans)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


class Planner:
    """Plans for one site; keeps the forecasters' history between plans."""

    def __init__(self, site: Site, params: OptimiseParams) -> None:
        tz = zone(site.site.timezone)
        self.site = site
        self.params = params
        self.prices = PriceForecaster(tz, params.history_days)
        self.net_load = NetLoadForecaster(tz, min(params.history_days, 7))

    def snapshot(self) -> Planner:
        """A copy whose history does not change as this one learns."""
        copy = Planner.__new__(Planner)
        copy.site, copy.params = self.site, self.params
        copy.prices = self.prices.copy()
        copy.net_load = self.net_load.copy()
        return copy

    def follow(self, site: Site, params: OptimiseParams) -> None:
        """A new revision: new limits and parameters, the history kept."""
        self.site, self.params = site, params
        self.prices.history.history_days = params.history_days

    def plan(
        self, at: datetime, *, soe_kwh: float, net_load_kw: float, live_price: float | None
    ) -> Plan | None:
        """The plan from ``at``, or None while no price is known at all."""
        problem = self.problem(at, soe_kwh=soe_kwh, net_load_kw=net_load_kw, live_price=live_price)
        return None if problem is None else problem.solve()

    def problem(
        self, at: datetime, *, soe_kwh: float, net_load_kw: float, live_price: float | None
    ) -> Problem | None:
        """The forecasts and limits of a plan from ``at`` (reads the history: call it
        where nothing adds to it meanwhile); solving it reads nothing shared."""
        spans = horizon(at, self.params.horizon_h)
        starts = [period_start(a) for a, _ in spans]
        prices = self.prices.forecast(at, starts, live_price)
        if prices is None:
            return None
        battery = battery_of(self.site)
        imports, exports = site_rates(self.site, spans)
        terminal = self.params.terminal_value
        if terminal is None:
            terminal = statistics.median(prices) * battery.charge_efficiency
        inputs = lp.Inputs(
            hours=[(b - a) / timedelta(hours=1) for a, b in spans],
            net_load_kw=self.net_load.forecast(at, starts, net_load_kw),
            price=prices,
            import_rate=imports,
            export_rate=exports,
            soe_start_kwh=soe_kwh,
            cycling_cost=self.params.cycling_cost,
            terminal_value=terminal,
        )
        return Problem(at, spans, battery, inputs)


@dataclass(frozen=True)
class Problem:
    """One plan's programme, ready to solve (in a worker thread if need be)."""

    at: datetime
    spans: list[tuple[datetime, datetime]]
    battery: lp.Battery
    inputs: lp.Inputs

    def solve(self) -> Plan:
        solution = lp.solve(self.battery, self.inputs)
        spans, prices, at = self.spans, self.inputs.price, self.at
        steps = tuple(
            PlanStep(start=a, end=b, battery_kw=kw, soe_end_kwh=soe, price=price)
            for (a, b), kw, soe, price in zip(
                spans, solution.battery_kw, solution.soe_end_kwh, prices, strict=True
            )
        )
        return Plan(made_at=at, steps=steps, expected_value_gbp=solution.value_gbp)
