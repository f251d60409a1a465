"""Planning beside the market signals: plans at period boundaries and on a new live
price, the last plan kept when one fails, and nothing planned for a site without an
optimise entry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.config.loader import check_site_text
from reconciler.control.periods import PERIOD, period_at
from reconciler.control.signals import FeedSignals
from reconciler.control.types import PeriodValue
from reconciler.markets.memory import MemoryImbalanceFeed
from reconciler.markets.replay import Replay
from reconciler.planning import lp
from reconciler.planning.runner import Planning
from tests.planning.test_agent_plans import OPTIMISE_TEXT
from tests.source.conftest import DEMO_TEXT

T0 = datetime(2024, 1, 15, 12, 7, tzinfo=UTC)


def _planning(text: str) -> tuple[Planning, MemoryImbalanceFeed]:
    site, problems = check_site_text(text, "site.yaml")
    assert site is not None, problems
    feed = MemoryImbalanceFeed()
    planning = Planning(Replay(FeedSignals(imbalance=feed)), synchronous=True)
    planning.configure(site)
    return planning, feed


def _history(hours: int = 48) -> list[tuple[datetime, float]]:
    first = T0 - timedelta(hours=hours)
    return [(period_at(first + k * PERIOD).start, 8.0 + (k % 48) / 4) for k in range(2 * hours)]


def test_plans_at_boundaries_and_on_a_new_live_price_and_keep_the_last_on_failure() -> None:
    planning, feed = _planning(OPTIMISE_TEXT)
    planning.seed(_history())
    planning.observe(T0, 40.0, 0.0, 700.0)
    first = planning.signals_at(T0).plan
    assert first is not None and first.made_at == T0
    # Same period, same price: no new plan within the minute.
    planning.observe(T0 + timedelta(seconds=4), 40.0, 0.0, 700.0)
    assert planning.signals_at(T0 + timedelta(seconds=4)).plan is first
    # A live price for this period arrives: a new plan (after the minute's pause).
    feed.set(period_at(T0), 30.0, 200.0)
    later = T0 + timedelta(seconds=64)
    planning.observe(later, 40.0, 0.0, 700.0)
    second = planning.signals_at(later).plan
    assert second is not None and second.made_at == later and second.steps[0].price == 30.0

    # A price that is not a number is left out of the history; a plan that cannot be made
    # (here the site's power now is not a number) leaves the last one in force.
    planning.seed([(period_at(T0).start - PERIOD, float("nan"))])
    next_period = period_at(T0).end + timedelta(seconds=10)
    planning.observe(next_period, float("nan"), 0.0, 700.0)
    assert planning.signals_at(next_period).plan is second
    feeds, _ = planning.feed_status()
    (shown,) = [f for f in feeds if f.source == "plan"]
    assert not shown.ok and shown.consecutive_failures == 1 and shown.last_error


def test_a_site_without_an_optimise_entry_is_not_planned_for() -> None:
    planning, _ = _planning(DEMO_TEXT)
    planning.seed(_history())
    planning.observe(T0, 40.0, 0.0, 700.0)
    assert planning.planner is None and planning.signals_at(T0).plan is None
    assert [f.source for f in planning.feed_status()[0]] == []


def test_the_programme_refuses_what_is_not_a_number() -> None:
    """HiGHS never returns on a NaN cost: the programme refuses one at once."""
    plant = lp.Plant(100, 100, 200, 0.9, 0, 200, 1000, 1000)
    x = lp.Inputs([0.5, 0.5], [0.0, 0.0], [10.0, float("nan")], [0.0, 0.0], [0.0, 0.0], 0.0)
    with pytest.raises(ValueError, match="price holds nan"):
        lp.solve(plant, x)


def test_new_day_ahead_prices_make_a_new_plan_that_follows_them() -> None:
    site, problems = check_site_text(OPTIMISE_TEXT, "site.yaml")
    assert site is not None, problems
    first = period_at(T0).start
    published = {first + k * PERIOD: 10.0 for k in range(8)}
    day_ahead = MemoryDayAhead()
    planning = Planning(
        Replay(FeedSignals(imbalance=MemoryImbalanceFeed(), day_ahead=day_ahead)),
        synchronous=True,
    )
    planning.configure(site)
    planning.seed(_history())
    planning.observe(T0, 40.0, 0.0, 700.0)
    before = planning.signals_at(T0).plan
    assert before is not None
    # Tomorrow's auction: a dear period three hours on. A new plan (after the minute's
    # pause), which forecasts that period from it and discharges there.
    published[first + 6 * PERIOD] = 200.0
    day_ahead.values = tuple(PeriodValue(period_at(t), v) for t, v in sorted(published.items()))
    later = T0 + timedelta(seconds=64)
    planning.observe(later, 40.0, 0.0, 700.0)
    after = planning.signals_at(later).plan
    assert after is not None and after is not before
    dear = after.steps[6]
    assert dear.start == first + 6 * PERIOD and dear.price > 150.0
    assert dear.battery_kw > 100.0 and before.steps[6].battery_kw < dear.battery_kw


class MemoryDayAhead:
    def __init__(self) -> None:
        self.values: tuple[PeriodValue, ...] = ()

    def day_ahead(self, at: datetime) -> tuple[PeriodValue, ...]:
        return tuple(v for v in self.values if v.period.end > at)
