"""In-memory market feeds that tests, the simulator and backtests can feed.

- :class:`MemoryImbalanceFeed`: serves whatever was last set (like a live client's cache).
- :class:`ReplayImbalanceFeed`: serves history keyed by settlement-period start, as a
  live estimate would have at each instant (optionally late by ``publish_delay_s``), and
  can wrap a short history around any date for the demo.
- :class:`ReplayDayAheadFeed`: day-ahead prices as they would have been published (each
  local day's at the publication time of the day before).
- :class:`MemoryAxleFeed`: an Axle schedule that can be set or appended to.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from importlib import resources
from pathlib import Path

from reconciler.control.periods import (
    LONDON,
    PERIOD,
    LastPeriod,
    SettlementPeriod,
    local_midnight,
    period_at,
)
from reconciler.control.types import AxleStep, PeriodValue


class MemoryImbalanceFeed:
    """The latest imbalance price (p/kWh) and NIV (MWh, + short), as set."""

    def __init__(self, price: PeriodValue | None = None, volume: PeriodValue | None = None):
        self._price = price
        self._volume = volume

    def set(self, period: SettlementPeriod, price: float, volume: float) -> None:
        """Both values for one period (what a live estimate reports)."""
        self._price = PeriodValue(period, price)
        self._volume = PeriodValue(period, volume)

    def set_price(self, value: PeriodValue | None) -> None:
        self._price = value

    def set_volume(self, value: PeriodValue | None) -> None:
        self._volume = value

    def imbalance_price(self, at: datetime) -> PeriodValue | None:
        return self._price

    def imbalance_volume(self, at: datetime) -> PeriodValue | None:
        return self._volume


def _read_series(path: Path | str) -> dict[datetime, float]:
    """A ``spUTCTime, ..., value`` CSV as {UTC period start: value}; blank values skipped."""
    series: dict[datetime, float] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        rows = csv.reader(fh)
        next(rows, None)  # header
        for row in rows:
            if len(row) < 2 or not row[-1].strip():
                continue
            start = datetime.fromisoformat(row[0].strip())
            if start.tzinfo is None:
                raise ValueError(f"{path}: {row[0]!r} has no UTC offset")
            series[start.astimezone(UTC)] = float(row[-1])
    return series


class ReplayImbalanceFeed:
    """History served as if live: at instant ``at`` the values of ``at``'s period.

    ``prices`` (p/kWh) and ``volumes`` (MWh) are keyed by the UTC start of their period.
    During the first ``publish_delay_s`` of a period the previous period's values are
    served (a live feed lags). With ``wrap`` an instant outside the history is mapped
    into it by whole multiples of its length, so January 2024 can play on any date; the
    values are reported for the instant's own period, so predictions line up.
    """

    def __init__(
        self,
        prices: Mapping[datetime, float],
        volumes: Mapping[datetime, float],
        *,
        publish_delay_s: float = 0.0,
        wrap: bool = False,
    ) -> None:
        self._prices = {k.astimezone(UTC): v for k, v in prices.items()}
        self._volumes = {k.astimezone(UTC): v for k, v in volumes.items()}
        keys = sorted({*self._prices, *self._volumes})
        if not keys:
            raise ValueError("an imbalance replay needs at least one period of data")
        self._first = keys[0]
        self._span = keys[-1] + PERIOD - keys[0]
        self.publish_delay_s = publish_delay_s
        self.wrap = wrap
        #: The last answer of each series (by id) and the period it was served for: a
        #: loop asks ~450 times per period and the answer changes only with the period.
        self._last: dict[int, tuple[SettlementPeriod, PeriodValue | None]] = {}
        self._period = LastPeriod()

    @classmethod
    def from_csv(
        cls,
        prices: Path | str,
        volumes: Path | str,
        *,
        publish_delay_s: float = 0.0,
        wrap: bool = False,
    ) -> ReplayImbalanceFeed:
        """From two CSVs ``spUTCTime, spClockTime, price|volume`` (Elexon via skypro)."""
        return cls(
            _read_series(prices),
            _read_series(volumes),
            publish_delay_s=publish_delay_s,
            wrap=wrap,
        )

    @classmethod
    def january_2024(
        cls, *, publish_delay_s: float = 0.0, wrap: bool = True
    ) -> ReplayImbalanceFeed:
        """The GB imbalance prices and NIV of January 2024 shipped with Flux (BMRS data)."""
        data = resources.files("reconciler.markets") / "data"
        with (
            resources.as_file(data / "elexon_imbalance_price_2024_01.csv") as prices,
            resources.as_file(data / "elexon_imbalance_volume_2024_01.csv") as volumes,
        ):
            return cls(
                _read_series(prices),
                _read_series(volumes),
                publish_delay_s=publish_delay_s,
                wrap=wrap,
            )

    def _served(self, at: datetime) -> SettlementPeriod:
        period = self._period.at(at)
        if (at - period.start).total_seconds() < self.publish_delay_s:
            return period.previous()
        return period

    def _lookup(self, series: Mapping[datetime, float], at: datetime) -> PeriodValue | None:
        period = self._served(at)
        last = self._last.get(id(series))
        if last is not None and (last[0] is period or last[0] == period):
            return last[1]
        found = self._find(series, period)
        self._last[id(series)] = (period, found)
        return found

    def _find(
        self, series: Mapping[datetime, float], period: SettlementPeriod
    ) -> PeriodValue | None:
        key = period.start
        if self.wrap:
            key = self._first + (key - self._first) % self._span
        value = series.get(key)
        return None if value is None else PeriodValue(period, value)

    def imbalance_price(self, at: datetime) -> PeriodValue | None:
        return self._lookup(self._prices, at)

    def imbalance_volume(self, at: datetime) -> PeriodValue | None:
        return self._lookup(self._volumes, at)


#: When GB's day-ahead auction results are out (local time): tomorrow's prices are known
#: from then on. (The hourly auctions close before noon; results follow within the hour.)
DAY_AHEAD_PUBLISHED = time(12, 0)


class ReplayDayAheadFeed:
    """Day-ahead prices (p/kWh by UTC period start) served as published: at an instant,
    the prices of the rest of its local day and, after ``published`` local time, of the
    next day, never later ones. With ``wrap``, as :class:`ReplayImbalanceFeed` (a short
    history on any date)."""

    def __init__(
        self,
        prices: Mapping[datetime, float],
        *,
        published: time = DAY_AHEAD_PUBLISHED,
        wrap: bool = False,
    ) -> None:
        self._prices = {k.astimezone(UTC): v for k, v in prices.items()}
        if not self._prices:
            raise ValueError("a day-ahead replay needs at least one period of prices")
        self._first = min(self._prices)
        self._span = max(self._prices) + PERIOD - self._first
        self.published = published
        self.wrap = wrap
        self._served: tuple[tuple[datetime, datetime], tuple[PeriodValue, ...]] | None = None

    def _known_until(self, at: datetime) -> datetime:
        local = at.astimezone(LONDON)
        days = 2 if local.time() >= self.published else 1
        return local_midnight(local.date() + timedelta(days=days))

    def day_ahead(self, at: datetime) -> tuple[PeriodValue, ...]:
        window = (period_at(at).start, self._known_until(at))
        if self._served is None or self._served[0] != window:
            values = []
            start = window[0]
            while start < window[1]:
                key = self._first + (start - self._first) % self._span if self.wrap else start
                value = self._prices.get(key)
                if value is not None:
                    values.append(PeriodValue(period_at(start), value))
                start += PERIOD
            self._served = (window, tuple(values))
        return self._served[1]


class MemoryAxleFeed:
    """An Axle schedule held in memory; serves the steps that have not ended."""

    def __init__(self, steps: Iterable[AxleStep] = ()) -> None:
        self._steps: list[AxleStep] = list(steps)

    def set_steps(self, steps: Iterable[AxleStep]) -> None:
        self._steps = list(steps)

    def append(self, step: AxleStep) -> None:
        self._steps.append(step)

    def axle_steps(self, at: datetime) -> Sequence[AxleStep]:
        return [s for s in self._steps if s.end > at]
