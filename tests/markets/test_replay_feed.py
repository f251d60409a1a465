"""A replayed imbalance feed, and the signals built from it, answer the same whether asked
tick after tick (their memo of the last period) or once (a fresh feed per question)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.control.signals import FeedSignals
from reconciler.markets.memory import ReplayImbalanceFeed

PERIOD = timedelta(minutes=30)
START = datetime(2024, 3, 30, 22, tzinfo=UTC)  # the night the clocks go forward
PRICES = {START + k * PERIOD: 10.0 + k for k in range(12)}
VOLUMES = {START + k * PERIOD: 100.0 - 30 * k for k in range(12) if k != 4}


def _feed(delay: float, wrap: bool) -> ReplayImbalanceFeed:
    return ReplayImbalanceFeed(PRICES, VOLUMES, publish_delay_s=delay, wrap=wrap)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([0.0, 60.0, 0.5]),
    st.booleans(),
    st.lists(st.integers(-3600, 12 * 3600), min_size=1, max_size=40),
)
def test_a_feed_asked_again_and_again_answers_as_a_fresh_one(
    delay: float, wrap: bool, offsets_s: list[int]
) -> None:
    feed = _feed(delay, wrap)
    signals = FeedSignals(imbalance=feed)
    for s in offsets_s:
        at = START + timedelta(seconds=s)
        fresh = _feed(delay, wrap)
        assert feed.imbalance_price(at) == fresh.imbalance_price(at)
        assert feed.imbalance_volume(at) == fresh.imbalance_volume(at)
        assert signals.signals_at(at) == FeedSignals(imbalance=fresh).signals_at(at)


def test_the_publish_delay_serves_the_previous_period_then_this_one() -> None:
    feed = _feed(60.0, False)
    period_start = START + timedelta(minutes=60)
    early = feed.imbalance_price(period_start + timedelta(seconds=59))
    late = feed.imbalance_price(period_start + timedelta(seconds=60))
    assert early is not None and early.value == 11.0 and early.period.start == START + PERIOD
    assert late is not None and late.value == 12.0 and late.period.start == period_start
    # back in the delay: the memo must not keep serving this period's value
    again = feed.imbalance_price(period_start + timedelta(seconds=1))
    assert again == early
