"""Shared rigs: the agent on a real config repository, against the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.agent.loop import ReconcileLoop
from reconciler.agent.ports import Markets, SignalSource, Sink
from reconciler.agent.run import Agent, AgentOptions
from reconciler.backtest.engine import loop_on_simulator, run_now
from reconciler.clock import Clock, ManualClock
from reconciler.config.model import Site
from reconciler.devices.factory import open_site_devices
from reconciler.markets.replay import Replay
from reconciler.sim.plant import FrequencyEventKind
from reconciler.sim.simulator import SiteSimulator
from reconciler.source.controller import FileSource, GitSource
from reconciler.source.settings import SourceSettings
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader
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
    signals: Markets | None = None,
    replay: SignalSource | None = None,
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
        store=outbox,
        options=AgentOptions(http_port=None),
        signals=signals or (Replay(replay, sink=outbox) if replay is not None else None),
        devices=lambda s, c: open_site_devices(s, clock=c),
    )
    try:
        yield GitAgent(repo, upstream, source, agent, outbox)
    finally:
        if agent.loop is not None:
            await agent.loop.close()
        outbox.close()


@dataclass
class FileAgent:
    site_file: Path
    source: FileSource
    agent: Agent
    outbox: Outbox


@asynccontextmanager
async def file_agent(
    tmp_path: Path,
    sim: SiteSimulator,
    clock: Clock,
    *,
    options: AgentOptions,
    signals: Markets | None = None,
    replay: SignalSource | None = None,
    outbox_path: Path | None = None,
    database_url: str | None = None,
    text: str = DEMO_TEXT,
    status_file: Path | None = None,
    **agent_args: Any,
) -> AsyncIterator[FileAgent]:
    """The agent on a copy of ``text`` (the demo site file) pointed at ``sim``, as ``flux
    agent run --site FILE`` runs it (``agent_args`` go to Agent), uploading to
    ``database_url`` if given; devices and outbox closed after."""
    site_file = tmp_path / "demo.yaml"
    site_file.write_text(site_text_for(sim, text))
    source = FileSource(site_file, clock=clock, status_file=status_file)
    outbox = Outbox(outbox_path or tmp_path / "outbox.sqlite")
    agent = Agent(
        source,
        clock=clock,
        store=outbox,
        options=options,
        signals=signals or (Replay(replay, sink=outbox) if replay is not None else None),
        devices=lambda s, c: open_site_devices(s, clock=c),
        **({"uploader": Uploader(outbox, database_url)} if database_url else {}),
        **agent_args,
    )
    try:
        yield FileAgent(site_file, source, agent, outbox)
    finally:
        if agent.loop is not None:
            await agent.loop.close()
        outbox.close()


async def until(
    check: Callable[[], bool], what: str, *, every_s: float = 0.01, guard_s: float = 60.0
) -> None:
    """Wait (real time) until ``check()`` holds, looking every ``every_s``; fail naming
    ``what`` after ``guard_s`` (test-hang protection only, never a timing)."""
    for _ in range(int(guard_s / every_s)):
        if check():
            return
        await asyncio.sleep(every_s)
    raise AssertionError(f"never happened: {what}")


def in_process(
    site: Site, clock: ManualClock, sink: Sink | None = None
) -> tuple[SiteSimulator, ReconcileLoop]:
    """The simulator and the agent's loop on its registers in-process, as a backtest runs
    them; what the loop records goes to ``sink`` (counted only by default)."""
    return loop_on_simulator(site, clock, sink=sink)


def run_in_process(
    site: Site,
    sink: Sink,
    start: datetime,
    seconds: float,
    *,
    fast_s: float,
    events: Sequence[tuple[float, FrequencyEventKind]] = (),
) -> ReconcileLoop:
    """The agent's loop and drivers on the simulator's registers in-process (as a backtest
    runs them) from ``start`` for ``seconds`` of simulated time, the fast path every
    ``fast_s`` between ticks, grid frequency ``events`` at (seconds after start, kind);
    what it records goes to ``sink`` (the last tick's frequency records included)."""
    clock = ManualClock(start)
    sim, loop = in_process(site, clock, sink)
    pending = sorted(events)
    end = start + timedelta(seconds=seconds)
    tick_s = site.control.tick_s
    while clock.now() < end:
        if pending and (clock.now() - start).total_seconds() >= pending[0][0]:
            sim.catch_up()
            sim.plant.frequency_event(pending.pop(0)[1])
        tick = run_now(loop.tick())
        for _ in range(round(tick_s / fast_s) - 1):
            clock.advance(fast_s)
            run_now(loop.fast_tick())
        clock.set(tick.at + timedelta(seconds=tick_s))
    loop.flush_records()
    return loop
