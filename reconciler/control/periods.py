"""GB settlement periods: half hours numbered from 1 in each Europe/London local day.

Clock-change days have 46 (spring) or 50 (autumn) periods, so periods are always counted
from UTC instants, never from local wall-clock times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
PERIOD = timedelta(minutes=30)


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None:
        raise ValueError("a naive datetime has no meaning here; pass a timezone-aware one")


def local_midnight(day: date, tz: ZoneInfo = LONDON) -> datetime:
    """The UTC instant at which local ``day`` begins."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


#: GB's EFA blocks (the contract blocks of frequency response): 4 hours from 23:00 local.
EFA_BLOCK = timedelta(hours=4)


def efa_block(at: datetime, tz: ZoneInfo = LONDON) -> tuple[datetime, datetime]:
    """The EFA block holding ``at``: four hours of local wall time from 23:00, 03:00,
    07:00, 11:00, 15:00 or 19:00 in ``tz`` (three or five real hours across a clock
    change), as instants in ``at``'s zone."""
    _require_aware(at)
    local = at.astimezone(tz)
    start = local.replace(minute=0, second=0, microsecond=0)
    start -= timedelta(hours=(start.hour + 1) % 4)  # 23, 3, 7, 11, 15, 19 (wall time)
    return start.astimezone(at.tzinfo), (start + EFA_BLOCK).astimezone(at.tzinfo)


def periods_in_day(day: date) -> int:
    """Number of settlement periods in a settlement day: 46, 48 or 50."""
    length = local_midnight(day + timedelta(days=1)) - local_midnight(day)
    return int(length / PERIOD)


@dataclass(frozen=True, order=True)
class SettlementPeriod:
    """One half-hour settlement period."""

    day: date
    number: int

    # Worked out once per period object (a zone conversion): the loop, the markets and
    # the modes ask a period for its start several times a tick. Not a field, so it takes
    # no part in equality, ordering or the repr.
    @cached_property
    def start(self) -> datetime:
        """UTC start instant."""
        return local_midnight(self.day) + (self.number - 1) * PERIOD

    @property
    def end(self) -> datetime:
        return self.start + PERIOD

    def previous(self) -> SettlementPeriod:
        if self.number > 1:  # the same day's: what period_at(start - PERIOD) gives
            return SettlementPeriod(self.day, self.number - 1)
        return period_at(self.start - PERIOD)

    def next(self) -> SettlementPeriod:
        return period_at(self.end)

    def __str__(self) -> str:
        return f"{self.day.isoformat()} SP{self.number}"


def period_at(at: datetime) -> SettlementPeriod:
    """The settlement period containing instant ``at``."""
    _require_aware(at)
    day = at.astimezone(LONDON).date()
    offset = at.astimezone(UTC) - local_midnight(day)
    return SettlementPeriod(day, int(offset / PERIOD) + 1)


class LastPeriod:
    """:func:`period_at` for a caller that asks about instants of the same half hour again
    and again (a loop ticking every few seconds asks ~450 times per period): the last
    period found is kept with its [start, end) in UTC, and an instant inside it costs two
    comparisons instead of two zone conversions. The caller owns it (control keeps no
    state of its own)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[datetime, datetime, SettlementPeriod] | None = None

    def at(self, at: datetime) -> SettlementPeriod:
        """What ``period_at(at)`` gives."""
        _require_aware(at)
        last = self._last
        # UTC bounds: compared with any aware instant as instants, never by wall clock.
        if last is not None and last[0] <= at < last[1]:
            return last[2]
        period = period_at(at)
        # Every instant of [start, start + PERIOD) lies in the same local day and period.
        self._last = (period.start, period.start + PERIOD, period)
        return period


def period_start(at: datetime) -> datetime:
    """UTC start of the settlement period containing ``at``."""
    return period_at(at).start


def seconds_into_period(at: datetime) -> float:
    """Seconds since the start of the period containing ``at`` (0 <= s < 1800)."""
    return (at.astimezone(UTC) - period_start(at)).total_seconds()


def seconds_left_in_period(at: datetime) -> float:
    """Seconds until the end of the period containing ``at`` (0 < s <= 1800)."""
    return PERIOD.total_seconds() - seconds_into_period(at)


def periods_of_day(day: date) -> list[SettlementPeriod]:
    return [SettlementPeriod(day, n) for n in range(1, periods_in_day(day) + 1)]
