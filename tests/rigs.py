"""Shared rigs: the agent on a real config repository, against the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from reconciler.agent.loop import SignalSource
from reconciler.agent.run import Agent, AgentOptions
from reconciler.clock import ManualClock
from reconciler.devices.factory import open_site_devices
from reconciler.sim.simulator import SiteSimulator
from reconciler.source.controller import GitSource
from reconciler.source.settings import SourceSettings
from reconciler.telemetry.outbox import Outbox
from tests.source.conftest import DEMO_TEXT, Upstream, git

#: The demo site's device ports, by device name.
DEMO_PORTS = {"bess": 15020, "site": 15021, "battery_meter": 15022, "solar": 15023}


def site_text_for(sim: SiteSimulator, text: str = DEMO_TEXT) -> str:
    """A demo site file pointing at the simulator's ephemeral ports."""
    for name, port in DEMO_PORTS.items():
        text = text.replace(f"port: {port}\n", f"port: {sim.port_of(name)}\n")
    return text


@dataclass
class GitAgent:
    repo: Path
    upstream: Upstream
    source: GitSource
    agent: Agent
    outbox: Outbox


@asynccontextmanager
async def git_agent(
    tmp_path: Path,
    sim: SiteSimulator,
    clock: ManualClock,
    text: str = DEMO_TEXT,
    *,
    signals: SignalSource | None = None,
    health_gate_ticks: int | None = 3,
    **settings_extra: object,
) -> AsyncIterator[GitAgent]:
    """A config repository whose first commit is ``text`` (pointed at ``sim``), and the
    agent following it with a 3-tick health gate (None: the site file's); devices and
    outbox closed after."""
    repo = tmp_path / "config"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    upstream = Upstream(repo)
    upstream.commit(site_text_for(sim, text), "first")
    data: dict[str, object] = {
        "repo": str(repo),
        "site": "demo",
        "branch": "main",
        "interval_s": 60,
        "jitter_s": 0,
        "state_dir": tmp_path / "state",
        **settings_extra,
    }
    if health_gate_ticks is not None:
        data["health_gate_ticks"] = health_gate_ticks
    settings = SourceSettings.model_validate(data)
    source = GitSource(settings, clock=clock)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    agent = Agent(
        source,
        clock=clock,
        outbox=outbox,
        options=AgentOptions(http_port=None),
        signals=signals,
        devices=lambda s, c: open_site_devices(s, clock=c),
    )
    try:
        yield GitAgent(repo, upstream, source, agent, outbox)
    finally:
        if agent.loop is not None:
            await agent.loop.close()
        outbox.close()
