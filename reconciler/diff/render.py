"""Rendering: rich tables for people (grouped by category, a summary line) and JSON with
stable keys for scripts."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from reconciler.diff.compare import short
from reconciler.diff.model import CATEGORIES, Report

_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow"}


def summary_line(report: Report) -> str:
    where = f"{report.site} at {report.ref} ({short(report.summary.desired)})"
    source = "observed live" if report.source == "live" else "observed from the database"
    ignored = f", {len(report.ignored)} ignored by the site file" if report.ignored else ""
    if not report.drifts:
        return f"{where}: no drift ({source}){ignored}"
    crit = sum(1 for d in report.drifts if d.severity == "critical")
    warn = len(report.drifts) - crit
    return (
        f"{where}: {len(report.drifts)} drift(s), {crit} critical, {warn} warning "
        f"({source}){ignored}"
    )


def print_report(report: Report, console: Console) -> None:
    if report.drifts:
        table = Table(title=f"flux diff {report.site}", show_lines=False, expand=False)
        for col in ("category", "field", "desired", "observed", "likely reason", "severity"):
            table.add_column(col, overflow="fold")
        order = {c: i for i, c in enumerate(CATEGORIES)}
        drifts = sorted(report.drifts, key=lambda d: order[d.category])
        previous = None
        for d in drifts:
            if previous is not None and d.category != previous:
                table.add_section()
            table.add_row(
                d.category if d.category != previous else "",
                d.field,
                d.desired,
                d.observed,
                d.reason,
                Text(d.severity, style=_SEVERITY_STYLE[d.severity]),
            )
            previous = d.category
        console.print(table)
    for ig in report.ignored:
        console.print(
            f"[dim]ignored: {ig.drift.category} {ig.drift.field}: {ig.because}[/dim]",
            highlight=False,
        )
    for note in report.notes:
        console.print(f"[dim]note: {note}[/dim]", highlight=False)
    style = "bold red" if report.drifts else "green"
    console.print(Text(summary_line(report), style=style))


def report_json(report: Report) -> str:
    return json.dumps(report.as_json(), indent=2, sort_keys=True)


def _ago(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "never"
    s = (now - at).total_seconds()
    if s < 120:
        return f"{s:.0f} s ago"
    if s < 7200:
        return f"{s / 60:.0f} min ago"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h ago"
    return f"{s / 86400:.0f} d ago"


def status_row(site_id: str, report: Report | None, error: str | None) -> dict[str, Any]:
    """One site of `flux status` as JSON (stable keys)."""
    if report is None:
        return {
            "site": site_id,
            "applied": None,
            "desired": None,
            "in_sync": False,
            "ready": None,
            "mode": None,
            "soe_kwh": None,
            "site_power_kw": None,
            "last_seen": None,
            "drift_count": None,
            "ignored_count": 0,
            "error": error,
        }
    s = report.summary
    in_sync = not any(d.category == "revision" for d in report.drifts)
    return {
        "site": site_id,
        "applied": s.applied,
        "desired": s.desired,
        "in_sync": in_sync,
        "ready": s.ready,
        "mode": s.mode,
        "soe_kwh": s.soe_kwh,
        "site_power_kw": s.site_power_kw,
        "last_seen": s.last_seen.isoformat() if s.last_seen else None,
        "drift_count": len(report.drifts),
        "ignored_count": len(report.ignored),
        "error": None,
    }


def print_status(
    rows: list[tuple[dict[str, Any], Report | None]], head: str, console: Console
) -> None:
    table = Table(title=f"flux status (HEAD {short(head)})")
    for col in ("site", "applied", "Ready", "mode now", "SoE", "site power", "last seen", "drift"):
        table.add_column(col, overflow="fold")
    for row, report in rows:
        if row["error"] is not None:
            table.add_row(row["site"], "", "", "", "", "", "", Text(row["error"], style="red"))
            continue
        applied = short(row["applied"])
        sync = Text(
            f"{applied} =" if row["in_sync"] else f"{applied} != {short(row['desired'])}",
            style="green" if row["in_sync"] else "red",
        )
        soe = "?" if row["soe_kwh"] is None else f"{row['soe_kwh']:.0f} kWh"
        power = "?" if row["site_power_kw"] is None else f"{row['site_power_kw']:.1f} kW"
        seen = _ago(report.summary.last_seen, report.at) if report else "never"
        n = row["drift_count"]
        table.add_row(
            row["site"],
            sync,
            row["ready"] or "?",
            row["mode"] or "?",
            soe,
            power,
            seen,
            Text(str(n), style="bold red" if n else "green"),
        )
    console.print(table)
    drifting = [r["site"] for r, _ in rows if r["error"] is not None or r["drift_count"]]
    if drifting:
        console.print(
            Text(
                f"{len(drifting)} of {len(rows)} site(s) drift: {', '.join(drifting)}; "
                "`flux diff SITE` says why",
                style="bold red",
            )
        )
    else:
        console.print(Text(f"{len(rows)} site(s), no drift", style="green"))
