"""The demo's screen says what the control sees: the simulated date and speed, the price
and NIV, the battery's target and measured power, and what a negative target means."""

from __future__ import annotations

import asyncio
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console

from reconciler.agent.demo import LiveView
from reconciler.agent.run import AgentOptions
from reconciler.clock import ManualClock
from reconciler.config import load_site
from reconciler.control.signals import FeedSignals
from reconciler.markets.memory import ReplayImbalanceFeed
from reconciler.sim.simulator import SiteSimulator
from tests.rigs import file_agent
from tests.source.conftest import ROOT, START


async def test_the_demo_screen_shows_what_control_sees(tmp_path: Path) -> None:
    clock = ManualClock(START)
    site = load_site(ROOT / "sites" / "demo.yaml")
    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        file_agent(
            tmp_path,
            sim,
            clock,
            options=AgentOptions(http_port=None),
            replay=FeedSignals(imbalance=ReplayImbalanceFeed.january_2024(publish_delay_s=60)),
        ) as rig,
    ):
        view = LiveView(ZoneInfo("Europe/London"), rig.outbox, site=site, speed=60)
        assert "starting" in view.title()
        for _ in range(20):  # 80 s: past the feed's publish delay, so a price is known
            view.add(await rig.agent.step())  # type: ignore[arg-type]
            clock.advance(4)
            await asyncio.sleep(0)
    console = Console(record=True, width=200)
    console.print(view.render())
    text = console.export_text()
    last = view.recent[0]
    price = last.signals.imbalance_price
    assert price is not None
    assert f"(simulated {last.at.astimezone(ZoneInfo('Europe/London')):%a %d %b %Y}" in text
    assert ", 60x): control sees imbalance price" in text and f"{price.value:.2f} p/kWh" in text
    assert "battery measured kW" in text and "battery target kW" in text
    assert "a negative target charges the battery" in text
    assert "20 ticks" in text
