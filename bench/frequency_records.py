"""Upload throughput of frequency response's one-second records (the largest stream an
agent sends: 86,400 rows a day while the mode is active), against a plain COPY of the
same rows into the same table in the same run.

    .venv/bin/python bench/frequency_records.py [--rows 864000] [--batch-size 50000]
        [--timescale-url postgresql://postgres@127.0.0.1:55432/postgres]

The uploader run is the production path (Uploader.drain): read and check every row, COPY
them straight into flux.frequency_records (in order: no staging), commit, delete from the
outbox, refresh the 5 m / 30 m / 1 h rollups (on TimescaleDB timed apart, as in
bench/ingest.py). The baseline is one COPY of the same rows as text into the emptied
table. Makes its own database (unique name) on each server and drops it after.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from reconciler.control.types import FrequencyRecord
from reconciler.telemetry import rollups
from reconciler.telemetry.migrations import Flavour, migrate
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader

T0 = datetime(2026, 1, 1, tzinfo=UTC)
#: The same goals as the readings' (bench/ingest.py).
GOALS = {"postgres": 0.5, "timescale": 0.7}


def records(n: int) -> Iterator[FrequencyRecord]:
    """A wandering frequency with an event now and then; the response and delivery follow."""
    for i in range(n):
        hz = 50.0 + 0.08 * ((i % 613) / 613 - 0.5) - (0.5 if i % 3600 < 30 else 0.0)
        expected = 300.0 if hz <= 49.5 else 0.0 if i % 97 else None
        yield FrequencyRecord(
            T0 + timedelta(seconds=i), hz, expected, 295.5 if hz <= 49.5 else 1.25, 9.0, False
        )


def measure(admin_url: str, flavour: Flavour, n: int, batch_size: int) -> float:
    dbname = f"flux_bench_{uuid.uuid4().hex[:10]}"
    url = admin_url.rsplit("/", 1)[0] + f"/{dbname}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    print(f"== {flavour} ({admin_url.rsplit('/', 1)[0]})")
    try:
        migrate(url, flavour=flavour)
        timescale = flavour == "timescale"
        with tempfile.TemporaryDirectory() as tmp:
            outbox = Outbox(Path(tmp) / "outbox.db")
            outbox.add_frequency_many("bench", "bess", records(n))
            uploader = Uploader(outbox, url, batch_size=batch_size, refresh_rollups=not timescale)
            started = time.perf_counter()
            result = uploader.drain()
            upload_s = time.perf_counter() - started
            uploader.close()
            outbox.close()
        if not result.ok or result.total_sent != n:
            sys.exit(f"upload failed: {result}")
        if timescale:
            with psycopg.connect(url, autocommit=True) as conn:
                span = rollups.span_of("frequency", T0, T0 + timedelta(seconds=n - 1))
                started = time.perf_counter()
                rollups.refresh_timescale(conn, [span])
                refresh_s = time.perf_counter() - started
                print(f"rollup refresh of the range uploaded: {refresh_s:.2f} s")
        upload_rate = n / upload_s
        print(f"uploader: {n:,} records in {upload_s:.2f} s = {upload_rate:,.0f} rows/s")
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT sum(samples) FROM flux.frequency_1h").fetchone()
        print(f"records in the 1 h rollup after the upload: {int(row[0] or 0) if row else 0:,}")

        null = "\\N"
        text = "".join(
            f"{r.at.isoformat()}\tbench\tbess\t{r.frequency_hz!r}\t"
            f"{null if r.expected_kw is None else repr(r.expected_kw)}\t{r.delivered_kw!r}\t"
            f"{r.tolerance_kw!r}\t{'t' if r.envelope_cut else 'f'}\n"
            for r in records(n)
        )
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("TRUNCATE flux.frequency_records")
            conn.execute("CHECKPOINT")
            started = time.perf_counter()
            with conn.cursor().copy("COPY flux.frequency_records FROM STDIN") as copy:
                copy.write(text)
            copy_s = time.perf_counter() - started
        copy_rate = n / copy_s
        ratio = upload_rate / copy_rate
        print(f"COPY baseline (same table): {copy_s:.2f} s = {copy_rate:,.0f} rows/s")
        goal = GOALS[flavour]
        verdict = "met" if ratio >= goal else "NOT met"
        what = "uploader ingest" if timescale else "uploader (with its rollup refresh)"
        print(f"ratio {what} / COPY on {flavour}: {ratio:.2f} (goal >= {goal}: {verdict})")
        return ratio
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=864_000, help="records (10 days of one battery)"
    )
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--timescale-url",
        default=os.environ.get("FLUX_TEST_TIMESCALE_URL"),
        help="Admin URL of a server with TimescaleDB preloaded (default $FLUX_TEST_TIMESCALE_URL).",
    )
    args = parser.parse_args()
    measure(args.admin_url, "postgres", args.rows, args.batch_size)
    if args.timescale_url:
        measure(args.timescale_url, "timescale", args.rows, args.batch_size)
    else:
        print("TimescaleDB NOT measured: pass --timescale-url or set FLUX_TEST_TIMESCALE_URL")


if __name__ == "__main__":
    main()
