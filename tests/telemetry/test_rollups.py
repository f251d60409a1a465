"""Rollups at 5 m, 30 m and 1 h against a hand-computed fixture, with a counter reset,
batches that split the series, and a late (out-of-order) arrival."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.control.types import BatteryReading, MeterReading
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader
from tests.pg import Server

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# One reading a minute, 09:00..09:11 (buckets 09:00, 09:05, 09:10).
POWER = [10, 20, 30, 40, 50, -10, -20, 0, 5, 5, 1, 3]
# Import counter; at 09:06 the meter reset (105 -> 2): the delta is the new value, 2.
IMPORT = [100.0, 101.0, 103.0, 103.5, 104.0, 105.0, 2.0, 3.0, 3.0, 4.5, 5.0, 7.0]
EXPORT = [50.0 + 0.25 * i for i in range(12)]
SOE = [100, 110, 120, 130, 140, 150, 140, 130, 120, 110, 100, 90]

# Deltas per reading: 0 (no predecessor), 1, 2, .5, .5 | 1, 2 (reset), 1, 0, 1.5 | .5, 2
EXPECTED_METER_5M = [
    # bucket minute, samples, avg, min, max, import kWh, export kWh
    (0, 5, 30.0, 10.0, 50.0, 4.0, 1.0),
    (5, 5, -4.0, -20.0, 5.0, 5.5, 1.25),
    (10, 2, 2.0, 1.0, 3.0, 2.5, 0.5),
]
EXPECTED_METER_30M = (12, 134 / 12, -20.0, 50.0, 12.0, 2.75)
EXPECTED_BESS_5M = [
    # bucket minute, samples, soe avg, min, max, actual samples, actual avg
    (0, 5, 120.0, 100.0, 140.0, 2, 6.0),
    (5, 5, 130.0, 110.0, 150.0, 0, None),
    (10, 2, 95.0, 90.0, 100.0, 0, None),
]


def _meter(i: int) -> MeterReading:
    return MeterReading(
        at=T0 + timedelta(minutes=i),
        power_kw=POWER[i],
        frequency_hz=50.0,
        voltage_v=400.0,
        energy_import_kwh=IMPORT[i],
        energy_export_kwh=EXPORT[i],
    )


def _fill(outbox: Outbox, minutes: range) -> None:
    for i in minutes:
        reading = BatteryReading(T0 + timedelta(minutes=i), SOE[i], -5.0, 4, 1)
        outbox.add_bess("wlce", "bess", reading, actual_power_kw=[5.0, 7.0][i] if i < 2 else None)
        outbox.add_meter("wlce", "site", _meter(i))


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def _check(url: str) -> None:
    meter = _rows(
        url,
        "SELECT bucket, samples, power_avg_kw, power_min_kw, power_max_kw, energy_import_kwh,"
        " energy_export_kwh FROM flux.meter_5m ORDER BY bucket",
    )
    assert len(meter) == len(EXPECTED_METER_5M)
    for got, (minute, n, avg, lo, hi, imp, exp) in zip(meter, EXPECTED_METER_5M, strict=True):
        assert got[0] == T0 + timedelta(minutes=minute)
        assert got[1] == n
        assert got[2:] == pytest.approx((avg, lo, hi, imp, exp))
    for table in ("meter_30m", "meter_1h"):
        (row,) = _rows(
            url,
            "SELECT bucket, samples, power_avg_kw, power_min_kw, power_max_kw,"
            f" energy_import_kwh, energy_export_kwh FROM flux.{table}",
        )
        assert row[0] == T0
        assert row[1] == EXPECTED_METER_30M[0]
        assert row[2:] == pytest.approx(EXPECTED_METER_30M[1:])
    bess = _rows(
        url,
        "SELECT bucket, samples, soe_avg_kwh, soe_min_kwh, soe_max_kwh, actual_samples,"
        " actual_power_avg_kw FROM flux.bess_5m ORDER BY bucket",
    )
    for got, (minute, n, avg, lo, hi, an, aavg) in zip(bess, EXPECTED_BESS_5M, strict=True):
        assert got[0] == T0 + timedelta(minutes=minute)
        assert (got[1], got[5]) == (n, an)
        assert got[2:5] == pytest.approx((avg, lo, hi))
        assert got[6] == (pytest.approx(aavg) if aavg is not None else None)
    for table in ("bess_30m", "bess_1h"):
        (row,) = _rows(
            url,
            "SELECT samples, soe_avg_kwh, soe_min_kwh, soe_max_kwh, actual_samples,"
            f" actual_power_avg_kw FROM flux.{table}",
        )
        assert row == pytest.approx((12, 120.0, 90.0, 150.0, 2, 6.0))


def test_rollups_match_the_hand_computed_fixture(migrated_url: str, outbox: Outbox) -> None:
    _fill(outbox, range(12))
    # Batches of 7 rows split the series, so deltas must be seeded from stored readings.
    result = Uploader(outbox, migrated_url, batch_size=7).drain()
    assert result.ok and result.sent == {"bess": 12, "meter": 12}
    _check(migrated_url)


def test_a_late_batch_rederives_its_successors(migrated_url: str, outbox: Outbox) -> None:
    uploader = Uploader(outbox, migrated_url)
    _fill(outbox, range(6, 12))
    assert uploader.drain().ok
    _fill(outbox, range(3))  # the gap 09:03..09:05 stays open for now
    assert uploader.drain().ok
    _fill(outbox, range(3, 6))
    assert uploader.drain().ok
    _check(migrated_url)


def test_resent_rows_change_nothing(migrated_url: str, outbox: Outbox) -> None:
    uploader = Uploader(outbox, migrated_url)
    _fill(outbox, range(12))
    assert uploader.drain().inserted == {"bess": 12, "meter": 12}
    _fill(outbox, range(12))  # the same readings again, as after a crash before the delete
    again = uploader.drain()
    assert again.sent == {"bess": 12, "meter": 12}
    assert again.inserted == {"bess": 0, "meter": 0}
    _check(migrated_url)


def test_cli_refresh_rebuilds_rollups(
    migrated_url: str, outbox: Outbox, flux_server: Server
) -> None:
    _fill(outbox, range(12))
    assert Uploader(outbox, migrated_url, refresh_rollups=False).drain().ok
    # 30 m is materialised only on both flavours (5 m is real-time on TimescaleDB).
    assert _rows(migrated_url, "SELECT count(*) FROM flux.meter_30m") == [(0,)]
    result = CliRunner().invoke(cli, ["db", "refresh", "--database-url", migrated_url])
    assert result.exit_code == 0, result.output
    assert "refreshed flux.meter_5m" in result.output
    if flux_server.flavour == "postgres":
        assert "2 device-hour(s) recomputed" in result.output
    _check(migrated_url)
