"""LiveMarkets: the agent's market clients built from the site file, polled on their
intervals with backoff, recorded in a real outbox, and served as signals. The market APIs
are faked with httpx.MockTransport, shaped as docs/domain.md documents."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.clock import ManualClock
from reconciler.config.loader import check_site_text
from reconciler.config.model import Markets, Site
from reconciler.control.periods import period_at
from reconciler.markets.live import LiveMarkets
from reconciler.telemetry.outbox import Outbox
from tests.source.conftest import DEMO_TEXT

T0 = datetime(2026, 1, 15, 12, 20, tzinfo=UTC)  # SP25 of 2026-01-15 (12:00-12:30 UTC)
MODO = "https://modo.test/markets"
Handler = Callable[[httpx.Request], httpx.Response]


def modo_api(price_gbp_mwh: float = 85.0, niv_mwh: float = 120.0) -> tuple[Handler, list[str]]:
    """A Modo stand-in serving the current period (and the one before) of ``T0``."""
    calls: list[str] = []
    period = period_at(T0)

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path.rsplit("/", 1)[-1])
        field, value = (
            ("system_price", price_gbp_mwh)
            if request.url.path.endswith("system-price-live")
            else ("niv", niv_mwh)
        )
        results = [
            {"date": p.day.isoformat(), "settlement_period": p.number, field: v}
            for p, v in ((period.previous(), value - 1), (period, value))
        ]
        return httpx.Response(200, json={"results": results})

    return handle, calls


def site_with(markets: dict[str, Any]) -> Site:
    site, problems = check_site_text(DEMO_TEXT, "demo.yaml")
    assert site is not None, problems
    return site.model_copy(update={"markets": Markets.model_validate(markets)})


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox.sqlite")


def live(
    handler: Handler, outbox: Outbox, clock: ManualClock, environ: dict[str, str] | None = None
) -> LiveMarkets:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return LiveMarkets(clock=clock, sink=outbox, environ=environ or {}, http=http)


def market_rows(outbox: Outbox) -> list[dict[str, Any]]:
    rows = outbox.read_batch(1000)
    return [json.loads(payload) for _, kind, _, _, payload in rows.others if kind == "market"]


def test_modo_values_become_signals_and_market_rows(outbox: Outbox) -> None:
    handler, calls = modo_api(price_gbp_mwh=85.0, niv_mwh=120.0)
    clock = ManualClock(T0)
    markets = live(handler, outbox, clock)
    markets.configure(site_with({"modo": {"base_url": MODO, "poll_s": 60}}))

    asyncio.run(markets.poll_due())  # the price first
    signals = markets.signals_at(T0)
    assert signals.imbalance_price is not None
    assert signals.imbalance_price.period == period_at(T0)
    assert signals.imbalance_price.value == pytest.approx(8.5)  # £85/MWh = 8.5 p/kWh
    assert signals.imbalance_volume is None

    asyncio.run(markets.poll_due())  # not due yet: no call
    assert calls == ["system-price-live"]
    clock.advance(60)
    asyncio.run(markets.poll_due())  # then the NIV, a minute later
    assert calls == ["system-price-live", "niv-live"]
    volume = markets.signals_at(clock.now()).imbalance_volume
    assert volume is not None and volume.value == 120.0

    rows = market_rows(outbox)
    assert sorted((r["type"], r["settlement_period"], round(r["value"], 6)) for r in rows) == [
        ("imbalance_price", 24, 8.4),
        ("imbalance_price", 25, 8.5),
        ("niv", 24, 119.0),
        ("niv", 25, 120.0),
    ]
    assert {r["source"] for r in rows} == {"modo"}
    assert markets.states["modo"].ok and markets.states["modo"].recorded_total == 4


def test_a_failing_api_backs_off_and_recovers(outbox: Outbox) -> None:
    replies: list[httpx.Response] = [
        httpx.Response(500, text="upstream broke"),
        httpx.Response(500, text="upstream broke"),
        httpx.Response(429, headers={"Retry-After": "600"}, text="slow down"),
    ]
    good, _ = modo_api()

    def handler(request: httpx.Request) -> httpx.Response:
        return replies.pop(0) if replies else good(request)

    clock = ManualClock(T0)
    markets = live(handler, outbox, clock)
    markets.configure(site_with({"modo": {"base_url": MODO, "poll_s": 60}}))
    state = markets.states["modo"]

    waits = []
    for _ in range(3):
        asyncio.run(markets.poll_due())
        assert state.next_poll_at is not None
        waits.append((state.next_poll_at - clock.now()).total_seconds())
        clock.set(state.next_poll_at)
    # Doubling from the poll interval, and at least what the server asked for.
    assert waits == [60.0, 120.0, 600.0]
    assert state.consecutive_failures == 3 and not state.ok
    assert state.last_error is not None and "rate limited" in state.last_error
    assert markets.signals_at(clock.now()).imbalance_price is None  # nothing made up

    asyncio.run(markets.poll_due())  # the endpoints alternate on every attempt: NIV now
    assert state.ok and state.consecutive_failures == 0
    assert markets.signals_at(clock.now()).imbalance_volume is not None
    feeds, _problems = markets.feed_status()  # what the agent's status shows
    assert [(f.source, f.ok) for f in feeds] == [("modo", True)]


def test_axle_without_credentials_is_a_reported_problem_not_a_crash(outbox: Outbox) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no call expected, got {request.url}")

    markets = live(handler, outbox, ManualClock(T0), environ={"AXLE_USER": "site"})
    axle = {
        "base_url": "https://axle.test",
        "asset_id": "a-1",
        "username_env": "AXLE_USER",
        "password_env": "AXLE_PASSWORD",
    }
    markets.configure(site_with({"axle": axle}))
    assert markets.states == {}
    assert len(markets.problems) == 1
    assert "AXLE_PASSWORD not set" in markets.problems[0]
    asyncio.run(markets.poll_due())
    assert markets.signals_at(T0).axle_steps == ()


def test_clients_are_rebuilt_only_when_the_markets_section_changes(outbox: Outbox) -> None:
    handler, _ = modo_api()
    clock = ManualClock(T0)
    markets = live(handler, outbox, clock)
    site = site_with({"modo": {"base_url": MODO, "poll_s": 60}})
    markets.configure(site)
    asyncio.run(markets.poll_due())
    before = markets.states["modo"]

    markets.configure(site.model_copy(update={"limits": site.limits}))  # same markets
    assert markets.states["modo"] is before
    markets.configure(site_with({"modo": {"base_url": MODO, "poll_s": 120}}))
    assert markets.states["modo"] is not before
    assert markets.states["modo"].last_success_at is None


def test_run_polls_until_stopped_and_closes_its_client(outbox: Outbox) -> None:
    handler, calls = modo_api()
    markets = live(handler, outbox, ManualClock(T0))
    markets.configure(site_with({"modo": {"base_url": MODO, "poll_s": 60}}))

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(markets.run(stop))
        while not calls:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(scenario())
    assert calls == ["system-price-live"]
    assert markets.http.is_closed
