"""The day-ahead feed: a site's configured endpoint (faked with httpx.MockTransport, shaped
as docs/domain.md documents), served as signals the planner reads and recorded in a real
outbox; errors keep the last good prices; the replay publishes a day at noon the day
before and never sooner."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.clock import ManualClock
from reconciler.config.loader import check_site_text
from reconciler.control.periods import PERIOD, period_at
from reconciler.markets.live import LiveMarkets
from reconciler.markets.memory import ReplayDayAheadFeed
from reconciler.telemetry.outbox import Outbox
from tests.markets.test_live import market_rows, site_with
from tests.source.conftest import DEMO_TEXT

T0 = datetime(2026, 1, 15, 12, 20, tzinfo=UTC)  # SP25 of 2026-01-15
URL = "https://prices.test/day-ahead"


def body(first: datetime, prices: list[Any]) -> dict[str, Any]:
    return {
        "prices": [
            {"period_start": (first + k * PERIOD).isoformat(), "price_p_per_kwh": p}
            for k, p in enumerate(prices)
        ]
    }


class FakeFeed:
    def __init__(self) -> None:
        self.replies: list[httpx.Response] = []
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0)
        reply.request = request
        return reply


def markets(feed: FakeFeed, outbox: Outbox, clock: ManualClock, **settings: Any) -> LiveMarkets:
    http = httpx.AsyncClient(transport=httpx.MockTransport(feed.handle))
    live = LiveMarkets(clock=clock, sink=outbox, environ={"DA_KEY": "s3cret"}, http=http)
    live.configure(site_with({"day_ahead": {"url": URL, **settings}}))
    return live


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox.sqlite")


def test_published_prices_become_signals_and_market_rows(outbox: Outbox) -> None:
    feed = FakeFeed()
    start = period_at(T0).start
    # Two past periods (forgotten by the signals), then the current and three more.
    feed.replies.append(httpx.Response(200, json=body(start - 2 * PERIOD, [5, 6, 7, 8, 9.5, 30])))
    clock = ManualClock(T0)
    live = markets(feed, outbox, clock, api_key_env="DA_KEY")
    asyncio.run(live.poll_due())
    assert feed.requests[0].headers["authorization"] == "Bearer s3cret"
    served = live.signals_at(T0).day_ahead
    assert [(v.period.start, v.value) for v in served] == [
        (start + k * PERIOD, p) for k, p in enumerate([7.0, 8.0, 9.5, 30.0])
    ]
    # Control's own signals are untouched by it.
    assert live.signals_at(T0).imbalance_price is None
    rows = market_rows(outbox)
    assert {r["type"] for r in rows} == {"day_ahead_price"} and len(rows) == 6
    assert {r["source"] for r in rows} == {"day_ahead"}
    # An hour on, the periods that are over are no longer served.
    later = live.signals_at(T0 + timedelta(hours=1)).day_ahead
    assert [v.value for v in later] == [9.5, 30.0]


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (httpx.Response(503), "HTTP 503"),
        (httpx.Response(200, json={"data": []}), 'expected an object with "prices"'),
        (
            httpx.Response(200, json={"prices": [{"period_start": "2026-01-15T12:00:00Z"}]}),
            'prices[0]: field "price_p_per_kwh" is missing',
        ),
        (
            httpx.Response(
                200,
                json={"prices": [{"period_start": "2026-01-15T12:10:00Z", "price_p_per_kwh": 1}]},
            ),
            "prices[0].period_start: '2026-01-15T12:10:00Z' is not the start of a settlement",
        ),
        (
            httpx.Response(
                200,
                json={"prices": [{"period_start": "2026-01-15T12:00:00", "price_p_per_kwh": 1}]},
            ),
            "has no UTC offset",
        ),
        (
            httpx.Response(
                200,
                json={"prices": [{"period_start": "2026-01-15T12:00Z", "price_p_per_kwh": "1"}]},
            ),
            "prices[0].price_p_per_kwh: expected a number",
        ),
        (httpx.Response(200, text="<html>"), "the reply is not JSON"),
    ],
)
def test_a_bad_reply_keeps_the_last_good_prices_and_says_why(
    outbox: Outbox, reply: httpx.Response, says: str
) -> None:
    feed = FakeFeed()
    start = period_at(T0).start
    feed.replies += [httpx.Response(200, json=body(start, [7, 8])), reply]
    clock = ManualClock(T0)
    live = markets(feed, outbox, clock, poll_s=60)
    asyncio.run(live.poll_due())
    clock.set(T0 + timedelta(seconds=61))
    asyncio.run(live.poll_due())
    (status,), _ = live.feed_status()
    assert status.source == "day_ahead" and not status.ok
    assert status.last_error is not None and says in status.last_error, status.last_error
    assert [v.value for v in live.signals_at(T0).day_ahead] == [7.0, 8.0]


def test_a_key_variable_that_is_not_set_is_said_once(outbox: Outbox) -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    live = LiveMarkets(clock=ManualClock(T0), sink=outbox, environ={}, http=http)
    live.configure(site_with({"day_ahead": {"url": URL, "api_key_env": "DA_KEY"}}))
    assert live.problems == ["day_ahead: DA_KEY is not set; calling without a key"]


@pytest.mark.parametrize("url", ["ftp://prices.test/x", "prices.test/day-ahead", ""])
def test_the_site_file_wants_an_http_url(url: str) -> None:
    text = DEMO_TEXT.replace("  modo: {}\n", f"  modo: {{}}\n  day_ahead: {{url: {url!r}}}\n")
    assert text != DEMO_TEXT
    site, problems = check_site_text(text, "demo.yaml")
    assert site is None
    assert any("day_ahead" in str(p) and "url" in str(p) for p in problems), problems


def test_the_replay_publishes_tomorrow_at_noon_and_never_sooner() -> None:
    first = datetime(2024, 1, 15, tzinfo=UTC)  # London is on UTC in January
    prices = {first + k * PERIOD: float(k) for k in range(4 * 48)}
    feed = ReplayDayAheadFeed(prices)
    morning = feed.day_ahead(datetime(2024, 1, 16, 11, 59, tzinfo=UTC))
    assert morning[0].period.start == datetime(2024, 1, 16, 11, 30, tzinfo=UTC)
    assert morning[-1].period.start == datetime(2024, 1, 16, 23, 30, tzinfo=UTC)
    noon = feed.day_ahead(datetime(2024, 1, 16, 12, 0, tzinfo=UTC))
    assert noon[-1].period.start == datetime(2024, 1, 17, 23, 30, tzinfo=UTC)
    assert [v.value for v in noon] == [float(k) for k in range(48 + 24, 3 * 48)]


def test_the_replay_follows_local_noon_in_summer_time() -> None:
    first = datetime(2024, 7, 1, tzinfo=UTC)
    feed = ReplayDayAheadFeed({first + k * PERIOD: 1.0 for k in range(4 * 48)})
    # 11:30 UTC is 12:30 BST: tomorrow (local) is out, up to 23:00 UTC on the 3rd.
    served = feed.day_ahead(datetime(2024, 7, 2, 11, 30, tzinfo=UTC))
    assert served[-1].period.end == datetime(2024, 7, 3, 23, 0, tzinfo=UTC)
