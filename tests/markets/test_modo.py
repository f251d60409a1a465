"""ModoClient against a fake Modo (httpx.MockTransport), replies shaped as docs/domain.md."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from reconciler.config.model import ModoSettings
from reconciler.control.periods import SettlementPeriod
from reconciler.markets.errors import (
    MarketError,
    MarketMalformed,
    MarketRejected,
    MarketUnavailable,
)
from reconciler.markets.modo import ModoClient
from reconciler.markets.points import MarketPoint

BASE = "https://modo.test/pub/v1/gb/modo/markets"
DAY = date(2024, 1, 15)  # 48 periods, London on UTC
NOW = datetime(2024, 1, 15, 12, 40, tzinfo=UTC)  # SP26


def sp(number: int, day: date = DAY) -> SettlementPeriod:
    return SettlementPeriod(day, number)


def price_row(number: Any, price: Any, day: date = DAY) -> dict[str, Any]:
    return {"date": day.isoformat(), "settlement_period": number, "system_price": price}


def niv_row(number: Any, niv: Any, day: date = DAY) -> dict[str, Any]:
    return {"date": day.isoformat(), "settlement_period": number, "niv": niv}


class FakeModo:
    """Serves queued replies per endpoint and records every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.replies: dict[str, list[Callable[[httpx.Request], httpx.Response]]] = {
            "system-price-live": [],
            "niv-live": [],
        }

    def reply(
        self, endpoint: str, body: Any = None, *, status_code: int = 200, **kwargs: Any
    ) -> None:
        if body is not None:
            kwargs["json"] = body
        self.replies[endpoint].append(
            lambda request: httpx.Response(status_code, request=request, **kwargs)
        )

    def fail(self, endpoint: str, exc: Exception) -> None:
        def raise_(request: httpx.Request) -> httpx.Response:
            raise exc

        self.replies[endpoint].append(raise_)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        endpoint = request.url.path.rsplit("/", 1)[-1]
        queue = self.replies[endpoint]
        assert queue, f"unexpected call to {endpoint}"
        return queue.pop(0)(request)

    @property
    def paths(self) -> list[str]:
        return [r.url.path.rsplit("/", 1)[-1] for r in self.requests]


def run_polls(
    fake: FakeModo, times: list[datetime], *, api_key: str | None = None
) -> tuple[ModoClient, list[list[MarketPoint] | MarketError]]:
    """Poll once per instant; each outcome is the points or the MarketError raised."""

    async def go() -> tuple[ModoClient, list[list[MarketPoint] | MarketError]]:
        transport = httpx.MockTransport(fake.handle)
        async with httpx.AsyncClient(transport=transport) as http:
            client = ModoClient(ModoSettings(base_url=BASE), client=http, api_key=api_key)
            outcomes: list[list[MarketPoint] | MarketError] = []
            for at in times:
                try:
                    outcomes.append(await client.poll(at))
                except MarketError as exc:
                    outcomes.append(exc)
            return client, outcomes

    return asyncio.run(go())


def points_of(outcome: list[MarketPoint] | MarketError) -> list[MarketPoint]:
    assert isinstance(outcome, list), outcome
    return outcome


def minutes(n: int) -> list[datetime]:
    return [NOW + timedelta(minutes=i) for i in range(n)]


# --------------------------------------------------------------------------- requests


def test_polls_alternate_endpoints_price_first_without_token() -> None:
    fake = FakeModo()
    for _ in range(2):
        fake.reply("system-price-live", {"results": [price_row(25, 85.0)]})
        fake.reply("niv-live", {"results": [niv_row(25, 120.0)]})
    client, outcomes = run_polls(fake, minutes(4))
    assert fake.paths == ["system-price-live", "niv-live", "system-price-live", "niv-live"]
    assert all(str(r.url).startswith(BASE + "/") for r in fake.requests)
    assert all("x-token" not in r.headers for r in fake.requests)
    assert all(isinstance(o, list) for o in outcomes)
    assert client.source == "modo"
    assert client.poll_s == 60.0


def test_token_header_sent_when_key_set() -> None:
    fake = FakeModo()
    fake.reply("system-price-live", {"results": [price_row(25, 85.0)]})
    fake.reply("niv-live", {"results": [niv_row(25, 120.0)]})
    run_polls(fake, minutes(2), api_key="secret-key")
    assert [r.headers.get("x-token") for r in fake.requests] == ["secret-key", "secret-key"]


def test_failed_call_still_passes_the_turn() -> None:
    fake = FakeModo()
    fake.reply("system-price-live", status_code=500)
    fake.reply("niv-live", {"results": [niv_row(25, -40.0)]})
    client, outcomes = run_polls(fake, minutes(2))
    assert fake.paths == ["system-price-live", "niv-live"]
    assert isinstance(outcomes[0], MarketUnavailable)
    assert client.imbalance_volume(NOW) is not None


# --------------------------------------------------------------------------- values


def test_price_converted_to_p_per_kwh_and_niv_kept_in_mwh() -> None:
    fake = FakeModo()
    fake.reply("system-price-live", {"results": [price_row(26, 85.0)]})
    fake.reply("niv-live", {"results": [niv_row(26, -212.5)]})
    client, outcomes = run_polls(fake, minutes(2))
    (point,) = points_of(outcomes[0])
    assert (point.period, point.type, point.source, point.fetched_at) == (
        sp(26),
        "imbalance_price",
        "modo",
        NOW,
    )
    assert point.value == pytest.approx(8.5)
    assert outcomes[1] == [MarketPoint(sp(26), "niv", -212.5, "modo", NOW + timedelta(minutes=1))]
    price = client.imbalance_price(NOW)
    volume = client.imbalance_volume(NOW)
    assert price is not None and price.period == sp(26)
    assert price.value == pytest.approx(8.5)
    assert volume is not None and (volume.period, volume.value) == (sp(26), -212.5)
    assert client.last_success_at == NOW + timedelta(minutes=1)


def test_latest_period_chosen_from_unordered_results() -> None:
    fake = FakeModo()
    rows = [price_row(24, 60.0), price_row(26, 95.0), price_row(25, 70.0)]
    fake.reply("system-price-live", {"results": rows})
    client, outcomes = run_polls(fake, [NOW])
    price = client.imbalance_price(NOW)
    assert price is not None and price.period == sp(26)
    assert price.value == pytest.approx(9.5)
    points = outcomes[0]
    assert isinstance(points, list)
    assert [(p.period.number, round(p.value, 6)) for p in points] == [
        (24, 6.0),
        (25, 7.0),
        (26, 9.5),
    ]


def test_latest_period_across_midnight() -> None:
    fake = FakeModo()
    rows = [price_row(1, 50.0, date(2024, 1, 16)), price_row(48, 90.0)]
    fake.reply("system-price-live", {"results": rows})
    at = datetime(2024, 1, 16, 0, 5, tzinfo=UTC)
    client, _ = run_polls(fake, [at])
    price = client.imbalance_price(at)
    assert price is not None and price.period == SettlementPeriod(date(2024, 1, 16), 1)


def test_a_lagging_reply_does_not_move_the_feed_back() -> None:
    fake = FakeModo()
    fake.reply("system-price-live", {"results": [price_row(26, 95.0)]})
    fake.reply("niv-live", {"results": []})
    fake.reply("system-price-live", {"results": [price_row(25, 70.0)]})
    client, outcomes = run_polls(fake, minutes(3))
    price = client.imbalance_price(NOW)
    assert price is not None and price.period == sp(26)
    assert outcomes[1] == []
    # The older period is still recorded: it is a value Modo published.
    assert [p.period for p in points_of(outcomes[2])] == [sp(25)]


def test_a_newer_value_for_the_same_period_replaces_the_cache() -> None:
    fake = FakeModo()
    fake.reply("system-price-live", {"results": [price_row(26, 95.0)]})
    fake.reply("niv-live", {"results": []})
    fake.reply("system-price-live", {"results": [price_row(26, 105.0)]})
    client, _ = run_polls(fake, minutes(3))
    price = client.imbalance_price(NOW)
    assert price is not None and price.value == pytest.approx(10.5)


def test_stale_values_are_not_served() -> None:
    fake = FakeModo()
    fake.reply("system-price-live", {"results": [price_row(26, 85.0)]})
    fake.reply("niv-live", {"results": [niv_row(26, 100.0)]})
    client, _ = run_polls(fake, minutes(2))
    sp26 = sp(26)
    # Its own period and the next one: served.
    for at in (sp26.start, sp26.end, sp26.end + timedelta(minutes=29, seconds=59)):
        assert client.imbalance_price(at) is not None
        assert client.imbalance_volume(at) is not None
    # Two periods on: stale.
    for at in (sp26.end + timedelta(minutes=30), sp26.end + timedelta(hours=1)):
        assert client.imbalance_price(at) is None
        assert client.imbalance_volume(at) is None


def test_nothing_served_before_the_first_poll() -> None:
    client, _ = run_polls(FakeModo(), [])
    assert client.imbalance_price(NOW) is None
    assert client.imbalance_volume(NOW) is None
    assert client.last_success_at is None


def test_unchanged_values_are_not_recorded_again() -> None:
    fake = FakeModo()
    fake.reply("system-price-live", {"results": [price_row(25, 70.0), price_row(26, 85.0)]})
    fake.reply("niv-live", {"results": [niv_row(26, 100.0)]})
    fake.reply("system-price-live", {"results": [price_row(25, 70.0), price_row(26, 85.0)]})
    fake.reply("niv-live", {"results": [niv_row(26, 100.0)]})
    fake.reply("system-price-live", {"results": [price_row(25, 70.0), price_row(26, 90.0)]})
    _, outcomes = run_polls(fake, minutes(5))
    assert [len(points_of(o)) for o in outcomes[:2]] == [2, 1]
    assert outcomes[2] == []
    assert outcomes[3] == []
    changed = outcomes[4]
    assert isinstance(changed, list) and len(changed) == 1
    assert changed[0].period == sp(26) and changed[0].value == pytest.approx(9.0)


def test_clock_change_days() -> None:
    autumn, spring = date(2024, 10, 27), date(2024, 3, 31)
    fake = FakeModo()
    fake.reply("system-price-live", {"results": [price_row(50, 85.0, autumn)]})
    fake.reply("niv-live", {"results": [niv_row(46, 10.0, spring)]})
    fake.reply("system-price-live", {"results": [price_row(47, 85.0, spring)]})
    _, outcomes = run_polls(fake, minutes(3))
    assert [p.period for p in points_of(outcomes[0])] == [SettlementPeriod(autumn, 50)]
    assert [p.period for p in points_of(outcomes[1])] == [SettlementPeriod(spring, 46)]
    error = outcomes[2]
    assert isinstance(error, MarketMalformed)
    assert "results[0].settlement_period" in str(error) and "47" in str(error)


# --------------------------------------------------------------------------- errors


def test_rate_limit_gives_retry_after() -> None:
    fake = FakeModo()
    fake.reply("system-price-live", status_code=429, headers={"Retry-After": "90"})
    _, outcomes = run_polls(fake, [NOW])
    error = outcomes[0]
    assert isinstance(error, MarketUnavailable)
    assert error.retry_after_s == 90.0
    assert error.retry_later
    assert error.source == "modo" and "system-price-live" in error.what


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, MarketUnavailable),
        (503, MarketUnavailable),
        (401, MarketRejected),
        (403, MarketRejected),
    ],
)
def test_http_errors(status: int, kind: type[MarketError]) -> None:
    fake = FakeModo()
    fake.reply("system-price-live", {"results": []})
    fake.reply("niv-live", status_code=status, text="no")
    _, outcomes = run_polls(fake, minutes(2))
    error = outcomes[1]
    assert type(error) is kind
    assert "niv-live" in str(error)


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (httpx.ConnectError("connection refused"), "cannot reach"),
        (httpx.ReadTimeout("slow"), "timed out"),
    ],
)
def test_network_errors(exc: Exception, words: str) -> None:
    fake = FakeModo()
    fake.fail("system-price-live", exc)
    _, outcomes = run_polls(fake, [NOW])
    error = outcomes[0]
    assert isinstance(error, MarketUnavailable)
    assert words in str(error) and "system-price-live" in str(error)


def test_body_not_json() -> None:
    fake = FakeModo()
    fake.reply("system-price-live", content=b"<html>Bad gateway</html>")
    _, outcomes = run_polls(fake, [NOW])
    assert isinstance(outcomes[0], MarketMalformed)
    assert "not JSON" in str(outcomes[0]) and "system-price-live" in str(outcomes[0])


def _raw(text: str) -> dict[str, Any]:
    return {"content": text.encode(), "headers": {"content-type": "application/json"}}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([price_row(26, 85.0)], "results"),
        ({"data": [price_row(26, 85.0)]}, "results"),
        ({"results": {"0": price_row(26, 85.0)}}, '"results" should be a list'),
        ({"results": [price_row(26, 85.0), "SP27"]}, "results[1] should be an object"),
        ({"results": [{"date": "2024-01-15", "system_price": 1.0}]}, "settlement_period"),
        ({"results": [{"settlement_period": 26, "system_price": 1.0}]}, '"date" is missing'),
        ({"results": [{"date": "2024-01-15", "settlement_period": 26}]}, "system_price"),
        ({"results": [price_row(26, True)]}, "results[0].system_price"),
        ({"results": [price_row(26, "85.0")]}, "results[0].system_price"),
        ({"results": [price_row(26, None)]}, "results[0].system_price"),
        ({"results": [price_row(25, 1.0), price_row(0, 85.0)]}, "results[1].settlement_period"),
        ({"results": [price_row(51, 85.0)]}, "results[0].settlement_period"),
        ({"results": [price_row(49, 85.0)]}, "outside 1..48"),
        ({"results": [price_row(True, 85.0)]}, "results[0].settlement_period"),
        ({"results": [price_row("26", 85.0)]}, "results[0].settlement_period"),
        ({"results": [price_row(26.0, 85.0)]}, "results[0].settlement_period"),
        ({"results": [{**price_row(26, 85.0), "date": "15/01/2024"}]}, "results[0].date"),
        ({"results": [{**price_row(26, 85.0), "date": "2024-02-30"}]}, "results[0].date"),
        ({"results": [{**price_row(26, 85.0), "date": 20240115}]}, "results[0].date"),
        (
            {"results": [price_row(26, 85.0), price_row(26, 86.0)]},
            "results[1]: 2024-01-15 SP26 appears twice",
        ),
    ],
)
def test_malformed_replies(body: Any, words: str) -> None:
    fake = FakeModo()
    fake.reply("system-price-live", body)
    _, outcomes = run_polls(fake, [NOW])
    error = outcomes[0]
    assert isinstance(error, MarketMalformed), error
    assert words in str(error)
    assert error.what == "GET system-price-live"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_values_refused(token: str) -> None:
    fake = FakeModo()
    text = '{"results": [{"date": "2024-01-15", "settlement_period": 26, "niv": TOKEN}]}'.replace(
        "TOKEN", token
    )
    fake.reply("system-price-live", {"results": []})
    fake.reply("niv-live", **_raw(text))
    _, outcomes = run_polls(fake, minutes(2))
    error = outcomes[1]
    assert isinstance(error, MarketMalformed)
    assert "results[0].niv" in str(error) and "finite" in str(error)


def _good_then_broken() -> FakeModo:
    fake = FakeModo()
    fake.reply("system-price-live", {"results": [price_row(26, 85.0)]})
    fake.reply("niv-live", {"results": [niv_row(26, 100.0)]})
    # A valid newer period followed by a broken row: none of it may be used.
    fake.reply("system-price-live", {"results": [price_row(27, 200.0), price_row(28, "x")]})
    fake.reply("niv-live", {"results": [niv_row(27, -5.0), {"date": "2024-01-15"}]})
    fake.reply("system-price-live", {"results": [price_row(26, 85.0), price_row(27, 200.0)]})
    return fake


def test_malformed_reply_changes_nothing_cached() -> None:
    client, outcomes = run_polls(_good_then_broken(), minutes(4))
    assert isinstance(outcomes[2], MarketMalformed)
    assert isinstance(outcomes[3], MarketMalformed)
    at = NOW + timedelta(minutes=3)
    price, volume = client.imbalance_price(at), client.imbalance_volume(at)
    assert price is not None and price.period == sp(26)
    assert price.value == pytest.approx(8.5)
    assert volume is not None and (volume.period, volume.value) == (sp(26), 100.0)
    assert client.last_success_at == NOW + timedelta(minutes=1)


def test_malformed_reply_marks_nothing_as_recorded() -> None:
    # The valid row of the broken reply was not recorded, so it is new once a good reply
    # brings it; the unchanged SP26 is not.
    client, outcomes = run_polls(_good_then_broken(), minutes(5))
    last = outcomes[4]
    assert isinstance(last, list) and [p.period for p in last] == [sp(27)]
    price = client.imbalance_price(NOW + timedelta(minutes=4))
    assert price is not None and price.period == sp(27)


def test_last_success_not_moved_by_failure() -> None:
    fake = FakeModo()
    fake.reply("system-price-live", {"results": [price_row(26, 85.0)]})
    fake.reply("niv-live", status_code=500)
    client, _ = run_polls(fake, minutes(2))
    assert client.last_success_at == NOW
