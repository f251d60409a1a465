"""Captured % of the optimise mode on every shipped price month, in minutes instead of hours.

The instrument for work on the planner and its forecasts. It replays the mode at
settlement-period resolution: at the start of each period the mode's own ``Planner``
(forecasts from what is known then, the linear programme of planning/lp.py) plans from
the battery's SoE with the live price of that period, and the plan's first period is
applied exactly (the SoE it asks for, within the battery's power and the site's limits);
then the period's settled price and net load are added to the forecasters' history, as
the agent adds them. Beside it, the backtest's perfect-foresight optimum on the same
inputs (reconciler.backtest.optimum), so the figure is the one `flux backtest` prints.

What it leaves out, against `flux backtest` through the agent's loop: ticks within a
period (the loop steers to the plan's SoE every 4 s), the ramp, and the other schedule
entries (while no plan exists the battery idles here; in the loop the entries below
optimise run). On the shipped 7-day windows it lands within about a point of the loop
(2016-08: 59.0% against 58.6%; 2018-11: 61.7% against 61.1%; whole 2016-11: 51.2%
against 50.9%), in about a minute for all months on 2 cores instead of most of an hour.
Figures for the README and docs/backtest.md still come from `flux backtest`.

    .venv/bin/python bench/optimise_months.py [--site sites/variants/demo-optimise.yaml]
        [--from-day 22 --days 7 | --whole] [--workers 2] [--output json]
        [--price-scale A --price-shift B] [MONTH ...]

``--price-scale``/``--price-shift`` play every price as A x price + B p/kWh (history, live
and optimum alike): months at price levels the shipped data never reached (a 2022-like
winter is about x4), where the battery's money is more arbitrage and less the bill.
"""

from __future__ import annotations

import argparse
import calendar
import json
import statistics
import sys
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without an install
    sys.path.insert(0, str(ROOT))

from reconciler.backtest import optimum  # noqa: E402
from reconciler.backtest.engine import planning_history_days  # noqa: E402
from reconciler.backtest.prices import PriceSeries, named, shipped_months  # noqa: E402
from reconciler.backtest.profiles import shipped_year  # noqa: E402
from reconciler.config.loader import load_site  # noqa: E402
from reconciler.control.schedule import zone  # noqa: E402
from reconciler.planning.planner import Planner  # noqa: E402
from reconciler.planning.runner import optimise_params  # noqa: E402
from reconciler.sim.plant import Plant  # noqa: E402

DT_H = optimum.DT_H
#: The month the shipped `january-2024` choice covers.
JANUARY_2024 = "january-2024"


@dataclass(frozen=True)
class MonthResult:
    """One month's window: battery value £ of the mode and of the optimum, captured %,
    equivalent full cycles of each, the SoE at the end kWh of each."""

    month: str
    start: str
    days: int
    strategy_gbp: float
    optimum_gbp: float
    captured_pct: float
    cycles: float
    optimum_cycles: float
    soe_end_kwh: float
    optimum_soe_end_kwh: float


def scaled(series: PriceSeries, scale: float, shift: float) -> PriceSeries:
    """``series`` with every price, p/kWh, played as ``scale`` x price + ``shift``."""
    if (scale, shift) == (1.0, 0.0):
        return series

    def move(prices: Mapping[datetime, float]) -> dict[datetime, float]:
        return {t: scale * p + shift for t, p in prices.items()}

    return replace(series, prices=move(series.prices), before=move(series.before))


def replay(
    site_path: str,
    month: str,
    from_day: int,
    days: int | None,
    price_scale: float = 1.0,
    price_shift: float = 0.0,
) -> MonthResult:
    """The mode over ``days`` from day ``from_day`` of ``month`` (None: to the month's end),
    prices played as ``price_scale`` x price + ``price_shift`` p/kWh."""
    site = load_site(site_path)
    params = optimise_params(site)
    if params is None:
        raise SystemExit(f"{site_path}: no optimise entry in the schedule")
    year, mon = (2024, 1) if month == JANUARY_2024 else (int(p) for p in month.split("-"))
    span = calendar.monthrange(year, mon)[1] - from_day + 1 if days is None else days
    tz = zone(site.site.timezone)
    start = datetime(year, mon, from_day, tzinfo=tz).astimezone(UTC)
    end = start + timedelta(days=span)
    series = scaled(named(month), price_scale, price_shift)
    x = optimum.inputs_for(
        site, start, end, prices=series, profiles=shipped_year(start, end), wrap=True
    )
    plant = optimum.Plant.of(site)
    soe0 = Plant.for_site(site, start).soe_kwh  # where the simulator starts
    planner = Planner(site, params)
    for t, v in series.known_before(start, planning_history_days(site)):
        planner.prices.add(t, v)

    eta = plant.charge_efficiency
    soe = soe0
    cols: tuple[list[float], ...] = ([], [], [], [], [])
    for k, t in enumerate(x.starts):
        net, price = x.load_kw[k] - x.solar_kw[k], x.price[k]
        plan = planner.plan(t, soe_kwh=soe, net_load_kw=net, live_price=price)
        charge = discharge = 0.0
        if plan is not None:
            gap = soe - plan.steps[0].soe_end_kwh  # > 0: energy to discharge, kWh
            if gap >= 0:
                discharge = min(plant.discharge_kw, gap / DT_H)
            else:
                charge = min(plant.charge_kw, -gap / eta / DT_H)
            imax, emax = plant.bounds(net)
            charge = max(0.0, charge - max(0.0, net + charge - discharge - imax))
            discharge = max(0.0, discharge - max(0.0, -emax - (net + charge - discharge)))
        soe += (eta * charge - discharge) * DT_H
        grid = net + charge - discharge
        for col, v in zip(
            cols, (charge, discharge, max(grid, 0.0), max(-grid, 0.0), soe), strict=True
        ):
            col.append(v)
        if price is not None:
            planner.prices.add(t, price)
        planner.net_load.observe(t, net)

    c, d, i, e, s = (tuple(col) for col in cols)
    mine = optimum.Solution(x, c, d, i, e, s, soe0, plant.nameplate_kwh)
    best = optimum.solve(x, plant, soe0)
    value, best_value = mine.value_gbp(), best.value_gbp()
    return MonthResult(
        month=month,
        start=start.isoformat(),
        days=span,
        strategy_gbp=round(value, 2),
        optimum_gbp=round(best_value, 2),
        captured_pct=round(100.0 * value / best_value, 1) if best_value > 0 else 0.0,
        cycles=round(mine.cycles(), 2),
        optimum_cycles=round(best.cycles(), 2),
        soe_end_kwh=round(soe, 1),
        optimum_soe_end_kwh=round(best.soe_kwh[-1], 1),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("months", nargs="*", help="YYYY-MM or january-2024 (default: all)")
    parser.add_argument("--site", default=str(ROOT / "sites/variants/demo-optimise.yaml"))
    parser.add_argument("--from-day", type=int, default=22)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--whole", action="store_true", help="each whole month from the 1st")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", choices=["text", "json"], default="text")
    parser.add_argument("--price-scale", type=float, default=1.0, help="A in A x price + B")
    parser.add_argument("--price-shift", type=float, default=0.0, help="B, p/kWh")
    args = parser.parse_args()
    months = args.months or [*shipped_months(), JANUARY_2024]
    from_day, days = (1, None) if args.whole else (args.from_day, args.days)
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(
            pool.map(
                replay,
                [args.site] * len(months),
                months,
                [from_day] * len(months),
                [days] * len(months),
                [args.price_scale] * len(months),
                [args.price_shift] * len(months),
            )
        )
    pcts = [r.captured_pct for r in results]
    summary = {
        "mean_pct": round(statistics.fmean(pcts), 1),
        "lowest_pct": min(pcts),
        "months_under_60": sum(p < 60 for p in pcts),
    }
    if args.output == "json":
        doc = {"price_scale": args.price_scale, "price_shift": args.price_shift, **summary}
        print(json.dumps({"months": [asdict(r) for r in results], **doc}, indent=2))
        return 0
    moved = (args.price_scale, args.price_shift) != (1.0, 0.0)
    prices = f", prices x{args.price_scale:g} {args.price_shift:+g} p/kWh" if moved else ""
    print(f"optimise mode, period-level replay of {Path(args.site).name}{prices}:")
    print(
        f"{'month':<13} {'days':>4} {'mode £':>9} {'optimum £':>10} {'captured':>9} "
        f"{'cycles':>13} {'end SoE kWh':>13}"
    )
    for r in results:
        print(
            f"{r.month:<13} {r.days:>4} {r.strategy_gbp:>9,.0f} {r.optimum_gbp:>10,.0f} "
            f"{r.captured_pct:>8.1f}% {r.cycles:>6.1f}/{r.optimum_cycles:<6.1f} "
            f"{r.soe_end_kwh:>6.0f}/{r.optimum_soe_end_kwh:<6.0f}"
        )
    print(
        f"mean {summary['mean_pct']:.1f}%, lowest {summary['lowest_pct']:.1f}%, "
        f"{summary['months_under_60']} month(s) under 60%"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
