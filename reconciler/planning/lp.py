"""The battery as a linear programme (HiGHS), period by period: one formulation for the
`optimise` mode's plans (forecast inputs, a value for what is left at the end) and for the
backtest's perfect-foresight optimum (the inputs that really happened).

Per period ``t`` of ``h_t`` hours the variables are charge ``c`` (kW drawn), discharge
``d`` (kW delivered), grid import ``i`` and export ``e`` (kW) and the SoE at its end ``s``
(kWh)::

    i - e = net_load + c - d              site power (+ import); net load = load - solar
    s_t = s_(t-1) + eff h c - h d         the plant stores c x eff and gives d, as
                                          reconciler.sim.plant models it
    0 <= c <= charge_kw, 0 <= d <= discharge_kw, soe_min <= s <= soe_max
    i <= max(import_kw, net_load), e <= max(export_kw, -net_load)

and the money maximised, in pence::

    sum h [price (d - c) - import_rate i + export_rate e - cycling_cost d] + terminal s_T

``price (d - c)`` is the imbalance value of the battery's own flows and the rates are the
site's bill, as the backtest report counts them.

Within a period the battery may share its time between charging and discharging, each
phase at constant power within what the site allows while it runs
(``c / charge_cap + d / discharge_cap <= 1``, the caps of :meth:`Plant.phase_caps`: a
charge that would take the site over its import limit cannot be shared with a discharge
to bring the period's mean back under it). At negative prices that is worth doing: the
losses of a charge and discharge in one period are energy drawn at a price that pays.
Relaxations that keep the optimum an upper bound of what finer control can do: the site
may share its time between importing and exporting, billed on the period's net;
where the load alone already breaks a site limit, the limit is where the site would be
with the battery idle (the battery is never asked to do the impossible, and never makes it
worse). A start outside the SoE limits widens them to include it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np

from reconciler.config.model import Site


@dataclass(frozen=True)
class Plant:
    """What the battery may do: power kW (positive numbers), energy kWh, the charge
    efficiency (kWh stored per kWh drawn; discharge is lossless), the site's limits kW."""

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
        """The site file's battery and limits: power at most the nameplate's."""
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

    def bounds(self, net_load_kw: float) -> tuple[float, float]:
        """Most import and export (kW) with a net load of ``net_load_kw``: the site's
        limits, or where the site already is with the battery idle."""
        return max(self.import_limit_kw, net_load_kw), max(self.export_limit_kw, -net_load_kw)

    def phase_caps(self, net_load_kw: float) -> tuple[float, float]:
        """The most the battery can charge and discharge (kW) while the rest of the site
        draws ``net_load_kw``: its own power, and what keeps the site within
        :meth:`bounds` (0 where the load alone is at that bound)."""
        imax, emax = self.bounds(net_load_kw)
        return (
            max(0.0, min(self.charge_kw, imax - net_load_kw)),
            max(0.0, min(self.discharge_kw, emax + net_load_kw)),
        )


@dataclass(frozen=True)
class Inputs:
    """One horizon: period lengths (h), and per period the net load (load - solar, kW)
    and the imbalance price (p/kWh; None: no price, worth nothing), the import and export
    rates (p/kWh); the SoE at the start (kWh); a cost per kWh discharged and a value per
    kWh left at the end (p/kWh)."""

    hours: Sequence[float]
    net_load_kw: Sequence[float]
    price: Sequence[float | None]
    import_rate: Sequence[float]
    export_rate: Sequence[float]
    soe_start_kwh: float
    cycling_cost: float = 0.0
    terminal_value: float = 0.0


@dataclass(frozen=True)
class Schedule:
    """Per period: charge and discharge kW (both >= 0), grid import and export kW, SoE at
    the period's end kWh."""

    charge_kw: tuple[float, ...]
    discharge_kw: tuple[float, ...]
    import_kw: tuple[float, ...]
    export_kw: tuple[float, ...]
    soe_kwh: tuple[float, ...]

    @property
    def battery_kw(self) -> tuple[float, ...]:
        """Battery power per period, kW, + discharge."""
        return tuple(d - c for c, d in zip(self.charge_kw, self.discharge_kw, strict=True))


def money_gbp(x: Inputs, s: Schedule, keep: Sequence[int] | None = None) -> float:
    """Imbalance value minus the bill over the periods ``keep`` (all if None), £: what the
    programme maximises, without the cycling cost and the terminal value."""
    pence = 0.0
    for i in range(len(x.hours)) if keep is None else keep:
        h, price = x.hours[i], x.price[i]
        if price is not None:
            pence += (s.discharge_kw[i] - s.charge_kw[i]) * h * price
        pence -= s.import_kw[i] * h * x.import_rate[i]
        pence += s.export_kw[i] * h * x.export_rate[i]
    return pence / 100.0


#: Longest a solve may take, s: a year of periods takes about 9 s; a plan, milliseconds.
TIME_LIMIT_S = 60.0


def _require_finite(x: Inputs) -> None:
    """HiGHS does not return on a NaN cost: refuse one (a bad value upstream) at once."""
    for name, values in (
        ("hours", x.hours),
        ("net_load_kw", x.net_load_kw),
        ("price", [p for p in x.price if p is not None]),
        ("import_rate", x.import_rate),
        ("export_rate", x.export_rate),
        ("soe_start_kwh", [x.soe_start_kwh]),
        ("cycling_cost", [x.cycling_cost]),
        ("terminal_value", [x.terminal_value]),
    ):
        bad = next((v for v in values if not math.isfinite(v)), None)
        if bad is not None:
            raise ValueError(f"{name} holds {bad}: the battery's programme needs numbers")


class NoSolution(RuntimeError):
    """HiGHS found no optimum (a bug or degenerate inputs: report it)."""


def quiet_highs() -> Any:
    """A HiGHS instance that prints nothing: ``highspy.Highs()`` writes a banner to the
    process's stdout from C++ before any option can be set, which would corrupt
    ``--output json``; its base class does not (fall back to it if that ever moves)."""
    core = getattr(highspy, "_core", None)
    base = getattr(core, "_Highs", None)
    h: Any = base() if base is not None else highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    return h


def solve(plant: Plant, x: Inputs) -> Schedule:
    """The schedule that maximises the money of ``x`` on ``plant`` (see the module doc)."""
    n = len(x.hours)
    if n == 0:
        raise ValueError("no periods to plan")
    _require_finite(x)
    eta = plant.charge_efficiency
    soe_lo = min(plant.soe_min_kwh, x.soe_start_kwh)
    soe_hi = max(plant.soe_max_kwh, x.soe_start_kwh)
    # Columns per period t: c, d, i, e, s at 5t .. 5t+4 (HiGHS minimises: cost = -money).
    cost = np.zeros(5 * n)
    lower = np.zeros(5 * n)
    upper = np.zeros(5 * n)
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

    for t in range(n):
        c, d, imp, exp, s = range(5 * t, 5 * t + 5)
        h, price, net = x.hours[t], x.price[t] or 0.0, x.net_load_kw[t]
        imax, emax = plant.bounds(net)
        charge_cap, discharge_cap = plant.phase_caps(net)
        cost[c] = h * price
        cost[d] = -h * price + h * x.cycling_cost
        cost[imp] = h * x.import_rate[t]
        cost[exp] = -h * x.export_rate[t]
        upper[c], upper[d], upper[imp], upper[exp] = charge_cap, discharge_cap, imax, emax
        lower[s], upper[s] = soe_lo, soe_hi
        row([(imp, 1.0), (exp, -1.0), (c, -1.0), (d, 1.0)], net, net)
        energy = [(s, 1.0), (c, -eta * h), (d, h)]
        if t == 0:
            row(energy, x.soe_start_kwh, x.soe_start_kwh)
        else:
            row([*energy, (s - 5, -1.0)], 0.0, 0.0)
        # Charging and discharging share the period's time, each at most at what the site
        # allows while it runs (charging adds to the net load, discharging takes from it),
        # so the shares are what constant-power phases of the period can deliver.
        if charge_cap > 0.0 and discharge_cap > 0.0:
            row([(c, 1.0 / charge_cap), (d, 1.0 / discharge_cap)], -highspy.kHighsInf, 1.0)
        row([(imp, 1.0 / imax), (exp, 1.0 / emax)], -highspy.kHighsInf, 1.0)
    cost[5 * n - 1] -= x.terminal_value

    lp = highspy.HighsLp()
    lp.num_col_ = 5 * n
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
    h = quiet_highs()
    h.setOptionValue("time_limit", TIME_LIMIT_S)
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise NoSolution(f"the battery's linear programme ended {h.modelStatusToString(status)}")
    col = list(h.getSolution().col_value)

    def pick(k: int) -> tuple[float, ...]:
        # The solver's own tolerance can leave -1e-10: report clean non-negative powers.
        return tuple(max(0.0, col[5 * t + k]) if k < 4 else col[5 * t + k] for t in range(n))

    return Schedule(pick(0), pick(1), pick(2), pick(3), pick(4))
