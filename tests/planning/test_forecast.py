"""Forecasts and plans read nothing later than the instant they are made at."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from reconciler.config import load_site
from reconciler.config.model import OptimiseParams
from reconciler.control.periods import PERIOD
from reconciler.planning.forecast import PriceForecaster, persistence
from reconciler.planning.planner import Planner
from tests.source.conftest import ROOT

LONDON = ZoneInfo("Europe/London")
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _price(k: int) -> float:
    """A daily shape: dear in the evening, cheap at night (p/kWh), period k from T0."""
    return 15.0 + 10.0 * math.sin(2 * math.pi * ((k % 48) - 20) / 48)


def _planner() -> Planner:
    return Planner(load_site(ROOT / "sites" / "demo.yaml"), OptimiseParams())


def _fill(planner: Planner, periods: range, poison: bool = False) -> None:
    for k in periods:
        start = T0 + k * PERIOD
        planner.prices.add(start, 1e4 if poison else _price(k))
        planner.net_load.observe(start, -500.0 if poison else 40.0)


def test_a_plan_does_not_change_when_the_future_is_poisoned() -> None:
    at = T0 + 10 * 48 * PERIOD + timedelta(minutes=7)  # day 10, 00:07
    honest, poisoned = _planner(), _planner()
    _fill(honest, range(10 * 48))
    _fill(poisoned, range(10 * 48))
    # The poisoned planner is also told every price and load from the current period on.
    _fill(poisoned, range(10 * 48, 14 * 48), poison=True)
    kwargs = {"soe_kwh": 600.0, "net_load_kw": 40.0, "live_price": 9.0}
    a, b = honest.plan(at, **kwargs), poisoned.plan(at, **kwargs)
    assert a is not None and b is not None
    assert a == b
    # and the plan is not idle: it charges in the night and discharges in the evening
    assert min(s.battery_kw for s in a.steps) < -100 and max(s.battery_kw for s in a.steps) > 100


def test_prices_are_the_mean_by_half_hour_half_of_the_day_type_with_the_live_price_fading() -> None:
    f = PriceForecaster(LONDON, history_days=14)
    monday = datetime(2024, 1, 8, 17, tzinfo=UTC)  # 17:00, a weekday
    for day in range(1, 8):  # the week before at 17:00: weekdays 29..69 p, the weekend 5 p
        start = monday - timedelta(days=day)
        f.add(start, 5.0 if start.weekday() >= 5 else 20.0 + day * day)
        f.add(start + PERIOD, 10.0)
        for k in range(12):  # the night before: enough history to forecast from
            f.add(start - timedelta(hours=17) + k * PERIOD, 1.0)
    starts = [monday, monday + PERIOD]
    # Weekdays' mean of 29, 36, 45, 56, 69 (the median would be 45) is 47; all days' is
    # (235 + 5 + 5) / 7 = 35; the forecast weighs them equally.
    assert f.forecast(monday, starts, live=None) == pytest.approx([41.0, 10.0])
    saturday = monday + timedelta(days=5)
    assert f.forecast(saturday, [saturday], live=None) == pytest.approx([20.0])  # (5 + 35) / 2
    got = f.forecast(monday, starts, live=32.0)
    assert got is not None and got[0] == 32.0
    # The departure (32 - 41) fades by the share measured in this history.
    since = monday - timedelta(days=14)
    plain = f.history.profile(monday, by_day_type=False)
    departures = {
        t: v - plain[(t.astimezone(LONDON).hour * 2 + t.astimezone(LONDON).minute // 30, False)]
        for t, v in f.history.values.items()
        if since <= t < monday
    }
    assert got[1] == pytest.approx(10.0 + (32.0 - 41.0) * persistence(departures)[1])
    assert PriceForecaster(LONDON).forecast(monday, starts, live=9.0) is None  # no history


def test_persistence_is_measured_from_the_history() -> None:
    """Departures that halve each period are measured as 0.5**k; ones that last as 1; ones
    that flip sign as 0 (never negative); no pairs at all fall back to the fixed rate."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    halving = {t0 + (10 * b + k) * PERIOD: 8.0 * 0.5**k for b in range(20) for k in range(6)}
    share = persistence(halving, periods=3)
    assert share == pytest.approx([1.0, 0.5, 0.25, 0.125], rel=0.05)
    lasting = {t0 + k * PERIOD: 3.0 for k in range(100)}
    assert persistence(lasting, periods=2) == pytest.approx([1.0, 1.0, 1.0])
    flipping = {t0 + k * PERIOD: (-1.0) ** k for k in range(100)}
    assert persistence(flipping, periods=2)[1] == 0.0
    lonely = {t0 + 10 * k * PERIOD: 1.0 for k in range(5)}  # no two within 2 periods
    assert persistence(lonely, periods=2) == pytest.approx([1.0, 0.8, 0.64])


def test_a_published_day_ahead_price_stands_in_with_the_recent_gap() -> None:
    f = PriceForecaster(LONDON, history_days=14)
    at = datetime(2024, 1, 8, 12, tzinfo=UTC)
    for k in range(96):  # two days before: settled 12 p where 10 p had been published
        start = at - timedelta(days=2) + k * PERIOD
        f.add(start, 12.0)
        assert f.publish(start, 10.0)
    starts = [at + k * PERIOD for k in range(3)]
    assert f.forecast(at, starts, live=None) == [12.0, 12.0, 12.0]  # the profile
    assert f.publish(starts[1], 40.0) and not f.publish(starts[1], 40.0)  # the same again
    # Tomorrow's published 40 p, plus the 2 p that imbalance sat above day-ahead.
    assert f.forecast(at, starts, live=None) == [12.0, 42.0, 12.0]
    # The live price still rules its own period, its gap fading over the next ones.
    got = f.forecast(at, starts, live=20.0)
    assert got == pytest.approx([20.0, 42.0 + 8.0 * 0.8, 12.0 + 8.0 * 0.64])
    # A copy keeps what was published; a later publication does not reach it.
    copy = f.copy()
    f.publish(starts[2], 99.0)
    assert copy.forecast(at, starts, live=None) == [12.0, 42.0, 12.0]
