"""The most a site's battery could have earned: a linear programme at settlement periods.

Perfect foresight of the same load, solar and imbalance prices a backtest plays, on the same
plant: the battery's power (the site file's charge/discharge limits, at most its nameplate),
its energy (the site file's SoE limits), the plant's charge efficiency (energy stored per
energy drawn; discharge is lossless, as :mod:`reconciler.sim.plant` models it), and the
site's import/export limits. Money is what the backtest report counts: the imbalance value
(battery kW x h x price, + discharge) plus the site's bill at its rates (import cost minus
export value). A battery's *value* is that money minus the same money with the battery idle,
so an idle schedule is worth exactly 0 and captured % is strategy value / optimum value.

Relaxations that keep the optimum an upper bound of what finer control can do: within a
period the battery may share its time between charging and discharging
(charge/max + discharge/max <= 1) and the site between importing and exporting; where the
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
from typing import Any

import highspy
import numpy as np

from reconciler.backtest.prices import PriceSeries, period_starts
from reconciler.backtest.profiles import SiteProfiles
from reconciler.config.model import Site
from reconciler.control.schedule import DayPlans, zone

DT_H = 0.5
#: Rates are sampled this many times per period (every 5 minutes), as ticks would see them.
RATE_SAMPLES = 6
#: Solver tolerance on limits, kW or kWh, when a solution is checked.
TOLERANCE = 1e-6


@dataclass(frozen=True)
class Plant:
    """What the optimum may do: kW, kWh, and the efficiency of charging."""

    charge_kw: float
    discharge_kw: float
    nameplate_kwh: float
    charge_efficiency: float
    soe_min_kwh: float
    soe_max_kwh: float
    import_limit_kw: float
    export_limit_kw: float

    @classmethod
    def of(cls, site: Site) -> Plant:
        dev, lim = site.devices.battery, site.limits
        return cls(
            charge_kw=min(lim.battery_charge_kw, dev.nameplate_power_kw),
            discharge_kw=min(lim.battery_discharge_kw, dev.nameplate_power_kw),
            nameplate_kwh=dev.nameplate_energy_kwh,
            charge_efficiency=lim.charge_efficiency,
            soe_min_kwh=site.soe_min_kwh,
            soe_max_kwh=min(site.soe_max_kwh, dev.nameplate_energy_kwh),
            import_limit_kw=lim.site_import_kw,
            export_limit_kw=lim.site_export_kw,
        )


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
        idx = range(len(self.inputs)) if keep is None else keep
        x = self.inputs
        p = 0.0
        for i in idx:
            price = x.price[i]
            if price is not None:
                p += (self.discharge_kw[i] - self.charge_kw[i]) * DT_H * price
            p -= self.import_kw[i] * DT_H * x.import_rate[i]
            p += self.export_kw[i] * DT_H * x.export_rate[i]
        return p / 100.0

    def value_gbp(self, keep: Sequence[int] | None = None) -> float:
        """Money with this battery schedule minus money with the battery idle, £."""
        return self.money_gbp(keep) - idle_money_gbp(self.inputs, keep)

    def cycles(self, keep: Sequence[int] | None = None) -> float:
        """Equivalent full cycles: (charged + discharged kWh) / 2 / nameplate."""
        idx = range(len(self.inputs)) if keep is None else keep
        kwh = sum((self.charge_kw[i] + self.discharge_kw[i]) * DT_H for i in idx)
        return kwh / 2.0 / self.nameplate_kwh


def idle_money_gbp(x: Inputs, keep: Sequence[int] | None = None) -> float:
    """The money (£, bill only) of the site with its battery idle."""
    idx = range(len(x)) if keep is None else keep
    p = 0.0
    for i in idx:
        g = x.load_kw[i] - x.solar_kw[i]
        p -= max(g, 0.0) * DT_H * x.import_rate[i]
        p += max(-g, 0.0) * DT_H * x.export_rate[i]
    return p / 100.0


class OptimumError(RuntimeError):
    """The solver did not find the optimum (a bug or degenerate inputs: report it)."""


def _bounds(plant: Plant, x: Inputs, i: int) -> tuple[float, float]:
    g = x.load_kw[i] - x.solar_kw[i]
    return max(plant.import_limit_kw, g), max(plant.export_limit_kw, -g)


def solve(x: Inputs, plant: Plant, soe_start_kwh: float) -> Solution:
    """The perfect-foresight schedule over all of ``x`` from ``soe_start_kwh``."""
    n = len(x)
    if n == 0:
        raise ValueError("no settlement periods to optimise")
    eta = plant.charge_efficiency
    soe_lo = min(plant.soe_min_kwh, soe_start_kwh)
    soe_hi = max(plant.soe_max_kwh, soe_start_kwh)
    # Columns per period i: c, d, imp, exp, s at 5i .. 5i+4.
    nv = 5 * n
    cost = np.zeros(nv)
    lower = np.zeros(nv)
    upper = np.zeros(nv)
    for i in range(n):
        c, d, imp, exp, s = range(5 * i, 5 * i + 5)
        price = x.price[i] or 0.0
        cost[c] = DT_H * price
        cost[d] = -DT_H * price
        cost[imp] = DT_H * x.import_rate[i]
        cost[exp] = -DT_H * x.export_rate[i]
        imax, emax = _bounds(plant, x, i)
        upper[c], upper[d], upper[imp], upper[exp] = (
            plant.charge_kw,
            plant.discharge_kw,
            imax,
            emax,
        )
        lower[s], upper[s] = soe_lo, soe_hi

    starts: list[int] = [0]
    index: list[int] = []
    value: list[float] = []
    row_lo: list[float] = []
    row_hi: list[float] = []

    def row(cols: list[tuple[int, float]], lo: float, hi: float) -> None:
        for j, v in cols:
            index.append(j)
            value.append(v)
        starts.append(len(index))
        row_lo.append(lo)
        row_hi.append(hi)

    for i in range(n):
        c, d, imp, exp, s = range(5 * i, 5 * i + 5)
        net = x.load_kw[i] - x.solar_kw[i]
        # Site balance: import - export = load - solar - (discharge - charge).
        row([(imp, 1.0), (exp, -1.0), (c, -1.0), (d, 1.0)], net, net)
        # Energy: s_i = s_(i-1) + eta*c*dt - d*dt.
        cols = [(s, 1.0), (c, -eta * DT_H), (d, DT_H)]
        if i == 0:
            row(cols, soe_start_kwh, soe_start_kwh)
        else:
            row([*cols, (s - 5, -1.0)], 0.0, 0.0)
        row([(c, 1.0 / plant.charge_kw), (d, 1.0 / plant.discharge_kw)], -highspy.kHighsInf, 1.0)
        imax, emax = _bounds(plant, x, i)
        row([(imp, 1.0 / imax), (exp, 1.0 / emax)], -highspy.kHighsInf, 1.0)

    lp = highspy.HighsLp()
    lp.num_col_ = nv
    lp.num_row_ = len(row_lo)
    lp.col_cost_ = cost
    lp.col_lower_ = lower
    lp.col_upper_ = upper
    lp.row_lower_ = np.array(row_lo)
    lp.row_upper_ = np.array(row_hi)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value)
    h = _quiet_highs()
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise OptimumError(f"the optimum's linear programme ended {h.modelStatusToString(status)}")
    col = list(h.getSolution().col_value)

    def pick(k: int, lo: float = 0.0) -> tuple[float, ...]:
        # The solver's own tolerance can leave -1e-10: report clean non-negative values.
        return tuple(max(lo, col[5 * i + k]) if k < 4 else col[5 * i + k] for i in range(n))

    return Solution(
        inputs=x,
        charge_kw=pick(0),
        discharge_kw=pick(1),
        import_kw=pick(2),
        export_kw=pick(3),
        soe_kwh=pick(4),
        soe_start_kwh=soe_start_kwh,
        nameplate_kwh=plant.nameplate_kwh,
    )


def _quiet_highs() -> Any:
    """A HiGHS instance that prints nothing: ``highspy.Highs()`` writes its banner to the
    process's stdout from C++ before any option can be set, which would corrupt
    ``--output json``; its base class does not (fall back to it if that ever moves)."""
    core = getattr(highspy, "_core", None)
    base = getattr(core, "_Highs", None)
    h: Any = base() if base is not None else highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    return h


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
        imax, emax = _bounds(plant, x, i)
        at = t.isoformat()
        if c < -tol or c > plant.charge_kw + tol:
            out.append(f"{at}: charge {c} kW outside 0..{plant.charge_kw}")
        if d < -tol or d > plant.discharge_kw + tol:
            out.append(f"{at}: discharge {d} kW outside 0..{plant.discharge_kw}")
        if c / plant.charge_kw + d / plant.discharge_kw > 1 + tol:
            out.append(f"{at}: charge and discharge together exceed the battery's power")
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
    days = []
    for day in dict.fromkeys(x.days):
        keep = [i for i, d in enumerate(x.days) if d == day]
        days.append(
            DayOptimum(
                day,
                best.value_gbp(keep),
                best.cycles(keep),
                daily.value_gbp(keep),
                daily.cycles(keep),
            )
        )
    return References(best, daily, tuple(days))
