"""The schedule preview: which entry wins when, and the rates that apply, in local time.

This is what `flux schedule` prints and what a pull request's preview comment shows. Rows
are split at every window edge, every rate change and every local midnight, so each local
day's rows add up to its true length (23 or 25 hours on clock-change days).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from reconciler.config.model import Site
from reconciler.control.periods import periods_in_day
from reconciler.control.schedule import (
    ActiveEntry,
    active_entries,
    boundaries,
    local_midnight,
    occurrence,
    rates_at,
    zone,
)


@dataclass(frozen=True)
class Row:
    """A stretch of local time with one set of active entries and one set of rates."""

    start: datetime
    end: datetime
    winner: ActiveEntry | None
    others: tuple[ActiveEntry, ...]
    import_p_per_kwh: float
    export_p_per_kwh: float

    @property
    def seconds(self) -> float:
        # Through timestamps: same-zone aware datetimes subtract by wall clock.
        return self.end.timestamp() - self.start.timestamp()


@dataclass(frozen=True)
class Day:
    """A local day of the preview and how long it really is."""

    day: date
    seconds: float
    settlement_periods: int


@dataclass(frozen=True)
class Preview:
    site_id: str
    timezone: str
    rows: list[Row]
    days: list[Day]


def build_preview(site: Site, first_day: date, days: int) -> Preview:
    """The schedule of ``days`` local days from ``first_day``."""
    tz = zone(site.site.timezone)
    day_list = [first_day + timedelta(days=n) for n in range(days)]
    start = local_midnight(site, first_day)
    end = local_midnight(site, first_day + timedelta(days=days))
    points = set(boundaries(site, start, end))
    points.update(local_midnight(site, d) for d in day_list)
    for rate in site.rates:
        for window in rate.windows:
            for d in [first_day - timedelta(days=1), *day_list]:
                occ = occurrence(window, d, tz)
                if occ is not None:
                    points.update(p for p in occ if start <= p < end)
    # Rows also split where the UTC offset changes, so a clock change is visible.
    step = timedelta(minutes=15)
    probe = start
    while probe < end:
        nxt = probe + step
        if probe.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
            points.add(nxt)
        probe = nxt
    ordered = [p.astimezone(UTC) for p in [*sorted(points), end]]
    rows: list[Row] = []
    for a, b in itertools.pairwise(ordered):
        if a >= b:
            continue
        active = active_entries(site, a)
        imp, exp = rates_at(site.rates, a, tz)
        winner = active[0] if active else None
        others = tuple(active[1:])
        last = rows[-1] if rows else None
        if (
            last is not None
            and last.start.date() == a.astimezone(tz).date()
            and last.start.utcoffset() == a.astimezone(tz).utcoffset()
            and [x.index for x in ([last.winner] if last.winner else []) + list(last.others)]
            == [x.index for x in active]
            and (last.import_p_per_kwh, last.export_p_per_kwh) == (imp, exp)
        ):
            rows[-1] = Row(last.start, b.astimezone(tz), last.winner, last.others, imp, exp)
        else:
            rows.append(Row(a.astimezone(tz), b.astimezone(tz), winner, others, imp, exp))
    totals = [
        Day(
            d,
            (local_midnight(site, d + timedelta(days=1)) - local_midnight(site, d)).total_seconds(),
            periods_in_day(d),
        )
        for d in day_list
    ]
    return Preview(site.site.id, site.site.timezone, rows, totals)


def _entry(a: ActiveEntry) -> dict[str, Any]:
    return {"index": a.index, "label": a.label, "mode": a.entry.mode, "priority": a.priority}


def preview_json(preview: Preview) -> dict[str, Any]:
    """The preview as plain JSON-able data (local times with their UTC offsets)."""
    return {
        "site": preview.site_id,
        "timezone": preview.timezone,
        "days": [
            {
                "date": d.day.isoformat(),
                "hours": d.seconds / 3600,
                "settlement_periods": d.settlement_periods,
            }
            for d in preview.days
        ],
        "segments": [
            {
                "start": r.start.isoformat(),
                "end": r.end.isoformat(),
                "duration_s": r.seconds,
                "winner": _entry(r.winner) if r.winner else None,
                "also_active": [_entry(a) for a in r.others],
                "import_p_per_kwh": r.import_p_per_kwh,
                "export_p_per_kwh": r.export_p_per_kwh,
            }
            for r in preview.rows
        ],
    }


def hours(seconds: float) -> str:
    """Seconds as H:MM."""
    minutes = round(seconds / 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def local(at: datetime, with_date: bool = True) -> str:
    """A local instant with its UTC offset, e.g. ``2024-10-27 01:00 +01:00``."""
    stamp = at.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M")
    offset = at.strftime("%z")
    return f"{stamp} {offset[:3]}:{offset[3:]}"


def label(a: ActiveEntry | None) -> str:
    return "idle" if a is None else f"{a.label} ({a.priority})"
