"""Does a big upload delay control? The agent (in process, wall clock, 4 s ticks) drives
the simulated battery over Modbus TCP while its uploader drains a backlog of readings into
PostgreSQL. Printed: the longest gap between two battery writes while the drain ran,
against the same agent with nothing to upload, measured in the same run.

    .venv/bin/python bench/drain_ticks.py [--rows 1000000]

Makes its own database (unique name) on --admin-url and drops it after.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from readings import bess_readings, meter_readings
from reliability import Database

from reconciler.agent.run import Agent, AgentOptions
from reconciler.clock import WallClock
from reconciler.config import load_site
from reconciler.control.signals import FeedSignals
from reconciler.devices.factory import open_site_devices
from reconciler.markets.memory import ReplayImbalanceFeed
from reconciler.markets.replay import Replay
from reconciler.sim.simulator import SiteSimulator
from reconciler.source.controller import FileSource
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader

ROOT = Path(__file__).resolve().parents[1]


async def write_gaps(folder: Path, url: str | None, backlog: int, seconds: float) -> list[float]:
    """Seconds between consecutive battery writes while the agent ran (and drained)."""
    site = load_site(ROOT / "sites" / "demo.yaml")
    clock = WallClock()
    outbox_path = folder / f"outbox-{backlog}.sqlite"
    with Outbox(outbox_path) as box:
        start = datetime(2025, 1, 1, tzinfo=UTC)
        box.add_bess_many("demo", "bess", bess_readings(backlog // 2, start))
        box.add_meter_many("demo", "site", meter_readings(backlog // 2, start))
    async with SiteSimulator(site, clock=clock, ports="ephemeral") as sim:
        outbox = Outbox(outbox_path)
        agent = Agent(
            FileSource(ROOT / "sites" / "demo.yaml", clock=clock),
            clock=clock,
            store=outbox,
            uploader=Uploader(outbox, url) if url else None,
            options=AgentOptions(http_port=None, upload_interval_s=1.0),
            signals=Replay(FeedSignals(imbalance=ReplayImbalanceFeed.january_2024()), sink=outbox),
            devices=lambda _s, c: open_site_devices(sim.site_for_ephemeral_ports(), clock=c),
        )
        stop = asyncio.Event()
        run = asyncio.create_task(agent.run(stop))
        began = time.monotonic()
        while time.monotonic() - began < seconds or (url and outbox.pending() > 100):
            await asyncio.sleep(0.5)
        drained_s = time.monotonic() - began
        stop.set()
        await run
        outbox.close()
        writes = [r.at for r in sim.writes("bess") if r.at is not None and r.address == 1020]
    print(f"  backlog {backlog:,}: ran {drained_s:.1f} s, {len(writes)} battery writes")
    return [(b - a).total_seconds() for a, b in itertools.pairwise(writes)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Database(args.admin_url) as db:
        folder = Path(tmp)
        loaded = asyncio.run(write_gaps(folder, db.url, args.rows, 20.0))
        idle = asyncio.run(write_gaps(folder, None, 0, 20.0))
    print(f"longest gap between battery writes while draining: {max(loaded):.2f} s")
    print(f"longest gap with nothing to upload (baseline):     {max(idle):.2f} s")
    print(f"ratio: {max(loaded) / max(idle):.2f} (tick 4 s; the heartbeat timeout is 10 s)")


if __name__ == "__main__":
    main()
