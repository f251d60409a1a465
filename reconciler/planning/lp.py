"""The battery's schedule as a linear programme (HiGHS), at settlement-period resolution.

One formulation serves the planner (forecast inputs, a terminal value for what is left)
and the perfect-foresight optimum of a backtest (the inputs that really happened).

Per period ``t`` of length ``h_t`` hours the variables are charge ``c`` (kW drawn),
discharge ``d`` (kW delivered), grid import ``i`` and export ``e`` (kW), SoE at the end
``s`` (kWh), and the import and export beyond the site's limits ``u``, ``w`` (kW, priced
so high that they are used only when nothing else keeps the site inside them):

    i - e = net_load + c - d                       (site power, + import)
    s_t = s_{t-1} + eff * h c - h d                 (the plant stores c * eff, gives d)
    0 <= c <= charge_kw, 0 <= d <= discharge_kw, soe_min <= s <= soe_max
    i - u <= import_kw, e - w <= export_kw

and the money maximised, in pence:

    sum h [price (d - c) - import_rate i + export_rate e - cycling_cost d - BIG (u + w)]
    + terminal_value * s_T

``price (d - c)`` is the imbalance value of the battery's own flows (what NIV chase earns)
and the rates are the site's bill, as the backtest counts them.

A relaxation to know about: at a negative price the programme may charge and discharge
in the same period, to be paid for the energy its losses burn; the plant cannot. The row
``c / charge_kw + d / discharge_kw <= 1`` bounds that, so the optimum stays an upper bound
and a plan's SoE path stays one the mode can steer along.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import highspy
import numpy as np

#: Penalty on power beyond the site's limits, p/kWh: far above any price.
OVER_LIMIT_P_PER_KWH = 10_000.0


@dataclass(frozen=True)
class Battery:
    """The plant: power kW (positive numbers), energy kWh, charge efficiency (0-1]."""

    charge_kw: float
    discharge_kw: float
    soe_min_kwh: float
    soe_max_kwh: float
    charge_efficiency: float
    import_limit_kw: float
    export_limit_kw: float


@dataclass(frozen=True)
class Inputs:
    """One horizon: period lengths (h), and per period the net load (load - solar, kW,
    + consumption), the imbalance price and the import/export rates (p/kWh)."""

    hours: Sequence[float]
    net_load_kw: Sequence[float]
    price: Sequence[float]
    import_rate: Sequence[float]
    export_rate: Sequence[float]
    soe_start_kwh: float
    cycling_cost: float = 0.0
    terminal_value: float = 0.0


@dataclass(frozen=True)
class Solution:
    """Battery power per period (kW, + discharge), SoE at each period's end (kWh), grid
    power (kW, + import), and the objective in £ (without the terminal value)."""

    battery_kw: tuple[float, ...]
    soe_end_kwh: tuple[float, ...]
    grid_kw: tuple[float, ...]
    value_gbp: float
    discharged_kwh: float


class Infeasible(RuntimeError):
    pass


_first = threading.Lock()
_quiet = False


def _solver() -> highspy.Highs:
    """A silent HiGHS instance. HiGHS prints a banner on stdout the first time one is made
    in a process, before any option can be set; stdout carries `--output json`, so that
    first construction writes to /dev/null."""
    global _quiet
    with _first:
        if _quiet:
            solver = highspy.Highs()  # type: ignore[no-untyped-call]
        else:
            sys.stdout.flush()
            saved = os.dup(1)
            try:
                with open(os.devnull, "w") as null:
                    os.dup2(null.fileno(), 1)
                    solver = highspy.Highs()  # type: ignore[no-untyped-call]
            finally:
                os.dup2(saved, 1)
                os.close(saved)
            _quiet = True
    solver.setOptionValue("output_flag", False)
    return solver


def solve(battery: Battery, inputs: Inputs) -> Solution:
    """The best schedule for ``inputs`` on ``battery`` (HiGHS, dual simplex)."""
    n = len(inputs.hours)
    if not n:
        return Solution((), (), (), 0.0, 0.0)
    h = np.asarray(inputs.hours, dtype=float)
    price = np.asarray(inputs.price, dtype=float)
    imp = np.asarray(inputs.import_rate, dtype=float)
    exp = np.asarray(inputs.export_rate, dtype=float)
    net = np.asarray(inputs.net_load_kw, dtype=float)
    eff = battery.charge_efficiency
    soe0 = min(max(inputs.soe_start_kwh, battery.soe_min_kwh), battery.soe_max_kwh)
    # Where each block of columns starts: c, d, i, e, s, u, w.
    c0, d0, i0, e0, s0, u0, w0 = (k * n for k in range(7))
    cols = 7 * n
    cost = np.zeros(cols)  # HiGHS minimises: cost = -money
    cost[c0:d0] = h * price
    cost[d0:i0] = -h * price + h * inputs.cycling_cost
    cost[i0:e0] = h * imp
    cost[e0:s0] = -h * exp
    cost[s0 + n - 1] = -inputs.terminal_value
    cost[u0:w0] = h * OVER_LIMIT_P_PER_KWH
    cost[w0:] = h * OVER_LIMIT_P_PER_KWH
    lower = np.zeros(cols)
    upper = np.full(cols, highspy.kHighsInf)
    upper[c0:d0] = battery.charge_kw
    upper[d0:i0] = battery.discharge_kw
    lower[s0 : s0 + n] = battery.soe_min_kwh
    upper[s0 : s0 + n] = max(battery.soe_max_kwh, battery.soe_min_kwh)

    rows: list[list[tuple[int, float]]] = []
    row_lo: list[float] = []
    row_hi: list[float] = []
    for t in range(n):
        # i - e - c + d = net
        rows.append([(i0 + t, 1.0), (e0 + t, -1.0), (c0 + t, -1.0), (d0 + t, 1.0)])
        row_lo.append(float(net[t]))
        row_hi.append(float(net[t]))
        # s_t - s_{t-1} - eff h c + h d = 0 (s_{-1} = soe0 moves to the right side)
        row = [(s0 + t, 1.0), (c0 + t, -eff * h[t]), (d0 + t, float(h[t]))]
        if t:
            row.append((s0 + t - 1, -1.0))
        rows.append(row)
        row_lo.append(soe0 if t == 0 else 0.0)
        row_hi.append(soe0 if t == 0 else 0.0)
        # i - u <= import limit; e - w <= export limit
        rows.append([(i0 + t, 1.0), (u0 + t, -1.0)])
        row_lo.append(-highspy.kHighsInf)
        row_hi.append(battery.import_limit_kw)
        rows.append([(e0 + t, 1.0), (w0 + t, -1.0)])
        row_lo.append(-highspy.kHighsInf)
        row_hi.append(battery.export_limit_kw)
        # c / charge_kw + d / discharge_kw <= 1: never both at full power
        rows.append([(c0 + t, 1.0 / battery.charge_kw), (d0 + t, 1.0 / battery.discharge_kw)])
        row_lo.append(-highspy.kHighsInf)
        row_hi.append(1.0)

    lp = highspy.HighsLp()
    lp.num_col_ = cols
    lp.num_row_ = len(rows)
    lp.col_cost_ = cost
    lp.col_lower_ = lower
    lp.col_upper_ = upper
    lp.row_lower_ = np.asarray(row_lo)
    lp.row_upper_ = np.asarray(row_hi)
    # Row-wise build, handed over column-wise (CSC) as HiGHS stores it.
    by_col: list[list[tuple[int, float]]] = [[] for _ in range(cols)]
    for r, row in enumerate(rows):
        for c, v in row:
            by_col[c].append((r, v))
    starts, index, value = [0], [], []
    for entries in by_col:
        for r, v in entries:
            index.append(r)
            value.append(v)
        starts.append(len(index))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.asarray(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.asarray(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.asarray(value)

    solver = _solver()
    solver.passModel(lp)
    solver.run()
    if solver.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        status = solver.modelStatusToString(solver.getModelStatus())
        raise Infeasible(f"the battery's programme has no solution ({status})")
    x = np.asarray(solver.getSolution().col_value)
    battery_kw = x[d0:i0] - x[c0:d0]
    money_p = float(-(cost[:s0] @ x[:s0]))  # the penalties are not money
    return Solution(
        battery_kw=tuple(float(v) for v in battery_kw),
        soe_end_kwh=tuple(float(v) for v in x[s0 : s0 + n]),
        grid_kw=tuple(float(v) for v in x[i0:e0] - x[e0:s0]),
        value_gbp=money_p / 100.0,
        discharged_kwh=float(h @ x[d0:i0]),
    )
