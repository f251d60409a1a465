"""The report as one self-contained HTML file: charts inlined as base64 PNG, no scripts,
no external resources, so it opens from an email attachment."""

from __future__ import annotations

import base64
from collections.abc import Callable
from html import escape
from typing import Any

from reconciler.report.charts.average_day import average_day_chart
from reconciler.report.charts.energy import energy_chart
from reconciler.report.charts.money import money_chart
from reconciler.report.charts.patterns import patterns_chart
from reconciler.report.charts.peaks import peaks_chart
from reconciler.report.charts.soe import soe_chart
from reconciler.report.fleet import NO_CHARTS, fleet_tables
from reconciler.report.tables import Table, footnotes, heading, tables

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  img, table, h3 { break-inside: avoid; }
  h3 { break-after: avoid; }
}
.note { color: #555; font-size: 0.9em; }
"""

_CHARTS: tuple[tuple[str, str, Callable[[dict[str, Any]], bytes]], ...] = (
    ("energy", "Energy per day", energy_chart),
    ("money", "Money per day", money_chart),
    ("peaks", "Red-band peaks", peaks_chart),
    ("soe", "Battery SoE distribution", soe_chart),
    ("patterns", "Load by weekday and half hour", patterns_chart),
    ("average-day", "The average day of each month", average_day_chart),
)


def _img(name: str, alt: str, data: bytes) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    src = f"data:image/png;base64,{b64}"
    return f'<img class="chart" id="chart-{name}" alt="{escape(alt)}" src="{src}">'


def _table(t: Table) -> list[str]:
    if not t.rows:  # a section with nothing to show says why in one sentence
        return [f"<h3>{escape(t.title)}</h3><p>{escape(t.note or '')}</p>"]
    parts = [f"<h3>{escape(t.title)}</h3><table><tr>"]
    parts += [f"<th>{escape(h)}</th>" for h in t.header]
    parts.append("</tr>")
    for row in t.rows:
        parts.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>")
    parts.append("</table>")
    return parts


def section(f: dict[str, Any], charts: bool = True) -> str:
    """One site's part of the document: its charts (unless ``charts`` is False), tables
    and notes."""
    parts = [f"<section><h2>{escape(heading(f))}</h2>"]
    if f["complete_periods"] and charts:
        for name, alt, chart in _CHARTS:
            if name == "peaks" and not f["peaks"]["days"]:
                continue
            if name == "soe" and not f["battery"]["soe"]["samples"]:
                continue
            parts.append(_img(name, f"{alt} of {f['site']}", chart(f)))
    for t in tables(f):
        parts += _table(t)
    parts += [f'<p class="note">{escape(n)}</p>' for n in footnotes(f)]
    parts.append("</section>")
    return "\n".join(parts)


def html(
    sites: list[dict[str, Any]],
    title: str,
    errors: dict[str, str] | None = None,
    sections: list[str] | None = None,
    fleet: dict[str, Any] | None = None,
) -> str:
    """The whole document; ``errors`` are sites of a fleet that could not be reported;
    ``sections``: each site's :func:`section`, already rendered (by a fleet's workers);
    ``fleet``: the fleet's :func:`~reconciler.report.fleet.summary`, first."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    if fleet is not None:
        parts.append("<section>")
        for t in fleet_tables(fleet):
            parts += _table(t)
        if not fleet["charts_per_site"]:
            parts.append(f'<p class="note">{escape(NO_CHARTS)}</p>')
        if fleet.get("optimum_note"):
            parts.append(f'<p class="note">{escape(fleet["optimum_note"])}</p>')
        parts.append("</section>")
    parts += sections if sections is not None else [section(f) for f in sites]
    for name, message in (errors or {}).items():
        parts.append(f"<section><h2>{escape(name)}</h2><p>{escape(message)}</p></section>")
    parts.append("</body></html>")
    return "\n".join(parts)
