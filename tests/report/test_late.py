"""Late uploads in the report's data quality: readings an agent's outbox held while the
database was unreachable reach it when it comes back, through the production upload
path, and the report counts per device the rows that arrived more than 10 minutes after
their time (received_at, migration 0011) and the worst delay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.control.types import BatteryReading, MeterReading
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader
from tests.net import free_port
from tests.pg import Server, database, url_for
from tests.report.conftest import DEMO

BACKLOG_MIN = 90  # the agent's link was down from this many minutes ago ...
BACK_MIN = 15  # ... to this many (well clear of the 10 minute threshold)
PROMPT_MIN = 5  # then these last minutes are uploaded as they are read


@pytest.fixture
def fresh_url(template_db: str, flux_server: Server) -> Iterator[str]:
    with database(flux_server, template_db) as name:
        yield url_for(name)


def add(outbox: Outbox, times: list[datetime]) -> None:
    outbox.add_bess_many(
        "demo", "bess", [BatteryReading(t, 600.0 - k, 60.0, 9, 1) for k, t in enumerate(times)]
    )
    outbox.add_meter_many("demo", "site", [MeterReading(t, 20.0) for t in times])


def test_a_backlog_drained_after_an_outage_is_late(fresh_url: str, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    outbox = Outbox(tmp_path / "outbox.db")
    try:
        # The readings of the outage: the uploader cannot reach the database (nobody
        # listens on the port), so they wait in the outbox.
        backlog = [now - timedelta(minutes=m) for m in range(BACKLOG_MIN, BACK_MIN - 1, -1)]
        add(outbox, backlog)
        down = Uploader(outbox, url_for("x", port=free_port()), attempts=1,
                        connect_timeout_s=2)  # fmt: skip
        try:
            assert not down.drain().ok
        finally:
            down.close()
        # The database is back: the backlog and the minutes since go up in one drain.
        prompt = [now - timedelta(minutes=m) for m in range(PROMPT_MIN, 0, -1)]
        add(outbox, prompt)
        up = Uploader(outbox, fresh_url)
        try:
            result = up.drain()
        finally:
            up.close()
        assert result.ok, result.error
    finally:
        outbox.close()
    uploaded = datetime.now(UTC)

    with psycopg.connect(fresh_url) as conn:
        row = conn.execute(
            "SELECT min(received_at), max(received_at), count(*) FILTER"
            " (WHERE received_at IS NULL) FROM flux.bess_readings"
        ).fetchone()
    assert row is not None and row[2] == 0 and now <= row[0] <= row[1] <= uploaded

    today = now.astimezone(ZoneInfo("Europe/London")).date()
    result = CliRunner().invoke(
        cli,
        ["report", str(DEMO), "--from", (today - timedelta(days=1)).isoformat(),
         "--to", (today + timedelta(days=1)).isoformat(), "--database-url", fresh_url,
         "--output", "json", "--no-optimum"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    q = json.loads(result.stdout)["quality"]
    assert q["late_after_minutes"] == 10 and q["arrivals_recorded"] is True
    slack = (uploaded - now).total_seconds() / 60 + 0.1
    for device in ("bess", "site"):
        d = q["devices"][device]
        assert d["rows"] == len(backlog) + len(prompt)
        # The backlog is 15 to 90 minutes old at upload, the prompt minutes at most 5.
        assert d["late_rows"] == len(backlog)
        assert BACKLOG_MIN <= d["worst_delay_minutes"] <= BACKLOG_MIN + slack
        assert d["arrival_unknown_rows"] == 0
    assert set(q["devices"]) == {"bess", "site"}


def test_old_rows_are_late_and_rows_from_before_0011_unknown(
    fresh_url: str, tmp_path: Path
) -> None:
    # An hour of January 2024 uploaded today (as `flux db upload` of an old outbox would).
    start = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
    outbox = Outbox(tmp_path / "outbox.db")
    try:
        add(outbox, [start + timedelta(minutes=m) for m in range(60)])
        up = Uploader(outbox, fresh_url)
        try:
            assert up.drain().ok
        finally:
            up.close()
    finally:
        outbox.close()
    # The battery's rows as a database migrated before 0011 holds them.
    with psycopg.connect(fresh_url) as conn:
        conn.execute("UPDATE flux.bess_readings SET received_at = NULL")
    result = CliRunner().invoke(
        cli,
        ["report", str(DEMO), "--from", "2024-01-15", "--to", "2024-01-16",
         "--database-url", fresh_url, "--output", "json", "--no-optimum"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    devices = json.loads(result.stdout)["quality"]["devices"]
    bess, site = devices["bess"], devices["site"]
    assert bess["arrival_unknown_rows"] == bess["rows"] == 60
    assert bess["late_rows"] == 0 and bess["worst_delay_minutes"] is None
    years = (datetime.now(UTC) - start).total_seconds() / 60
    assert site["late_rows"] == site["rows"] == 60
    assert site["worst_delay_minutes"] == pytest.approx(years, abs=2)
