"""The uploader: outages, crashes, malformed rows, backlog order, embedded mode."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from reconciler.control.types import BatteryReading, Component, Decision, MeterReading
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.records import to_us
from reconciler.telemetry.uploader import Uploader, UploadResult
from tests.net import free_port

from .conftest import Proxy, url_for

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
FLUX = [sys.executable, "-c", "from reconciler.cli import main; main()"]


def _bess(start: int, n: int) -> list[BatteryReading]:
    return [
        BatteryReading(T0 + timedelta(minutes=i), 500.0 + i, 10.0, 4, 1)
        for i in range(start, start + n)
    ]


def _meters(start: int, n: int) -> list[MeterReading]:
    return [
        MeterReading(T0 + timedelta(minutes=i), power_kw=i % 7, energy_import_kwh=i * 0.5)
        for i in range(start, start + n)
    ]


def _times(url: str, table: str) -> list[datetime]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(f"SELECT time FROM flux.{table} ORDER BY time")]


def test_outage_then_recovery_every_row_exactly_once(
    migrated_url: str, dbname: str, outbox: Outbox, proxy: Proxy
) -> None:
    uploader = Uploader(
        outbox, url_for(dbname, port=proxy.port), batch_size=50, attempts=2, wait_initial_s=0.01
    )
    outbox.add_bess_many("s", "bess", _bess(0, 100))
    assert uploader.upload_once().sent == {"bess": 50}

    proxy.cut()  # the link drops, mid-session
    outbox.add_bess_many("s", "bess", _bess(100, 100))
    for k in range(3):
        down = uploader.upload_once()
        assert not down.ok and "cannot connect" in (down.error or "")
        outbox.add_meter_many("s", "site", _meters(k, 1))  # the loop keeps recording
    assert uploader.state.consecutive_failures == 3
    assert uploader.conditions()["last_error"] == down.error
    assert outbox.counts()["pending"] == 150 + 3

    proxy.start()  # back
    back = uploader.drain()
    assert back.ok, back.error
    assert outbox.counts()["pending"] == 0
    bess = _times(migrated_url, "bess_readings")
    assert bess == [T0 + timedelta(minutes=i) for i in range(200)]
    assert len(_times(migrated_url, "meter_readings")) == 3
    assert uploader.state.consecutive_failures == 0


def test_backlog_drains_oldest_first(migrated_url: str, outbox: Outbox) -> None:
    outbox.add_bess_many("s", "bess", _bess(0, 30))
    uploader = Uploader(outbox, migrated_url, batch_size=10)
    uploader.upload_once()
    outbox.add_bess_many("s", "bess", _bess(30, 5))  # new readings keep arriving
    uploader.upload_once()
    assert _times(migrated_url, "bess_readings") == [T0 + timedelta(minutes=i) for i in range(20)]
    assert uploader.drain().ok
    assert len(_times(migrated_url, "bess_readings")) == 35


async def test_run_uploads_while_new_rows_flow(migrated_url: str, outbox: Outbox) -> None:
    uploader = Uploader(outbox, migrated_url, batch_size=25)
    stop = asyncio.Event()
    task = asyncio.create_task(uploader.run(stop, interval_s=0.01))
    for start in range(0, 200, 20):
        outbox.add_bess_many("s", "bess", _bess(start, 20))
        await asyncio.sleep(0.01)
    for _ in range(500):
        if outbox.pending() == 0 and len(_times(migrated_url, "bess_readings")) == 200:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert _times(migrated_url, "bess_readings") == [T0 + timedelta(minutes=i) for i in range(200)]


def test_sigkill_mid_upload_then_restart_loses_and_doubles_nothing(
    migrated_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    total = 8_000
    with Outbox(path) as box:
        box.add_bess_many("s", "bess", _bess(0, total // 2))
        box.add_meter_many("s", "site", _meters(0, total // 2))
    command = [
        *FLUX,
        "db",
        "upload",
        "--outbox",
        str(path),
        "--database-url",
        migrated_url,
        "--batch-size",
        "400",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stored = 0
        for _ in range(2000):
            with psycopg.connect(migrated_url) as conn:
                row = conn.execute(
                    "SELECT (SELECT count(*) FROM flux.bess_readings)"
                    " + (SELECT count(*) FROM flux.meter_readings)"
                ).fetchone()
            stored = int(row[0]) if row else 0
            if stored > 0 or proc.poll() is not None:
                break
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the uploader finished before it could be killed"
    assert 0 < stored < total

    with Outbox(path) as box:
        pending_after_kill = box.counts()["pending"]
    assert pending_after_kill > 0

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    with Outbox(path) as box:
        assert box.counts()["pending"] == 0
    assert _times(migrated_url, "bess_readings") == [
        T0 + timedelta(minutes=i) for i in range(total // 2)
    ]
    assert _times(migrated_url, "meter_readings") == [
        T0 + timedelta(minutes=i) for i in range(total // 2)
    ]
    with psycopg.connect(migrated_url) as conn:
        # Rollups agree with the raw rows: each 5-minute bucket holds 5 readings.
        assert conn.execute("SELECT sum(samples), min(samples) FROM flux.meter_5m").fetchone() == (
            total // 2,
            5,
        )
        # Every delta of 0.5 kWh was derived once (the first reading has none).
        (energy,) = conn.execute("SELECT sum(energy_import_kwh) FROM flux.meter_5m").fetchone()
        assert energy == pytest.approx((total // 2 - 1) * 0.5)


def test_malformed_rows_are_quarantined_with_a_clear_error(
    migrated_url: str, outbox: Outbox
) -> None:
    outbox.add_bess_many("s", "bess", _bess(0, 3))
    good_us = to_us(T0 + timedelta(minutes=10))
    corrupt = [
        ("bess", "s", "bess", "{not json", "not valid JSON"),
        ("bess", "s", "bess", "[1, 2, 3]", "list of 6 values"),
        ("meter", "s", "m", f'[{good_us}, "x"' + ", 0" * 14 + "]", "must all be numbers"),
        ("meter", "s", "m", f"[{good_us}" + ", NaN" * 15 + "]", "non-finite number NaN"),
        ("bess", "s", "bess", "[12, 1, 2, null, 0, 0]", "between 2000 and 2200"),
        ("volcano", "s", "x", "[]", "unknown record kind 'volcano'"),
        ("bess", "s", "bess", b"\xff\xfe\x00", "not UTF-8"),
        ("decision", "s", "", '{"at": 1}', "a decision lacks"),
        # Parses, but the database rejects it: available_blocks does not fit an integer.
        (
            "bess",
            "s",
            "bess",
            f"[{good_us}, 1, 2, null, 99999999999, 0]",
            "rejected by the database",
        ),
    ]
    with sqlite3.connect(outbox.path) as raw:
        raw.executemany(
            "INSERT INTO outbox (kind, site_id, device, payload) VALUES (?, ?, ?, ?)",
            [c[:4] for c in corrupt],
        )
    outbox.add_bess_many("s", "bess", _bess(3, 2))
    decision = Decision(
        T0, -50.0, "charge to SoE", components=(Component("w", "charge_to_soe", 5, -50.0),)
    )
    outbox.add_decision("s", "abc123", decision)

    result = Uploader(outbox, migrated_url).drain()
    assert result.ok, result.error
    assert result.sent == {"bess": 5, "decision": 1}
    assert result.quarantined == len(corrupt)
    counts = outbox.counts()
    assert counts["pending"] == 0 and counts["quarantined"] == len(corrupt)
    quarantined = sorted(outbox.quarantined(), key=lambda q: q.outbox_id)
    for row, (_, _, _, payload, expected) in zip(quarantined, corrupt, strict=True):
        assert expected in row.error
        assert row.payload == payload  # kept as it was, for inspection
    assert len(_times(migrated_url, "bess_readings")) == 5
    assert "quarantined" in outbox.condition().message


def test_embedded_default_keeps_everything(outbox: Outbox) -> None:
    outbox.add_bess_many("s", "bess", _bess(0, 4))
    result = Uploader(outbox, None).upload_once()
    assert result.ok and result.total_sent == 0 and result.remaining == 4
    latest = outbox.latest_per_device()
    assert [(r.device, r.at, r.values["soe_kwh"]) for r in latest] == [
        ("bess", T0 + timedelta(minutes=3), 503.0)
    ]


def test_backlog_over_limit_raises_a_condition_and_keeps_going(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", max_rows=5) as box:
        box.add_bess_many("s", "bess", _bess(0, 5))
        assert not box.over_limit
        box.add_bess("s", "bess", _bess(5, 1)[0])
        assert box.over_limit
        assert "more than the configured 5" in box.condition().message
        conditions = Uploader(box, None).conditions()
        assert conditions["backlog_over_limit"] is True and conditions["pending"] == 6
        box.add_bess("s", "bess", _bess(6, 1)[0])  # still accepted
        assert box.pending() == 7


def test_outbox_survives_kill_of_its_writer(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    script = (
        "import sys\n"
        "from datetime import UTC, datetime, timedelta\n"
        "from reconciler.control.types import BatteryReading\n"
        "from reconciler.telemetry.outbox import Outbox\n"
        f"box = Outbox({str(path)!r})\n"
        "t = datetime(2026, 1, 1, tzinfo=UTC)\n"
        "i = 0\n"
        "while True:\n"
        "    box.add_bess('s', 'bess', BatteryReading(t + timedelta(minutes=i), 1.0, 0.0))\n"
        "    i += 1\n"
        "    if i == 50:\n"
        "        print('ready', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with Outbox(path) as box:
        rows = box.latest("bess", limit=1_000_000)
    minutes = sorted(
        int((r.at - datetime(2026, 1, 1, tzinfo=UTC)).total_seconds() // 60) for r in rows
    )
    assert len(minutes) >= 50
    assert minutes == list(range(len(minutes)))  # every committed row, in order, no holes


def test_upload_cli_unreachable_database_exit_2(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        box.add_bess_many("s", "bess", _bess(0, 1))
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/flux"
    result = subprocess.run(
        [*FLUX, "db", "upload", "--outbox", str(tmp_path / "o.db"), "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "cannot connect to the database" in result.stderr
    assert "Traceback" not in result.stderr


def test_duplicates_inside_one_batch_are_stored_once(migrated_url: str, outbox: Outbox) -> None:
    outbox.add_bess_many("s", "bess", _bess(0, 3))
    outbox.add_bess_many("s", "bess", _bess(1, 3))  # minutes 1 and 2 again, then 3
    outbox.add_meter_many("s", "site", _meters(0, 2) + _meters(0, 2))
    result = Uploader(outbox, migrated_url).drain()
    assert result.ok, result.error
    assert result.sent == {"bess": 6, "meter": 4}
    assert result.inserted == {"bess": 4, "meter": 2}
    assert _times(migrated_url, "bess_readings") == [T0 + timedelta(minutes=i) for i in range(4)]
    with psycopg.connect(migrated_url) as conn:
        (energy,) = conn.execute("SELECT sum(energy_import_kwh) FROM flux.meter_5m").fetchone()
    assert energy == pytest.approx(0.5)  # one delta, 0 -> 0.5 kWh, counted once


async def test_a_locked_outbox_fails_a_round_and_the_uploader_goes_on(
    migrated_url: str, tmp_path: Path
) -> None:
    box = Outbox(tmp_path / "outbox.db", busy_timeout_s=0.05)
    uploader = Uploader(box, migrated_url, attempts=1, wait_initial_s=0.01)
    box.add_bess_many("s", "bess", _bess(0, 10))
    # Another process holds the outbox's write lock (a backup, `sqlite3` by hand, ...).
    holder = sqlite3.connect(box.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    rounds: list[bool] = []
    errors: list[str] = []

    def seen(result: UploadResult) -> None:
        rounds.append(result.ok)
        if not result.ok:
            errors.append(result.error or "")

    stop = asyncio.Event()
    task = asyncio.create_task(uploader.run(stop, interval_s=0.01, on_result=seen))
    for _ in range(2000):
        if errors or task.done():
            break
        await asyncio.sleep(0.01)
    assert not task.done(), "the uploader died on a locked outbox"
    assert "database is locked" in errors[0] and str(box.path) in errors[0]
    holder.execute("ROLLBACK")
    holder.close()
    for _ in range(2000):
        if (rounds[-1] and box.pending() == 0) or task.done():
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=30)
    assert box.pending() == 0
    # Sent before the lock was noticed, re-sent after: in the database exactly once.
    assert _times(migrated_url, "bess_readings") == [T0 + timedelta(minutes=i) for i in range(10)]
    uploader.close()
    box.close()
