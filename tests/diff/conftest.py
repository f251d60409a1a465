"""A real world to diff: a config repository in a tmp folder, the simulator on ephemeral
ports, the agent (GitSource, health gate) on a ManualClock, its outbox uploaded to a fresh
PostgreSQL database (created from a migrated template, dropped after)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.agent.run import Agent
from reconciler.cli import cli
from reconciler.clock import ManualClock
from reconciler.config import Site, load_site
from reconciler.control.signals import FeedSignals
from reconciler.markets.memory import ReplayImbalanceFeed
from reconciler.sim.simulator import SiteSimulator
from reconciler.source.controller import GitSource
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader
from tests.pg import Server, database, migrated_template, url_for
from tests.rigs import git_agent, site_text_for
from tests.source.conftest import DEMO_TEXT, Upstream

ROOT = Path(__file__).resolve().parents[2]
#: Monday 15 January 2024, midday (GMT): weekday NIV chase (no prices: proposes nothing),
#: peak approach, import and export avoidance are active.
MIDDAY = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)


site_text = site_text_for


@pytest.fixture(scope="session")
def template_db(flux_server: Server) -> Iterator[str]:
    with migrated_template(flux_server) as name:
        yield name


@pytest.fixture
def db_url(template_db: str, flux_server: Server) -> Iterator[str]:
    with database(flux_server, template_db) as name:
        yield url_for(name)


@dataclass
class World:
    repo: Path
    upstream: Upstream
    sim: SiteSimulator
    source: GitSource
    agent: Agent
    clock: ManualClock
    outbox: Outbox
    db_url: str

    async def run(self, seconds: float) -> None:
        """The agent's control loop for ``seconds`` of simulated time (4 s ticks)."""
        for _ in range(round(seconds / 4)):
            await self.agent.step()
            self.clock.advance(4)
            await self.sim.tick()

    def upload(self) -> None:
        uploader = Uploader(self.outbox, self.db_url, refresh_rollups=False)
        try:
            result = uploader.drain()
        finally:
            uploader.close()
        assert result.ok, result.error
        assert self.outbox.pending() == 0

    def commit(self, text: str, message: str = "change") -> str:
        return self.upstream.commit(site_text(self.sim, text), message)

    def diff(self, *args: str, at: datetime | None = None) -> Result:
        return invoke(
            "diff",
            "demo",
            "--repo",
            str(self.repo),
            "--database-url",
            self.db_url,
            "--at",
            (at or self.clock.now()).isoformat(),
            "--window",
            "1h",
            *args,
        )

    def diff_json(self, *args: str) -> tuple[int, dict[str, object]]:
        result = self.diff("--output", "json", *args)
        assert result.exit_code in (0, 1), result.output
        return result.exit_code, json.loads(result.stdout)


def load_site_text(text: str, tmp: Path) -> Site:
    path = tmp / "variant.yaml"
    path.write_text(text, encoding="utf-8")
    return load_site(path)


def variant(**replacements: str) -> str:
    """The demo site file with lines replaced: ``homes="250"`` sets ``  homes: 250``."""
    text = DEMO_TEXT
    for key, value in replacements.items():
        lines = [ln for ln in text.splitlines(keepends=True) if ln.lstrip().startswith(f"{key}:")]
        assert len(lines) == 1, (key, lines)
        indent = lines[0][: len(lines[0]) - len(lines[0].lstrip())]
        text = text.replace(lines[0], f"{indent}{key}: {value}\n")
    return text


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def initial_text(request: pytest.FixtureRequest) -> str:
    """The first commit's site file (parametrize indirectly for a variant)."""
    return str(getattr(request, "param", DEMO_TEXT))


@pytest.fixture
def market(request: pytest.FixtureRequest) -> tuple[datetime, FeedSignals | None]:
    """When the world starts and the market signals its agent sees (parametrize
    indirectly with a start to replay January 2024's imbalance prices from then)."""
    start = getattr(request, "param", None)
    if start is None:
        return MIDDAY - timedelta(minutes=10), None
    return start, FeedSignals(imbalance=ReplayImbalanceFeed.january_2024())


@pytest.fixture
async def world(
    tmp_path: Path,
    db_url: str,
    initial_text: str,
    market: tuple[datetime, FeedSignals | None],
) -> AsyncIterator[World]:
    start, signals = market
    clock = ManualClock(start)
    site = load_site(ROOT / "sites" / "demo.yaml")
    variant = load_site_text(initial_text, tmp_path)
    site = site.model_copy(
        update={"site": variant.site, "simulation": variant.simulation, "limits": variant.limits}
    )
    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        git_agent(tmp_path, sim, clock, initial_text, replay=signals) as rig,
    ):
        await rig.source.sync_once()
        yield World(rig.repo, rig.upstream, sim, rig.source, rig.agent, clock, rig.outbox, db_url)


@pytest.fixture
def db_url_empty(flux_server: Server) -> Iterator[str]:
    """A database without the flux schema."""
    with database(flux_server) as name:
        yield url_for(name)
