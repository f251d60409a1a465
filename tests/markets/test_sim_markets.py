"""The simulator's market APIs (`flux sim --markets`), exercised over real HTTP on loopback
by Flux's own clients, as the Modbus simulator is by the device drivers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.clock import ManualClock
from reconciler.config.model import AxleSettings, ElexonSettings, ModoSettings
from reconciler.control.periods import period_at
from reconciler.markets.axle import AxleClient, delivery_readings
from reconciler.markets.elexon import ElexonClient
from reconciler.markets.memory import ReplayImbalanceFeed
from reconciler.markets.modo import ModoClient
from reconciler.sim.markets import Dispatch, MarketSimulator

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2024, 1, 15, 16, 50, tzinfo=UTC)  # Monday, GMT: SP34 of 2024-01-15
REPLAY = ReplayImbalanceFeed.january_2024()


@pytest.fixture
def market() -> Iterator[MarketSimulator]:
    dispatch = Dispatch.parse("17:00-17:30 discharge_max")
    with MarketSimulator(ManualClock(AT), dispatches=[dispatch]) as sim:
        yield sim


def test_modo_serves_the_replayed_estimates_of_the_current_period(
    market: MarketSimulator,
) -> None:
    async def go() -> ModoClient:
        async with httpx.AsyncClient() as http:
            client = ModoClient(ModoSettings(base_url=market.base_url("modo")), client=http)
            await client.poll(AT)  # price
            await client.poll(AT)  # NIV
            return client

    client = asyncio.run(go())
    price, volume = client.imbalance_price(AT), client.imbalance_volume(AT)
    want_price, want_volume = REPLAY.imbalance_price(AT), REPLAY.imbalance_volume(AT)
    assert price is not None and want_price is not None
    assert volume is not None and want_volume is not None
    assert price.period == period_at(AT)
    assert price.value == pytest.approx(want_price.value, abs=0.001)  # £/MWh to 2 dp
    assert volume.value == pytest.approx(want_volume.value, abs=0.001)  # MWh to 3 dp


def test_elexon_serves_only_settled_periods(market: MarketSimulator) -> None:
    async def go() -> list[int]:
        async with httpx.AsyncClient() as http:
            client = ElexonClient(ElexonSettings(base_url=market.base_url("elexon")), client=http)
            points = await client.poll(AT)
            return sorted({p.period.number for p in points})

    numbers = asyncio.run(go())
    assert numbers == list(range(1, period_at(AT).number))  # SP34 is not over yet


def test_axle_serves_the_dispatch_and_takes_delivery_readings(market: MarketSimulator) -> None:
    settings = AxleSettings(
        base_url=market.base_url("axle"),
        asset_id="sim-1",
        username_env="AXLE_USER",
        password_env="AXLE_PASSWORD",
    )

    async def go() -> AxleClient:
        async with httpx.AsyncClient() as http:
            client = AxleClient(settings, client=http, username="u", password="p")
            await client.poll(AT)
            end = AT + timedelta(minutes=5)
            await client.report_readings(delivery_readings(AT, end, 40.0, -20.0, 600.0))
            return client

    client = asyncio.run(go())
    (step, *later) = client.axle_steps(AT)
    assert step.action == "discharge_max"
    assert step.start == datetime(2024, 1, 15, 17, 0, tzinfo=UTC)
    assert step.end == datetime(2024, 1, 15, 17, 30, tzinfo=UTC)
    assert [s.start.date().isoformat() for s in later] == ["2024-01-16"]  # tomorrow's
    assert market.readings_received == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("17:00 discharge_max", "write HH:MM-HH:MM ACTION"),
        ("17:00-17:30 sell_everything", "the action is one of"),
        ("18:00-17:30 charge_max", "the end must be after the start"),
    ],
)
def test_a_bad_dispatch_is_refused_with_the_fix(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Dispatch.parse(text)
    result = CliRunner().invoke(
        cli, ["sim", str(ROOT / "sites" / "demo.yaml"), "--markets", "0", "--axle-dispatch", text]
    )
    assert result.exit_code == 2 and message in result.output


def test_a_dispatch_without_markets_is_a_usage_error() -> None:
    result = CliRunner().invoke(
        cli, ["sim", str(ROOT / "sites" / "demo.yaml"), "--axle-dispatch", "17:00-17:30 charge_max"]
    )
    assert result.exit_code == 2 and "--axle-dispatch needs --markets PORT" in result.output


def test_a_taken_markets_port_names_itself() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["sim", str(ROOT / "sites" / "demo.yaml"), "--markets", str(port)]
        )
    assert result.exit_code == 1
    assert f"--markets {port}: Address already in use; choose another port" in result.output
