"""`flux report` on a month of one site: the time to read, compute and render it.

    .venv/bin/python bench/report.py [--days 31] [--admin-url postgresql://postgres@127.0.0.1:5432/postgres]

Makes its own database (unique name), drops it after. The month is the demo site's four
devices at one reading a minute (load, solar and a daily charge/discharge that balance at
the grid meter, counters included), uploaded through the production path (outbox and
Uploader, rollups refreshed), with a control decision a minute and January 2024's
imbalance prices as market data. Prints the phases (read, figures with the optimum, HTML)
and the whole command's wall time, beside one day of the same site in the same run (the
baseline: the month/day ratio says how it scales). Goal: a month in under 10 s.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

from reconciler.config import load_site
from reconciler.control.periods import period_at
from reconciler.control.schedule import local_midnight
from reconciler.control.types import BatteryReading, MeterReading
from reconciler.markets.memory import ReplayImbalanceFeed
from reconciler.report.data import read_record
from reconciler.report.figures import compute
from reconciler.report.html import html
from reconciler.telemetry.migrations import migrate
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "sites" / "demo.yaml"
FIRST = date(2024, 1, 1)
GOAL_S = 10.0


def flows(at: datetime) -> tuple[float, float, float]:
    """Load, solar (>= 0) and battery (+ discharge) kW at ``at``."""
    h = at.hour + at.minute / 60
    load = 60 + 25 * math.sin(2 * math.pi * (h - 10) / 24) + (at.minute % 7)
    solar = max(0.0, 120 * math.sin(math.pi * (h - 8) / 8)) if 8 <= h < 16 else 0.0
    battery = -200.0 if 2 <= h < 4 else 300.0 if 17 <= h < 19 else 0.0
    return load, solar, battery


def readings(
    start: datetime, minutes: int
) -> tuple[list[BatteryReading], dict[str, list[MeterReading]]]:
    bess: list[BatteryReading] = []
    meters: dict[str, list[MeterReading]] = {"site": [], "solar": [], "battery_meter": []}
    soe = 640.0
    counters = {name: [0.0, 0.0] for name in meters}
    for i in range(minutes):
        at = start + timedelta(minutes=i)
        load, solar, battery = flows(at)
        soe -= (battery if battery > 0 else battery * 0.85) / 60
        bess.append(BatteryReading(at, soe, battery, 9, 1))
        for name, kw in (("site", load - solar - battery), ("solar", -solar),
                         ("battery_meter", -battery)):  # fmt: skip
            c = counters[name]
            c[0] += max(kw, 0.0) / 60
            c[1] += max(-kw, 0.0) / 60
            meters[name].append(
                MeterReading(at, power_kw=kw, frequency_hz=50.0, voltage_v=415.0,
                             current_a=1, current_b=1, current_c=1, current_avg=1,
                             power_a_kw=kw / 3, power_b_kw=kw / 3, power_c_kw=kw / 3,
                             reactive_kvar=0, apparent_kva=abs(kw), power_factor=1,
                             energy_import_kwh=c[0], energy_export_kwh=c[1])
            )  # fmt: skip
    return bess, meters


def market_rows(start: datetime, end: datetime) -> Iterator[tuple[object, ...]]:
    feed = ReplayImbalanceFeed.january_2024()
    t = start
    while t < end:
        price = feed.imbalance_price(t)
        if price is not None:
            sp = period_at(t)
            yield (t, "demo", "imbalance_price", sp.day, sp.number, price.value, "bench",
                   t + timedelta(minutes=20))  # fmt: skip
        t += timedelta(minutes=30)


def fill(url: str, start: datetime, end: datetime, folder: Path) -> float:
    minutes = int((end - start).total_seconds() // 60)
    started = time.perf_counter()
    bess, meters = readings(start, minutes)
    outbox = Outbox(folder / "outbox.db")
    outbox.add_bess_many("demo", "bess", bess)
    for name, rows in meters.items():
        outbox.add_meter_many("demo", name, rows)
    uploader = Uploader(outbox, url)
    result = uploader.drain()
    uploader.close()
    outbox.close()
    if not result.ok:
        sys.exit(f"upload failed: {result}")
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO flux.devices (site_id, device, kind) VALUES ('demo', 'bess', 'bess'),"
            " ('demo', 'site', 'meter'), ('demo', 'solar', 'meter'),"
            " ('demo', 'battery_meter', 'meter') ON CONFLICT DO NOTHING"
        )
        cur.execute(
            "INSERT INTO flux.control_decisions (time, site_id, target_kw, reason, safe_stop,"
            " winner, components, effective, bound_by)"
            " SELECT t, 'demo', 0, 'bench', false,"
            "  CASE WHEN extract(hour FROM t) BETWEEN 17 AND 18 THEN 'red-band discharge'"
            "       WHEN extract(hour FROM t) BETWEEN 2 AND 3 THEN 'overnight charge' END,"
            "  '{}'::jsonb, '{}', '{}'"
            " FROM generate_series(%s::timestamptz, %s::timestamptz - interval '1 minute',"
            "  interval '1 minute') AS t",
            (start, end),
        )
        with cur.copy("COPY flux.market_data FROM STDIN") as copy:
            for row in market_rows(start, end):
                copy.write_row(row)
    return time.perf_counter() - started


def measure(url: str, first: date, days: int) -> dict[str, float]:
    site = load_site(DEMO)
    start = local_midnight(site, first)
    end = local_midnight(site, first + timedelta(days=days))
    t0 = time.perf_counter()
    rec = read_record(url, site, start, end, "demo")
    t1 = time.perf_counter()
    figures = compute(site, rec)
    t2 = time.perf_counter()
    page = html([figures], "bench")
    t3 = time.perf_counter()
    cli_started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "reconciler", "report", str(DEMO), "--from", first.isoformat(),
         "--to", (first + timedelta(days=days)).isoformat(), "--database-url", url,
         "--out", "/dev/null"],
        check=True, capture_output=True,
    )  # fmt: skip
    cli_s = time.perf_counter() - cli_started
    assert figures["complete_periods"] == len(rec.periods), "the bench data has gaps"
    return {
        "read_s": t1 - t0,
        "figures_s": t2 - t1,
        "html_s": t3 - t2,
        "html_kb": len(page) / 1000,
        "cli_s": cli_s,
        "periods": len(rec.periods),
        "captured_pct": figures["opportunity"]["captured_pct"] or 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    dbname = f"flux_bench_{uuid.uuid4().hex[:10]}"
    url = args.admin_url.rsplit("/", 1)[0] + f"/{dbname}"
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    try:
        migrate(url)
        site = load_site(DEMO)
        start = local_midnight(site, FIRST)
        end = local_midnight(site, FIRST + timedelta(days=args.days))
        with tempfile.TemporaryDirectory() as tmp:
            fill_s = fill(url, start.astimezone(UTC), end.astimezone(UTC), Path(tmp))
        print(f"filled {args.days} days of the demo site (4 devices, a reading a minute): "
              f"{fill_s:.1f} s")  # fmt: skip
        day = measure(url, FIRST, 1)
        month = measure(url, FIRST, args.days)
        for label, m in (("1 day", day), (f"{args.days} days", month)):
            print(
                f"{label:>8}: read {m['read_s']:.2f} s, figures+optimum {m['figures_s']:.2f} s, "
                f"HTML {m['html_s']:.2f} s ({m['html_kb']:.0f} kB); `flux report` "
                f"{m['cli_s']:.2f} s; {m['periods']:.0f} periods, captured "
                f"{m['captured_pct']:.1f} %"
            )
        ratio = month["cli_s"] / day["cli_s"]
        verdict = "met" if month["cli_s"] < GOAL_S else "NOT met"
        print(f"month / day: {ratio:.1f}x; goal a month < {GOAL_S:.0f} s: {verdict}")
    finally:
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


if __name__ == "__main__":
    main()
