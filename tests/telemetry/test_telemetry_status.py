"""The agent says when telemetry is not getting through (TelemetryReady, /metrics,
/healthz, `flux agent status`, one warning per outage), and it stays beside Ready: it
never makes the agent unready nor stops control."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.agent.http import StatusServer, render_metrics
from reconciler.agent.operator import status as status_command
from reconciler.agent.run import Agent, AgentOptions
from reconciler.agent.telemetry import judge
from reconciler.clock import ManualClock
from reconciler.config import load_site
from reconciler.control.types import BatteryReading
from reconciler.sim.simulator import SiteSimulator
from reconciler.status.model import ConditionType, StatusSnapshot, TelemetryStats
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader
from tests.rigs import file_agent, until
from tests.source.conftest import DEMO_TEXT, ROOT, START

from .conftest import Proxy, url_for

GUARD_S = 60.0  # test-hang protection only


def _telemetry(agent: Agent) -> tuple[str, str, str]:
    cond = agent.source.status().condition(ConditionType.TELEMETRY_READY)
    return cond.status, cond.reason, cond.message


#: Looks often enough for the assertions on simulated time below.
_until = partial(until, every_s=0.02)


def _events(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == event]


async def test_failing_uploads_are_reported_once_and_their_recovery_too(
    tmp_path: Path,
    migrated_url: str,
    dbname: str,
    proxy: Proxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="flux")
    clock = ManualClock(START)
    site = load_site(ROOT / "sites" / "demo.yaml")
    status_file = tmp_path / "status.json"
    stop = asyncio.Event()
    async with SiteSimulator(site, clock=clock, ports="ephemeral") as sim:
        outbox = Outbox(tmp_path / "outbox.sqlite")
        uploader = Uploader(
            outbox, url_for(dbname, port=proxy.port), attempts=1, wait_initial_s=0.01
        )
        async with file_agent(
            tmp_path,
            sim,
            clock,
            options=AgentOptions(http_port=None, upload_interval_s=0.02),
            outbox_path=outbox.path,
            status_file=status_file,
            uploader=uploader,
        ) as rig:
            agent = rig.agent
            task = asyncio.create_task(agent.run(stop))
            await _until(lambda: _telemetry(agent)[1] == "Uploading", "a first upload")
            first_success = uploader.state.last_success_at
            assert first_success is not None

            proxy.cut()
            await _until(
                lambda: agent.source.status().snapshot().telemetry.consecutive_failures >= 3,
                "three failures reported",
            )
            status, reason, message = _telemetry(agent)
            assert (status, reason) == ("False", "UploadFailing")
            assert "cannot connect" in message and "rows waiting in the outbox" in message
            assert len(_events(caplog, "telemetry_upload_failing")) == 1  # not one per failure
            warning = _events(caplog, "telemetry_upload_failing")[0]
            assert warning.levelno == logging.WARNING

            snap = agent.source.status().snapshot()
            tel = snap.telemetry
            assert tel.consecutive_failures >= 3 and tel.upload_failures_total >= 3
            assert tel.pending_rows > 0
            assert tel.oldest_pending_age_s is not None and tel.oldest_pending_age_s >= 0
            assert tel.last_error is not None and "cannot connect" in tel.last_error
            # Control goes on, and Ready stays about control.
            assert snap.condition(ConditionType.READY).status == "True"
            ticks = snap.loop.ticks_total

            metrics = render_metrics(snap)
            samples = {
                line.split("{")[0]: line.rsplit(" ", 1)[1]
                for line in metrics.splitlines()
                if not line.startswith("#")
            }
            assert float(samples["flux_telemetry_last_success_timestamp_seconds"]) == (
                pytest.approx(first_success.timestamp(), abs=0.01)
            )
            assert int(samples["flux_telemetry_upload_failures_total"]) >= 3
            assert int(samples["flux_outbox_pending_rows"]) == tel.pending_rows > 0

            server = StatusServer(agent.source.status().snapshot)
            code, _, body = server.route("GET", "/healthz")
            assert code == 200  # telemetry trouble is said, not an outage of the agent
            assert "TelemetryReady=False UploadFailing" in body
            _, _, as_json = server.route("GET", "/status")
            shown = StatusSnapshot.model_validate_json(as_json)
            assert shown.condition(ConditionType.TELEMETRY_READY).reason == "UploadFailing"

            printed = CliRunner().invoke(
                status_command, ["--status-file", str(status_file), "--state-dir", str(tmp_path)]
            )
            assert "TelemetryReady" in printed.output and "UploadFailing" in printed.output
            assert "pending" in printed.output

            proxy.start()  # the link is back
            await _until(lambda: _telemetry(agent)[1] == "Uploading", "the recovery")
            recovered = _events(caplog, "telemetry_upload_recovered")
            assert len(recovered) == 1 and recovered[0].levelno == logging.INFO
            assert agent.source.status().snapshot().loop.ticks_total > ticks
            stop.set()
            assert await asyncio.wait_for(task, GUARD_S) == 0
        outbox.close()


async def test_no_database_is_said_plainly_and_is_no_alarm(tmp_path: Path) -> None:
    clock = ManualClock(START)
    site = load_site(ROOT / "sites" / "demo.yaml")
    stop = asyncio.Event()
    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        file_agent(tmp_path, sim, clock, options=AgentOptions(http_port=None)) as rig,
    ):
        task = asyncio.create_task(rig.agent.run(stop))
        await _until(lambda: rig.agent.loop is not None and rig.agent.loop.ticks >= 3, "ticks")
        stop.set()
        assert await asyncio.wait_for(task, GUARD_S) == 0
        status, reason, message = _telemetry(rig.agent)
        assert (status, reason) == ("True", "NoDatabase")
        assert "no database configured: records are kept in the outbox" in message
        assert rig.agent.final_upload is None  # nothing to drain to


T0 = datetime(2026, 3, 1, tzinfo=UTC)


async def test_a_backlog_over_the_site_files_mark_raises_the_condition(
    tmp_path: Path, migrated_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flux")
    text = DEMO_TEXT.replace(
        "telemetry:\n  record_interval_s: 60\n",
        "telemetry:\n  record_interval_s: 60\n  outbox_alert_rows: 50\n",
    )
    assert "outbox_alert_rows: 50" in text
    clock = ManualClock(START)
    site = load_site(ROOT / "sites" / "demo.yaml")
    stop = asyncio.Event()
    outbox_path = tmp_path / "outbox.sqlite"
    with Outbox(outbox_path) as box:  # what piled up while the database was away
        box.add_bess_many(
            "demo",
            "bess",
            [BatteryReading(T0 + timedelta(minutes=i), 500.0, 0.0, 4, 1) for i in range(120)],
        )
    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        file_agent(
            tmp_path,
            sim,
            clock,
            text=text,
            outbox_path=outbox_path,
            database_url=migrated_url,
            options=AgentOptions(http_port=None, upload_interval_s=0.02),
        ) as rig,
    ):
        task = asyncio.create_task(rig.agent.run(stop))
        await _until(lambda: _telemetry(rig.agent)[1] == "Uploading", "the backlog uploaded")
        stop.set()
        assert await asyncio.wait_for(task, GUARD_S) == 0
        seen = [
            (t.status, t.reason, t.message)
            for t in rig.agent.source.status().snapshot().transitions
            if t.type == ConditionType.TELEMETRY_READY
        ]
    assert [s[:2] for s in seen][-2:] == [("False", "OutboxBacklog"), ("True", "Uploading")]
    assert "120 rows waiting" in seen[-2][2] and "outbox_alert_rows (50)" in seen[-2][2]
    backlog = _events(caplog, "outbox_backlog")
    assert len(backlog) == 1 and backlog[0].levelno == logging.WARNING
    assert len(_events(caplog, "outbox_backlog_cleared")) == 1


@pytest.mark.parametrize(
    ("stats", "down", "expected"),
    [
        (TelemetryStats(pending_rows=10**7, alert_rows=5), None, ("True", "NoDatabase")),
        (TelemetryStats(database="d", consecutive_failures=2), "x", ("False", "UploaderDown")),
        (
            TelemetryStats(database="d", consecutive_failures=2, pending_rows=9, alert_rows=5),
            None,
            ("False", "UploadFailing"),
        ),
        (
            TelemetryStats(database="d", pending_rows=9, alert_rows=5),
            None,
            ("False", "OutboxBacklog"),
        ),
        (TelemetryStats(database="d"), None, ("Unknown", "Pending")),
        (
            TelemetryStats(database="d", pending_rows=5, alert_rows=5, last_success_at=T0),
            None,
            ("True", "Uploading"),
        ),
    ],
)
def test_which_reason_wins(
    stats: TelemetryStats, down: str | None, expected: tuple[str, str]
) -> None:
    verdict = judge(stats, uploader_down=down)
    assert (verdict.status, verdict.reason) == expected
