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
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from reconciler.backtest import optimum
from reconciler.config.model import Site
from reconciler.control.periods import efa_block
from reconciler.control.schedule import DayPlans, occurrence_at, zone
from reconciler.planning import lp
from reconciler.report.data import LATE_MINUTES, FrequencyBucket, Record, Split

H = 0.5  # hours per settlement period
#: Rates are sampled this often per period, as the optimum samples them.
RATE_STEPS = optimum.RATE_SAMPLES
#: How many periods the market opportunity lists.
TOP_PERIODS = 10
#: SoE percentiles the battery section gives.
SOE_PERCENTILES = (5, 25, 50, 75, 95)
#: The SoE histogram's bins, % of nameplate energy.
SOE_BIN_PCT = 10
ELEXON = "Contains BMRS data © Elexon Limited copyright and database right."


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
        "attribution": ELEXON if rec.prices else None,
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
