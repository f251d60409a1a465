"""The Axle Energy client against a fake Axle API (httpx.MockTransport only): login and
token handling, schedule parsing and caching, staleness, readings and callbacks."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs

import httpx
import pytest

from reconciler.control.signals import signals_at
from reconciler.control.types import AxleStep
from reconciler.markets.axle import AxleClient, AxleReading, delivery_readings, parse_schedule
from reconciler.markets.errors import MarketMalformed, MarketRejected, MarketUnavailable
from tests.markets.fakes import (
    BASE,
    BST,
    PASSWORD,
    T0,
    USER,
    FakeAxle,
    FakeClock,
    settings,
    step_json,
)

T = TypeVar("T")


def run_with(
    fake: FakeAxle,
    body: Callable[[AxleClient], Coroutine[Any, Any, T]],
    *,
    clock: FakeClock | None = None,
    poll_s: float = 60.0,
    asset_id: str = "asset-1",
) -> T:
    async def main() -> T:
        async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)) as http:
            client = AxleClient(
                settings(poll_s, asset_id),
                client=http,
                username=USER,
                password=PASSWORD,
                clock=clock or FakeClock(),
            )
            return await body(client)

    return asyncio.run(main())


def make_client(fake: FakeAxle, clock: FakeClock | None = None) -> AxleClient:
    """A client for tests that drive several asyncio.run calls (MockTransport is loop-free)."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
    return AxleClient(
        settings(), client=http, username=USER, password=PASSWORD, clock=clock or FakeClock()
    )


# --------------------------------------------------------------------------- login and token


def test_login_is_a_form_post_and_the_token_is_sent_as_bearer() -> None:
    fake = FakeAxle()

    async def body(client: AxleClient) -> list[Any]:
        return list(await client.poll(T0))

    assert run_with(fake, body) == []
    login, get = fake.requests
    assert login.method == "POST" and login.url == f"{BASE}/auth/token-form"
    assert login.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(login.content.decode()) == {"username": [USER], "password": [PASSWORD]}
    assert "authorization" not in login.headers
    assert get.url == f"{BASE}/entities/asset/asset-1/battery-schedule"
    assert get.headers["authorization"] == "Bearer tok-1"


def test_token_is_reused_while_fresh_and_refreshed_once_older_than_max_age() -> None:
    fake = FakeAxle()
    clock = FakeClock()

    async def body(client: AxleClient) -> list[str]:
        seen = []
        await client.poll(T0)
        clock.t += 1799.0  # younger than the default 1800 s: reused
        await client.poll(T0 + timedelta(seconds=60))
        clock.t += 2.0  # now 1801 s old: a new login before the call
        await client.poll(T0 + timedelta(seconds=120))
        for r in fake.schedule_gets:
            seen.append(r.headers["authorization"])
        return seen

    assert run_with(fake, body, clock=clock) == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    assert fake.logins == 2


def test_token_max_age_is_configurable() -> None:
    fake = FakeAxle()
    clock = FakeClock()

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)) as http:
            client = AxleClient(
                settings(),
                client=http,
                username=USER,
                password=PASSWORD,
                token_max_age_s=20.0,
                clock=clock,
            )
            await client.poll(T0)
            clock.t += 21.0
            await client.poll(T0)

    asyncio.run(main())
    assert fake.logins == 2


def test_a_401_on_the_schedule_logs_in_again_once_and_retries() -> None:
    fake = FakeAxle()

    async def body(client: AxleClient) -> Any:
        await client.poll(T0)
        fake.revoke()  # e.g. the server restarted: the cached token is dead
        fake.schedule = {
            "schedule_steps": [step_json("2025-04-29T19:00:00Z", "2025-04-29T23:00:00Z")]
        }
        await client.poll(T0 + timedelta(seconds=60))
        return client.axle_steps(T0)

    steps = run_with(fake, body)
    assert fake.logins == 2
    assert [r.headers["authorization"] for r in fake.schedule_gets] == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
    ]
    assert steps == [
        AxleStep(
            datetime(2025, 4, 29, 19, tzinfo=UTC),
            datetime(2025, 4, 29, 23, tzinfo=UTC),
            "charge_max",
        )
    ]


def test_a_second_401_after_a_fresh_login_is_rejected() -> None:
    fake = FakeAxle()
    fake.schedule_replies = [
        httpx.Response(401, json={"detail": "Not authorised for this asset"}),
        httpx.Response(401, json={"detail": "Not authorised for this asset"}),
    ]

    async def body(client: AxleClient) -> None:
        await client.poll(T0)

    with pytest.raises(MarketRejected) as caught:
        run_with(fake, body)
    assert fake.logins == 2  # the first one, and exactly one retry
    assert len(fake.schedule_gets) == 2
    assert "401" in str(caught.value) and "asset-1" in str(caught.value)


def test_a_403_on_the_schedule_is_rejected_without_a_new_login() -> None:
    fake = FakeAxle()
    fake.schedule_replies = [httpx.Response(403, json={"detail": "Forbidden"})]

    async def body(client: AxleClient) -> None:
        await client.poll(T0)

    with pytest.raises(MarketRejected):
        run_with(fake, body)
    assert fake.logins == 1


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {getattr(record, 'fields', '')}")


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(401, json={"detail": "Incorrect username or password"}),
        httpx.Response(403, json={"detail": "Account disabled"}),
        # A validation error may quote what was sent: it must not reach the message.
        httpx.Response(
            422,
            json={"detail": [{"loc": ["body", "password"], "input": PASSWORD, "msg": "bad"}]},
        ),
    ],
)
def test_a_refused_login_is_rejected_naming_the_variables_never_the_password(
    reply: httpx.Response,
) -> None:
    fake = FakeAxle()
    fake.login_replies = [reply]
    records = _Records()
    logger = logging.getLogger("flux.markets.axle")
    logger.addHandler(records)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)

    async def body(client: AxleClient) -> None:
        await client.poll(T0)

    try:
        with pytest.raises(MarketRejected) as caught:
            run_with(fake, body)
    finally:
        logger.removeHandler(records)
        logger.setLevel(old_level)
    message = str(caught.value)
    assert PASSWORD not in message
    assert PASSWORD not in repr(caught.value.args)
    assert "AXLE_USERNAME" in message and "AXLE_PASSWORD" in message
    assert f"HTTP {reply.status_code}" in message
    assert not any(PASSWORD in line for line in records.lines)
    assert fake.schedule_gets == []  # no data call without a token


def test_neither_password_nor_token_is_logged_or_shown_on_success() -> None:
    fake = FakeAxle()
    records = _Records()
    logger = logging.getLogger("flux.markets.axle")
    logger.addHandler(records)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)

    async def body(client: AxleClient) -> str:
        await client.poll(T0)
        return repr(client)

    try:
        shown = run_with(fake, body)
    finally:
        logger.removeHandler(records)
        logger.setLevel(old_level)
    assert records.lines, "the login and the new schedule should have been logged"
    assert "tok-1" not in shown and PASSWORD not in shown
    assert not any(PASSWORD in line or "tok-1" in line for line in records.lines)


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(200, json={"token": "abc"}),
        httpx.Response(200, json={"access_token": 12345}),
        httpx.Response(200, json=["tok"]),
    ],
)
def test_a_login_reply_without_an_access_token_is_malformed(reply: httpx.Response) -> None:
    fake = FakeAxle()
    fake.login_replies = [reply]

    async def body(client: AxleClient) -> None:
        await client.poll(T0)

    with pytest.raises(MarketMalformed) as caught:
        run_with(fake, body)
    assert "token-form" in str(caught.value)
    assert fake.schedule_gets == []


@pytest.mark.parametrize(
    ("reply", "retry_after"),
    [
        (httpx.Response(429, headers={"Retry-After": "30"}, json={"detail": "slow down"}), 30.0),
        (httpx.Response(500, text="Internal Server Error"), None),
        (httpx.Response(503, headers={"Retry-After": "120"}, text="busy"), 120.0),
    ],
)
def test_429_and_5xx_are_unavailable_on_the_schedule_and_on_login(
    reply: httpx.Response, retry_after: float | None
) -> None:
    async def body(client: AxleClient) -> None:
        await client.poll(T0)

    fake = FakeAxle()
    fake.schedule_replies = [reply]
    with pytest.raises(MarketUnavailable) as caught:
        run_with(fake, body)
    assert caught.value.retry_after_s == retry_after
    assert caught.value.retry_later

    fake = FakeAxle()
    fake.login_replies = [reply]
    with pytest.raises(MarketUnavailable) as caught:
        run_with(fake, body)
    assert caught.value.retry_after_s == retry_after
    assert PASSWORD not in str(caught.value)


def test_a_network_failure_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            client = AxleClient(settings(), client=http, username=USER, password=PASSWORD)
            await client.poll(T0)

    with pytest.raises(MarketUnavailable):
        asyncio.run(main())


# --------------------------------------------------------------------------- schedule


def test_schedule_is_parsed_to_utc_and_sorted_by_start() -> None:
    fake = FakeAxle()

    async def body(client: AxleClient) -> Any:
        points = await client.poll(T0)
        assert points == []
        return client.axle_steps(T0)

    steps = run_with(fake, body)
    assert steps == [
        AxleStep(
            datetime(2025, 4, 29, 19, 0, tzinfo=UTC),
            datetime(2025, 4, 29, 19, 5, tzinfo=UTC),
            "charge_max",
            False,
        ),
        AxleStep(
            datetime(2025, 4, 29, 19, 5, tzinfo=UTC),
            datetime(2025, 4, 29, 19, 10, tzinfo=UTC),
            "avoid_import",
            True,
        ),
        AxleStep(
            datetime(2025, 4, 29, 19, 30, tzinfo=UTC),
            datetime(2025, 4, 29, 20, 0, tzinfo=UTC),
            "discharge_max",
            False,
        ),
    ]
    assert all(s.start.utcoffset() == timedelta(0) for s in steps)


def test_the_client_is_an_axle_feed_for_the_control() -> None:
    fake = FakeAxle()

    async def body(client: AxleClient) -> Any:
        await client.poll(T0)
        return signals_at(datetime(2025, 4, 29, 19, 7, tzinfo=UTC), axle=client).axle_steps

    steps = run_with(fake, body)
    assert [s.action for s in steps] == ["avoid_import", "discharge_max"]


def _with_bad_step(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    good = step_json("2025-04-29T20:00:00+01:00", "2025-04-29T20:30:00+01:00")
    bad = step_json("2025-04-29T21:00:00+01:00", "2025-04-29T21:30:00+01:00")
    change(bad)
    return {"schedule_steps": [good, bad]}


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(step: dict[str, Any]) -> None:
        step[field] = value

    return change


def _drop(field: str) -> Callable[[dict[str, Any]], None]:
    def change(step: dict[str, Any]) -> None:
        del step[field]

    return change


MALFORMED_STEPS = {
    "naive start": (_set("start_timestamp", "2025-04-29T21:00:00"), "start_timestamp"),
    "naive end": (_set("end_timestamp", "2025-04-29T21:30:00"), "end_timestamp"),
    "date only": (_set("start_timestamp", "2025-04-29"), "start_timestamp"),
    "not a timestamp": (_set("start_timestamp", "tomorrow at nine"), "start_timestamp"),
    "epoch number": (_set("start_timestamp", 1745956800), "start_timestamp"),
    "end equals start": (_set("end_timestamp", "2025-04-29T21:00:00+01:00"), "end_timestamp"),
    "end before start": (_set("end_timestamp", "2025-04-29T19:00:00Z"), "end_timestamp"),
    "unknown action": (_set("action", "charge_some"), "action"),
    "action not a string": (_set("action", 1), "action"),
    "allow_deviation as text": (_set("allow_deviation", "yes"), "allow_deviation"),
    "allow_deviation as 1": (_set("allow_deviation", 1), "allow_deviation"),
    "allow_deviation null": (_set("allow_deviation", None), "allow_deviation"),
    "missing start": (_drop("start_timestamp"), "start_timestamp"),
    "missing end": (_drop("end_timestamp"), "end_timestamp"),
    "missing action": (_drop("action"), "action"),
    "missing allow_deviation": (_drop("allow_deviation"), "allow_deviation"),
    "unknown field": (_set("level_kw", 250), "level_kw"),
}


@pytest.mark.parametrize("case", list(MALFORMED_STEPS), ids=list(MALFORMED_STEPS))
def test_each_malformed_step_is_named_by_index_and_field(case: str) -> None:
    change, field = MALFORMED_STEPS[case]
    with pytest.raises(MarketMalformed) as caught:
        parse_schedule(_with_bad_step(change))
    assert "schedule_steps[1]" in caught.value.problem
    assert field in caught.value.problem
    assert caught.value.source == "axle"


@pytest.mark.parametrize(
    "body",
    [
        {"schedule_steps": {"0": step_json("2025-04-29T20:00:00Z", "2025-04-29T21:00:00Z")}},
        {"schedule_steps": None},
        {"steps": []},
        [step_json("2025-04-29T20:00:00Z", "2025-04-29T21:00:00Z")],
        {"schedule_steps": ["charge_max"]},
    ],
    ids=["steps an object", "steps null", "no schedule_steps", "bare list", "step a string"],
)
def test_a_reply_of_the_wrong_shape_is_malformed(body: Any) -> None:
    with pytest.raises(MarketMalformed) as caught:
        parse_schedule(body)
    assert "schedule_steps" in caught.value.problem


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(200, json=_with_bad_step(_set("allow_deviation", "yes"))),
        httpx.Response(200, json={"schedule_steps": "none"}),
        httpx.Response(200, text="<html>Bad gateway</html>"),
    ],
    ids=["bad step", "wrong shape", "not json"],
)
def test_a_malformed_reply_keeps_the_previous_schedule(reply: httpx.Response) -> None:
    fake = FakeAxle()
    later = T0 + timedelta(seconds=60)

    async def body(client: AxleClient) -> tuple[Any, Any, Any]:
        await client.poll(T0)
        before = client.axle_steps(T0)
        fake.schedule_replies = [reply]
        with pytest.raises(MarketMalformed):
            await client.poll(later)
        return before, client.axle_steps(T0), client.last_success_at

    before, after, last_success = run_with(fake, body)
    assert len(before) == 3
    assert after == before
    assert last_success == T0  # the malformed poll is not a success


def test_a_valid_empty_schedule_clears_the_steps() -> None:
    fake = FakeAxle()

    async def body(client: AxleClient) -> tuple[int, int]:
        await client.poll(T0)
        n_before = len(client.axle_steps(T0))
        fake.schedule = {"schedule_steps": []}
        await client.poll(T0 + timedelta(seconds=60))
        return n_before, len(client.axle_steps(T0))

    assert run_with(fake, body) == (3, 0)


def test_axle_steps_leaves_out_steps_that_have_ended() -> None:
    fake = FakeAxle()

    async def body(client: AxleClient) -> dict[str, list[str]]:
        await client.poll(T0)
        return {
            label: [s.action for s in client.axle_steps(at)]
            for label, at in {
                "before": datetime(2025, 4, 29, 18, 59, tzinfo=UTC),
                "inside first": datetime(2025, 4, 29, 19, 2, tzinfo=UTC),
                "at first end": datetime(2025, 4, 29, 19, 5, tzinfo=UTC),
                "between": datetime(2025, 4, 29, 19, 15, tzinfo=UTC),
                "at last end": datetime(2025, 4, 29, 20, 0, tzinfo=UTC),
            }.items()
        }

    assert run_with(fake, body) == {
        "before": ["charge_max", "avoid_import", "discharge_max"],
        "inside first": ["charge_max", "avoid_import", "discharge_max"],
        "at first end": ["avoid_import", "discharge_max"],
        "between": ["discharge_max"],
        "at last end": [],
    }


def test_no_steps_and_stale_before_the_first_successful_poll() -> None:
    fake = FakeAxle()
    fake.schedule_replies = [httpx.Response(500, text="oops")]

    async def body(client: AxleClient) -> tuple[Any, bool, Any]:
        with pytest.raises(MarketUnavailable):
            await client.poll(T0)
        return client.axle_steps(T0), client.is_stale(T0), client.last_success_at

    assert run_with(fake, body) == ([], True, None)


def test_a_stale_schedule_keeps_serving_the_steps_already_known() -> None:
    fake = FakeAxle()
    fake.schedule = {
        "schedule_steps": [
            step_json("2025-04-29T18:00:00Z", "2025-04-29T19:00:00Z", "discharge_max"),
            step_json("2025-04-29T19:00:00Z", "2025-04-29T19:30:00Z", "avoid_export"),
        ]
    }

    async def body(client: AxleClient) -> dict[str, Any]:
        await client.poll(T0)
        # Axle goes down; the next polls fail.
        fake.schedule_replies = [httpx.Response(503, text="down")] * 3
        seen: dict[str, Any] = {}
        for seconds in (299, 301, 1800):
            at = T0 + timedelta(seconds=seconds)
            with pytest.raises(MarketUnavailable):
                await client.poll(at)
            seen[f"{seconds}"] = (client.is_stale(at), [s.action for s in client.axle_steps(at)])
        late = datetime(2025, 4, 29, 19, 10, tzinfo=UTC)
        seen["late"] = (client.is_stale(late), [s.action for s in client.axle_steps(late)])
        seen["after all"] = client.axle_steps(datetime(2025, 4, 29, 19, 30, tzinfo=UTC))
        seen["last_success_at"] = client.last_success_at
        return seen

    seen = run_with(fake, body)
    # poll_s 60: stale after max(180, 300) = 300 s.
    assert seen["299"] == (False, ["discharge_max", "avoid_export"])
    assert seen["301"] == (True, ["discharge_max", "avoid_export"])
    assert seen["1800"] == (True, ["discharge_max", "avoid_export"])
    assert seen["late"] == (True, ["avoid_export"])
    assert seen["after all"] == []  # nothing invented beyond the last known step
    assert seen["last_success_at"] == T0


def test_staleness_threshold_follows_a_long_poll_interval() -> None:
    fake = FakeAxle()

    async def body(client: AxleClient) -> tuple[bool, bool]:
        await client.poll(T0)
        return (
            client.is_stale(T0 + timedelta(seconds=599)),
            client.is_stale(T0 + timedelta(seconds=601)),
        )

    # poll_s 200: stale after max(600, 300) = 600 s.
    assert run_with(fake, body, poll_s=200.0) == (False, True)


def test_a_successful_poll_after_an_outage_is_fresh_again() -> None:
    fake = FakeAxle()

    async def body(client: AxleClient) -> tuple[bool, bool, datetime | None]:
        await client.poll(T0)
        later = T0 + timedelta(hours=1)
        stale = client.is_stale(later)
        await client.poll(later)
        return stale, client.is_stale(later), client.last_success_at

    assert run_with(fake, body) == (True, False, T0 + timedelta(hours=1))


def test_source_and_poll_interval_come_from_the_settings() -> None:
    client = make_client(FakeAxle())
    assert client.source == "axle"
    assert client.poll_s == 60.0
    assert client.last_success_at is None


# --------------------------------------------------------------------------- readings


START = datetime(2025, 4, 29, 20, 0, tzinfo=BST)
END = datetime(2025, 4, 29, 20, 5, tzinfo=BST)


def test_delivery_readings_convert_flux_signs_to_axles() -> None:
    # Charging at 100 kW (Flux: -100) while importing 120 kW at the boundary.
    readings = delivery_readings(START, END, 120.0, -100.0, 812.5)
    assert {r.label: r.value for r in readings} == {
        "boundary_import_kw": 120.0,
        "battery_inverter_import_kw": 100.0,
        "battery_stored_energy_kwh": 812.5,
    }
    # Discharging 250 kW (Flux: +250) while exporting 90 kW.
    readings = delivery_readings(START, END, -90.0, 250.0, 400.0)
    assert {r.label: r.value for r in readings}["battery_inverter_import_kw"] == -250.0
    assert {r.label: r.value for r in readings}["boundary_import_kw"] == -90.0
    idle = delivery_readings(START, END, 10.0, 0.0, 400.0)
    inverter = next(r for r in idle if r.label == "battery_inverter_import_kw")
    assert math.copysign(1.0, inverter.value) == 1.0  # 0.0, not -0.0


def test_report_readings_posts_the_exact_json() -> None:
    fake = FakeAxle()

    async def body(client: AxleClient) -> None:
        await client.report_readings(delivery_readings(START, END, 120.0, -100.0, 812.5))

    run_with(fake, body)
    (post,) = fake.of("POST", "/api/data/readings")
    assert post.headers["authorization"] == "Bearer tok-1"
    assert post.headers["content-type"] == "application/json"
    window = {
        "asset_id": "asset-1",
        "start_timestamp": "2025-04-29T19:00:00+00:00",
        "end_timestamp": "2025-04-29T19:05:00+00:00",
    }
    assert json.loads(post.content) == {
        "readings": [
            {**window, "value": 120.0, "label": "boundary_import_kw"},
            {**window, "value": 100.0, "label": "battery_inverter_import_kw"},
            {**window, "value": 812.5, "label": "battery_stored_energy_kwh"},
        ]
    }


def test_report_readings_with_nothing_to_send_sends_nothing() -> None:
    fake = FakeAxle()

    async def body(client: AxleClient) -> None:
        await client.report_readings([])

    run_with(fake, body)
    assert fake.requests == []


@pytest.mark.parametrize(
    "reply", [httpx.Response(204), httpx.Response(200, text=""), httpx.Response(201, json=None)]
)
def test_report_readings_accepts_a_2xx_reply_without_json(reply: httpx.Response) -> None:
    fake = FakeAxle()
    fake.post_replies = [reply]

    async def body(client: AxleClient) -> None:
        await client.report_readings(delivery_readings(START, END, 1.0, 2.0, 3.0))

    run_with(fake, body)
    assert len(fake.of("POST", "/api/data/readings")) == 1


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (httpx.Response(429, headers={"Retry-After": "5"}, text="slow"), MarketUnavailable),
        (httpx.Response(500, text="oops"), MarketUnavailable),
        (httpx.Response(422, json={"detail": "bad label"}), MarketRejected),
        (httpx.Response(302, headers={"Location": "/login"}, text="moved"), MarketMalformed),
    ],
)
def test_report_readings_failures_are_typed(reply: httpx.Response, error: type[Exception]) -> None:
    fake = FakeAxle()
    fake.post_replies = [reply]

    async def body(client: AxleClient) -> None:
        await client.report_readings(delivery_readings(START, END, 1.0, 2.0, 3.0))

    with pytest.raises(error):
        run_with(fake, body)


def test_report_readings_retries_once_with_a_new_token_after_a_401() -> None:
    fake = FakeAxle()
    clock = FakeClock()
    client = make_client(fake, clock)
    asyncio.run(client.poll(T0))
    fake.revoke()
    asyncio.run(client.report_readings(delivery_readings(START, END, 1.0, 2.0, 3.0)))
    posts = fake.of("POST", "/api/data/readings")
    assert [p.headers["authorization"] for p in posts] == ["Bearer tok-1", "Bearer tok-2"]
    assert posts[0].content == posts[1].content


def test_readings_refuse_values_json_cannot_carry_and_naive_times() -> None:
    with pytest.raises(ValueError, match="finite"):
        AxleReading(START, END, math.nan, "boundary_import_kw")
    with pytest.raises(ValueError, match="finite"):
        AxleReading(START, END, math.inf, "battery_stored_energy_kwh")
    with pytest.raises(ValueError, match="timezone-aware"):
        AxleReading(datetime(2025, 4, 29, 19), END, 1.0, "boundary_import_kw")
    with pytest.raises(ValueError, match="end after"):
        AxleReading(END, START, 1.0, "boundary_import_kw")
    with pytest.raises(ValueError, match="label"):
        AxleReading(START, END, 1.0, "site_kw")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- callbacks


@pytest.mark.parametrize("status", ["RECEIVED", "ACCEPTED", "REJECTED", "FAILED", "EXECUTED"])
def test_callback_posts_timestamp_and_status_to_the_event_url(status: str) -> None:
    fake = FakeAxle()

    async def body(client: AxleClient) -> None:
        await client.callback("evt-42", status, datetime(2025, 4, 29, 20, 1, 30, tzinfo=BST))

    run_with(fake, body)
    (post,) = fake.requests[1:]
    assert post.method == "POST"
    assert post.url == f"{BASE}/entities/asset/asset-1/callback/evt-42"
    assert post.headers["authorization"] == "Bearer tok-1"
    assert json.loads(post.content) == {"timestamp": "2025-04-29T19:01:30+00:00", "status": status}


@pytest.mark.parametrize("status", ["DONE", "accepted", "", "EXECUTED "])
def test_callback_refuses_an_unknown_status_without_calling(status: str) -> None:
    fake = FakeAxle()

    async def body(client: AxleClient) -> None:
        await client.callback("evt-42", status, T0)

    with pytest.raises(ValueError, match="status"):
        run_with(fake, body)
    assert fake.requests == []


def test_callback_escapes_the_event_id() -> None:
    fake = FakeAxle()

    async def body(client: AxleClient) -> None:
        await client.callback("evt/../../x", "RECEIVED", T0)

    run_with(fake, body)
    post = fake.requests[-1]
    assert post.url.raw_path == b"/api/entities/asset/asset-1/callback/evt%2F..%2F..%2Fx"


def test_callback_failures_are_typed() -> None:
    fake = FakeAxle()
    fake.post_replies = [httpx.Response(503, headers={"Retry-After": "60"}, text="busy")]

    async def body(client: AxleClient) -> None:
        await client.callback("evt-42", "ACCEPTED", T0)

    with pytest.raises(MarketUnavailable) as caught:
        run_with(fake, body)
    assert caught.value.retry_after_s == 60.0
