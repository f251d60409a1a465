"""The report's figures as titled tables of text (shared by the markdown and HTML)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    #: A sentence shown instead of the rows when there are none (a section that says why
    #: it is empty); a table with neither is left out.
    note: str | None = None


def num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return str(value)


def gbp(value: Any) -> str:
    return "—" if value is None else f"£{value:,.2f}"


ENERGY = (
    ("grid_import_kwh", "grid import kWh"),
    ("grid_export_kwh", "grid export kWh"),
    ("solar_kwh", "solar kWh"),
    ("load_kwh", "homes' load kWh"),
    ("battery_charged_kwh", "battery charged kWh"),
    ("battery_discharged_kwh", "battery discharged kWh"),
)
MONEY = (
    ("imbalance_value_gbp", "imbalance value"),
    ("import_bill_gbp", "import bill"),
    ("import_bill_without_battery_gbp", "import bill without battery"),
    ("export_earnings_gbp", "export earnings"),
    ("export_earnings_without_battery_gbp", "export earnings without battery"),
    ("bill_saved_gbp", "bill saved"),
    ("battery_value_gbp", "battery value (imbalance + bill saved)"),
)


def _rte(rt: dict[str, Any]) -> str:
    if rt["efficiency"] is None:
        return f"— ({rt['reason']})"
    return num(100 * rt["efficiency"])


def tables(f: dict[str, Any]) -> list[Table]:
    """Every section of one site's report, in order."""
    e, m, b, p, o, q = (
        f["energy"], f["money"], f["battery"], f["peaks"], f["opportunity"], f["quality"],
    )  # fmt: skip
    out = [
        Table(
            "Energy (total)",
            ("figure", "value"),
            tuple((title, num(e["total"][k])) for k, title in ENERGY),
        ),
        Table(
            "Energy per day (kWh)",
            ("day", "import", "export", "solar", "load", "charged", "discharged"),
            tuple((d["date"], *(num(d[k]) for k, _ in ENERGY)) for d in e["days"]),
        ),
        Table(
            "Money (total, £)",
            ("figure", "value"),
            (
                *((title, gbp(m["total"][k])) for k, title in MONEY),
                ("red-band import avoided kWh", num(m["total"]["red_band_import_avoided_kwh"])),
                ("periods with an imbalance price", str(m["priced_periods"])),
            ),
        ),
        Table(
            "Battery",
            ("figure", "value"),
            (
                ("throughput kWh", num(b["throughput_kwh"])),
                ("equivalent full cycles", num(b["equivalent_full_cycles"], 2)),
                *((f"hours won by {k}", num(v, 2)) for k, v in b["hours_by_mode"].items()),
                ("hours in safe stop", num(b["safe_stop_hours"], 2)),
                *(
                    (f"safe stop: {k} (h)", num(v, 2))
                    for k, v in b["safe_stop_hours_by_reason"].items()
                ),
                ("minutes over import limit", num(b["minutes_over_import_limit"])),
                ("minutes over export limit", num(b["minutes_over_export_limit"])),
                ("minutes SoE outside limits", num(b["minutes_soe_outside_limits"])),
                ("round-trip efficiency %", _rte(b["round_trip"])),
                ("SoE change in the efficiency kWh", num(b["round_trip"]["soe_change_kwh"])),
                *(
                    (f"SoE {k} kWh (% of nameplate)", f"{num(v)} ({num(pct)})")
                    for (k, v), pct in zip(
                        (b["soe"]["percentiles_kwh"] or {}).items(),
                        (b["soe"]["percentiles_pct"] or {}).values(),
                        strict=True,
                    )
                ),
            ),
        ),
        Table(
            "SoE distribution (hours per band of nameplate energy)",
            ("SoE %", "hours"),
            tuple(
                (band, num(h, 1))
                for band, h in zip(b["soe"]["bands_pct"], b["soe"]["hours_by_band"], strict=True)
            )
            if b["soe"]["samples"]
            else (),
        ),
        Table(
            "Red-band peaks (highest half-hour import, kW)",
            ("day", "with battery", "without battery", "at"),
            tuple(
                (
                    d["date"],
                    num(d["with_battery_kw"]),
                    num(d["without_battery_kw"]),
                    d["at"] or "—",
                )
                for d in p["days"]
            ),
        ),
        Table(
            "Market opportunity (perfect foresight)",
            ("figure", "value"),
            (
                ("optimum", gbp(o["optimum_gbp"])),
                ("earned", gbp(o["earned_gbp"])),
                ("captured %", num(o["captured_pct"])),
                ("left on the table", gbp(o["left_gbp"])),
            ),
        ),
        Table(
            "Periods where most was left",
            ("period", "price p/kWh", "optimum kW", "battery kW", "left £"),
            tuple(
                (
                    t["start"],
                    num(t["price"], 2),
                    num(t["optimum_battery_kw"]),
                    num(t["battery_kw"]),
                    gbp(t["left_gbp"]),
                )
                for t in o["top_periods"]
            ),
        ),
        Table(
            "Consumption patterns",
            ("figure", "value"),
            (("solar self-consumption %", num(f["patterns"]["solar_self_consumption_pct"])),),
        ),
        Table(
            "Average day per month (local half hours, kW)",
            ("month", "mean load", "peak load", "at", "mean solar", "peak solar", "at"),
            tuple(
                (
                    month,
                    num(d["mean_load_kw"]),
                    num(d["peak_load_kw"]),
                    d["peak_load_at"] or "—",
                    num(d["mean_solar_kw"]),
                    num(d["peak_solar_kw"]),
                    d["peak_solar_at"] or "—",
                )
                for month, d in f["patterns"]["average_day_by_month"].items()
            ),
        ),
        _frequency_table(f["frequency_response"]),
        Table(
            "Data quality",
            (
                "device",
                "completeness %",
                "gap minutes",
                "gaps",
                f"rows late > {q['late_after_minutes']} min",
                "worst delay min",
            ),
            tuple(
                (
                    name,
                    num(d["completeness_pct"], 2),
                    str(d["gap_minutes"]),
                    str(d["gaps"]),
                    f"{d['late_rows']} of {d['rows']}",
                    num(d["worst_delay_minutes"]),
                )
                for name, d in q["devices"].items()
            ),
        ),
    ]
    return [t for t in out if t.rows or t.note]


def _block(row: dict[str, Any]) -> str:
    """``2026-03-02 07:00-11:00`` from a block's local ISO start and end."""
    return f"{row['block_start'][:10]} {row['block_start'][11:16]}-{row['block_end'][11:16]}"


def _frequency_table(fr: dict[str, Any]) -> Table:
    rows = tuple(
        (
            label,
            str(r["seconds"]),
            num(r["performance_pct"]),
            str(r["seconds_stale"]),
            str(r["seconds_cut_by_envelope"]),
            num(r["mean_abs_error_kw"]),
            num(r["delivered_kwh"]),
        )
        for label, r in (
            *((_block(b), b) for b in fr["blocks"]),
            *((("all blocks", fr["total"]),) if len(fr["blocks"]) > 1 else ()),
        )
    )
    return Table(
        "Frequency response per EFA block (local time)",
        (
            "block",
            "seconds",
            "within tolerance %",
            "stale s",
            "cut by envelope s",
            "mean |error| kW",
            "delivered kWh",
        ),
        rows,
        note=fr["note"],
    )


def heading(f: dict[str, Any]) -> str:
    return (
        f"{f['name']} ({f['site']}): local days {f['from'][:10]} up to {f['to'][:10]} "
        f"({f['timezone']})"
    )


def footnotes(f: dict[str, Any]) -> list[str]:
    """Sentences under the report: the notes, where prices came from, the attribution."""
    out = list(f["notes"])
    if f["money"]["prices"]:
        out.append(f"Prices: {f['money']['prices']}.")
    out.append(
        "The imbalance value is an indicator (battery kWh x imbalance price), not a "
        "settlement; the bill is at the site file's rates; the homes' load is reconstructed "
        "as grid + solar + battery."
    )
    if f["attribution"]:
        out.append(f["attribution"])
    return out
