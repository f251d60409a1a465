"""The rollups as a store, on both flavours: a backlog of any age is rolled up by the
upload itself, `flux db refresh` says what it refreshed and rebuilds a range, retention
removes only raw readings the rollups already cover, and an agent's uploads reach the
rollups through `flux db refresh`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from reconciler.cli import cli
from reconciler.control.types import BatteryReading, FrequencyRecord, MeterReading
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader
from tests.net import free_port
from tests.pg import Server

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
#: A backlog far older than anything stored (and than any policy's look-back).
OLD = datetime(2024, 1, 15, 9, 0, tzinfo=UTC)


def _fill(outbox: Outbox, start: datetime, minutes: int, site: str = "wlce") -> None:
    for i in range(minutes):
        at = start + timedelta(minutes=i)
        outbox.add_bess(site, "bess", BatteryReading(at, 100.0 + i, -5.0, 4, 1))
        meter = MeterReading(
            at=at,
            power_kw=float(i),
            frequency_hz=50.0,
            voltage_v=400.0,
            energy_import_kwh=1000.0 + i,
            energy_export_kwh=0.0,
        )
        outbox.add_meter(site, "site", meter)


def _one(url: str, sql: str, *args: object) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, args).fetchone()
    assert row is not None
    return row[0]


def _samples(url: str, table: str, lo: datetime, hi: datetime) -> int:
    return int(
        _one(
            url,
            f"SELECT coalesce(sum(samples), 0) FROM flux.{table}"
            " WHERE bucket >= %s AND bucket < %s",
            lo,
            hi,
        )
    )


def _db(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["db", *args, "--database-url", url])


def test_an_old_backlog_is_rolled_up_by_its_upload(migrated_url: str, outbox: Outbox) -> None:
    uploader = Uploader(outbox, migrated_url)
    _fill(outbox, NOW - timedelta(hours=2), 60)
    assert uploader.drain().ok
    # An hour from January 2024 arrives after newer data was rolled up (a Pi that was
    # offline, an outbox copied off a dead one).
    _fill(outbox, OLD, 60)
    result = uploader.drain()
    uploader.close()
    assert result.ok and result.refreshed_hours > 0
    for table in ("bess_5m", "meter_5m", "bess_30m", "meter_30m", "bess_1h", "meter_1h"):
        assert _samples(migrated_url, table, OLD, OLD + timedelta(hours=1)) == 60, table
        recent = _samples(migrated_url, table, NOW - timedelta(hours=2), NOW)
        assert recent == 60, table
    energy = _one(
        migrated_url,
        "SELECT energy_import_kwh FROM flux.meter_1h WHERE bucket = %s",
        OLD,
    )
    assert energy == pytest.approx(59.0)


def test_refresh_says_what_it_refreshed_then_that_nothing_is_left(
    migrated_url: str, outbox: Outbox
) -> None:
    _fill(outbox, OLD, 90)
    assert Uploader(outbox, migrated_url, refresh_rollups=False).drain().ok
    assert _samples(migrated_url, "meter_1h", OLD, OLD + timedelta(hours=2)) == 0
    result = _db(migrated_url, "refresh")
    assert result.exit_code == 0, result.output
    assert "refreshed flux.meter_5m" in result.output
    assert "2024-01-15T09:00:00+00:00 .. 2024-01-15T11:00:00+00:00" in result.output
    assert _samples(migrated_url, "meter_1h", OLD, OLD + timedelta(hours=2)) == 90
    again = _db(migrated_url, "refresh")
    assert again.exit_code == 0, again.output
    assert "nothing to refresh" in again.output


def test_refresh_from_to_rebuilds_that_range(migrated_url: str, outbox: Outbox) -> None:
    _fill(outbox, OLD, 120)
    assert Uploader(outbox, migrated_url, refresh_rollups=False).drain().ok
    result = _db(
        migrated_url, "refresh", "--from", "2024-01-15T10:00Z", "--to", "2024-01-15T11:00Z",
        "--output", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    # The range asked for (PostgreSQL also takes what was pending anyway).
    wanted = ("2024-01-15T10:00:00+00:00", "2024-01-15T11:00:00+00:00")
    assert report["refreshed"]
    for step in report["refreshed"]:
        assert step["from"] <= wanted[0] and step["to"] >= wanted[1], step
    hour = OLD + timedelta(hours=1)
    assert _samples(migrated_url, "bess_1h", hour, hour + timedelta(hours=1)) == 60


def test_refresh_from_after_to_is_a_usage_error(migrated_url: str) -> None:
    result = _db(migrated_url, "refresh", "--from", "2024-01-02", "--to", "2024-01-01")
    assert result.exit_code == 2
    assert "--to must be after --from" in result.output


def _seconds(start: datetime, n: int) -> list[FrequencyRecord]:
    """Frequency response's records, one a second from ``start``."""
    return [FrequencyRecord(start + timedelta(seconds=s), 49.9, 8.0, 8.5, 3.0) for s in range(n)]


def test_retention_keeps_the_rollups_of_what_it_removes(migrated_url: str, outbox: Outbox) -> None:
    _fill(outbox, OLD, 60)
    _fill(outbox, NOW - timedelta(hours=1), 30)
    outbox.add_frequency_many("wlce", "bess", _seconds(OLD, 120))
    outbox.add_frequency_many("wlce", "bess", _seconds(NOW - timedelta(hours=1), 45))
    # Not rolled up yet when retention is applied: the refresh must do it first.
    assert Uploader(outbox, migrated_url, refresh_rollups=False).drain().ok
    shown = _db(migrated_url, "policy")
    assert "kept forever (off)" in shown.output
    bad = _db(migrated_url, "policy", "--retention", "2 fortnights")
    assert bad.exit_code == 2 and "such as 2y" in bad.output
    set_ = _db(migrated_url, "policy", "--retention", "1y")
    assert set_.exit_code == 0, set_.output
    assert "raw readings kept 1 years" in set_.output
    result = _db(migrated_url, "refresh")
    assert result.exit_code == 0, result.output
    assert "retention: raw readings before" in result.output
    old_raw = _one(
        migrated_url,
        "SELECT count(*) FROM flux.meter_readings WHERE time < %s",
        NOW - timedelta(days=300),
    )
    assert old_raw == 0
    assert _one(migrated_url, "SELECT count(*) FROM flux.meter_readings") == 30
    for table in ("meter_5m", "meter_30m", "meter_1h", "bess_5m", "bess_1h"):
        assert _samples(migrated_url, table, OLD, OLD + timedelta(hours=1)) == 60, table
    # Frequency response's records likewise: the old ones go, their rollups stay.
    assert _one(migrated_url, "SELECT count(*) FROM flux.frequency_records") == 45
    for table in ("frequency_5m", "frequency_30m", "frequency_1h"):
        assert _samples(migrated_url, table, OLD, OLD + timedelta(hours=1)) == 120, table
    # A later refresh does not take the removed range for a change to roll up.
    assert _db(migrated_url, "refresh").exit_code == 0
    assert _samples(migrated_url, "meter_1h", OLD, OLD + timedelta(hours=1)) == 60


def test_an_agents_uploads_reach_the_rollups(
    migrated_url: str, agent_for: Callable[[str], str], outbox: Outbox, flux_server: Server
) -> None:
    agent = agent_for("wlce")
    uploader = Uploader(outbox, agent)
    _fill(outbox, NOW - timedelta(hours=1), 30)
    assert uploader.drain().ok
    _fill(outbox, OLD, 60)
    assert uploader.drain().ok
    uploader.close()
    # The agent cannot read the rollups, and (TimescaleDB) cannot refresh them; the
    # owner's refresh rolls up everything it uploaded, the old backlog too.
    with psycopg.connect(agent) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT count(*) FROM flux.meter_5m")
    assert _db(migrated_url, "refresh").exit_code == 0
    assert _samples(migrated_url, "meter_1h", OLD, OLD + timedelta(hours=1)) == 60
    assert _samples(migrated_url, "bess_5m", NOW - timedelta(hours=1), NOW) == 30
    if flux_server.flavour == "timescale":
        refused = _db(agent, "refresh")
        assert refused.exit_code == 2 and "owner of the continuous aggregates" in refused.output


def test_an_agent_reads_nothing_of_other_sites(
    migrated_url: str, agent_for: Callable[[str], str], outbox: Outbox
) -> None:
    _fill(outbox, OLD, 10, site="hmce")
    assert Uploader(outbox, migrated_url).drain().ok
    with psycopg.connect(agent_for("wlce")) as conn:
        for table in ("bess_readings", "meter_readings", "sites", "devices"):
            seen = conn.execute(f"SELECT count(*) FROM flux.{table} WHERE site_id = 'hmce'")
            assert seen.fetchone() == (0,), table
        for table in ("meter_5m", "bess_1h", "settings"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(f"SELECT count(*) FROM flux.{table}")


def _follow(url: str, *, up: bool = True) -> subprocess.Popen[str]:
    """`flux db refresh --every 1` as the service runs it (deploy/flux-rollups.service),
    once it says it is running (``up``)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "db", "refresh", "--every", "1",
         "--database-url", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    if up:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert "keeping the rollups of" in first and "current every 1 s" in first, first
    return proc


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def _wait_for(check: Callable[[], bool], proc: subprocess.Popen[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the rollups did not catch up"
        time.sleep(0.2)


def test_the_refresh_service_rolls_up_an_agents_backlog_as_it_arrives(
    migrated_url: str, agent_for: Callable[[str], str], outbox: Outbox, flux_server: Server
) -> None:
    agent = agent_for("wlce")
    service = _follow(migrated_url)
    try:
        # Uploaded by the agent's role while the service runs: an old backlog, which
        # TimescaleDB's agent cannot refresh itself.
        _fill(outbox, OLD, 60)
        uploader = Uploader(outbox, agent)
        assert uploader.drain().ok
        uploader.close()
        _wait_for(
            lambda: _samples(migrated_url, "meter_1h", OLD, OLD + timedelta(hours=1)) == 60,
            service,
            seconds=60,
        )
        assert _samples(migrated_url, "bess_30m", OLD, OLD + timedelta(hours=1)) == 60
    finally:
        code, out, err = _stop(service)
    assert code == 0, err
    assert "Traceback" not in err
    if flux_server.flavour == "timescale":
        # It says what it refreshed, once, with the time; quiet rounds print nothing.
        lines = [line for line in out.splitlines() if "flux.meter_5m/30m/1h" in line]
        assert len(lines) == 1, out
        assert "2024-01-15T09:00:00+00:00 .. 2024-01-15T10:00:00+00:00" in lines[0]
        datetime.fromisoformat(lines[0].split(" ")[0])
        assert "nothing to refresh" not in out


def test_the_refresh_service_waits_for_a_database_that_is_down() -> None:
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/flux"
    service = _follow(down)
    try:
        time.sleep(2.5)
        assert service.poll() is None, service.communicate()
    finally:
        code, _, err = _stop(service)
    assert code == 0, err
    assert "trying again in 1 s" in err and "Traceback" not in err


def test_the_refresh_service_refuses_an_agent_role_at_once(
    agent_for: Callable[[str], str],
) -> None:
    agent = agent_for("wlce")
    service = _follow(agent, up=False)
    # Only the owner may refresh (TimescaleDB: the aggregates'; PostgreSQL: the dirty
    # list's): said at once, not retried.
    _, err = service.communicate(timeout=30)
    assert service.returncode == 2
    assert "Traceback" not in err
    assert "owner of the continuous aggregates" in err or "ran `flux db migrate`" in err, err


def test_every_and_from_together_are_a_usage_error(migrated_url: str) -> None:
    result = _db(migrated_url, "refresh", "--every", "60", "--from", "2024-01-01")
    assert result.exit_code == 2
    assert "--from rebuilds once" in result.output
