"""Property tests of window and schedule evaluation, settlement periods and the preview."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from reconciler.config.loader import load_site
from reconciler.config.model import WEEKDAYS, ScheduleEntry, Site, Window, day_matches
from reconciler.config.rules import check_rules
from reconciler.control.periods import periods_in_day
from reconciler.control.schedule import (
    active_entries,
    occurrence_at,
    timeline,
    winner,
    zone,
)
from reconciler.preview.build import build_preview

BASE = load_site(Path(__file__).resolve().parents[2] / "sites" / "hmce.yaml")
LONDON = zone("Europe/London")
ENTRY = TypeAdapter(ScheduleEntry)


def hhmm(quarter: int) -> str:
    return f"{quarter // 4:02d}:{quarter % 4 * 15:02d}"


@st.composite
def windows(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(st.integers(0, 95))
    end = draw(st.integers(1, 96).filter(lambda e: e != start))
    days = draw(
        st.one_of(
            st.sampled_from(["all", "weekdays", "weekends"]),
            st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True),
        )
    )
    return {"days": days, "start": hhmm(start), "end": hhmm(end)}


@st.composite
def schedules(draw: st.DrawFn) -> Site:
    """Sites whose entries all have different priorities (so no equal-priority overlap)."""
    n = draw(st.integers(0, 6))
    priorities = draw(st.lists(st.integers(1, 1000), min_size=n, max_size=n, unique=True))
    entries = [
        ENTRY.validate_python(
            {
                "mode": draw(st.sampled_from(["import_avoidance", "export_avoidance", "idle"])),
                "priority": p,
                "windows": draw(st.lists(windows(), min_size=1, max_size=3)),
            }
        )
        for p in priorities
    ]
    return BASE.model_copy(update={"schedule": entries})


instants = st.datetimes(min_value=datetime(2023, 1, 1), max_value=datetime(2026, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)


def _minutes(value: str) -> int:
    h, m = value.split(":")
    return int(h) * 60 + int(m)


def wall_clock_active(w: Window, local: datetime) -> bool:
    """An independent oracle in wall-clock terms (right away from clock changes)."""
    t = local.hour * 60 + local.minute
    s, e = _minutes(w.start), _minutes(w.end)
    today, yesterday = local.date(), local.date() - timedelta(days=1)
    if s < e:
        return day_matches(w, today) and s <= t < e
    return (day_matches(w, today) and t >= s) or (day_matches(w, yesterday) and t < e)


def is_clock_change_day(day: date) -> bool:
    return periods_in_day(day) != 48 or periods_in_day(day - timedelta(days=1)) != 48


@settings(max_examples=100, deadline=None)
@given(site=schedules(), at=instants)
def test_exactly_one_winner_or_idle_at_every_instant(site: Site, at: datetime) -> None:
    active = active_entries(site, at)
    top = winner(site, at)
    if not active:
        assert top is None
        return
    assert top is not None and top == active[0]
    assert all(top.priority > other.priority for other in active[1:])
    local = at.astimezone(LONDON)
    if not is_clock_change_day(local.date()):
        expected = {
            i
            for i, e in enumerate(site.schedule)
            if any(wall_clock_active(w, local) for w in e.windows)
        }
        assert {a.index for a in active} == expected
    for a in active:
        assert a.start <= at < a.end


@settings(max_examples=100, deadline=None)
@given(window=windows(), day=st.dates(date(2023, 1, 1), date(2026, 12, 31)), frac=st.floats(0, 1))
def test_an_instant_inside_a_window_is_found_active(
    window: dict[str, Any], day: date, frac: float
) -> None:
    w = Window.model_validate(window)
    if not day_matches(w, day):
        day = next(d for d in (day + timedelta(days=n) for n in range(7)) if day_matches(w, d))
    s, e = _minutes(w.start), _minutes(w.end)
    length = (e - s) % (24 * 60) or 24 * 60
    offset = min(int(frac * length), length - 1)
    wall = datetime.combine(day, time(0)) + timedelta(minutes=s + offset)
    local = wall.replace(tzinfo=LONDON)
    # Skip wall times that do not exist or exist twice on clock-change days.
    if local.astimezone(UTC).astimezone(LONDON).replace(tzinfo=None) != wall:
        return
    if local.replace(fold=1).utcoffset() != local.utcoffset():
        return
    occ = occurrence_at(w, local.astimezone(UTC), LONDON)
    assert occ is not None
    assert occ[0] <= local < occ[1]


@given(day=st.dates(date(1997, 1, 1), date(2060, 12, 31)))
def test_settlement_days_have_46_48_or_50_periods(day: date) -> None:
    last_sunday = {m: _last_sunday(day.year, m) for m in (3, 10)}
    expected = {last_sunday[3]: 46, last_sunday[10]: 50}.get(day, 48)
    assert periods_in_day(day) == expected


def _last_sunday(year: int, month: int) -> date:
    d = date(year, month, 31)
    return d - timedelta(days=(d.weekday() + 1) % 7)


@settings(max_examples=40, deadline=None)
@given(site=schedules(), year=st.integers(2020, 2030), autumn=st.booleans())
def test_preview_over_a_clock_change_day_sums_to_23_or_25_hours(
    site: Site, year: int, autumn: bool
) -> None:
    day = _last_sunday(year, 10 if autumn else 3)
    preview = build_preview(site, day - timedelta(days=1), 3)
    totals: dict[date, float] = {}
    for row in preview.rows:
        totals[row.start.date()] = totals.get(row.start.date(), 0.0) + row.seconds
    assert totals == {
        day - timedelta(days=1): 24 * 3600,
        day: (25 if autumn else 23) * 3600,
        day + timedelta(days=1): 24 * 3600,
    }
    assert [d.settlement_periods for d in preview.days] == [48, 50 if autumn else 46, 48]
    for a, b in itertools.pairwise(preview.rows):
        assert a.end == b.start


@settings(max_examples=60, deadline=None)
@given(site=schedules(), at=instants)
def test_timeline_segments_are_contiguous_and_agree_with_winner(site: Site, at: datetime) -> None:
    end = at + timedelta(days=2)
    segments = timeline(site, at, end)
    assert segments[0].start == at and segments[-1].end == end
    for a, b in itertools.pairwise(segments):
        assert a.end == b.start
    for seg in segments:
        mid = seg.start + (seg.end - seg.start) / 2
        top = winner(site, mid)
        assert (top.index if top else None) == (seg.winner.index if seg.winner else None)


@st.composite
def colliding_schedules(draw: st.DrawFn) -> Site:
    """Sites whose entries share few priorities, so equal-priority overlaps are common."""
    n = draw(st.integers(1, 4))
    entries = [
        ENTRY.validate_python(
            {
                "mode": "import_avoidance",
                "priority": draw(st.sampled_from([10, 20])),
                "windows": draw(st.lists(windows(), min_size=1, max_size=2)),
            }
        )
        for _ in range(n)
    ]
    return BASE.model_copy(update={"schedule": entries})


@settings(max_examples=150, deadline=None)
@given(site=colliding_schedules(), at=st.lists(instants, min_size=1, max_size=20))
def test_schedules_the_validator_accepts_have_one_winner_at_every_instant(
    site: Site, at: list[datetime]
) -> None:
    overlaps = [f for f in check_rules(site) if "both active at" in f.message]
    if overlaps:
        return
    for instant in at:
        priorities = [a.priority for a in active_entries(site, instant)]
        assert len(priorities) == len(set(priorities))
