"""A fleet report's summary: one row per site and the fleet's totals, from the sites'
figures (JSON key ``fleet``; the first table of the HTML and markdown)."""

from __future__ import annotations

from typing import Any

from reconciler.report.figures import ENERGY_KEYS, MONEY_KEYS
from reconciler.report.tables import ENERGY, Table, gbp, num

#: Past this many sites, a fleet's HTML draws no charts per site (the summary stays): a
#: thousand sites' charts would take an hour to draw and make a document of hundreds of MB.
CHARTS_MAX_SITES = 25
NO_CHARTS = (
    f"Charts per site are drawn for fleets of up to {CHARTS_MAX_SITES} sites; "
    "`flux report SITE` draws one site's."
)

#: Past this many sites, a fleet report leaves the perfect-foresight optimum out unless
#: asked (--optimum): it is a linear programme per site, about 20 s a site-year on one core
#: (the rest of a site-year's figures: a tenth of a second), so a thousand site-years would
#: take hours on this machine; bench/report.py --fleet times it.
OPTIMUM_MAX_SITES = 25
NO_OPTIMUM = (
    f"The market opportunity (the perfect-foresight optimum) is left out of fleets of more "
    f"than {OPTIMUM_MAX_SITES} sites: it takes about 20 s a site-year; `--optimum` computes "
    "it, and `flux report SITE` computes one site's."
)


def summary(
    sites: list[dict[str, Any]], errors: dict[str, str], optimum_skipped: bool = False
) -> dict[str, Any]:
    """The fleet's totals (kWh, £) and a row per site reported; ``optimum_skipped``: the
    optimum was left out by default (:data:`OPTIMUM_MAX_SITES`), which the summary says."""
    rows = []
    for f in sites:
        b, q = f["battery"], f["quality"]
        completeness = [d["completeness_pct"] for d in q["devices"].values()]
        rows.append(
            {
                "site": f["site"],
                "name": f["name"],
                "complete_periods": f["complete_periods"],
                **f["energy"]["total"],
                **{k: f["money"]["total"][k] for k in MONEY_KEYS},
                "equivalent_full_cycles": b["equivalent_full_cycles"],
                "round_trip_efficiency": b["round_trip"]["efficiency"],
                "captured_pct": f["opportunity"]["captured_pct"],
                "worst_completeness_pct": min(
                    (c for c in completeness if c is not None), default=None
                ),
                "late_rows": sum(d["late_rows"] for d in q["devices"].values()),
            }
        )
    total = {k: round(sum(r[k] for r in rows), 3) for k in ENERGY_KEYS}
    total.update({k: round(sum(r[k] for r in rows), 2) for k in MONEY_KEYS})
    return {
        "sites_reported": len(rows),
        "sites_failed": len(errors),
        "total": total,
        "by_site": rows,
        "charts_per_site": len(rows) + len(errors) <= CHARTS_MAX_SITES,
        "optimum_note": NO_OPTIMUM if optimum_skipped else None,
    }


def fleet_tables(s: dict[str, Any]) -> list[Table]:
    t = s["total"]
    return [
        Table(
            f"Fleet ({s['sites_reported']} sites reported, {s['sites_failed']} not)",
            ("figure", "value"),
            (
                *((title, num(t[k])) for k, title in ENERGY),
                ("imbalance value", gbp(t["imbalance_value_gbp"])),
                ("bill saved", gbp(t["bill_saved_gbp"])),
                ("battery value", gbp(t["battery_value_gbp"])),
            ),
        ),
        Table(
            "Sites",
            ("site", "import kWh", "export kWh", "load kWh", "cycles", "RTE %",
             "battery value", "captured %", "worst completeness %", "late rows"),
            tuple(
                (
                    r["site"], num(r["grid_import_kwh"], 0), num(r["grid_export_kwh"], 0),
                    num(r["load_kwh"], 0), num(r["equivalent_full_cycles"], 1),
                    num(None if r["round_trip_efficiency"] is None
                         else 100 * r["round_trip_efficiency"]),
                    gbp(r["battery_value_gbp"]), num(r["captured_pct"]),
                    num(r["worst_completeness_pct"], 2), str(r["late_rows"]),
                )
                for r in s["by_site"]
            ),
        ),
    ]  # fmt: skip
