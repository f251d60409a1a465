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


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return str(value)


def _gbp(value: Any) -> str:
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


def tables(f: dict[str, Any]) -> list[Table]:
    """Every section of one site's report, in order."""
    e, m, b, p, o, q = (
        f["energy"], f["money"], f["battery"], f["peaks"], f["opportunity"], f["quality"],
    )  # fmt: skip
    out = [
        Table(
            "Energy (total)",
            ("figure", "value"),
            tuple((title, _num(e["total"][k])) for k, title in ENERGY),
        ),
        Table(
            "Energy per day (kWh)",
            ("day", "import", "export", "solar", "load", "charged", "discharged"),
            tuple((d["date"], *(_num(d[k]) for k, _ in ENERGY)) for d in e["days"]),
        ),
        Table(
            "Money (total, £)",
            ("figure", "value"),
            (
                *((title, _gbp(m["total"][k])) for k, title in MONEY),
                ("red-band import avoided kWh", _num(m["total"]["red_band_import_avoided_kwh"])),
                ("periods with an imbalance price", str(m["priced_periods"])),
            ),
        ),
        Table(
            "Battery",
            ("figure", "value"),
            (
                ("throughput kWh", _num(b["throughput_kwh"])),
                ("equivalent full cycles", _num(b["equivalent_full_cycles"], 2)),
                *((f"hours won by {k}", _num(v, 2)) for k, v in b["hours_by_mode"].items()),
                ("hours in safe stop", _num(b["safe_stop_hours"], 2)),
                *(
                    (f"safe stop: {k} (h)", _num(v, 2))
                    for k, v in b["safe_stop_hours_by_reason"].items()
                ),
                ("minutes over import limit", _num(b["minutes_over_import_limit"])),
                ("minutes over export limit", _num(b["minutes_over_export_limit"])),
                ("minutes SoE outside limits", _num(b["minutes_soe_outside_limits"])),
            ),
        ),
        Table(
            "Red-band peaks (highest half-hour import, kW)",
            ("day", "with battery", "without battery", "at"),
            tuple(
                (
                    d["date"],
                    _num(d["with_battery_kw"]),
                    _num(d["without_battery_kw"]),
                    d["at"] or "—",
                )
                for d in p["days"]
            ),
        ),
        Table(
            "Market opportunity (perfect foresight)",
            ("figure", "value"),
            (
                ("optimum", _gbp(o["optimum_gbp"])),
                ("earned", _gbp(o["earned_gbp"])),
                ("captured %", _num(o["captured_pct"])),
                ("left on the table", _gbp(o["left_gbp"])),
            ),
        ),
        Table(
            "Periods where most was left",
            ("period", "price p/kWh", "optimum kW", "battery kW", "left £"),
            tuple(
                (
                    t["start"],
                    _num(t["price"], 2),
                    _num(t["optimum_battery_kw"]),
                    _num(t["battery_kw"]),
                    _gbp(t["left_gbp"]),
                )
                for t in o["top_periods"]
            ),
        ),
        Table(
            "Consumption patterns",
            ("figure", "value"),
            (("solar self-consumption %", _num(f["patterns"]["solar_self_consumption_pct"])),),
        ),
        _frequency_table(f["frequency_response"]),
        Table(
            "Data quality",
            ("device", "completeness %", "gap minutes", "gaps"),
            tuple(
                (name, _num(d["completeness_pct"], 2), str(d["gap_minutes"]), str(d["gaps"]))
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
            _num(r["performance_pct"]),
            str(r["seconds_stale"]),
            str(r["seconds_cut_by_envelope"]),
            _num(r["mean_abs_error_kw"]),
            _num(r["delivered_kwh"]),
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
