"""Settlement periods: the period of an instant, a caller's memo of the last one found
(LastPeriod) and the previous period give what the definition gives from scratch (counted
from local midnight in UTC instants)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.control.periods import (
    LONDON,
    PERIOD,
    LastPeriod,
    SettlementPeriod,
    local_midnight,
    period_at,
    periods_in_day,
)

#: Around both 2024 clock changes (31 March, 27 October) and an ordinary day.
STARTS = [
    datetime(2024, 3, 30, tzinfo=UTC),
    datetime(2024, 10, 26, tzinfo=UTC),
    datetime(2024, 1, 15, tzinfo=UTC),
]


def _from_scratch(at: datetime) -> SettlementPeriod:
    day = at.astimezone(LONDON).date()
    return SettlementPeriod(day, int((at.astimezone(UTC) - local_midnight(day)) / PERIOD) + 1)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(STARTS),
    st.lists(st.integers(0, 3 * 24 * 3600 * 1000), min_size=1, max_size=40),
    st.booleans(),
)
def test_period_at_and_the_last_period_in_any_order_are_the_definition(
    start: datetime, offsets_ms: list[int], local: bool
) -> None:
    last = LastPeriod()
    for ms in offsets_ms:  # unsorted: the memo must not assume time only moves forward
        at = start + timedelta(milliseconds=ms)
        if local:  # an instant in local time is the same instant
            at = at.astimezone(LONDON)
        found = period_at(at)
        assert found == _from_scratch(at) == last.at(at)
        assert found.start <= at < found.end
        # just before and at the end: the kept period must not answer for its neighbours
        assert last.at(found.start - timedelta(microseconds=1)) == found.previous()
        assert last.at(found.end) == period_at(found.end)


def test_every_period_of_a_clock_change_day_starts_where_the_last_ended() -> None:
    for day in (date(2024, 3, 31), date(2024, 10, 27), date(2024, 1, 15)):
        period = period_at(local_midnight(day))
        assert period == SettlementPeriod(day, 1)
        for _ in range(periods_in_day(day) - 1):
            nxt = period_at(period.end)
            assert nxt.start == period.end
            assert nxt.previous() == period == period_at(nxt.start - PERIOD)
            period = nxt
        assert period.end == local_midnight(day + timedelta(days=1))
        assert period_at(period.end).previous() == period
