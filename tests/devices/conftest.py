"""Fixtures: the demo site, and the simulator on ephemeral loopback ports in step mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.clock import ManualClock
from reconciler.config.loader import load_site
from reconciler.config.model import Site
from reconciler.devices.base import Battery
from reconciler.sim.simulator import SiteSimulator

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "sites" / "demo.yaml"
#: A weekday noon in January: the shipped profiles have both load and solar then.
NOON = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def demo_site() -> Site:
    return load_site(DEMO)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOON)


@pytest.fixture
async def sim(demo_site: Site, clock: ManualClock) -> AsyncIterator[SiteSimulator]:
    async with SiteSimulator(demo_site, clock=clock, ports="ephemeral") as s:
        yield s


@pytest.fixture
def sim_site(sim: SiteSimulator) -> Site:
    """The demo site with its devices pointed at the simulator."""
    return sim.site_for_ephemeral_ports()


async def command(battery: Battery, kw: float) -> None:
    """As the loop does after every write: the setpoint, then the settings verified."""
    await battery.command(kw)
    await battery.ensure_settings()
