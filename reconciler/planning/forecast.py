"""Forecasts from what is known at an instant and nothing later.

Prices: the mean of recent settled imbalance prices by local half hour of the day, over
``history_days`` (the mean, not the median: the plan maximises expected money, and the
spikes a median hides are what stored energy is for), half from the days of the same
type (weekday or weekend) and half from all days (a weekend half hour rests on four
values in a fortnight: alone, its noise would be planned for as if it were a shape).
The live price of the current period is trusted for it, and the gap between it and the
profile fades over the next hours (prices persist: a dear afternoon stays dear a while)
as fast as it did in the same recent history: for each number of periods ahead, the
least-squares ratio of later to earlier departures from the profile (:func:`persistence`),
so a market whose departures last longer is followed longer, with nothing tuned to one.
Where a day-ahead feed has published a period's price, that price stands in for the
profile, plus the mean gap between settled imbalance and published day-ahead prices over
the recent periods that had both (imbalance prices sit around the wholesale price, not on
it).
Net load (load minus solar, kW): the mean of recent periods at the same half hour of the day.

Both learn only from values given to them with an instant (``add``); a forecast made at
``at`` reads nothing recorded at or after the start of the period it forecasts, so
feeding the future in early cannot change it (the test poisons the future to prove it).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from reconciler.control.periods import PERIOD

#: How fast the live net load's departure from its profile fades, per period ahead (and
#: the live price's, until enough history is known to measure it).
PERSISTENCE = 0.8
#: Periods ahead for which the price's persistence is measured; after that the live price
#: says nothing (its measured share is all but gone by then: 8 hours).
PERSISTENCE_PERIODS = 16
#: The weight of the day type's own profile against that of all days.
TYPED_WEIGHT = 0.5
#: Settled prices needed before a forecast is made (a day): with less, a flat forecast
#: at the live price would make any price look like one to sell at.
MIN_HISTORY = 48


def _slot(at: datetime, tz: ZoneInfo) -> tuple[int, bool]:
    """Half hour of the local day (0-47) and whether it is a weekend."""
    local = at.astimezone(tz)
    return local.hour * 2 + local.minute // 30, local.weekday() >= 5


class PeriodHistory:
    """Values per period start (UTC), the latest kept, and means by half hour of day."""

    def __init__(self, tz: ZoneInfo, history_days: int) -> None:
        self.tz = tz
        self.history_days = history_days
        self.values: dict[datetime, float] = {}

    def add(self, period_start: datetime, value: float) -> None:
        if not math.isfinite(value):  # a bad value upstream must not poison every forecast
            return
        self.values[period_start] = value
        if len(self.values) > (self.history_days + 2) * 50:  # keep only what is read
            keep = max(self.values) - timedelta(days=self.history_days + 1)
            self.values = {s: v for s, v in self.values.items() if s >= keep}

    def profile(self, at: datetime, *, by_day_type: bool) -> dict[tuple[int, bool], float]:
        """Mean per (half hour, weekend) of the periods that started before ``at``
        within ``history_days`` (weekend is False for every key unless by_day_type)."""
        groups: dict[tuple[int, bool], list[float]] = {}
        for start, value in self.window(at):
            slot, weekend = _slot(start, self.tz)
            groups.setdefault((slot, weekend and by_day_type), []).append(value)
        return {k: statistics.fmean(v) for k, v in groups.items()}

    def copy(self) -> PeriodHistory:
        other = PeriodHistory(self.tz, self.history_days)
        other.values = dict(self.values)
        return other

    def window(self, at: datetime) -> list[tuple[datetime, float]]:
        """(period start, value) of the periods that started before ``at`` within
        ``history_days``: all a forecast made at ``at`` may read."""
        since = at - timedelta(days=self.history_days)
        return [(s, v) for s, v in self.values.items() if since <= s < at]

    def recent(self, at: datetime) -> list[float]:
        return [v for _, v in self.window(at)]


def persistence(
    departures: Mapping[datetime, float], periods: int = PERSISTENCE_PERIODS
) -> list[float]:
    """For k = 0..periods, the share of a departure from the profile still there k periods
    later: sum(d_t d_t+k) / sum(d_t^2) over the pairs both known (1 at k = 0; each in
    [0, 1]; PERSISTENCE**k where no pair is known). ``departures``: value minus profile
    by period start."""
    if not departures:
        return [PERSISTENCE**k for k in range(periods + 1)]
    first = min(departures)
    n = round((max(departures) - first) / PERIOD) + 1
    d = np.full(n + periods, np.nan)
    for start, value in departures.items():
        d[round((start - first) / PERIOD)] = value
    out = [1.0]
    for k in range(1, periods + 1):
        a, b = d[:n], d[k : n + k]
        both = ~(np.isnan(a) | np.isnan(b))
        den = float(np.sum(a[both] ** 2))
        if den <= 0.0:
            out.append(PERSISTENCE**k)
            continue
        out.append(min(1.0, max(0.0, float(np.sum(a[both] * b[both])) / den)))
    return out


class PriceForecaster:
    """Imbalance price (p/kWh) for each period start, as known at an instant."""

    def __init__(self, tz: ZoneInfo, history_days: int = 14) -> None:
        self.history = PeriodHistory(tz, history_days)
        #: Day-ahead prices as published (p/kWh by UTC period start): the future ones
        #: are known in advance by definition; the past ones measure the gap.
        self.published: dict[datetime, float] = {}

    def copy(self) -> PriceForecaster:
        other = PriceForecaster(self.history.tz)
        other.history = self.history.copy()
        other.published = dict(self.published)
        return other

    def add(self, period_start: datetime, price: float) -> None:
        """A settled (or latest live) price of the period starting at ``period_start``."""
        self.history.add(period_start, price)

    def publish(self, period_start: datetime, price: float) -> bool:
        """A day-ahead price (p/kWh) of the period starting at ``period_start``; whether
        it was new or changed."""
        if self.published.get(period_start) == price:
            return False
        self.published[period_start] = price
        if len(self.published) > 4 * 48 * self.history.history_days:
            since = min(self.published) + timedelta(days=self.history.history_days)
            self.published = {t: v for t, v in self.published.items() if t >= since}
        return True

    def _day_ahead_gap(self, cutoff: datetime) -> float:
        """Mean settled minus day-ahead price (p/kWh) over the recent periods before
        ``cutoff`` that have both; 0 with none."""
        gaps = [
            settled - self.published[t]
            for t, settled in self.history.window(cutoff)
            if t in self.published
        ]
        return statistics.fmean(gaps) if gaps else 0.0

    def forecast(
        self, at: datetime, starts: Sequence[datetime], live: float | None
    ) -> list[float] | None:
        """Prices for ``starts`` (the first is the period containing ``at``), or None while
        fewer than MIN_HISTORY recent prices are known. ``live``: the current period's
        live price, if any."""
        cutoff = starts[0] if starts else at
        recent = self.history.recent(cutoff)
        if len(recent) < MIN_HISTORY:
            return None
        typed = self.history.profile(cutoff, by_day_type=True)
        plain = self.history.profile(cutoff, by_day_type=False)
        overall = statistics.fmean(recent)
        tz = self.history.tz
        base = []
        for start in starts:
            slot, weekend = _slot(start, tz)
            every_day = plain.get((slot, False), overall)
            own = typed.get((slot, weekend), every_day)
            base.append(TYPED_WEIGHT * own + (1.0 - TYPED_WEIGHT) * every_day)
        if any(start in self.published for start in starts):
            gap = self._day_ahead_gap(cutoff)
            base = [
                self.published[start] + gap if start in self.published else b
                for start, b in zip(starts, base, strict=True)
            ]
        if live is not None and base:
            departures = {
                t: v - plain.get((_slot(t, tz)[0], False), overall)
                for t, v in self.history.window(cutoff)
            }
            share = persistence(departures)
            gap = live - base[0]
            base = [b + gap * (share[k] if k < len(share) else 0.0) for k, b in enumerate(base)]
            base[0] = live
        return base


class NetLoadForecaster:
    """Net load (load minus solar, kW, + consumption) per period start."""

    def __init__(self, tz: ZoneInfo, history_days: int = 7) -> None:
        self.history = PeriodHistory(tz, history_days)
        self._sum: dict[datetime, tuple[float, int]] = {}

    def observe(self, period_start: datetime, net_load_kw: float) -> None:
        """One sample of the period starting at ``period_start``; the period's value is
        the mean of its samples."""
        total, count = self._sum.get(period_start, (0.0, 0))
        total, count = total + net_load_kw, count + 1
        self._sum[period_start] = (total, count)
        self.history.add(period_start, total / count)
        if len(self._sum) > 4 * 48:  # only the running means of recent periods are needed
            for old in sorted(self._sum)[: len(self._sum) - 2 * 48]:
                del self._sum[old]

    def copy(self) -> NetLoadForecaster:
        """The history only: a copy forecasts, it does not observe."""
        other = NetLoadForecaster(self.history.tz)
        other.history = self.history.copy()
        return other

    def forecast(self, at: datetime, starts: Sequence[datetime], now_kw: float) -> list[float]:
        """Net load for ``starts``; the current one at ``now_kw``, fading to the profile."""
        cutoff = starts[0] if starts else at
        plain = self.history.profile(cutoff, by_day_type=False)
        out = []
        for k, start in enumerate(starts):
            slot, _ = _slot(start, self.history.tz)
            profile = plain.get((slot, False), now_kw)
            out.append(profile + (now_kw - profile) * PERSISTENCE**k)
        return out
