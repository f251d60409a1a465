"""Upload throughput: N readings from a SQLite outbox into PostgreSQL, against a plain
`COPY` of the same rows by psql in the same run.

    .venv/bin/python bench/ingest.py [--rows 1000000] [--batch-size 50000]
        [--timescale-url postgresql://postgres@127.0.0.1:55432/postgres]

Runs on plain PostgreSQL (--admin-url) and, given a server with TimescaleDB preloaded
(--timescale-url or $FLUX_TEST_TIMESCALE_URL), on TimescaleDB too: the ratio to psql's
COPY into the same hypertables is the figure there (goal >= 0.7). Makes its own database
(unique name) on each server and drops it after.
Half the readings are battery readings, half meter readings, from 4 + 4 devices at one
reading a minute. The uploader run is the production path (Uploader.drain): read and check
every row, COPY in-order readings straight into their tables (meter energy deltas derived
from the stored counters; re-sends and late rows would go through staging and ON CONFLICT),
commit, delete from the outbox, refresh the rollups (concurrently on a second connection,
and once more at the end so they are current when drain returns). The baseline is psql's
`\\copy` of the same rows straight into the same (emptied) tables.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from readings import bess_readings, meter_readings

from reconciler.telemetry import rollups
from reconciler.telemetry.migrations import Flavour, migrate
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader

DEVICES = 4


def psql_copy_file(path: Path, per_kind: int) -> None:
    """The same rows as COPY text, in the tables' column order."""
    with path.open("w") as out:
        for d in range(DEVICES):
            for r in bess_readings(per_kind // DEVICES):
                out.write(
                    f"B\t{r.at.isoformat()}\tbench\tbess{d}\t{r.soe_kwh!r}\t{r.target_power_kw!r}"
                    f"\t\\N\t{r.available_blocks}\t{r.command_source}\n"
                )
    meter_path = path.with_suffix(".meter")
    with meter_path.open("w") as out:
        for d in range(DEVICES):
            for m in meter_readings(per_kind // DEVICES):
                values = "\t".join(
                    repr(v)
                    for v in (
                        m.power_kw,
                        m.frequency_hz,
                        m.voltage_v,
                        m.current_a,
                        m.current_b,
                        m.current_c,
                        m.current_avg,
                        m.power_a_kw,
                        m.power_b_kw,
                        m.power_c_kw,
                        m.reactive_kvar,
                        m.apparent_kva,
                        m.power_factor,
                        m.energy_import_kwh,
                        m.energy_export_kwh,
                    )
                )
                out.write(f"{m.at.isoformat()}\tbench\tmeter{d}\t{values}\n")


#: The uploader's throughput as a share of psql's COPY into the same tables, per flavour.
GOALS = {"postgres": 0.5, "timescale": 0.7}
# What the baseline empties before its COPY (TimescaleDB's aggregates are views: emptying
# the hypertables is enough, and the baseline does not refresh them).
EMPTY = {
    "postgres": "TRUNCATE flux.bess_readings, flux.meter_readings, flux.rollup_dirty,"
    " flux.bess_5m, flux.bess_30m, flux.bess_1h, flux.meter_5m, flux.meter_30m, flux.meter_1h",
    "timescale": "TRUNCATE flux.bess_readings, flux.meter_readings",
}


def measure(admin_url: str, flavour: Flavour, per_kind: int, batch_size: int) -> float:
    """Upload then COPY on one server; prints the figures, returns the ratio."""
    total = (per_kind // DEVICES) * DEVICES * 2
    dbname = f"flux_bench_{uuid.uuid4().hex[:10]}"
    url = admin_url.rsplit("/", 1)[0] + f"/{dbname}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    print(f"== {flavour} ({admin_url.rsplit('/', 1)[0]})")
    try:
        migrate(url, flavour=flavour)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            outbox = Outbox(folder / "outbox.db")
            started = time.perf_counter()
            for d in range(DEVICES):
                outbox.add_bess_many("bench", f"bess{d}", bess_readings(per_kind // DEVICES))
                outbox.add_meter_many("bench", f"meter{d}", meter_readings(per_kind // DEVICES))
            fill_s = time.perf_counter() - started
            print(f"rows: {total:,} ({total // 2:,} battery + {total // 2:,} meter readings)")
            print(f"outbox fill: {fill_s:.2f} s ({total / fill_s:,.0f} rows/s)")

            # TimescaleDB: drain uploads every batch, then refreshes the aggregates once
            # over the range uploaded; the two are timed apart here (the ingest is what
            # the goal is about, the refresh is what a psql COPY leaves undone).
            timescale = flavour == "timescale"
            uploader = Uploader(outbox, url, batch_size=batch_size, refresh_rollups=not timescale)
            started = time.perf_counter()
            result = uploader.drain()
            upload_s = time.perf_counter() - started
            uploader.close()
            if not result.ok or result.total_sent != total:
                sys.exit(f"upload failed: {result}")
            refresh_s = 0.0
            if timescale:
                with psycopg.connect(url, autocommit=True) as conn:
                    row = conn.execute(
                        "SELECT min(time), max(time) FROM flux.meter_readings"
                    ).fetchone()
                    assert row is not None
                    spans = [rollups.span_of(s, row[0], row[1]) for s in rollups.SOURCES]
                    started = time.perf_counter()
                    done = rollups.refresh_timescale(conn, spans)
                    refresh_s = time.perf_counter() - started
                hours = sum(r.hours or 0 for r in done if r.name.endswith("_5m"))
                print(
                    f"uploader ingest: {upload_s:.2f} s = {total / upload_s:,.0f} rows/s"
                    f" (batch {batch_size:,})"
                )
                print(f"rollup refresh of the range uploaded: {refresh_s:.2f} s ({hours:,} hours)")
            upload_rate = total / upload_s
            if not timescale:
                print(
                    f"uploader: {upload_s:.2f} s = {upload_rate:,.0f} rows/s "
                    f"(batch {batch_size:,}; rollups refreshed alongside and at the end:"
                    f" {result.refreshed_hours:,} device-hours)"
                )
            outbox.close()
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT sum(samples) FROM flux.meter_1h").fetchone()
            rolled = int(row[0]) if row and row[0] is not None else 0
            print(
                f"meter readings in the 1 h rollup after the upload: {rolled:,} of {total // 2:,}"
            )

            copy_file = folder / "rows.copy"
            psql_copy_file(copy_file, per_kind)
            bess_file = folder / "rows.bess"
            with copy_file.open() as src, bess_file.open("w") as dst:
                for line in src:
                    dst.write(line[2:])
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(EMPTY[flavour])
                conn.execute("CHECKPOINT")
            meter_cols = (
                "time, site_id, device, power_kw, frequency_hz, voltage_v, current_a, current_b,"
                " current_c, current_avg, power_a_kw, power_b_kw, power_c_kw, reactive_kvar,"
                " apparent_kva, power_factor, energy_import_kwh, energy_export_kwh"
            )
            bess_cols = (
                "time, site_id, device, soe_kwh, target_power_kw, actual_power_kw,"
                " available_blocks, command_source"
            )
            meter_file = copy_file.with_suffix(".meter")
            started = time.perf_counter()
            subprocess.run(
                [
                    "psql",
                    url,
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    f"\\copy flux.bess_readings ({bess_cols}) FROM '{bess_file}'",
                    "-c",
                    f"\\copy flux.meter_readings ({meter_cols}) FROM '{meter_file}'",
                ],
                check=True,
            )
            copy_s = time.perf_counter() - started
            copy_rate = total / copy_s
            ratio = upload_rate / copy_rate
            print(f"psql COPY baseline (same tables): {copy_s:.2f} s = {copy_rate:,.0f} rows/s")
            if timescale:
                with_refresh = total / (upload_s + refresh_s) / copy_rate
                print(f"ratio (ingest + rollup refresh) / COPY on timescale: {with_refresh:.2f}")
            goal = GOALS[flavour]
            verdict = "met" if ratio >= goal else "NOT met"
            what = "uploader ingest" if timescale else "uploader (with its rollup refresh)"
            print(f"ratio {what} / COPY on {flavour}: {ratio:.2f} (goal >= {goal}: {verdict})")
            print(f"goal >= 100,000 rows/s: {'met' if upload_rate >= 100_000 else 'NOT met'}")
            return ratio
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--timescale-url",
        default=os.environ.get("FLUX_TEST_TIMESCALE_URL"),
        help="Admin URL of a server with TimescaleDB preloaded (default $FLUX_TEST_TIMESCALE_URL);"
        " without it only plain PostgreSQL is measured.",
    )
    args = parser.parse_args()
    per_kind = args.rows // 2
    measure(args.admin_url, "postgres", per_kind, args.batch_size)
    if args.timescale_url:
        measure(args.timescale_url, "timescale", per_kind, args.batch_size)
    else:
        print("TimescaleDB NOT measured: pass --timescale-url or set FLUX_TEST_TIMESCALE_URL")


if __name__ == "__main__":
    main()
