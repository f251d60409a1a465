"""Delivery reports to Axle: 5-minute windows of what the site and battery did, in Axle's
signs, sent by the market runner and kept while Axle is unreachable."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from reconciler.clock import ManualClock
from reconciler.config.loader import check_site_text
from reconciler.config.model import Markets
from reconciler.markets.axle import AxleClient
from reconciler.markets.delivery import AxleDelivery
from reconciler.markets.errors import MarketUnavailable
from reconciler.markets.live import LiveMarkets
from reconciler.telemetry.outbox import Outbox
from tests.markets.fakes import BASE, PASSWORD, T0, USER, FakeAxle, settings
from tests.source.conftest import DEMO_TEXT

READINGS = "/api/data/readings"


def delivery(fake: FakeAxle, **kwargs: Any) -> AxleDelivery:
    client = AxleClient(
        settings(),
        client=httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)),
        username=USER,
        password=PASSWORD,
    )
    return AxleDelivery(client, **kwargs)


def sent(fake: FakeAxle) -> list[list[dict[str, Any]]]:
    return [json.loads(r.content)["readings"] for r in fake.of("POST", READINGS)]


def test_a_window_is_averaged_and_reported_in_axles_signs() -> None:
    fake = FakeAxle()
    d = delivery(fake)
    # 18:00-18:05: importing 100 then 200 kW while charging 50 then 150 kW.
    d.observe(T0, site_power_kw=100.0, battery_power_kw=-50.0, soe_kwh=500.0)
    d.observe(T0 + timedelta(minutes=2), 200.0, -150.0, 510.0)
    asyncio.run(d.poll(T0 + timedelta(minutes=4)))  # window still open: nothing to send
    assert sent(fake) == []

    d.observe(T0 + timedelta(minutes=5, seconds=10), 0.0, 0.0, 520.0)  # next window
    asyncio.run(d.poll(T0 + timedelta(minutes=5, seconds=10)))
    window = {
        "asset_id": "asset-1",
        "start_timestamp": "2025-04-29T18:00:00+00:00",
        "end_timestamp": "2025-04-29T18:05:00+00:00",
    }
    assert sent(fake) == [
        [
            {**window, "value": 150.0, "label": "boundary_import_kw"},
            # Charging at 100 kW on average is +100 kW of inverter import for Axle.
            {**window, "value": 100.0, "label": "battery_inverter_import_kw"},
            {**window, "value": 510.0, "label": "battery_stored_energy_kwh"},
        ]
    ]
    assert d.pending == []


def test_reports_wait_while_axle_is_down_and_go_together_after() -> None:
    fake = FakeAxle()
    d = delivery(fake)
    d.observe(T0, 10.0, 5.0, 400.0)
    d.observe(T0 + timedelta(minutes=5), 20.0, 5.0, 399.0)
    fake.post_replies.append(httpx.Response(503, text="maintenance"))
    try:
        asyncio.run(d.poll(T0 + timedelta(minutes=5)))
        raise AssertionError("a failed report must reach the runner")
    except MarketUnavailable as exc:
        assert "HTTP 503" in str(exc)
    assert len(d.pending) == 3  # kept

    asyncio.run(d.poll(T0 + timedelta(minutes=10)))  # closes the second window too
    batches = sent(fake)
    assert [len(b) for b in batches] == [3, 6]  # the refused batch, then both windows
    assert [r["value"] for r in batches[-1] if r["label"] == "boundary_import_kw"] == [10.0, 20.0]
    assert d.pending == []


def test_at_most_a_day_of_windows_waits_and_the_drop_is_counted() -> None:
    fake = FakeAxle()
    d = delivery(fake, keep_windows=2)
    for minute in (0, 5, 10, 15):
        d.observe(T0 + timedelta(minutes=minute), float(minute), 0.0, 100.0)
    assert d.dropped == 3  # three windows closed, two kept
    asyncio.run(d.poll(T0 + timedelta(minutes=15)))
    (batch,) = sent(fake)
    assert [r["value"] for r in batch if r["label"] == "boundary_import_kw"] == [5.0, 10.0]


def test_the_runner_polls_the_schedule_and_reports_delivery(tmp_path: Path) -> None:
    fake = FakeAxle()
    clock = ManualClock(T0)
    markets = LiveMarkets(
        clock=clock,
        sink=Outbox(tmp_path / "outbox.sqlite"),
        environ={"AXLE_USERNAME": USER, "AXLE_PASSWORD": PASSWORD},
        http=httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)),
    )
    site, problems = check_site_text(DEMO_TEXT, "demo.yaml")
    assert site is not None, problems
    axle = {
        "base_url": BASE,
        "asset_id": "asset-1",
        "username_env": "AXLE_USERNAME",
        "password_env": "AXLE_PASSWORD",
    }
    markets.configure(site.model_copy(update={"markets": Markets.model_validate({"axle": axle})}))
    assert sorted(markets.states) == ["axle", "axle-delivery"]

    for second in range(0, 360, 4):  # six minutes of 4 s ticks
        clock.set(T0 + timedelta(seconds=second))
        markets.observe(clock.now(), 30.0, 0.0, 700.0)
        asyncio.run(markets.poll_due())
    assert fake.schedule_gets  # the schedule was fetched...
    assert markets.signals_at(clock.now()).axle_steps  # ...and serves dispatch steps
    (batch,) = sent(fake)  # one 5-minute window reported
    assert {r["label"] for r in batch} == {
        "boundary_import_kw",
        "battery_inverter_import_kw",
        "battery_stored_energy_kwh",
    }
    assert markets.states["axle-delivery"].ok
