"""The report as markdown, for a pull request or a chat message."""

from __future__ import annotations

from typing import Any

from reconciler.report.fleet import fleet_tables
from reconciler.report.tables import Table, footnotes, heading, tables


def _table(t: Table) -> list[str]:
    if not t.rows:
        return [f"### {t.title}", "", t.note or "", ""]
    return [
        f"### {t.title}",
        "",
        "| " + " | ".join(t.header) + " |",
        "|" + "|".join("---" for _ in t.header) + "|",
        *("| " + " | ".join(row) + " |" for row in t.rows),
        "",
    ]


def markdown(sites: list[dict[str, Any]], fleet: dict[str, Any] | None = None) -> str:
    lines: list[str] = []
    for t in fleet_tables(fleet) if fleet is not None else []:
        lines += _table(t)
    if fleet is not None and fleet.get("optimum_note"):
        lines += [f"> {fleet['optimum_note']}", ""]
    for f in sites:
        lines += [f"## {heading(f)}", ""]
        for t in tables(f):
            lines += _table(t)
        lines += [*(f"> {n}" for n in footnotes(f)), ""]
    return "\n".join(lines)
