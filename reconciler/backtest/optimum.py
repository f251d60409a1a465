"""The most a site's battery could have earned: a linear programme at settlement periods.

Perfect foresight of the same load, solar and imbalance prices a backtest plays, on the same
plant: the battery's power (the site file's charge/discharge limits, at most its nameplate),
its energy (the site file's SoE limits), the plant's charge efficiency (energy stored per
energy drawn; discharge is lossless, as :mod:`reconciler.sim.plant` models it), and the
site's import/export limits. Money is what the backtest report counts: the imbalance value
(battery kW x h x price, + discharge) plus the site's bill at its rates (import cost minus
export value). A battery's *value* is that money minus the same money with the battery idle,
so an idle schedule is worth exactly 0 and captured % is strategy value / optimum value.

Within a period the battery may share its time between charging and discharging, each at
what the battery and the site's limits allow while it runs (see planning/lp.py).
Relaxations that keep the optimum an upper bound of what finer control can do: the site
may share its time between importing and exporting, billed on the net; where the
load alone already breaks a site limit, the limit is where the site would be idle (the
battery is never asked to do the impossible, and never makes it worse).

The same-day variant solves each local day alone, knowing only that day, and hands its
closing SoE to the next day: what a day-ahead planner with a perfect forecast could do.

Units: kW, kWh, p/kWh, settlement periods of 0.5 h; money in £ in results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from reconciler.backtest.prices import PriceSeries, period_starts
from reconciler.backtest.profiles import SiteProfiles
from reconciler.backtest.report import TracePoint
from reconciler.config.model import Site
from reconciler.control.periods import PERIOD
from reconciler.control.schedule import DayPlans, zone
from reconciler.planning import lp

DT_H = 0.5
#: Rates are sampled this many times per period (every 5 minutes), as ticks would see them.
RATE_SAMPLES = 6
#: Solver tolerance on limits, kW or kWh, when a solution is checked.
TOLERANCE = 1e-6


#: The plant the optimum runs (kW, kWh, efficiency; the site's limits): the one linear
#: programme of planning/lp.py, which the optimise mode's plans use too.
Plant = lp.Plant


@dataclass(frozen=True)
class Inputs:
    """Per settlement period (UTC start): site load and solar kW, imbalance price p/kWh
    (None: no price, worth nothing), import and export rates p/kWh, and its local day."""

    starts: tuple[datetime, ...]
    days: tuple[date, ...]
    load_kw: tuple[float, ...]
    solar_kw: tuple[float, ...]
    price: tuple[float | None, ...]
    import_rate: tuple[float, ...]
    export_rate: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.starts)

    def part(self, keep: Sequence[int]) -> Inputs:
        return Inputs(
            tuple(self.starts[i] for i in keep),
            tuple(self.days[i] for i in keep),
            tuple(self.load_kw[i] for i in keep),
            tuple(self.solar_kw[i] for i in keep),
            tuple(self.price[i] for i in keep),
            tuple(self.import_rate[i] for i in keep),
            tuple(self.export_rate[i] for i in keep),
        )

    def programme(self, soe_start_kwh: float) -> lp.Inputs:
        """These periods as the linear programme takes them."""
        return lp.Inputs(
            hours=[DT_H] * len(self),
            net_load_kw=[a - b for a, b in zip(self.load_kw, self.solar_kw, strict=True)],
            price=self.price,
            import_rate=self.import_rate,
            export_rate=self.export_rate,
            soe_start_kwh=soe_start_kwh,
        )


def inputs_for(
    site: Site,
    start: datetime,
    end: datetime,
    *,
    prices: PriceSeries | None,
    profiles: SiteProfiles,
    wrap: bool = False,
) -> Inputs:
    """The inputs a backtest of ``site`` over [start, end) plays, per settlement period.

    ``wrap`` serves prices as the backtest's replay does outside the series' span (repeated
    by whole multiples of its length).
    """
    starts = period_starts(start, end)
    tz = zone(site.site.timezone)
    load, solar = profiles.period_means(starts, site.site.homes, site.site.solar_kwp)
    feed = prices.feed(wrap=wrap) if prices is not None else None
    plans = DayPlans()
    step = timedelta(minutes=30 / RATE_SAMPLES)
    price: list[float | None] = []
    imp: list[float] = []
    exp: list[float] = []
    for t in starts:
        if feed is None:
            price.append(None)
        else:
            pv = feed.imbalance_price(t)
            price.append(None if pv is None else pv.value)
        ri = re = 0.0
        for k in range(RATE_SAMPLES):
            at = t + k * step
            a, b = plans.plan(site, at).rates_at(at)
            ri += a
            re += b
        imp.append(ri / RATE_SAMPLES)
        exp.append(re / RATE_SAMPLES)
    return Inputs(
        tuple(starts),
        tuple(t.astimezone(tz).date() for t in starts),
        tuple(load),
        tuple(solar),
        tuple(price),
        tuple(imp),
        tuple(exp),
    )


@dataclass(frozen=True)
class Solution:
    """Per period: charge and discharge kW (both >= 0; battery power = discharge - charge),
    grid import and export kW, SoE kWh at the period's end; money in £."""

    inputs: Inputs
    charge_kw: tuple[float, ...]
    discharge_kw: tuple[float, ...]
    import_kw: tuple[float, ...]
    export_kw: tuple[float, ...]
    soe_kwh: tuple[float, ...]
    soe_start_kwh: float
    nameplate_kwh: float

    @property
    def battery_kw(self) -> tuple[float, ...]:
        return tuple(d - c for c, d in zip(self.charge_kw, self.discharge_kw, strict=True))

    def money_gbp(self, keep: Sequence[int] | None = None) -> float:
        """Imbalance value minus the bill (£) over the periods ``keep`` (all if None)."""
        return lp.money_gbp(self.inputs.programme(self.soe_start_kwh), self._schedule(), keep)

    def value_gbp(self, keep: Sequence[int] | None = None) -> float:
        """Money with this battery schedule minus money with the battery idle, £."""
        return self.money_gbp(keep) - idle_money_gbp(self.inputs, keep)

    def values_gbp(self, groups: Sequence[Sequence[int]]) -> list[float]:
        """:meth:`value_gbp` of each group of periods, in one pass (the programme's
        inputs are built once, not once a group)."""
        x, schedule = self.inputs.programme(self.soe_start_kwh), self._schedule()
        return [lp.money_gbp(x, schedule, g) - idle_money_gbp(self.inputs, g) for g in groups]

    def values_by_period_gbp(self) -> list[float]:
        """:meth:`value_gbp` of each period alone."""
        return self.values_gbp([[i] for i in range(len(self.inputs))])

    def _schedule(self) -> lp.Schedule:
        return lp.Schedule(
            self.charge_kw, self.discharge_kw, self.import_kw, self.export_kw, self.soe_kwh
        )

    def cycles(self, keep: Sequence[int] | None = None) -> float:
        """Equivalent full cycles: (charged + discharged kWh) / 2 / nameplate."""
        idx = range(len(self.inputs)) if keep is None else keep
        kwh = sum((self.charge_kw[i] + self.discharge_kw[i]) * DT_H for i in idx)
        return kwh / 2.0 / self.nameplate_kwh


def trace(sol: Solution) -> tuple[TracePoint, ...]:
    """``sol`` at the end of each period: its SoE (kWh) and its value (£) since the start."""
    out: list[TracePoint] = []
    value = 0.0
    for start, soe, period_gbp in zip(
        sol.inputs.starts, sol.soe_kwh, sol.values_by_period_gbp(), strict=True
    ):
        value += period_gbp
        out.append(TracePoint(start + PERIOD, soe, value))
    return tuple(out)


def idle_money_gbp(x: Inputs, keep: Sequence[int] | None = None) -> float:
    """The money (£, bill only) of the site with its battery idle."""
    idx = range(len(x)) if keep is None else keep
    p = 0.0
    for i in idx:
        g = x.load_kw[i] - x.solar_kw[i]
        p -= max(g, 0.0) * DT_H * x.import_rate[i]
        p += max(-g, 0.0) * DT_H * x.export_rate[i]
    return p / 100.0


OptimumError = lp.NoSolution


def solve(x: Inputs, plant: Plant, soe_start_kwh: float) -> Solution:
    """The perfect-foresight schedule over all of ``x`` from ``soe_start_kwh``."""
    if len(x) == 0:
        raise ValueError("no settlement periods to optimise")
    best = lp.solve(plant, x.programme(soe_start_kwh))
    return Solution(
        inputs=x,
        charge_kw=best.charge_kw,
        discharge_kw=best.discharge_kw,
        import_kw=best.import_kw,
        export_kw=best.export_kw,
        soe_kwh=best.soe_kwh,
        soe_start_kwh=soe_start_kwh,
        nameplate_kwh=plant.nameplate_kwh,
    )


def solve_by_day(x: Inputs, plant: Plant, soe_start_kwh: float) -> Solution:
    """Each local day optimised knowing only that day; its closing SoE opens the next."""
    parts: list[Solution] = []
    soe = soe_start_kwh
    for day in dict.fromkeys(x.days):
        part = solve(x.part([i for i, d in enumerate(x.days) if d == day]), plant, soe)
        parts.append(part)
        soe = part.soe_kwh[-1]
    return Solution(
        inputs=x,
        charge_kw=tuple(v for p in parts for v in p.charge_kw),
        discharge_kw=tuple(v for p in parts for v in p.discharge_kw),
        import_kw=tuple(v for p in parts for v in p.import_kw),
        export_kw=tuple(v for p in parts for v in p.export_kw),
        soe_kwh=tuple(v for p in parts for v in p.soe_kwh),
        soe_start_kwh=soe_start_kwh,
        nameplate_kwh=plant.nameplate_kwh,
    )


def breaches(sol: Solution, plant: Plant, tol: float = TOLERANCE) -> list[str]:
    """Every limit the solution breaks (empty when it keeps them all), one line each."""
    x = sol.inputs
    out: list[str] = []
    soe_prev = sol.soe_start_kwh
    lo = min(plant.soe_min_kwh, sol.soe_start_kwh)
    hi = max(plant.soe_max_kwh, sol.soe_start_kwh)
    for i, t in enumerate(x.starts):
        c, d = sol.charge_kw[i], sol.discharge_kw[i]
        imp, exp, s = sol.import_kw[i], sol.export_kw[i], sol.soe_kwh[i]
        imax, emax = plant.bounds(x.load_kw[i] - x.solar_kw[i])
        at = t.isoformat()
        if c < -tol or c > plant.charge_kw + tol:
            out.append(f"{at}: charge {c} kW outside 0..{plant.charge_kw}")
        if d < -tol or d > plant.discharge_kw + tol:
            out.append(f"{at}: discharge {d} kW outside 0..{plant.discharge_kw}")
        charge_cap, discharge_cap = plant.phase_caps(x.load_kw[i] - x.solar_kw[i])
        if c > charge_cap + tol or d > discharge_cap + tol:
            out.append(f"{at}: charge {c} or discharge {d} kW over what the site allows")
        elif c > tol and d > tol and c / charge_cap + d / discharge_cap > 1 + tol:
            out.append(
                f"{at}: charge and discharge together exceed what the battery and the "
                "site's limits allow in one period"
            )
        if imp < -tol or imp > imax + tol:
            out.append(f"{at}: import {imp} kW over {imax}")
        if exp < -tol or exp > emax + tol:
            out.append(f"{at}: export {exp} kW over {emax}")
        if s < lo - tol or s > hi + tol:
            out.append(f"{at}: SoE {s} kWh outside {lo}..{hi}")
        if s < -tol or s > plant.nameplate_kwh + tol:
            out.append(f"{at}: SoE {s} kWh outside the battery")
        expected = soe_prev + (plant.charge_efficiency * c - d) * DT_H
        if abs(s - expected) > 1e-4:
            out.append(f"{at}: SoE {s} kWh does not follow from {soe_prev} ({expected})")
        net = x.load_kw[i] - x.solar_kw[i] - d + c
        if abs(imp - exp - net) > 1e-4:
            out.append(f"{at}: site power {imp - exp} kW is not load - solar - battery {net}")
        soe_prev = s
    return out


@dataclass(frozen=True)
class DayOptimum:
    """One local day of the references: value £ (over idle) and cycles."""

    day: date
    optimum_gbp: float
    optimum_cycles: float
    same_day_gbp: float
    same_day_cycles: float


@dataclass(frozen=True)
class References:
    """The perfect-foresight optimum and the same-day-foresight one over a run."""

    optimum: Solution
    same_day: Solution
    days: tuple[DayOptimum, ...]

    @property
    def optimum_gbp(self) -> float:
        return self.optimum.value_gbp()

    @property
    def same_day_gbp(self) -> float:
        return self.same_day.value_gbp()

    def day(self, day: date) -> DayOptimum:
        for d in self.days:
            if d.day == day:
                return d
        raise KeyError(day)


def references(x: Inputs, plant: Plant, soe_start_kwh: float) -> References:
    """Both references over ``x`` and their per-day split."""
    best = solve(x, plant, soe_start_kwh)
    daily = solve_by_day(x, plant, soe_start_kwh)
    by_day: dict[date, list[int]] = {}
    for i, d in enumerate(x.days):
        by_day.setdefault(d, []).append(i)
    groups = list(by_day.values())
    days = tuple(
        DayOptimum(day, best_gbp, best.cycles(keep), daily_gbp, daily.cycles(keep))
        for day, keep, best_gbp, daily_gbp in zip(
            by_day, groups, best.values_gbp(groups), daily.values_gbp(groups), strict=True
        )
    )
    return References(best, daily, days)
