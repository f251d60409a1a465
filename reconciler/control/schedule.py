"""Evaluating windows, rates and the schedule at an instant, in the site's local time.

Windows are written in local wall-clock time; every comparison here is done between
timezone-aware instants, so clock-change days come out right: a 00:00-24:00 window lasts
23 or 25 hours on those days, and a window that starts in the skipped spring hour begins at
the instant the clocks jump.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from reconciler.config.model import WEEKDAYS, Rate, ScheduleEntry, Site, Window


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def parse_hhmm(value: str) -> tuple[int, int]:
    """``"HH:MM"`` to (hours, minutes); ``"24:00"`` is (24, 0)."""
    hours, minutes = value.split(":")
    return int(hours), int(minutes)


def _local_instant(day: date, hhmm: str, tz: ZoneInfo) -> datetime:
    hours, minutes = parse_hhmm(hhmm)
    if hours == 24:
        day, hours = day + timedelta(days=1), 0
    # fold=0: an ambiguous autumn time means its first occurrence; a skipped spring time
    # resolves to the instant the clocks jump past it. Returned in UTC: aware datetimes
    # that share a ZoneInfo compare and subtract by wall clock (ignoring fold), which is
    # wrong across a clock change; UTC instants are always compared as instants.
    local = datetime.combine(day, time(hours, minutes), tzinfo=tz)
    return local.astimezone(UTC)


def local_instant(day: date, hhmm: str, tz: ZoneInfo) -> datetime:
    """The instant (in UTC) of local ``day`` at ``"HH:MM"`` (``"24:00"`` = next midnight) in
    ``tz``; an ambiguous time is its first occurrence, a skipped one the instant the clocks
    jump."""
    return _local_instant(day, hhmm, tz)


def day_matches(window: Window, day: date) -> bool:
    """Whether a window may start on local ``day`` (days and dates filters)."""
    if window.dates is not None and not (window.dates.from_ <= day <= window.dates.to):
        return False
    weekday = day.weekday()
    if window.days == "all":
        return True
    if window.days == "weekdays":
        return weekday < 5
    if window.days == "weekends":
        return weekday >= 5
    return WEEKDAYS[weekday] in window.days


def crosses_midnight(window: Window) -> bool:
    return parse_hhmm(window.end) <= parse_hhmm(window.start)


def occurrence(window: Window, day: date, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    """The [start, end) instants of the window's occurrence that starts on local ``day``."""
    if not day_matches(window, day):
        return None
    start = _local_instant(day, window.start, tz)
    end_day = day + timedelta(days=1) if crosses_midnight(window) else day
    end = _local_instant(end_day, window.end, tz)
    if end <= start:  # a window inside the skipped spring hour has no instants that day
        return None
    return start, end


def occurrence_at(window: Window, at: datetime, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    """The occurrence of ``window`` that contains instant ``at``, if any."""
    local_day = at.astimezone(tz).date()
    for day in (local_day, local_day - timedelta(days=1)):
        occ = occurrence(window, day, tz)
        if occ is not None and occ[0] <= at < occ[1]:
            return occ
    return None


def first_occurrence_at(
    windows: Sequence[Window], at: datetime, tz: ZoneInfo
) -> tuple[datetime, datetime] | None:
    for window in windows:
        occ = occurrence_at(window, at, tz)
        if occ is not None:
            return occ
    return None


@dataclass(frozen=True)
class ActiveEntry:
    """A schedule entry that is active at an instant."""

    index: int
    entry: ScheduleEntry
    label: str
    priority: int
    start: datetime
    end: datetime


def active_entries(site: Site, at: datetime) -> list[ActiveEntry]:
    """Entries active at ``at``, highest priority first (ties keep file order)."""
    tz = zone(site.site.timezone)
    found: list[ActiveEntry] = []
    for index, entry in enumerate(site.schedule):
        occ = first_occurrence_at(entry.windows, at, tz)
        if occ is not None:
            found.append(
                ActiveEntry(
                    index=index,
                    entry=entry,
                    label=site.entry_label(index),
                    priority=entry.effective_priority,
                    start=occ[0],
                    end=occ[1],
                )
            )
    found.sort(key=lambda a: (-a.priority, a.index))
    return found


def winner(site: Site, at: datetime) -> ActiveEntry | None:
    """The highest-priority active entry, or None (idle)."""
    active = active_entries(site, at)
    return active[0] if active else None


def rates_at(rates: Sequence[Rate], at: datetime, tz: ZoneInfo) -> tuple[float, float]:
    """Sum of import and of export rates that apply at ``at``, p/kWh."""
    imp = exp = 0.0
    for rate in rates:
        if first_occurrence_at(rate.windows, at, tz) is not None:
            if rate.direction == "import":
                imp += rate.p_per_kwh
            else:
                exp += rate.p_per_kwh
    return imp, exp


def boundaries(site: Site, start: datetime, end: datetime) -> Iterator[datetime]:
    """Every instant in [start, end) at which some entry's window opens or closes, sorted."""
    tz = zone(site.site.timezone)
    points: set[datetime] = {start}
    first = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date()
    for entry in site.schedule:
        for window in entry.windows:
            day = first
            while day <= last:
                occ = occurrence(window, day, tz)
                if occ is not None:
                    points.update(p for p in occ if start <= p < end)
                day += timedelta(days=1)
    yield from sorted(points)


@dataclass(frozen=True)
class Segment:
    """A stretch of time with one winning entry (None = idle)."""

    start: datetime
    end: datetime
    winner: ActiveEntry | None
    active: tuple[ActiveEntry, ...]


def timeline(site: Site, start: datetime, end: datetime) -> list[Segment]:
    """The schedule between two instants as segments with constant active entries."""
    points = [*boundaries(site, start, end), end]
    segments: list[Segment] = []
    for a, b in itertools.pairwise(points):
        if a >= b:
            continue
        active = tuple(active_entries(site, a))
        top = active[0] if active else None
        same = segments and [x.index for x in segments[-1].active] == [x.index for x in active]
        if same:
            last = segments[-1]
            segments[-1] = Segment(last.start, b, last.winner, last.active)
        else:
            segments.append(Segment(a, b, top, active))
    return segments
