"""A recorded database for reports, filled the way a site fills it: the agent (its git
source, control loop and market replay of January 2024's imbalance prices) drives the
simulator over simulated hours on a manual clock, its outbox uploaded to a fresh database
(rollups refreshed by the upload, as in production). Filled once a run (by one xdist
worker, for all of them) and copied for each module that reads it: the fill costs half a
minute."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.clock import ManualClock
from reconciler.config import load_site
from reconciler.control.signals import FeedSignals
from reconciler.markets.memory import ReplayImbalanceFeed
from reconciler.sim.simulator import SiteSimulator
from reconciler.telemetry.migrations import migrate
from reconciler.telemetry.uploader import Uploader
from tests.pg import Server, database, migrated_template, shared_template, url_for
from tests.rigs import git_agent
from tests.shared import run_folder

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "sites" / "demo.yaml"
#: Monday 15 January 2024 (GMT): the fill covers the weekday red band (17:00-19:00).
START = datetime(2024, 1, 15, 16, 0, tzinfo=UTC)
HOURS = 3.5
TICK_S = 4


async def fill(
    url: str, tmp: Path, start: datetime = START, hours: float = HOURS, *, prices: bool = True
) -> None:
    """Run the demo agent against the simulator for ``hours`` from ``start``, uploading
    every simulated half hour (so rollups are refreshed as uploads arrive); ``prices``:
    the agent replays January 2024's imbalance prices (and records them)."""
    clock = ManualClock(start)
    site = load_site(DEMO)
    signals = FeedSignals(imbalance=ReplayImbalanceFeed.january_2024()) if prices else None
    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        git_agent(tmp, sim, clock, replay=signals) as rig,
    ):
        await rig.source.sync_once()
        steps = round(hours * 3600 / TICK_S)
        per_upload = 1800 // TICK_S
        for k in range(steps):
            await rig.agent.step()
            clock.advance(TICK_S)
            await sim.tick()
            if (k + 1) % per_upload == 0 or k + 1 == steps:
                uploader = Uploader(rig.outbox, url)
                try:
                    result = uploader.drain()
                finally:
                    uploader.close()
                assert result.ok, result.error


@pytest.fixture(scope="module")
def template_db(flux_server: Server) -> Iterator[str]:
    with migrated_template(flux_server) as name:
        yield name


@pytest.fixture(scope="session")
def recording_template(flux_server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """HOURS of the demo site recorded from START, once a run (the fill costs half a
    minute): a template, closed to connections, that each module copies."""

    def make(name: str) -> None:
        migrate(flux_server.url(name), flavour=flux_server.flavour)
        asyncio.run(fill(url_for(name), tmp_path_factory.mktemp("fill")))

    run = run_folder(tmp_path_factory.getbasetemp())
    return shared_template(flux_server, "report-recording", run, make)


@pytest.fixture(scope="module")
def recorded_url(recording_template: str, flux_server: Server) -> Iterator[str]:
    """A database holding HOURS of the demo site recorded from START (a module's own copy
    of the run's recording)."""
    with database(flux_server, recording_template) as name:
        yield url_for(name)


@pytest.fixture(scope="module")
def reader_url(recorded_url: str) -> Iterator[str]:
    """``recorded_url`` as a login role made by `flux db add-reader` (dropped after)."""
    name = f"flux_t_{uuid.uuid4().hex[:10]}"
    result = CliRunner().invoke(cli, ["db", "add-reader", name, "--database-url", recorded_url])
    assert result.exit_code == 0, result.output
    dbname = recorded_url.rsplit("/", 1)[1]
    try:
        yield url_for(dbname, name)
    finally:
        with psycopg.connect(recorded_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (name,),
            )
            conn.execute(f'DROP OWNED BY "{name}"')
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')


@pytest.fixture
def unpriced_url(template_db: str, flux_server: Server, tmp_path: Path) -> Iterator[str]:
    """Half an hour of the demo recorded by an agent that fetched no market data."""
    with database(flux_server, template_db) as name:
        url = url_for(name)
        asyncio.run(fill(url, tmp_path, hours=0.5, prices=False))
        yield url


@pytest.fixture
def bare_url(flux_server: Server) -> Iterator[str]:
    """A database without the flux schema."""
    with database(flux_server) as name:
        yield url_for(name)


def end() -> datetime:
    return START + timedelta(hours=HOURS)
