"""Every figure of a site's report, from its :class:`~reconciler.report.data.Record`.

The figures are a JSON-ready dict with stable keys (the HTML and markdown render it; scripts
read it with ``--output json``). Units: energy kWh, power kW, money £, prices p/kWh, time
in hours or minutes as the key says; days are local days in the site's timezone.

- Energy: grid import and export, solar, battery charge and discharge from the rollups'
  mean powers (5 minute means kept apart by sign, so a half hour that both imports and
  exports counts both; energy and money share one basis and balance); the homes'
  load reconstructed per period as grid + solar + battery (as ``backtest --from-db`` does).
  The grid meter's own counters are under data quality, with how far they differ.
- Money: at the same powers, the imbalance value (battery kWh x the recorded
  imbalance price), the import bill and export earnings at the site file's rates, and
  the same bill had the battery been idle (grid + battery).
- Peaks: per local day, the highest half-hourly import inside the red band (rates whose
  name contains ``red``), with and without the battery.
- Battery: the SoE distribution (each period's end SoE standing for its half hour) and
  the measured round-trip efficiency (:func:`round_trip`).
- Market opportunity: the perfect-foresight optimum (backtest/optimum.py) on the recorded
  load, solar and prices against what the battery earned, over the complete periods.
- Frequency response: per 4-hour EFA block (local time, from 23:00), the share of the
  seconds the mode was active that the battery delivered within tolerance of the
  contract's curve (the agent's status counts the same seconds the same way), from the
  frequency rollups; ``recorded`` false and a sentence when there was none.
- Data quality: per device, completeness, gaps and late uploads (rows that reached the
  database more than :data:`~reconciler.report.data.LATE_MINUTES` after their time).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reconciler.backtest import optimum
from reconciler.backtest.prices import elexon_attribution
from reconciler.config.model import Site
from reconciler.control.periods import PERIOD, efa_block
from reconciler.control.schedule import DayPlans, occurrence_at, zone
from reconciler.planning import lp
from reconciler.report.data import LATE_MINUTES, FrequencyBucket, Periods, Record

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


@dataclass(frozen=True, eq=False)
class RateColumns:
    """Per period of a range: the import and export rates (p/kWh, the mean of
    :data:`RATE_STEPS` samples) and whether its middle is in a red band."""

    import_rate: NDArray[np.float64]
    export_rate: NDArray[np.float64]
    red: NDArray[np.bool_]


class RateMemo:
    """Rates per range, shared by the sites of a fleet whose rates and timezone are the
    same (most of a fleet) over the same range: each period is evaluated once, not once per
    site."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, datetime, int], RateColumns] = {}

    def rates(self, site: Site, start: datetime, n: int) -> RateColumns:
        """The rates of the ``n`` periods from ``start`` (UTC, on a period boundary)."""
        key = json.dumps(
            [site.site.timezone, [r.model_dump(mode="json") for r in site.rates]],
            sort_keys=True,
        )
        got = self._by_key.get((key, start, n))
        if got is None:
            plans = DayPlans()
            each = [_rates(site, plans, start + i * PERIOD) for i in range(n)]
            got = self._by_key[(key, start, n)] = RateColumns(
                np.array([r.import_rate for r in each], dtype=np.float64),
                np.array([r.export_rate for r in each], dtype=np.float64),
                np.array([r.red for r in each], dtype=np.bool_),
            )
        return got


def _split_columns(g: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """The periods' flows from their means alone (no 5 minute rollups), as
    :data:`~reconciler.report.data.SPLIT_COLUMNS` (n x 6)."""
    z = 0.0
    return np.stack(
        [np.maximum(g, z), np.maximum(-g, z), np.maximum(b, z), np.maximum(-b, z),
         np.maximum(g + b, z), np.maximum(-g - b, z)], axis=1,
    )  # fmt: skip


def _by_day(values: NDArray[np.float64], use: NDArray[np.bool_], cal: _Calendar) -> list[float]:
    """The sum of ``values`` over the periods ``use`` of each local day (``bincount`` adds
    in index order: the sums of a loop over the periods, to the last bit)."""
    sums = np.bincount(cal.day[use], values[use], minlength=len(cal.days))
    return [float(v) for v in sums.tolist()]


def _peaks(
    ps: Periods,
    red: NDArray[np.bool_],
    g: NDArray[np.float64],
    idle: NDArray[np.float64],
    cal: _Calendar,
    tz: Any,
) -> list[dict[str, Any]]:
    """Per local day with a complete red-band period (``red``), the highest import with the
    battery (kW, and when: the first half hour at the highest) and without it (grid +
    battery); 0 when the site did not import."""
    out: dict[int, dict[str, Any]] = {}
    at = np.flatnonzero(red).tolist()
    for i, day, gi, idle_i in zip(
        at, cal.day[red].tolist(), g[red].tolist(), idle[red].tolist(), strict=True
    ):
        peak = out.setdefault(
            day,
            {
                "date": cal.days[day].isoformat(),
                "with_battery_kw": 0.0,
                "at": None,
                "without_battery_kw": 0.0,
            },
        )
        if gi > peak["with_battery_kw"]:
            peak["with_battery_kw"] = gi
            peak["at"] = ps.at(i).astimezone(tz).isoformat()
        peak["without_battery_kw"] = max(peak["without_battery_kw"], idle_i)
    return [out[d] for d in sorted(out)]  # fmt: skip


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
    soe = rec.periods.soe_kwh
    known = np.sort(soe[~np.isnan(soe)])
    values: list[float] = known.tolist()
    bands = list(range(0, 100, SOE_BIN_PCT))
    # floor_divide is Python's float // (the same remainder rule); half hours add exactly.
    band = np.clip(np.floor_divide(100 * known / nameplate, SOE_BIN_PCT), 0, len(bands) - 1)
    counts = np.bincount(band.astype(np.int64), minlength=len(bands))
    hours = {b: H * int(c) for b, c in zip(bands, counts.tolist(), strict=True)}
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


def round_trip(
    charged_kwh: float, discharged_kwh: float, soe_change_kwh: float | None, nameplate_kwh: float
) -> dict[str, Any]:
    """The measured round-trip efficiency over periods whose start and end SoE are known:

        RTE = (discharged kWh + (SoE end - SoE start) kWh) / charged kWh

    with the charge and discharge measured at the battery's terminals (+ discharge) and
    the SoE its own reading (kWh). The SoE gained is energy charged but not yet
    discharged, counted as if discharged without further loss: exact when the losses are
    on charging, as the site model's ``charge_efficiency`` has them (a loss on discharge
    would need an efficiency to take it out). ``efficiency`` is None with a ``reason``
    when the SoE change is as large as the energy discharged (the figure would mostly
    measure the SoE estimate), when too little was charged, or the SoE is unknown.
    """
    out: dict[str, Any] = {
        "efficiency": None,
        "reason": None,
        "charged_kwh": _r(charged_kwh),
        "discharged_kwh": _r(discharged_kwh),
        "soe_change_kwh": None if soe_change_kwh is None else _r(soe_change_kwh),
        "formula": "(discharged + SoE end - SoE start) / charged",
    }
    if soe_change_kwh is None:
        out["reason"] = "no period with a known SoE at its start and end"
    elif charged_kwh < RTE_MIN_CHARGE * nameplate_kwh:
        out["reason"] = (
            f"the battery charged {charged_kwh:.1f} kWh, under {RTE_MIN_CHARGE:.0%} of its "
            "nameplate energy: too little to measure"
        )
    elif abs(soe_change_kwh) >= discharged_kwh:
        out["reason"] = (
            f"the SoE changed by {soe_change_kwh:+.1f} kWh, as much as the "
            f"{discharged_kwh:.1f} kWh discharged: the figure would measure the SoE estimate"
        )
    else:
        out["efficiency"] = _r((discharged_kwh + soe_change_kwh) / charged_kwh, 3)
    return out


def _round_trip(
    site: Site,
    rec: Record,
    keep: NDArray[np.bool_],
    charge: NDArray[np.float64],
    discharge: NDArray[np.float64],
) -> dict[str, Any]:
    """:func:`round_trip` over the complete periods (``keep``; ``charge``, ``discharge``:
    kWh per period) whose start SoE is known: the previous period's end, or the range's
    first reading for the first period holding battery readings."""
    soe = rec.periods.soe_kwh
    start = np.concatenate(([np.nan], soe[:-1]))
    held = np.flatnonzero(~np.isnan(soe))
    if len(held):
        first = rec.soe_start_kwh
        start[held[0]] = np.nan if first is None else first
    use = keep & ~np.isnan(start) & ~np.isnan(soe)
    # Python's sum over lists: the same additions, in the same order, as period by period.
    return round_trip(
        sum(charge[use].tolist(), 0.0),
        sum(discharge[use].tolist(), 0.0),
        sum((soe[use] - start[use]).tolist(), 0.0) if use.any() else None,
        site.devices.battery.nameplate_energy_kwh,
    )  # fmt: skip


@dataclass(frozen=True, eq=False)
class _Calendar:
    """Each period's local day (index into ``days``), weekday (Monday 0), half hour of the
    local day (0-47; 46 and 47 twice on the day the clocks go back) and month (index into
    ``months``, "YYYY-MM")."""

    days: list[date]
    day: NDArray[np.int64]
    weekday: NDArray[np.int64]
    slot: NDArray[np.int64]
    months: list[str]
    month: NDArray[np.int64]


def _calendar(start: datetime, n: int, tz: Any) -> _Calendar:
    """The local calendar of the ``n`` periods from ``start``, from the zone's UTC offset
    at each: asked of the zone once a day, and per period only on a day it changes."""

    def offset(i: int) -> int:
        at = (start + i * PERIOD).astimezone(tz).utcoffset()
        return 0 if at is None else int(at.total_seconds())

    offsets = np.empty(n, dtype=np.int64)
    i = 0
    while i < n:
        j = min(i + 48, n) - 1
        a, b = offset(i), offset(j)
        offsets[i : j + 1] = a if a == b else [offset(k) for k in range(i, j + 1)]
        i = j + 1
    wall = int(start.timestamp()) + 1800 * np.arange(n, dtype=np.int64) + offsets
    epoch_day = wall // 86400
    firsts, day = np.unique(epoch_day, return_inverse=True)
    epoch = date(1970, 1, 1)
    days = [epoch + timedelta(days=int(d)) for d in firsts.tolist()]
    months, month_of_day = np.unique([f"{d:%Y-%m}" for d in days], return_inverse=True)
    return _Calendar(
        days,
        day.astype(np.int64),
        (epoch_day + 3) % 7,  # 1 January 1970 was a Thursday
        (wall % 86400) // 1800,
        [str(m) for m in months],
        month_of_day.astype(np.int64)[day] if days else np.zeros(0, dtype=np.int64),
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
    for other sites of a fleet.

    Computed over the periods' columns, one array operation for all the half hours: each
    figure is the same IEEE arithmetic, in the same order, as adding period after period
    (element-wise operations as the scalar expressions are written; a day's sum by
    ``bincount``, which adds in index order; totals by Python's ``sum`` over the days), so
    the figures are those of a loop over the periods to the last bit.
    """
    tz = zone(site.site.timezone)
    ps = rec.periods
    n = len(ps)
    rates = (memo or RateMemo()).rates(site, ps.start, n)
    cal = _calendar(ps.start, n, tz)
    days = cal.days
    g, b, s = ps.grid_kw, ps.battery_kw, ps.solar_kw
    complete = ~np.isnan(g) & ~np.isnan(b)
    # Where no 5 minute bucket held both, the flows come from the period's means alone.
    x = np.where(np.isnan(ps.split), _split_columns(g, b), ps.split)
    imp, exp_kw, dis, chg, idle_imp, idle_exp = (x[:, k] for k in range(6))
    imbalance = np.where(np.isnan(ps.price), 0.0, b * H * ps.price / 100)
    idle = g + b
    bill = imp * H * rates.import_rate / 100
    bill0 = idle_imp * H * rates.import_rate / 100
    exp = exp_kw * H * rates.export_rate / 100
    exp0 = idle_exp * H * rates.export_rate / 100
    value = imbalance + (bill0 - exp0) - (bill - exp)
    red = complete & rates.red
    per_period = {
        "grid_import_kwh": imp * H,
        "grid_export_kwh": exp_kw * H,
        "solar_kwh": s * H,
        "load_kwh": np.maximum(0.0, g + s + b) * H,
        "battery_charged_kwh": chg * H,
        "battery_discharged_kwh": dis * H,
        "imbalance_value_gbp": imbalance,
        "import_bill_gbp": bill,
        "import_bill_without_battery_gbp": bill0,
        "export_earnings_gbp": exp,
        "export_earnings_without_battery_gbp": exp0,
        "bill_saved_gbp": (bill0 - exp0) - (bill - exp),
        "red_band_import_avoided_kwh": (np.maximum(idle, 0.0) - np.maximum(g, 0.0)) * H,
        "battery_value_gbp": value,
    }
    by_day = {
        k: _by_day(v, red if k == "red_band_import_avoided_kwh" else complete, cal)
        for k, v in per_period.items()
    }
    energy = {k: by_day[k] for k in ENERGY_KEYS}
    money = {k: by_day[k] for k in MONEY_KEYS}
    missing = np.bincount(cal.day[~complete], minlength=len(days)).tolist()
    keep = np.flatnonzero(complete)
    counters = [
        sum(np.where(np.isnan(c), 0.0, c)[complete].tolist(), 0.0)
        for c in (ps.grid_import_kwh, ps.grid_export_kwh)
    ]  # the grid meter's own import and export counters, kWh
    peaks = _peaks(ps, red, g, idle, cal, tz)
    n_complete = len(keep)
    energy_total = {k: _r(sum(energy[k])) for k in ENERGY_KEYS}
    money_total = {k: _r(sum(money[k]), 2) for k in MONEY_KEYS}
    throughput = energy_total["battery_charged_kwh"] + energy_total["battery_discharged_kwh"]
    nameplate = site.devices.battery.nameplate_energy_kwh
    interval_h = site.telemetry.record_interval_s / 3600
    notes: list[str] = []
    if not n:
        notes.append("The range holds no settlement period.")
    elif n_complete == 0:
        notes.append(
            "The database holds no grid meter and battery readings for this range: "
            "nothing to report (flux db gaps lists what is missing)."
        )
    elif n_complete < n:
        notes.append(
            f"{n - n_complete} of {n} settlement periods lack "
            "grid meter or battery readings and are left out of every figure."
        )
    if rec.arrivals is None:
        notes.append(
            "The database does not record when rows arrived (its schema predates "
            "received_at: `flux db migrate` adds it), so late uploads are not counted."
        )
    if not rec.prices_recorded:
        notes.append(
            "The database holds no imbalance prices for this range: the imbalance value is 0 "
            "and the market opportunity is not computed."
        )
    peak_days = [
        {**v, "with_battery_kw": _r(v["with_battery_kw"], 1),
         "without_battery_kw": _r(v["without_battery_kw"], 1)}
        for v in peaks
    ]  # fmt: skip
    figures: dict[str, Any] = {
        "site": site.site.id,
        "db_site": rec.site_id,
        "name": site.site.name,
        "timezone": site.site.timezone,
        "from": rec.start.astimezone(tz).isoformat(),
        "to": rec.end.astimezone(tz).isoformat(),
        "periods": n,
        "complete_periods": n_complete,
        "energy": {
            "total": energy_total,
            "days": [
                {"date": d.isoformat(), **{k: _r(energy[k][j]) for k in ENERGY_KEYS}}
                for j, d in enumerate(days)
            ],
        },
        "money": {
            "prices": (
                f"imbalance prices the agent fetched ({', '.join(rec.price_sources)}; the "
                "latest fetch of each period, so the latest settlement run it saw)"
                if rec.prices_recorded
                else None
            ),
            "priced_periods": int(np.count_nonzero(~np.isnan(ps.price[keep]))),
            "total": money_total,
            "days": [
                {"date": d.isoformat(), **{k: _r(money[k][j], 2) for k in MONEY_KEYS}}
                for j, d in enumerate(days)
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
            "round_trip": _round_trip(site, rec, complete, chg * H, dis * H),
        },
        "peaks": {
            "max_with_battery_kw": max((p["with_battery_kw"] for p in peak_days), default=None),
            "max_without_battery_kw": max(
                (p["without_battery_kw"] for p in peak_days), default=None
            ),
            "days": peak_days,
        },
        "opportunity": _opportunity(
            site, rec, rates, keep.tolist(), value[keep].tolist(), with_optimum, notes, cal
        ),
        "frequency_response": _frequency_response(rec, tz),
        "patterns": _patterns(rec, complete, exp_kw, cal),
        "quality": {
            **_quality(rec, missing, days),
            "grid_meter_counters": _counters(counters, energy_total),
        },
        "notes": notes,
        "attribution": (
            elexon_attribution(
                rec.start.astimezone(tz).year, (rec.end - PERIOD).astimezone(tz).year
            )
            if rec.prices_recorded
            else None
        ),
    }
    return figures


def _opportunity(
    site: Site,
    rec: Record,
    rates: RateColumns,
    keep: list[int],
    earned: list[float],
    with_optimum: bool,
    notes: list[str],
    cal: _Calendar,
) -> dict[str, Any]:
    """The perfect-foresight optimum over the complete periods ``keep`` against what the
    battery earned in each (``earned``, £)."""
    out: dict[str, Any] = {
        "computed": False,
        "optimum_gbp": None,
        "earned_gbp": _r(sum(earned), 2),
        "captured_pct": None,
        "left_gbp": None,
        "top_periods": [],
    }
    if not with_optimum or not rec.prices_recorded or not keep:
        return out
    tz = zone(site.site.timezone)
    ps = rec.periods
    g, b, s = ps.grid_kw[keep], ps.battery_kw[keep], ps.solar_kw[keep]
    loads = np.maximum(0.0, np.where(g == 0, 0.0, g) + s + np.where(b == 0, 0.0, b))
    x = optimum.Inputs(
        tuple(ps.at(i) for i in keep),
        tuple(cal.days[d] for d in cal.day[keep].tolist()),
        tuple(loads.tolist()),
        tuple(s.tolist()),
        tuple(None if math.isnan(p) else p for p in ps.price[keep].tolist()),
        tuple(rates.import_rate[keep].tolist()),
        tuple(rates.export_rate[keep].tolist()),
    )
    soe = rec.soe_start_kwh if rec.soe_start_kwh is not None else site.soe_min_kwh
    try:
        best = optimum.solve(x, optimum.Plant.of(site), soe)
    except lp.NoSolution as exc:
        notes.append(f"The optimum could not be computed ({exc}).")
        return out
    per = [best.value_gbp([j]) for j in range(len(keep))]
    total = sum(per)
    gaps = {j: per[j] - earned[j] for j in range(len(keep))}
    # Only periods where something was left: the control beat the optimum's split elsewhere.
    left = [j for j in sorted(gaps, key=lambda j: -gaps[j]) if gaps[j] > 0.005][:TOP_PERIODS]
    if len(keep) < len(ps):
        notes.append("The optimum runs over the complete periods only, as if they were adjacent.")
    out.update(
        computed=True,
        optimum_gbp=_r(total, 2),
        captured_pct=_r(100 * sum(earned) / total, 1) if total > 1e-9 else None,
        left_gbp=_r(total - sum(earned), 2),
        optimum_cycles=_r(best.cycles()),
        top_periods=[
            {
                "start": x.starts[j].astimezone(tz).isoformat(),
                "price": x.price[j],
                "optimum_battery_kw": _r(best.battery_kw[j], 1),
                "battery_kw": _r(b[j], 1),
                "optimum_gbp": _r(per[j], 2),
                "earned_gbp": _r(earned[j], 2),
                "left_gbp": _r(per[j] - earned[j], 2),
            }
            for j in left
        ],
    )
    return out


NO_FREQUENCY_RESPONSE = "The battery gave no frequency response in this range."


def _frequency_totals(buckets: list[FrequencyBucket]) -> dict[str, Any]:
    seconds = sum(b.seconds for b in buckets)
    within = sum(b.seconds_within for b in buckets)
    due = sum(b.seconds_due for b in buckets)
    error = sum((b.abs_error_avg_kw or 0.0) * b.seconds_due for b in buckets)
    return {
        "seconds": seconds,
        "seconds_within": within,
        "performance_pct": _r(100 * within / seconds, 2) if seconds else None,
        "seconds_stale": seconds - due,
        "seconds_cut_by_envelope": sum(b.seconds_cut for b in buckets),
        "mean_abs_error_kw": _r(error / due, 2) if due else None,
        "expected_kwh": _r(sum(b.expected_kwh for b in buckets)),
        "delivered_kwh": _r(sum(b.delivered_kwh for b in buckets)),
    }


def _frequency_response(rec: Record, tz: Any) -> dict[str, Any]:
    """Per EFA block (local start and end), the seconds the mode was active, those
    delivered within tolerance and their share (%), the stale seconds (no response due),
    those the envelope cut, the mean |delivered - expected| kW and the energy kWh."""
    blocks: dict[datetime, list[FrequencyBucket]] = defaultdict(list)
    for b in rec.frequency:
        if b.seconds:
            blocks[efa_block(b.start, tz)[0]].append(b)
    recorded = bool(blocks)
    return {
        "recorded": recorded,
        "note": None if recorded else NO_FREQUENCY_RESPONSE,
        "total": _frequency_totals([b for bs in blocks.values() for b in bs]),
        "blocks": [
            {
                "block_start": start.astimezone(tz).isoformat(),
                "block_end": efa_block(start, tz)[1].astimezone(tz).isoformat(),
                **_frequency_totals(blocks[start]),
            }
            for start in sorted(blocks)
        ],
    }


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _patterns(
    rec: Record, keep: NDArray[np.bool_], export_kw: NDArray[np.float64], cal: _Calendar
) -> dict[str, Any]:
    """How the homes use energy: mean load and solar kW per local weekday and half hour,
    the average day of each month, and the share of solar used on site (not exported:
    ``export_kw`` per period)."""
    ps = rec.periods
    g, b, s = ps.grid_kw[keep], ps.battery_kw[keep], ps.solar_kw[keep]
    load = np.maximum(0.0, np.where(g == 0, 0.0, g) + s + np.where(b == 0, 0.0, b))
    slot = cal.slot[keep]

    def sums(cell: NDArray[np.int64], size: int) -> dict[int, list[float]]:
        # Each cell's sums, added in period order as a loop over the periods adds them.
        count = np.bincount(cell, minlength=size).tolist()
        total = [np.bincount(cell, v, minlength=size).tolist() for v in (load, s)]
        return {c: [total[0][c], total[1][c], float(count[c])] for c in range(size) if count[c]}

    week = sums(cal.weekday[keep] * 48 + slot, 7 * 48)
    cells = {(at // 48, at % 48): v for at, v in week.items()}
    months: dict[str, dict[int, list[float]]] = {}
    for at, v in sums(cal.month[keep] * 48 + slot, len(cal.months) * 48).items():
        months.setdefault(cal.months[at // 48], {})[at % 48] = v
    solar_kwh = sum((s * H).tolist(), 0.0)
    exported_solar_kwh = sum((np.minimum(s, export_kw[keep]) * H).tolist(), 0.0)

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


def _average_day(load: list[float | None], solar: list[float | None]) -> dict[str, Any]:
    """One month's average day (kW per local half hour, None where nothing was recorded)
    and its summary: the mean and the highest half hour of each curve, and when."""
    out: dict[str, Any] = {"load_kw": load, "solar_kw": solar}
    for name, curve in (("load", load), ("solar", solar)):
        slots = [(v, h) for h, v in enumerate(curve) if v is not None]
        peak = max(slots, default=None)
        out[f"mean_{name}_kw"] = _r(sum(v for v, _ in slots) / len(slots), 1) if slots else None
        out[f"peak_{name}_kw"] = peak[0] if peak else None
        out[f"peak_{name}_at"] = f"{peak[1] // 2:02d}:{peak[1] % 2 * 30:02d}" if peak else None
    return out


def _counters(counters: list[float], energy: dict[str, float]) -> dict[str, Any]:
    """The grid meter's counters beside its power readings: a meter (or CT ratio) that
    disagrees with itself shows here."""
    net = energy["grid_import_kwh"] - energy["grid_export_kwh"]
    counted = counters[0] - counters[1]
    return {
        "import_kwh": _r(counters[0]),
        "export_kwh": _r(counters[1]),
        "net_difference_pct": _r(100 * (counted - net) / abs(net), 2) if abs(net) > 1e-6 else None,
    }


def _quality(rec: Record, missing: list[int], days: list[date]) -> dict[str, Any]:
    """Per device, completeness, gaps and late rows; the missing periods (``missing``: per
    day of ``days``)."""
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
        "missing_periods": sum(missing),
        "missing_periods_by_day": {
            d.isoformat(): m for d, m in zip(days, missing, strict=True) if m
        },
        "priced_periods": int(np.count_nonzero(~np.isnan(rec.periods.price))),
        "longest_gaps": [g.as_json() for g in longest],
    }
