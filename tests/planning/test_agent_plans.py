"""The agent plans beside control and the `optimise` entry follows the plan: the whole
path on the simulator over Modbus TCP, with January 2024's prices replayed."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from reconciler.agent.loop import TickResult
from reconciler.agent.run import AgentOptions
from reconciler.clock import ManualClock
from reconciler.config import load_site
from reconciler.control.periods import PERIOD
from reconciler.control.signals import FeedSignals
from reconciler.markets.memory import ReplayImbalanceFeed
from reconciler.planning.runner import Planning
from reconciler.sim.simulator import SiteSimulator
from tests.rigs import file_agent
from tests.source.conftest import DEMO_TEXT, ROOT, START

GUARD_S = 60.0  # test-hang protection only

OPTIMISE_TEXT = DEMO_TEXT.replace(
    "schedule:\n", "schedule:\n  - {name: plan, mode: optimise, priority: 65}\n", 1
)


async def test_the_optimise_entry_follows_a_plan_made_beside_control(tmp_path: Path) -> None:
    clock = ManualClock(START)
    site = load_site(ROOT / "sites" / "demo.yaml")
    feed = ReplayImbalanceFeed.january_2024(publish_delay_s=60)
    seen: list[TickResult] = []
    stop = asyncio.Event()

    def on_tick(result: TickResult) -> None:
        seen.append(result)
        clock.advance(4)

    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        file_agent(
            tmp_path,
            sim,
            clock,
            text=OPTIMISE_TEXT,
            options=AgentOptions(http_port=None),
            replay=FeedSignals(imbalance=feed),
            on_tick=on_tick,
        ) as rig,
    ):
        planning = rig.agent.markets
        assert isinstance(planning, Planning)
        task = asyncio.create_task(rig.agent.run(stop))
        for _ in range(int(GUARD_S / 0.01)):
            if planning.planner is not None:
                break
            await asyncio.sleep(0.01)
        # The days before the start, as a backtest seeds them (an agent learns them).
        day_before = START - timedelta(days=1)
        known = (feed.imbalance_price(day_before + k * PERIOD) for k in range(48))
        planning.seed((v.period.start, v.value) for v in known if v is not None)
        for _ in range(int(GUARD_S / 0.01)):
            if any(r.decision.winner == "plan" for r in seen):
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, GUARD_S)
    won = [r for r in seen if r.decision.winner == "plan"]
    assert won, [r.decision.reason for r in seen[-3:]]
    plan = planning.plan
    assert plan is not None and plan.steps[0].start <= won[0].at < plan.steps[-1].end
    assert "plan of" in won[0].decision.reason
    assert len(plan.steps) == 72  # 36 h at 30 min
    # The plan is in the agent's status beside the market APIs (and so in /metrics).
    (shown,) = [m for m in rig.agent.status.snapshot().markets if m.source == "plan"]
    assert shown.ok and shown.recorded_total >= 1
    assert shown.detail is not None and "expected over 36 h" in shown.detail
