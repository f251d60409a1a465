"""The agent end to end with a live (faked) Modo API: a real config repository, the
simulator over Modbus TCP, and prices arriving over HTTP that switch NIV chase on; an API
that fails leaves control running on the lower-priority modes."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import httpx

from reconciler.clock import ManualClock
from reconciler.config import load_site
from reconciler.control.periods import period_at
from reconciler.control.signals import FeedSignals
from reconciler.control.types import Decision
from reconciler.markets.live import LiveMarkets
from reconciler.markets.memory import ReplayImbalanceFeed
from reconciler.sim.simulator import SiteSimulator
from reconciler.status.model import StatusSnapshot
from tests.markets.fakes import BASE, PASSWORD, USER, FakeAxle, step_json
from tests.rigs import git_agent
from tests.source.conftest import DEMO_TEXT, START

ROOT = Path(__file__).resolve().parents[2]
# 11 minutes into the period: the live estimate for it is trusted (live_after_s 600).
AT = START + timedelta(minutes=11)
SITE_TEXT = DEMO_TEXT.replace(
    "  modo: {}\n", "  modo: {base_url: 'https://modo.test/markets', poll_s: 60}\n"
)


def modo(price_gbp_mwh: float, niv_mwh: float, *, up: bool = True) -> httpx.MockTransport:
    period = period_at(AT)

    def handle(request: httpx.Request) -> httpx.Response:
        if not up:
            return httpx.Response(503, text="maintenance")
        field, value = (
            ("system_price", price_gbp_mwh)
            if request.url.path.endswith("/system-price-live")
            else ("niv", niv_mwh)
        )
        row = {"date": period.day.isoformat(), "settlement_period": period.number, field: value}
        return httpx.Response(200, json={"results": [row]})

    return httpx.MockTransport(handle)


async def run_agent(
    tmp_path: Path,
    transport: httpx.MockTransport,
    text: str = SITE_TEXT,
    *,
    ticks: int = 20,
    environ: dict[str, str] | None = None,
) -> tuple[Decision, StatusSnapshot]:
    """The agent for ``ticks`` ticks of 4 s with market polls between them (20: both Modo
    endpoints polled, one call a minute); the last decision and status."""
    clock = ManualClock(AT)
    site = load_site(ROOT / "sites" / "demo.yaml")
    http = httpx.AsyncClient(transport=transport)
    markets = LiveMarkets(clock=clock, environ=environ or {}, http=http)
    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        git_agent(tmp_path, sim, clock, text, signals=markets) as rig,
    ):
        await rig.source.sync_once()
        for _ in range(ticks):
            await rig.agent.step()
            await markets.poll_due()
            clock.advance(4)
        result = await rig.agent.step()
        assert result is not None
        return result.decision, rig.source.status().snapshot()


async def test_live_prices_switch_niv_chase_on(tmp_path: Path) -> None:
    # -£50/MWh with the system long: the charge curve wants the battery full.
    decision, status = await run_agent(tmp_path, modo(-50.0, -300.0))
    assert decision.winner == "weekday NIV chase", decision.reason
    assert decision.target_kw < 0  # charging
    assert [(m.source, m.ok) for m in status.markets] == [("modo", True)]


async def test_a_failing_api_leaves_control_on_the_other_modes(tmp_path: Path) -> None:
    decision, status = await run_agent(tmp_path, modo(-50.0, -300.0, up=False))
    assert decision.winner != "weekday NIV chase"
    assert not decision.safe_stop  # the battery is still run
    (feed,) = status.markets
    assert not feed.ok and feed.consecutive_failures >= 1
    assert feed.last_error is not None and "HTTP 503" in feed.last_error


AXLE_TEXT = DEMO_TEXT.replace(
    "schedule:\n", "schedule:\n  - name: axle dispatch\n    mode: axle\n", 1
).replace(
    "  modo: {}\n",
    f"  axle: {{base_url: '{BASE}', asset_id: asset-1, username_env: AXLE_USERNAME,"
    " password_env: AXLE_PASSWORD}\n",
)


async def test_an_axle_dispatch_is_followed_and_its_delivery_reported(tmp_path: Path) -> None:
    fake = FakeAxle()
    fake.schedule = {
        "schedule_steps": [
            step_json(
                (AT - timedelta(minutes=30)).isoformat(),
                (AT + timedelta(hours=1)).isoformat(),
                "discharge_max",
            )
        ]
    }
    decision, status = await run_agent(
        tmp_path,
        httpx.MockTransport(fake.handler),
        AXLE_TEXT,
        ticks=90,  # 6 minutes: one whole 5-minute delivery window
        environ={"AXLE_USERNAME": USER, "AXLE_PASSWORD": PASSWORD},
    )
    assert decision.winner == "axle dispatch", decision.reason
    assert decision.target_kw > 0  # discharging, as dispatched
    feeds = {m.source: m.ok for m in status.markets}
    assert feeds == {"axle": True, "axle-delivery": True}
    (report,) = fake.of("POST", "/api/data/readings")
    readings = json.loads(report.content)["readings"]
    battery = [r["value"] for r in readings if r["label"] == "battery_inverter_import_kw"]
    assert len(battery) == 1 and battery[0] < 0  # discharging is negative import for Axle


async def test_replayed_prices_are_recorded_once_per_period(tmp_path: Path) -> None:
    clock = ManualClock(AT)
    site = load_site(ROOT / "sites" / "demo.yaml")
    replay = FeedSignals(imbalance=ReplayImbalanceFeed.january_2024())
    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        git_agent(tmp_path, sim, clock, replay=replay) as rig,
    ):
        await rig.source.sync_once()
        for _ in range(600):  # 40 minutes: into the next settlement period
            await rig.agent.step()
            clock.advance(4)
        batch = rig.outbox.read_batch(10_000)
        rows = [json.loads(p) for _, kind, _, _, p in batch.others if kind == "market"]
    first = period_at(AT)
    assert sorted((r["type"], r["settlement_period"]) for r in rows) == [
        ("imbalance_price", first.number),
        ("imbalance_price", first.number + 1),
        ("niv", first.number),
        ("niv", first.number + 1),
    ]
    assert {r["source"] for r in rows} == {"replay"}
    expected = replay.signals_at(AT).imbalance_price
    assert expected is not None
    prices = [r["value"] for r in rows if r["type"] == "imbalance_price"]
    assert prices[0] == expected.value
