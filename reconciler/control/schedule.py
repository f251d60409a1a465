"""Evaluating windows, rates and the schedule at an instant, in the site's local time.

Windows are written in local wall-clock time; every comparison here is done between
timezone-aware instants, so clock-change days come out right: a 00:00-24:00 window lasts
23 or 25 hours on those days, and a window that starts in the skipped spring hour begins at
the instant the clocks jump.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar, cast
from zoneinfo import ZoneInfo

from reconciler.config.model import Rate, ScheduleEntry, Site, Window, day_matches, parse_hhmm
from reconciler.control.periods import LastPeriod, SettlementPeriod

T = TypeVar("T")


def zone(name: str) -> ZoneInfo:
    """The zone named ``name`` (ZoneInfo keeps one instance per name itself)."""
    return ZoneInfo(name)


def local_instant(day: date, hhmm: str, tz: ZoneInfo) -> datetime:
    """The instant (in UTC) of local ``day`` at ``"HH:MM"`` (``"24:00"`` = next midnight) in
    ``tz``; an ambiguous time is its first occurrence, a skipped one the instant the clocks
    jump."""
    hours, minutes = parse_hhmm(hhmm)
    if hours == 24:
        day, hours = day + timedelta(days=1), 0
    # fold=0: an ambiguous autumn time means its first occurrence; a skipped spring time
    # resolves to the instant the clocks jump past it. Returned in UTC: aware datetimes
    # that share a ZoneInfo compare and subtract by wall clock (ignoring fold), which is
    # wrong across a clock change; UTC instants are always compared as instants.
    local = datetime.combine(day, time(hours, minutes), tzinfo=tz)
    return local.astimezone(UTC)


def local_midnight(site: Site, day: date) -> datetime:
    """The UTC instant at which local ``day`` begins at ``site`` (a skipped midnight
    resolves to the instant the clocks jump)."""
    return local_instant(day, "00:00", zone(site.site.timezone))


def crosses_midnight(window: Window) -> bool:
    return parse_hhmm(window.end) <= parse_hhmm(window.start)


Occurrence = tuple[datetime, datetime]
"""The [start, end) instants (UTC) of one occurrence of a window."""


def occurrence(window: Window, day: date, tz: ZoneInfo) -> Occurrence | None:
    """The [start, end) instants of the window's occurrence that starts on local ``day``."""
    if not day_matches(window, day):
        return None
    start = local_instant(day, window.start, tz)
    end_day = day + timedelta(days=1) if crosses_midnight(window) else day
    end = local_instant(end_day, window.end, tz)
    if end <= start:  # a window inside the skipped spring hour has no instants that day
        return None
    return start, end


def _candidates(windows: Iterable[Window], day: date, tz: ZoneInfo) -> Iterator[Occurrence | None]:
    """Per window in order: its occurrence starting on local ``day``, then on the day before.

    These are the only occurrences that can contain an instant of local ``day``; the first
    of them that does is the one that counts. Lazy, so a one-off lookup stops at the first
    hit, and :class:`DayPlan` keeps them as a tuple to reuse through the day.
    """
    for window in windows:
        yield occurrence(window, day, tz)
        yield occurrence(window, day - timedelta(days=1), tz)


def _first(candidates: Iterable[Occurrence | None], at: datetime) -> Occurrence | None:
    for occ in candidates:
        if occ is not None and occ[0] <= at < occ[1]:
            return occ
    return None


def occurrence_at(window: Window, at: datetime, tz: ZoneInfo) -> Occurrence | None:
    """The occurrence of ``window`` that contains instant ``at``, if any."""
    return _first(_candidates((window,), at.astimezone(tz).date(), tz), at)


@dataclass(frozen=True)
class ActiveEntry:
    """A schedule entry that is active at an instant."""

    index: int
    entry: ScheduleEntry
    label: str
    priority: int
    start: datetime
    end: datetime


# The one evaluation of "which entries are active" and "which rates apply" at an instant,
# given each entry's (or rate's) candidate occurrences for the instant's local day. The
# candidates come fresh (active_entries, rates_at) or from a DayPlan reused through the day.


def _active(
    site: Site, candidates: Iterable[Iterable[Occurrence | None]], at: datetime
) -> list[ActiveEntry]:
    found: list[ActiveEntry] = []
    for index, (entry, occs) in enumerate(zip(site.schedule, candidates, strict=True)):
        occ = _first(occs, at)
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


def _rates(
    rates: Sequence[Rate], candidates: Iterable[Iterable[Occurrence | None]], at: datetime
) -> tuple[float, float]:
    imp = exp = 0.0
    for rate, occs in zip(rates, candidates, strict=True):
        if _first(occs, at) is not None:
            if rate.direction == "import":
                imp += rate.p_per_kwh
            else:
                exp += rate.p_per_kwh
    return imp, exp


def active_entries(site: Site, at: datetime) -> list[ActiveEntry]:
    """Entries active at ``at``, highest priority first (ties keep file order)."""
    tz = zone(site.site.timezone)
    day = at.astimezone(tz).date()
    return _active(site, (_candidates(e.windows, day, tz) for e in site.schedule), at)


def winner(site: Site, at: datetime) -> ActiveEntry | None:
    """The highest-priority active entry, or None (idle)."""
    active = active_entries(site, at)
    return active[0] if active else None


def rates_at(rates: Sequence[Rate], at: datetime, tz: ZoneInfo) -> tuple[float, float]:
    """Sum of import and of export rates that apply at ``at``, p/kWh."""
    day = at.astimezone(tz).date()
    return _rates(rates, (_candidates(r.windows, day, tz) for r in rates), at)


Span = tuple[datetime | None, datetime | None]
"""[lo, hi) instants, None for an open end."""


def _points(candidates: Iterable[Iterable[Occurrence | None]]) -> tuple[datetime, ...]:
    """Every start and end of the candidate occurrences, sorted: between two neighbours
    (and before the first, after the last) each occurrence either holds every instant or
    none, so whatever is evaluated from the candidates is the same there."""
    return tuple(sorted({p for occs in candidates for occ in occs if occ is not None for p in occ}))


def _span(points: Sequence[datetime], at: datetime) -> Span:
    """The [lo, hi) between neighbouring ``points`` that holds ``at`` (None: unbounded)."""
    i = bisect.bisect_right(points, at)
    return (points[i - 1] if i else None), (points[i] if i < len(points) else None)


def _inside(span: Span, at: datetime) -> bool:
    lo, hi = span
    return (lo is None or lo <= at) and (hi is None or at < hi)


class _Memo:
    """A DayPlan's last answers and the spans they hold over, the last settlement period,
    and what the modes keep for the day (:meth:`DayPlan.remember`)."""

    __slots__ = ("active", "kept", "period", "rates")

    def __init__(self) -> None:
        self.active: tuple[Span, tuple[ActiveEntry, ...]] | None = None
        self.rates: tuple[Span, tuple[float, float]] | None = None
        self.period = LastPeriod()
        self.kept: dict[Hashable, object] = {}


@dataclass(frozen=True)
class DayPlan:
    """Every entry's and rate's candidate occurrences for local ``day``, computed once.

    Evaluating windows from scratch (local instants, zone conversions) is most of a
    decision's cost; with a plan, an instant of the day is only compared. Answers are
    those of :func:`active_entries` and :func:`rates_at` (the same code evaluates both).
    Each answer is kept for the stretch between two window boundaries it holds over (ticks
    ask ~20,000 times a day; the answer changes a few times), handed out as a new list.
    """

    site: Site
    day: date
    entries: tuple[tuple[Occurrence | None, ...], ...]
    rates: tuple[tuple[Occurrence | None, ...], ...]
    _entry_points: tuple[datetime, ...] = field(default=(), compare=False, repr=False)
    _rate_points: tuple[datetime, ...] = field(default=(), compare=False, repr=False)
    _memo: _Memo = field(default_factory=_Memo, compare=False, repr=False)

    @classmethod
    def build(cls, site: Site, day: date) -> DayPlan:
        tz = zone(site.site.timezone)
        entries = tuple(tuple(_candidates(e.windows, day, tz)) for e in site.schedule)
        rates = tuple(tuple(_candidates(r.windows, day, tz)) for r in site.rates)
        return cls(site, day, entries, rates, _points(entries), _points(rates))

    def active_entries(self, at: datetime) -> list[ActiveEntry]:
        """As :func:`active_entries`, for an instant of local ``day``."""
        memo = self._memo.active
        if memo is not None and _inside(memo[0], at):
            return list(memo[1])
        found = _active(self.site, self.entries, at)
        self._memo.active = (_span(self._entry_points, at), tuple(found))
        return found

    def rates_at(self, at: datetime) -> tuple[float, float]:
        """As :func:`rates_at`, for an instant of local ``day``: import, export p/kWh."""
        memo = self._memo.rates
        if memo is not None and _inside(memo[0], at):
            return memo[1]
        rates = _rates(self.site.rates, self.rates, at)
        self._memo.rates = (_span(self._rate_points, at), rates)
        return rates

    def period_at(self, at: datetime) -> SettlementPeriod:
        """As :func:`~reconciler.control.periods.period_at` (the last one kept)."""
        return self._memo.period.at(at)

    def remember(self, key: Hashable, make: Callable[[], T]) -> T:
        """What ``make()`` gives, made once for the day under ``key``: for values a mode
        derives from the site file and the local day alone (a peak's instants, a curve's
        points), which the next tick would otherwise work out again."""
        kept = self._memo.kept
        if key in kept:
            return cast(T, kept[key])
        value = kept[key] = make()
        return value


class DayPlans:
    """A memo of the latest :class:`DayPlan`, owned by whoever decides tick after tick.

    The loop and the backtest hold one inside their
    :class:`~reconciler.control.types.ControlState`; nothing in this package keeps one.
    It holds a single plan because ticks move forward through one day at a time; a new
    local day, or a new site object (a new revision), builds a new plan.
    """

    __slots__ = ("_plan",)

    def __init__(self) -> None:
        self._plan: DayPlan | None = None

    def plan(self, site: Site, at: datetime) -> DayPlan:
        """The plan of ``site`` for the local day containing ``at``."""
        day = at.astimezone(zone(site.site.timezone)).date()
        plan = self._plan
        if plan is None or plan.site is not site or plan.day != day:
            plan = self._plan = DayPlan.build(site, day)
        return plan


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
