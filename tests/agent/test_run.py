"""The agent's run loop as systemd sees it: stops promptly, logs with priorities."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.agent.run import Agent, AgentOptions
from reconciler.clock import ManualClock
from reconciler.config import load_site
from reconciler.devices.factory import open_site_devices
from reconciler.logs import configure, log_event
from reconciler.sim.simulator import SiteSimulator
from reconciler.source.controller import FileSource
from reconciler.telemetry.outbox import Outbox
from tests.rigs import site_text_for
from tests.source.conftest import DEMO_TEXT

ROOT = Path(__file__).resolve().parents[2]


class StillClock(ManualClock):
    """Time that does not pass: a tick's wait never ends by itself."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.Event().wait()


async def test_a_stop_wakes_the_wait_for_the_next_tick(tmp_path: Path) -> None:
    """With tick_s 28 a stop used to wait out the rest of the tick (28.4 s, over systemd's
    TimeoutStopSec=20). Here the tick's wait would never end: only the stop can end it."""
    clock = StillClock(datetime(2024, 1, 15, 12, 0, tzinfo=UTC))
    site = load_site(ROOT / "sites" / "demo.yaml")
    async with SiteSimulator(site, clock=clock, ports="ephemeral") as sim:
        text = site_text_for(sim, DEMO_TEXT)
        text = text.replace("  tick_s: 4\n", "  tick_s: 28\n")
        text = text.replace("heartbeat_timeout_s: 10", "heartbeat_timeout_s: 90")
        text = text.replace("max_reading_age_s: 12", "max_reading_age_s: 90")
        site_file = tmp_path / "demo.yaml"
        site_file.write_text(text)
        assert load_site(site_file).control.tick_s == 28
        source = FileSource(site_file, clock=clock, status_file=tmp_path / "status.json")
        with Outbox(tmp_path / "outbox.sqlite") as outbox:
            agent = Agent(
                source,
                clock=clock,
                store=outbox,
                options=AgentOptions(http_port=None),
                devices=lambda s, c: open_site_devices(s, clock=c),
            )
            stop = asyncio.Event()
            run = asyncio.create_task(agent.run(stop))
            for _ in range(200):
                if agent.loop is not None and agent.loop.ticks >= 1:
                    break
                await asyncio.sleep(0.05)
            assert agent.loop is not None and agent.loop.ticks == 1
            stop.set()
            # A guard against a hung test, not a timing: without the fix this never ends.
            await asyncio.wait_for(run, timeout=60)
    assert json.loads((tmp_path / "status.json").read_text())["loop"]["ticks_total"] == 1


def _journal_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, journal: bool) -> str:
    path = tmp_path / f"stderr-{journal}"
    with path.open("w") as stream:
        st = os.fstat(stream.fileno())
        if journal:
            monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        else:
            monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
        configure("info", stream=stream)
        log = logging.getLogger("flux.agent")
        log_event(log, "safe_stop", level=logging.WARNING, reason="grid meter stale")
        log_event(log, "revision_in_control", sha="abc")
    return path.read_text()


def test_lines_carry_their_priority_when_stderr_is_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warning, info = _journal_line(tmp_path, monkeypatch, journal=True).splitlines()
    assert warning.startswith("<4>{") and json.loads(warning[3:])["event"] == "safe_stop"
    assert info.startswith("<6>{")
    # stderr redirected elsewhere (a file, a pipe): plain JSON lines
    plain = _journal_line(tmp_path, monkeypatch, journal=False).splitlines()
    assert all(line.startswith("{") for line in plain)
    configure("info", stream=io.StringIO())  # leave no handler on a closed file
