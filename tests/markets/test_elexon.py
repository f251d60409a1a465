"""ElexonClient against a fake Elexon Insights (httpx.MockTransport), replies shaped as
docs/domain.md documents."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from reconciler.config.model import ElexonSettings
from reconciler.control.periods import LONDON, SettlementPeriod, periods_in_day
from reconciler.markets.elexon import ElexonClient
from reconciler.markets.errors import (
    MarketError,
    MarketMalformed,
    MarketRejected,
    MarketUnavailable,
)
from reconciler.markets.points import MarketPoint

BASE = "https://elexon.test/bmrs/api/v1"
PREFIX = "/bmrs/api/v1/balancing/settlement/system-prices/"
DAY = date(2024, 1, 15)
NOW = datetime(2024, 1, 15, 12, 40, tzinfo=UTC)  # SP26 of 2024-01-15


def utc_iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def row(
    number: int,
    ssp: Any = 75.0,
    niv: Any = -120.5,
    *,
    day: date = DAY,
    sbp: Any = None,
    start: Any = None,
) -> dict[str, Any]:
    """One data row as Elexon returns it (with some of the fields we ignore)."""
    period = SettlementPeriod(day, number)
    return {
        "settlementDate": day.isoformat(),
        "settlementPeriod": number,
        "startTime": start if start is not None else utc_iso(period.start),
        "createdDateTime": "2024-01-15T13:05:00Z",
        "systemSellPrice": ssp,
        "systemBuyPrice": ssp if sbp is None else sbp,
        "bsadDefaulted": False,
        "priceDerivationCode": "N",
        "reserveScarcityPrice": 0,
        "netImbalanceVolume": niv,
        "sellPriceAdjustment": 0,
        "buyPriceAdjustment": 0,
        "replacementPrice": None,
        "replacementPriceReferenceVolume": None,
        "totalAcceptedOfferVolume": 1032.5,
        "totalAcceptedBidVolume": -1153.0,
    }


Responder = Callable[[httpx.Request], httpx.Response]


class FakeElexon:
    """Serves a queue of replies per settlement date and records every requested URL."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.replies: dict[str, list[Responder]] = {}

    def reply(self, day: date, body: Any = None, *, status_code: int = 200, **kwargs: Any) -> None:
        if body is not None:
            kwargs["json"] = body
        self.replies.setdefault(day.isoformat(), []).append(
            lambda request: httpx.Response(status_code, request=request, **kwargs)
        )

    def data(self, day: date, rows: list[dict[str, Any]]) -> None:
        self.reply(day, {"data": rows})

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        assert request.method == "GET"
        assert request.url.path.startswith(PREFIX), request.url
        queue = self.replies.get(request.url.path.removeprefix(PREFIX), [])
        assert queue, f"unexpected call to {request.url}"
        return queue.pop(0)(request)

    @property
    def dates(self) -> list[str]:
        return [u.rsplit("/", 1)[-1] for u in self.urls]


Outcome = list[MarketPoint] | MarketError


def run_polls(fake: FakeElexon, times: list[datetime]) -> tuple[ElexonClient, list[Outcome]]:
    async def go() -> tuple[ElexonClient, list[Outcome]]:
        transport = httpx.MockTransport(fake.handle)
        async with httpx.AsyncClient(transport=transport) as http:
            client = ElexonClient(ElexonSettings(base_url=BASE), client=http)
            outcomes: list[Outcome] = []
            for at in times:
                try:
                    outcomes.append(await client.poll(at))
                except MarketError as exc:
                    outcomes.append(exc)
            return client, outcomes

    return asyncio.run(go())


def points_of(outcome: Outcome) -> list[MarketPoint]:
    assert isinstance(outcome, list), outcome
    return outcome


# --------------------------------------------------------------------------- requests


def test_fetches_the_settlement_date_of_now() -> None:
    fake = FakeElexon()
    fake.data(DAY, [row(24), row(25)])
    client, outcomes = run_polls(fake, [NOW])
    assert fake.urls == [f"{BASE}/balancing/settlement/system-prices/2024-01-15"]
    assert client.source == "elexon" and client.poll_s == 300.0
    assert client.last_success_at == NOW
    assert len(points_of(outcomes[0])) == 6


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        # Winter: London on UTC.
        (datetime(2024, 1, 15, 0, 0), ["2024-01-14", "2024-01-15"]),
        (datetime(2024, 1, 15, 1, 59, 59), ["2024-01-14", "2024-01-15"]),
        (datetime(2024, 1, 15, 2, 0), ["2024-01-15"]),
        (datetime(2024, 1, 15, 23, 59), ["2024-01-15"]),
        # Summer: the settlement day starts at 23:00 UTC the day before.
        (datetime(2024, 6, 15, 0, 30), ["2024-06-14", "2024-06-15"]),
        (datetime(2024, 6, 15, 2, 30), ["2024-06-15"]),
    ],
)
def test_previous_date_only_in_the_first_two_hours(local: datetime, expected: list[str]) -> None:
    now = local.replace(tzinfo=LONDON).astimezone(UTC)
    fake = FakeElexon()
    for d in expected:
        fake.data(date.fromisoformat(d), [])
    _, outcomes = run_polls(fake, [now])
    assert fake.dates == expected
    assert outcomes == [[]]


def test_first_two_hours_of_a_clock_change_day_are_counted_in_real_time() -> None:
    # 2024-03-31 (spring): local 00:00 is 00:00 UTC and local 03:00 is 02:00 UTC; two
    # real hours have passed at 02:00 UTC although the wall clock says 03:00.
    fake = FakeElexon()
    fake.data(date(2024, 3, 30), [])
    fake.data(date(2024, 3, 31), [])
    fake.data(date(2024, 3, 31), [])
    run_polls(
        fake,
        [datetime(2024, 3, 31, 1, 59, tzinfo=UTC), datetime(2024, 3, 31, 2, 0, tzinfo=UTC)],
    )
    assert fake.dates == ["2024-03-30", "2024-03-31", "2024-03-31"]


# --------------------------------------------------------------------------- values


def test_points_in_p_per_kwh_and_mwh() -> None:
    fake = FakeElexon()
    fake.data(DAY, [row(25, ssp=85.0, sbp=86.0, niv=212.5)])
    _, outcomes = run_polls(fake, [NOW])
    points = points_of(outcomes[0])
    period = SettlementPeriod(DAY, 25)
    assert {(p.type, round(p.value, 9)) for p in points} == {
        ("system_sell_price", 8.5),
        ("system_buy_price", 8.6),
        ("niv", 212.5),
    }
    assert all(p.period == period and p.source == "elexon" and p.fetched_at == NOW for p in points)


def test_feed_serves_the_latest_period_with_ssp_and_niv() -> None:
    fake = FakeElexon()
    fake.data(DAY, [row(25, ssp=90.0, niv=50.0), row(23, ssp=40.0), row(24, ssp=60.0)])
    client, _ = run_polls(fake, [NOW])
    price, volume = client.imbalance_price(NOW), client.imbalance_volume(NOW)
    assert price is not None and price.period == SettlementPeriod(DAY, 25)
    assert price.value == pytest.approx(9.0)
    assert volume is not None and (volume.period, volume.value) == (
        SettlementPeriod(DAY, 25),
        50.0,
    )


def test_latest_period_may_be_yesterdays_just_after_midnight() -> None:
    fake = FakeElexon()
    fake.data(date(2024, 1, 14), [row(47, day=date(2024, 1, 14)), row(48, day=date(2024, 1, 14))])
    fake.data(DAY, [])
    now = datetime(2024, 1, 15, 0, 10, tzinfo=UTC)
    client, _ = run_polls(fake, [now])
    price = client.imbalance_price(now)
    assert price is not None and price.period == SettlementPeriod(date(2024, 1, 14), 48)


def test_stale_values_are_not_served() -> None:
    fake = FakeElexon()
    fake.data(DAY, [row(25)])
    client, _ = run_polls(fake, [NOW])
    sp25 = SettlementPeriod(DAY, 25)
    for at in (sp25.start, sp25.end + timedelta(minutes=29, seconds=59)):
        assert client.imbalance_price(at) is not None
        assert client.imbalance_volume(at) is not None
    for at in (sp25.end + timedelta(minutes=30), sp25.end + timedelta(hours=3)):
        assert client.imbalance_price(at) is None
        assert client.imbalance_volume(at) is None


def test_nothing_served_before_the_first_poll() -> None:
    client, _ = run_polls(FakeElexon(), [])
    assert client.imbalance_price(NOW) is None
    assert client.imbalance_volume(NOW) is None


def test_revised_value_is_recorded_again_unchanged_ones_are_not() -> None:
    fake = FakeElexon()
    fake.data(DAY, [row(24, ssp=60.0), row(25, ssp=85.0, niv=10.0)])
    fake.data(DAY, [row(24, ssp=60.0), row(25, ssp=85.0, niv=10.0)])
    # A new settlement run revises SP24's NIV and price; SP25 is unchanged.
    fake.data(DAY, [row(24, ssp=61.0, niv=-3.0), row(25, ssp=85.0, niv=10.0)])
    later = [NOW + timedelta(minutes=5 * i) for i in range(3)]
    _, outcomes = run_polls(fake, later)
    assert len(points_of(outcomes[0])) == 6
    assert outcomes[1] == []
    revised = points_of(outcomes[2])
    assert {(p.period.number, p.type, round(p.value, 9)) for p in revised} == {
        (24, "system_sell_price", 6.1),
        (24, "system_buy_price", 6.1),
        (24, "niv", -3.0),
    }
    assert all(p.fetched_at == later[2] for p in revised)


def test_autumn_clock_change_day_has_fifty_periods() -> None:
    autumn = date(2024, 10, 27)
    assert periods_in_day(autumn) == 50
    fake = FakeElexon()
    fake.data(autumn, [row(n, day=autumn) for n in range(1, 51)])
    now = datetime(2024, 10, 27, 23, 50, tzinfo=UTC)  # SP50
    client, outcomes = run_polls(fake, [now])
    assert len(points_of(outcomes[0])) == 150
    price = client.imbalance_price(now)
    assert price is not None and price.period == SettlementPeriod(autumn, 50)


# --------------------------------------------------------------------------- errors


def test_start_time_mismatch_refused() -> None:
    # On 2024-10-27 local midnight is 23:00 UTC the day before, so SP3 starts at
    # 00:00 UTC; counting from UTC midnight would say 01:00.
    autumn = date(2024, 10, 27)
    fake = FakeElexon()
    fake.data(autumn, [row(2, day=autumn), row(3, day=autumn, start="2024-10-27T01:00:00Z")])
    client, outcomes = run_polls(fake, [datetime(2024, 10, 27, 12, 0, tzinfo=UTC)])
    error = outcomes[0]
    assert isinstance(error, MarketMalformed)
    assert "data[1].startTime" in str(error) and "2024-10-27 SP3" in str(error)
    assert error.what == "GET system-prices/2024-10-27"
    assert client.imbalance_price(datetime(2024, 10, 27, 1, 0, tzinfo=UTC)) is None


def test_start_time_with_an_offset_is_the_same_instant() -> None:
    # An instant written with an offset is equal to the UTC one: accepted.
    fake = FakeElexon()
    fake.data(DAY, [row(25, start="2024-01-15T13:00:00+01:00")])
    _, outcomes = run_polls(fake, [NOW])
    assert len(points_of(outcomes[0])) == 3


def test_rate_limit_gives_retry_after() -> None:
    fake = FakeElexon()
    fake.reply(DAY, status_code=429, headers={"Retry-After": "30"})
    _, outcomes = run_polls(fake, [NOW])
    error = outcomes[0]
    assert isinstance(error, MarketUnavailable) and error.retry_after_s == 30.0
    assert error.source == "elexon" and "system-prices/2024-01-15" in error.what


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, MarketUnavailable),
        (502, MarketUnavailable),
        (401, MarketRejected),
        (404, MarketRejected),
    ],
)
def test_http_errors(status: int, kind: type[MarketError]) -> None:
    fake = FakeElexon()
    fake.reply(DAY, status_code=status, text="nope")
    _, outcomes = run_polls(fake, [NOW])
    assert type(outcomes[0]) is kind
    assert "system-prices/2024-01-15" in str(outcomes[0])


def test_network_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("name or service not known")

    async def go() -> MarketError:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            client = ElexonClient(ElexonSettings(base_url=BASE), client=http)
            with pytest.raises(MarketUnavailable) as caught:
                await client.poll(NOW)
            return caught.value

    error = asyncio.run(go())
    assert "cannot reach" in str(error) and "system-prices/2024-01-15" in str(error)


def test_body_not_json() -> None:
    fake = FakeElexon()
    fake.reply(DAY, content=b"Service Unavailable")
    _, outcomes = run_polls(fake, [NOW])
    assert isinstance(outcomes[0], MarketMalformed) and "not JSON" in str(outcomes[0])


def _without(name: str) -> dict[str, Any]:
    r = row(25)
    del r[name]
    return r


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([row(25)], '"data"'),
        ({"results": [row(25)]}, '"data"'),
        ({"data": None}, '"data" should be a list'),
        ({"data": [row(24), 25]}, "data[1] should be an object"),
        ({"data": [_without("settlementPeriod")]}, '"settlementPeriod" is missing'),
        ({"data": [_without("startTime")]}, '"startTime" is missing'),
        ({"data": [_without("systemSellPrice")]}, '"systemSellPrice" is missing'),
        ({"data": [_without("systemBuyPrice")]}, '"systemBuyPrice" is missing'),
        ({"data": [_without("netImbalanceVolume")]}, '"netImbalanceVolume" is missing'),
        ({"data": [_without("settlementDate")]}, '"settlementDate" is missing'),
        ({"data": [row(25, ssp=True)]}, "data[0].systemSellPrice"),
        ({"data": [row(25, ssp="75.0")]}, "data[0].systemSellPrice"),
        ({"data": [row(25, sbp=False)]}, "data[0].systemBuyPrice"),
        ({"data": [row(24), row(25, niv=None)]}, "data[1].netImbalanceVolume"),
        ({"data": [{**row(25), "settlementPeriod": 0}]}, "data[0].settlementPeriod"),
        ({"data": [{**row(25), "settlementPeriod": 51}]}, "outside 1..48"),
        ({"data": [{**row(25), "settlementPeriod": 49}]}, "data[0].settlementPeriod"),
        ({"data": [{**row(25), "settlementPeriod": "25"}]}, "data[0].settlementPeriod"),
        ({"data": [{**row(25), "settlementPeriod": True}]}, "data[0].settlementPeriod"),
        ({"data": [{**row(25), "settlementDate": "2024-01-14"}]}, "data[0].settlementDate"),
        ({"data": [{**row(25), "settlementDate": "15-01-2024"}]}, "data[0].settlementDate"),
        ({"data": [row(25, start="2024-01-15T12:00:00")]}, "data[0].startTime"),
        ({"data": [row(25, start="yesterday")]}, "data[0].startTime"),
        ({"data": [row(25, start=17052)]}, "data[0].startTime"),
        ({"data": [row(25), row(25)]}, "data[1]: 2024-01-15 SP25 appears twice"),
    ],
)
def test_malformed_replies(body: Any, words: str) -> None:
    fake = FakeElexon()
    fake.reply(DAY, body)
    _, outcomes = run_polls(fake, [NOW])
    error = outcomes[0]
    assert isinstance(error, MarketMalformed), error
    assert words in str(error)
    assert error.what == "GET system-prices/2024-01-15"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_values_refused(token: str) -> None:
    text = (
        '{"data": [{"settlementDate": "2024-01-15", "settlementPeriod": 25, '
        '"startTime": "2024-01-15T12:00:00Z", "systemSellPrice": TOKEN, '
        '"systemBuyPrice": 75.0, "netImbalanceVolume": 1.0}]}'.replace("TOKEN", token)
    )
    fake = FakeElexon()
    fake.reply(DAY, content=text.encode(), headers={"content-type": "application/json"})
    _, outcomes = run_polls(fake, [NOW])
    error = outcomes[0]
    assert isinstance(error, MarketMalformed)
    assert "data[0].systemSellPrice" in str(error) and "finite" in str(error)


@pytest.mark.parametrize(
    ("day", "number", "valid"),
    [
        (date(2024, 10, 27), 50, True),
        (date(2024, 10, 27), 51, False),
        (date(2024, 3, 31), 46, True),
        (date(2024, 3, 31), 47, False),
    ],
)
def test_period_range_on_clock_change_days(day: date, number: int, valid: bool) -> None:
    fake = FakeElexon()
    if valid:
        fake.data(day, [row(number, day=day)])
    else:
        fake.data(day, [{**row(1, day=day), "settlementPeriod": number}])
    now = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    _, outcomes = run_polls(fake, [now])
    if valid:
        assert {p.period for p in points_of(outcomes[0])} == {SettlementPeriod(day, number)}
    else:
        error = outcomes[0]
        assert isinstance(error, MarketMalformed)
        assert "data[0].settlementPeriod" in str(error) and str(number) in str(error)


def test_malformed_reply_changes_nothing() -> None:
    fake = FakeElexon()
    fake.data(DAY, [row(25, ssp=60.0, niv=5.0)])
    # A newer valid row followed by a broken one: nothing from the reply is used.
    fake.data(DAY, [row(26, ssp=99.0), row(27, ssp="n/a")])
    times = [NOW, NOW + timedelta(minutes=5)]
    client, outcomes = run_polls(fake, times)
    assert isinstance(outcomes[1], MarketMalformed)
    price, volume = client.imbalance_price(times[1]), client.imbalance_volume(times[1])
    assert price is not None and price.period == SettlementPeriod(DAY, 25)
    assert price.value == pytest.approx(6.0)
    assert volume is not None and volume.value == 5.0
    assert client.last_success_at == NOW


def test_a_failure_on_yesterday_loses_nothing_for_later() -> None:
    # Early in the day yesterday's date fails: nothing from the poll is recorded, so the
    # next poll records today's values (not silently marked as already recorded).
    yesterday = date(2024, 1, 14)
    fake = FakeElexon()
    fake.data(yesterday, [row(48, day=yesterday)])
    fake.reply(DAY, status_code=503)
    fake.data(yesterday, [row(48, day=yesterday)])
    fake.data(DAY, [row(1)])
    t0 = datetime(2024, 1, 15, 0, 40, tzinfo=UTC)
    client, outcomes = run_polls(fake, [t0, t0 + timedelta(minutes=5)])
    assert isinstance(outcomes[0], MarketUnavailable)
    assert {(p.period.day, p.period.number) for p in points_of(outcomes[1])} == {
        (yesterday, 48),
        (DAY, 1),
    }
    assert fake.dates == ["2024-01-14", "2024-01-15", "2024-01-14", "2024-01-15"]
    price = client.imbalance_price(t0)
    assert price is not None and price.period == SettlementPeriod(DAY, 1)
