"""Migration 0011 (received_at): rows stored before it keep an unknown arrival (NULL, not
the migration's time, which would make every old row look late); rows inserted after it,
as the uploader inserts them (naming their columns), get their transaction's time. On
each flavour (TimescaleDB's hypertables too, with FLUX_TEST_TIMESCALE_URL)."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import psycopg

from reconciler.telemetry.migrations import migrate
from tests.pg import Server

RECEIVED_AT = 11


def test_received_at_is_null_before_the_migration_and_now_after(
    pg_url: str, flux_server: Server, tmp_path: Path
) -> None:
    before = tmp_path / "sql"
    before.mkdir()
    for f in (resources.files("reconciler.telemetry") / "sql").iterdir():
        if f.name.endswith(".sql") and int(f.name[:4]) < RECEIVED_AT:
            with resources.as_file(f) as path:
                shutil.copy(path, before / f.name)
    migrate(pg_url, sql_dir=before)
    insert_bess = (
        "INSERT INTO flux.bess_readings (time, site_id, device, soe_kwh, target_power_kw,"
        " available_blocks, command_source) VALUES (%s, 's', 'b', 1, 0, 1, 1)"
    )
    insert_meter = (
        "INSERT INTO flux.meter_readings (time, site_id, device, power_kw, frequency_hz,"
        " voltage_v, current_a, current_b, current_c, current_avg, power_a_kw, power_b_kw,"
        " power_c_kw, reactive_kvar, apparent_kva, power_factor, energy_import_kwh,"
        " energy_export_kwh) VALUES (%s, 's', 'm', 1, 50, 230, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,"
        " 0, 0)"
    )
    with psycopg.connect(pg_url) as conn:
        conn.execute(insert_bess, ("2024-01-01T00:00Z",))
        conn.execute(insert_meter, ("2024-01-01T00:00Z",))
    assert RECEIVED_AT in migrate(pg_url).applied
    with psycopg.connect(pg_url) as conn:
        conn.execute(insert_bess, ("2024-01-01T00:01Z",))
        conn.execute(insert_meter, ("2024-01-01T00:01Z",))
        now = conn.execute("SELECT now()").fetchone()
        for table in ("bess_readings", "meter_readings"):
            rows = conn.execute(
                f"SELECT to_char(time AT TIME ZONE 'UTC', 'HH24:MI'), received_at"
                f" FROM flux.{table} ORDER BY time"
            ).fetchall()
            assert rows == [("00:00", None), ("00:01", now[0] if now else None)], table


def test_readers_see_received_at_through_the_api(migrated_url: str) -> None:
    with psycopg.connect(migrated_url) as conn:
        for view in ("bess_readings", "meter_readings"):
            columns = [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = 'api' AND table_name = %s",
                    (view,),
                )
            ]
            assert "received_at" in columns, view
