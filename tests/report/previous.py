"""The report's figures as they were computed before the fleet's speed-up (issue 16): one
object per half hour, read from the rollups with instants as keys and added period after
period. Kept as the oracle of ``test_figures_are_the_loop_over_periods``: the column
arithmetic of reconciler/report/figures.py must give these figures to the last digit.

Only the per-period reading and the figures that loop over periods are here; the rest of
the record (gaps, decisions, arrivals, frequency) is the current reader's.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from reconciler.backtest import optimum
from reconciler.backtest.prices import elexon_attribution, period_starts
from reconciler.config.model import Site
from reconciler.control.periods import PERIOD
from reconciler.control.schedule import DayPlans, occurrence_at, zone
from reconciler.planning import lp
from reconciler.report.data import _SESSION, LATE_MINUTES, Record
from reconciler.report.figures import _average_day, _counters, _frequency_response, round_trip
from reconciler.telemetry.database import connect


@dataclass(frozen=True)
class Period:
    """One settlement period's record: kW means, the grid meter's counters' kWh in it,
    SoE kWh at the period's end (None: no battery row)."""

    start: datetime
    grid_kw: float | None
    grid_import_kwh: float | None
    grid_export_kwh: float | None
    solar_kw: float
    battery_kw: float | None
    soe_kwh: float | None
    split: Split | None = None


@dataclass(frozen=True)
class Split:
    """A period's flows kept apart at 5 minute resolution (kW means over the period, each
    >= 0): a half hour that both imports and exports shows both, not their net. ``idle``:
    the grid had the battery been idle (grid + battery)."""

    import_kw: float
    export_kw: float
    discharge_kw: float
    charge_kw: float
    idle_import_kw: float
    idle_export_kw: float


_METER_30M = """
SELECT bucket, power_avg_kw, energy_import_kwh, energy_export_kwh
FROM flux.meter_30m WHERE site_id = %s AND device = %s AND bucket >= %s AND bucket < %s
"""

_BESS_30M = """
SELECT bucket,
       CASE WHEN actual_samples > 0 THEN actual_power_avg_kw ELSE target_power_avg_kw END,
       soe_avg_kwh
FROM flux.bess_30m WHERE site_id = %s AND device = %s AND bucket >= %s AND bucket < %s
"""

# The SoE at a period's end: the last reading in it (the rollups keep only means).
_SOE_END = """
SELECT date_bin('30 minutes', time, timestamptz '2000-01-01 00:00+00'),
       (array_agg(soe_kwh ORDER BY time DESC))[1]
FROM flux.bess_readings WHERE site_id = %s AND device = %s AND time >= %s AND time < %s
GROUP BY 1
"""

_MARKET = """
SELECT DISTINCT ON (time) time, value, source
FROM flux.market_data
WHERE site_id = %s AND type = 'imbalance_price' AND time >= %s AND time < %s
ORDER BY time, fetched_at DESC
"""

# The split, per period from its 5 minute buckets holding both a grid and a battery row.
# Run with nested loops off: with the rollups' statistics not gathered yet (just
# uploaded) the join is planned as a nested loop and took 7 s over a month (a hash join:
# 0.01 s; 0.2 s over a year).
_SPLIT = """
WITH g AS (
    SELECT bucket, power_avg_kw AS g FROM flux.meter_5m
    WHERE site_id = %(s)s AND device = %(grid)s AND bucket >= %(a)s AND bucket < %(b)s
      AND power_avg_kw IS NOT NULL
), b AS (
    SELECT bucket,
           CASE WHEN actual_samples > 0 THEN actual_power_avg_kw ELSE target_power_avg_kw END
               AS b
    FROM flux.bess_5m
    WHERE site_id = %(s)s AND device = %(bess)s AND bucket >= %(a)s AND bucket < %(b)s
)
SELECT date_bin('30 minutes', bucket, timestamptz '2000-01-01 00:00+00'),
       avg(greatest(g, 0)), avg(greatest(-g, 0)), avg(greatest(b, 0)), avg(greatest(-b, 0)),
       avg(greatest(g + b, 0)), avg(greatest(-g - b, 0))
FROM g JOIN b USING (bucket) WHERE b IS NOT NULL GROUP BY 1
"""


class Old:
    """The current record with the previous per-period fields (``periods``, ``prices``)."""

    def __init__(self, rec: Record, periods: tuple[Period, ...], prices: dict[datetime, float]):
        self._rec, self.periods, self.prices = rec, periods, prices

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rec, name)


def read_periods(
    url: str, site: Site, start: datetime, end: datetime, db_site: str
) -> tuple[tuple[Period, ...], dict[datetime, float]]:
    """The previous reader's periods and prices."""
    starts = period_starts(start, end)
    grid = site.grid_meter_name
    battery = site.devices.battery.name
    solar_meters = [n for n, m in site.devices.meters.items() if m.role == "solar"]
    _f = float
    with connect(url) as conn:
        for setting in _SESSION:
            conn.execute(setting)

        def rows(query: str, params: Any) -> list[tuple[Any, ...]]:
            return conn.execute(query, params, binary=True).fetchall()

        grid_rows = {r[0]: r[1:] for r in rows(_METER_30M, (db_site, grid, start, end))}
        solar: dict[datetime, float] = {}
        for name in solar_meters:
            for t, kw, *_ in rows(_METER_30M, (db_site, name, start, end)):
                solar[t] = solar.get(t, 0.0) + max(0.0, -_f(kw))
        bess = {r[0]: r[1:] for r in rows(_BESS_30M, (db_site, battery, start, end))}
        soe_end = {r[0]: _f(r[1]) for r in rows(_SOE_END, (db_site, battery, start, end))}
        conn.execute("SET enable_nestloop = off")
        split = {
            r[0]: Split(*r[1:])
            for r in rows(
                _SPLIT, {"s": db_site, "grid": grid, "bess": battery, "a": start, "b": end}
            )
        }
        prices = {at: _f(value) for at, value, _ in rows(_MARKET, (db_site, start, end))}
    periods = []
    for t in starts:
        g = grid_rows.get(t)
        b = bess.get(t)
        periods.append(
            Period(
                start=t,
                grid_kw=None if g is None else _f(g[0]),
                grid_import_kwh=None if g is None else _f(g[1]),
                grid_export_kwh=None if g is None else _f(g[2]),
                solar_kw=solar.get(t, 0.0),
                battery_kw=None if b is None or b[0] is None else _f(b[0]),
                soe_kwh=soe_end.get(t, None if b is None else _f(b[1])),
                split=split.get(t),
            )
        )
    return tuple(periods), prices


def figures(url: str, site: Site, rec: Record, *, with_optimum: bool = True) -> dict[str, Any]:
    """The previous figures of ``rec``'s site and range, read afresh the previous way."""
    periods, prices = read_periods(url, site, rec.start, rec.end, rec.site_id)
    return compute(site, Old(rec, periods, prices), with_optimum=with_optimum)


H = 0.5  # hours per settlement period
#: Rates are sampled this often per period, as the optimum samples them.
RATE_STEPS = optimum.RATE_SAMPLES
#: How many periods the market opportunity lists.
TOP_PERIODS = 10
#: SoE percentiles the battery section gives.
SOE_PERCENTILES = (5, 25, 50, 75, 95)
#: The SoE histogram's bins, % of nameplate energy.
SOE_BIN_PCT = 10


def _r(value: float, digits: int = 3) -> float:
    out = round(value, digits)
    return 0.0 if out == 0 else out


@dataclass(frozen=True)
class _Rates:
    import_rate: float
    export_rate: float
    red: bool


def _rates(site: Site, plans: DayPlans, t: datetime) -> _Rates:
    tz = zone(site.site.timezone)
    imp = exp = 0.0
    step = timedelta(minutes=30 / RATE_STEPS)
    for k in range(RATE_STEPS):
        at = t + k * step
        a, b = plans.plan(site, at).rates_at(at)
        imp += a
        exp += b
    mid = t + timedelta(minutes=15)
    red = any(
        occurrence_at(w, mid, tz) is not None
        for rate in site.rates
        if rate.is_red_band
        for w in rate.windows
    )
    return _Rates(imp / RATE_STEPS, exp / RATE_STEPS, red)


class RateMemo:
    """Rates per period start, shared by the sites of a fleet whose rates and timezone are
    the same (most of a fleet): each period is evaluated once, not once per site."""

    def __init__(self) -> None:
        self._by_key: dict[str, dict[datetime, _Rates]] = {}

    def rates(self, site: Site, starts: list[datetime]) -> list[_Rates]:
        key = json.dumps(
            [site.site.timezone, [r.model_dump(mode="json") for r in site.rates]],
            sort_keys=True,
        )
        memo = self._by_key.setdefault(key, {})
        plans = DayPlans()
        out = []
        for t in starts:
            r = memo.get(t)
            if r is None:
                r = memo[t] = _rates(site, plans, t)
            out.append(r)
        return out


def _split(g: float, b: float) -> Split:
    """A period's flows from its means alone (no 5 minute rollups)."""
    return Split(max(g, 0.0), max(-g, 0.0), max(b, 0.0), max(-b, 0.0),
                 max(g + b, 0.0), max(-g - b, 0.0))  # fmt: skip


def _percentile(ordered: list[float], q: float) -> float:
    """The ``q``-th percentile of sorted values, linear between ranks (numpy's default)."""
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def soe_distribution(site: Site, rec: Record) -> dict[str, Any]:
    """How full the battery was: each period's end SoE (kWh) stands for its half hour.

    ``hours_by_band``: hours per band of :data:`SOE_BIN_PCT` % of nameplate energy (the
    top band includes 100 %); percentiles in kWh and % of nameplate; None without readings.
    """
    nameplate = site.devices.battery.nameplate_energy_kwh
    values = sorted(p.soe_kwh for p in rec.periods if p.soe_kwh is not None)
    bands = list(range(0, 100, SOE_BIN_PCT))
    hours = dict.fromkeys(bands, 0.0)
    for v in values:
        pct = 100 * v / nameplate
        band = min(max(int(pct // SOE_BIN_PCT) * SOE_BIN_PCT, 0), bands[-1])
        hours[band] += H
    pcts = {f"p{q}": _percentile(values, q) for q in SOE_PERCENTILES} if values else None
    return {
        "samples": len(values),
        "min_kwh": _r(values[0], 1) if values else None,
        "max_kwh": _r(values[-1], 1) if values else None,
        "mean_kwh": _r(sum(values) / len(values), 1) if values else None,
        "percentiles_kwh": {k: _r(v, 1) for k, v in pcts.items()} if pcts else None,
        "percentiles_pct": {k: _r(100 * v / nameplate, 1) for k, v in pcts.items()}
        if pcts
        else None,
        "bands_pct": [f"{b}-{b + SOE_BIN_PCT}" for b in bands],
        "hours_by_band": [_r(hours[b], 2) for b in bands],
    }


#: Below this share of nameplate energy charged, no round-trip efficiency is given.
RTE_MIN_CHARGE = 0.05


def _round_trip(site: Site, rec: Record, flows: dict[int, tuple[float, float]]) -> dict[str, Any]:
    """:func:`round_trip` over the complete periods (``flows``: charge, discharge kWh by
    index) whose start SoE is known: the previous period's end, or the range's first
    reading for the first period holding battery readings."""
    charged = discharged = change = 0.0
    known = False
    first = next((i for i, p in enumerate(rec.periods) if p.soe_kwh is not None), None)
    for i, (c, d) in sorted(flows.items()):
        end = rec.periods[i].soe_kwh
        start = rec.soe_start_kwh if i == first else rec.periods[i - 1].soe_kwh if i else None
        if start is None or end is None:
            continue
        charged += c
        discharged += d
        change += end - start
        known = True
    return round_trip(
        charged, discharged, change if known else None, site.devices.battery.nameplate_energy_kwh
    )


ENERGY_KEYS = (
    "grid_import_kwh",
    "grid_export_kwh",
    "solar_kwh",
    "load_kwh",
    "battery_charged_kwh",
    "battery_discharged_kwh",
)
MONEY_KEYS = (
    "imbalance_value_gbp",
    "import_bill_gbp",
    "import_bill_without_battery_gbp",
    "export_earnings_gbp",
    "export_earnings_without_battery_gbp",
    "bill_saved_gbp",
    "red_band_import_avoided_kwh",
    "battery_value_gbp",
)


def compute(
    site: Site, rec: Record, *, with_optimum: bool = True, memo: RateMemo | None = None
) -> dict[str, Any]:
    """The report's figures (see the module docstring); ``memo``: rates already evaluated
    for other sites of a fleet."""
    tz = zone(site.site.timezone)
    rates = (memo or RateMemo()).rates(site, [p.start for p in rec.periods])
    energy: dict[date, dict[str, float]] = defaultdict(lambda: dict.fromkeys(ENERGY_KEYS, 0.0))
    money: dict[date, dict[str, float]] = defaultdict(lambda: dict.fromkeys(MONEY_KEYS, 0.0))
    peaks: dict[date, dict[str, Any]] = {}
    missing: dict[date, int] = defaultdict(int)
    earned: list[float] = []  # battery value per complete period, £
    flows: dict[int, tuple[float, float]] = {}  # battery charge, discharge kWh per period
    keep: list[int] = []
    counters = [0.0, 0.0]  # the grid meter's own import and export counters, kWh
    for i, p in enumerate(rec.periods):
        day = p.start.astimezone(tz).date()
        e, m = energy[day], money[day]
        if p.grid_kw is None or p.battery_kw is None:
            missing[day] += 1
            continue
        g, b, s = p.grid_kw, p.battery_kw, p.solar_kw
        x = p.split or _split(g, b)
        e["grid_import_kwh"] += x.import_kw * H
        e["grid_export_kwh"] += x.export_kw * H
        counters[0] += p.grid_import_kwh or 0.0
        counters[1] += p.grid_export_kwh or 0.0
        e["solar_kwh"] += s * H
        e["load_kwh"] += max(0.0, g + s + b) * H
        e["battery_charged_kwh"] += x.charge_kw * H
        e["battery_discharged_kwh"] += x.discharge_kw * H
        flows[i] = (x.charge_kw * H, x.discharge_kw * H)
        r = rates[i]
        price = rec.prices.get(p.start)
        imbalance = b * H * price / 100 if price is not None else 0.0
        idle = g + b
        bill = x.import_kw * H * r.import_rate / 100
        bill0 = x.idle_import_kw * H * r.import_rate / 100
        exp = x.export_kw * H * r.export_rate / 100
        exp0 = x.idle_export_kw * H * r.export_rate / 100
        value = imbalance + (bill0 - exp0) - (bill - exp)
        m["imbalance_value_gbp"] += imbalance
        m["import_bill_gbp"] += bill
        m["import_bill_without_battery_gbp"] += bill0
        m["export_earnings_gbp"] += exp
        m["export_earnings_without_battery_gbp"] += exp0
        m["bill_saved_gbp"] += (bill0 - exp0) - (bill - exp)
        m["battery_value_gbp"] += value
        if r.red:
            m["red_band_import_avoided_kwh"] += (max(idle, 0.0) - max(g, 0.0)) * H
            peak = peaks.setdefault(
                day, {"date": day.isoformat(), "with_battery_kw": 0.0, "at": None,
                      "without_battery_kw": 0.0}
            )  # fmt: skip
            if g > peak["with_battery_kw"]:
                peak["with_battery_kw"] = g
                peak["at"] = p.start.astimezone(tz).isoformat()
            peak["without_battery_kw"] = max(peak["without_battery_kw"], idle)
        earned.append(value)
        keep.append(i)

    days = sorted(set(energy) | set(money))
    n_complete = len(keep)
    energy_total = {k: _r(sum(energy[d][k] for d in days)) for k in ENERGY_KEYS}
    money_total = {k: _r(sum(money[d][k] for d in days), 2) for k in MONEY_KEYS}
    throughput = energy_total["battery_charged_kwh"] + energy_total["battery_discharged_kwh"]
    nameplate = site.devices.battery.nameplate_energy_kwh
    interval_h = site.telemetry.record_interval_s / 3600
    notes: list[str] = []
    if not rec.periods:
        notes.append("The range holds no settlement period.")
    elif n_complete == 0:
        notes.append(
            "The database holds no grid meter and battery readings for this range: "
            "nothing to report (flux db gaps lists what is missing)."
        )
    elif n_complete < len(rec.periods):
        notes.append(
            f"{len(rec.periods) - n_complete} of {len(rec.periods)} settlement periods lack "
            "grid meter or battery readings and are left out of every figure."
        )
    if rec.arrivals is None:
        notes.append(
            "The database does not record when rows arrived (its schema predates "
            "received_at: `flux db migrate` adds it), so late uploads are not counted."
        )
    if not rec.prices:
        notes.append(
            "The database holds no imbalance prices for this range: the imbalance value is 0 "
            "and the market opportunity is not computed."
        )
    peak_days = [
        {**v, "with_battery_kw": _r(v["with_battery_kw"], 1),
         "without_battery_kw": _r(v["without_battery_kw"], 1)}
        for _, v in sorted(peaks.items())
    ]  # fmt: skip
    figures: dict[str, Any] = {
        "site": site.site.id,
        "db_site": rec.site_id,
        "name": site.site.name,
        "timezone": site.site.timezone,
        "from": rec.start.astimezone(tz).isoformat(),
        "to": rec.end.astimezone(tz).isoformat(),
        "periods": len(rec.periods),
        "complete_periods": n_complete,
        "energy": {
            "total": energy_total,
            "days": [
                {"date": d.isoformat(), **{k: _r(energy[d][k]) for k in ENERGY_KEYS}} for d in days
            ],
        },
        "money": {
            "prices": (
                f"imbalance prices the agent fetched ({', '.join(rec.price_sources)}; the "
                "latest fetch of each period, so the latest settlement run it saw)"
                if rec.prices
                else None
            ),
            "priced_periods": sum(1 for i in keep if rec.periods[i].start in rec.prices),
            "total": money_total,
            "days": [
                {"date": d.isoformat(), **{k: _r(money[d][k], 2) for k in MONEY_KEYS}} for d in days
            ],
        },
        "battery": {
            "throughput_kwh": _r(throughput),
            "equivalent_full_cycles": _r(throughput / 2 / nameplate),
            "hours_by_mode": {
                k: _r(n * interval_h) for k, n in sorted(rec.decisions_by_winner.items())
            },
            "safe_stop_hours": _r(sum(rec.safe_stops_by_reason.values()) * interval_h),
            "safe_stop_hours_by_reason": {
                k: _r(n * interval_h) for k, n in sorted(rec.safe_stops_by_reason.items())
            },
            "minutes_over_import_limit": _r(rec.readings_over_import * interval_h * 60, 1),
            "minutes_over_export_limit": _r(rec.readings_over_export * interval_h * 60, 1),
            "minutes_soe_outside_limits": _r(rec.readings_soe_outside * interval_h * 60, 1),
            "soe": soe_distribution(site, rec),
            "round_trip": _round_trip(site, rec, flows),
        },
        "peaks": {
            "max_with_battery_kw": max((p["with_battery_kw"] for p in peak_days), default=None),
            "max_without_battery_kw": max(
                (p["without_battery_kw"] for p in peak_days), default=None
            ),
            "days": peak_days,
        },
        "opportunity": _opportunity(site, rec, rates, keep, earned, with_optimum, notes),
        "frequency_response": _frequency_response(rec, tz),
        "patterns": _patterns(rec, keep, tz),
        "quality": {
            **_quality(rec, missing, days),
            "grid_meter_counters": _counters(counters, energy_total),
        },
        "notes": notes,
        # Text, not a figure: the attribution line is the current code's.
        "attribution": (
            elexon_attribution(
                rec.start.astimezone(tz).year, (rec.end - PERIOD).astimezone(tz).year
            )
            if rec.prices
            else None
        ),
    }
    return figures


def _opportunity(
    site: Site,
    rec: Record,
    rates: list[_Rates],
    keep: list[int],
    earned: list[float],
    with_optimum: bool,
    notes: list[str],
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "computed": False,
        "optimum_gbp": None,
        "earned_gbp": _r(sum(earned), 2),
        "captured_pct": None,
        "left_gbp": None,
        "top_periods": [],
    }
    if not with_optimum or not rec.prices or not keep:
        return out
    tz = zone(site.site.timezone)
    ps = [rec.periods[i] for i in keep]
    loads = [max(0.0, (p.grid_kw or 0.0) + p.solar_kw + (p.battery_kw or 0.0)) for p in ps]
    x = optimum.Inputs(
        tuple(p.start for p in ps),
        tuple(p.start.astimezone(tz).date() for p in ps),
        tuple(loads),
        tuple(p.solar_kw for p in ps),
        tuple(rec.prices.get(p.start) for p in ps),
        tuple(rates[i].import_rate for i in keep),
        tuple(rates[i].export_rate for i in keep),
    )
    soe = rec.soe_start_kwh if rec.soe_start_kwh is not None else site.soe_min_kwh
    try:
        best = optimum.solve(x, optimum.Plant.of(site), soe)
    except lp.NoSolution as exc:
        notes.append(f"The optimum could not be computed ({exc}).")
        return out
    per = [best.value_gbp([j]) for j in range(len(ps))]
    total = sum(per)
    gaps = {j: per[j] - earned[j] for j in range(len(ps))}
    # Only periods where something was left: the control beat the optimum's split elsewhere.
    left = [j for j in sorted(gaps, key=lambda j: -gaps[j]) if gaps[j] > 0.005][:TOP_PERIODS]
    if len(keep) < len(rec.periods):
        notes.append("The optimum runs over the complete periods only, as if they were adjacent.")
    out.update(
        computed=True,
        optimum_gbp=_r(total, 2),
        captured_pct=_r(100 * sum(earned) / total, 1) if total > 1e-9 else None,
        left_gbp=_r(total - sum(earned), 2),
        optimum_cycles=_r(best.cycles()),
        top_periods=[
            {
                "start": ps[j].start.astimezone(tz).isoformat(),
                "price": x.price[j],
                "optimum_battery_kw": _r(best.battery_kw[j], 1),
                "battery_kw": _r(ps[j].battery_kw or 0.0, 1),
                "optimum_gbp": _r(per[j], 2),
                "earned_gbp": _r(earned[j], 2),
                "left_gbp": _r(per[j] - earned[j], 2),
            }
            for j in left
        ],
    )
    return out


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _patterns(rec: Record, keep: list[int], tz: Any) -> dict[str, Any]:
    """How the homes use energy: mean load and solar kW per local weekday and half hour,
    the average day of each month, and the share of solar used on site (not exported)."""
    cells: dict[tuple[int, int], list[float]] = {}
    months: dict[str, dict[int, list[float]]] = {}
    solar_kwh = exported_solar_kwh = 0.0
    for i in keep:
        p = rec.periods[i]
        local = p.start.astimezone(tz)
        slot = local.hour * 2 + local.minute // 30
        load = max(0.0, (p.grid_kw or 0.0) + p.solar_kw + (p.battery_kw or 0.0))
        for acc in (
            cells.setdefault((local.weekday(), slot), [0.0, 0.0, 0.0]),
            months.setdefault(local.strftime("%Y-%m"), {}).setdefault(slot, [0.0, 0.0, 0.0]),
        ):
            acc[0] += load
            acc[1] += p.solar_kw
            acc[2] += 1
        export = p.split.export_kw if p.split is not None else max(-(p.grid_kw or 0.0), 0.0)
        solar_kwh += p.solar_kw * H
        exported_solar_kwh += min(p.solar_kw, export) * H

    def grid(k: int) -> list[list[float | None]]:
        return [
            [_r(c[k] / c[2], 1) if (c := cells.get((d, h))) else None for h in range(48)]
            for d in range(7)
        ]

    def day(slots: dict[int, list[float]], k: int) -> list[float | None]:
        return [_r(c[k] / c[2], 1) if (c := slots.get(h)) else None for h in range(48)]

    return {
        "weekdays": list(WEEKDAYS),
        "half_hours": [f"{h // 2:02d}:{h % 2 * 30:02d}" for h in range(48)],
        "load_kw_by_weekday": grid(0),
        "solar_kw_by_weekday": grid(1),
        "average_day_by_month": {
            m: _average_day(day(slots, 0), day(slots, 1)) for m, slots in sorted(months.items())
        },
        "solar_self_consumption_pct": (
            _r(100 * (1 - exported_solar_kwh / solar_kwh), 1) if solar_kwh > 1e-9 else None
        ),
    }


def _quality(rec: Record, missing: dict[date, int], days: list[date]) -> dict[str, Any]:
    minutes = (rec.end - rec.start).total_seconds() / 60
    by_device: dict[str, dict[str, Any]] = {}
    for name in sorted({*rec.devices, *(g.device for g in rec.gaps)}):
        gaps = [g for g in rec.gaps if g.device == name]
        gap_min = sum(g.minutes for g in gaps)
        arrived = (rec.arrivals or {}).get(name)
        by_device[name] = {
            "completeness_pct": _r(100 * (1 - gap_min / minutes), 2) if minutes else None,
            "gap_minutes": gap_min,
            "gaps": len(gaps),
            "rows": arrived.rows if arrived else 0,
            "late_rows": arrived.late_rows if arrived else 0,
            "worst_delay_minutes": (
                _r(arrived.worst_delay_s / 60, 1)
                if arrived and arrived.worst_delay_s is not None
                else None
            ),
            "arrival_unknown_rows": arrived.unknown_rows if arrived else 0,
        }
    longest = sorted(rec.gaps, key=lambda g: g.minutes, reverse=True)[:TOP_PERIODS]
    return {
        "late_after_minutes": LATE_MINUTES,
        "arrivals_recorded": rec.arrivals is not None,
        "devices": by_device,
        "missing_periods": sum(missing.values()),
        "missing_periods_by_day": {d.isoformat(): missing[d] for d in days if missing[d]},
        "priced_periods": sum(1 for p in rec.periods if p.start in rec.prices),
        "longest_gaps": [g.as_json() for g in longest],
    }
