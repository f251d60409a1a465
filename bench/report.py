"""`flux report` on a month of one site, and on a year of a fleet: the time to read,
compute and render them.

    .venv/bin/python bench/report.py [--days 31] [--admin-url postgresql://postgres@127.0.0.1:5432/postgres]
    .venv/bin/python bench/report.py --fleet [--sites 50] [--fleet-days 366] [--jobs 2]

Makes its own database (unique name), drops it after. The month is the demo site's four
devices at one reading a minute (load, solar and a daily charge/discharge that balance at
the grid meter, counters included), uploaded through the production path (outbox and
Uploader, rollups refreshed), with a control decision a minute and January 2024's
imbalance prices as market data. Prints the phases (read, figures with the optimum, HTML)
and the whole command's wall time, beside one day of the same site in the same run (the
baseline: the month/day ratio says how it scales). Goal: a month in under 10 s.

--fleet: a year (2024) of N sites' 5 m, 30 m and 1 h rollups, made by SQL straight into
the rollup tables (raw minutes for a fleet-year would be 1.5 billion rows), with the
sites, devices and an imbalance price per period; then `flux report --fleet` over it as
JSON and as HTML, without the optimum (a perfect-foresight programme per site-year is
timed apart, on one site: fleets of more than 25 sites leave it out by default). Goal:
the fleet of 1,000 sites in under 5 minutes. 1,000 sites' year of rollups is about 90 GB
here (more than this machine's disk holds and hours to make), so the bench runs N sites
and extrapolates linearly to 1,000 (the work is per site: one set of queries, figures and
charts each), and says so in its output.

Both benches check the figures against the per-half-hour loop they replaced
(tests/report/previous.py: the same JSON, to the last digit) and time that loop on the
same site and range as the baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
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
from reconciler.report.figures import RateMemo, compute
from reconciler.report.fleet import CHARTS_MAX_SITES, OPTIMUM_MAX_SITES
from reconciler.report.html import html
from reconciler.telemetry.migrations import migrate
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the previous figures, the oracle, live with the tests
from tests.report import previous  # noqa: E402

DEMO = ROOT / "sites" / "demo.yaml"
FIRST = date(2024, 1, 1)
GOAL_S = 10.0
FLEET_GOAL_S = 300.0
FLEET = 1000


FLEET_5M = """
WITH s AS (SELECT k, format('fleet-%%s', lpad(k::text, 4, '0')) AS site_id
           FROM generate_series(0, %(n)s - 1) AS k),
t AS (SELECT b, extract(epoch FROM b - date_trunc('day', b)) / 3600 + 2.5 / 60 AS h,
             extract(doy FROM b) AS doy
      FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '5 minutes',
                           interval '5 minutes') AS b),
f AS (
    SELECT s.site_id, t.b,
           40 + (s.k %% 20) + 25 * sin(2 * pi() * (t.h - 10) / 24)
               + 5 * sin(t.b::date - date '2024-01-01' + s.k) AS load,
           CASE WHEN t.h BETWEEN 8 AND 16 THEN (80 + s.k %% 50) * sin(pi() * (t.h - 8) / 8)
                * (0.6 + 0.4 * cos(2 * pi() * (t.doy - 172) / 365)) ELSE 0 END AS solar,
           CASE WHEN t.h >= 2 AND t.h < 4 THEN -200.0 WHEN t.h >= 17 AND t.h < 19 THEN 170.0
                ELSE 0.0 END AS battery,
           300 + 340 * least(greatest((t.h - 2) / 2, 0), 1)
               - 340 * least(greatest((t.h - 17) / 2, 0), 1) AS soe
    FROM s CROSS JOIN t
),
m AS (
    INSERT INTO flux.meter_5m (bucket, site_id, device, samples, power_avg_kw, power_min_kw,
        power_max_kw, frequency_avg_hz, frequency_min_hz, frequency_max_hz, voltage_avg_v,
        voltage_min_v, voltage_max_v, reactive_avg_kvar, power_factor_avg, energy_import_kwh,
        energy_export_kwh)
    SELECT b, site_id, d.device, 5, p, p, p, 50, 50, 50, 415, 415, 415, 0, 1,
           greatest(p, 0) / 12, greatest(-p, 0) / 12
    FROM f, LATERAL (VALUES ('site', load - solar - battery), ('solar', -solar)) AS d(device, p)
    RETURNING 1
)
INSERT INTO flux.bess_5m (bucket, site_id, device, samples, soe_avg_kwh, soe_min_kwh,
    soe_max_kwh, target_power_avg_kw, target_power_min_kw, target_power_max_kw,
    actual_samples, actual_power_avg_kw, actual_power_min_kw, actual_power_max_kw)
SELECT b, site_id, 'bess', 5, soe, soe, soe, battery, battery, battery, 5, battery, battery,
       battery
FROM f
"""

# 30 m and 1 h from the finer rollup, as the rollup functions combine them (averages
# weighted by samples, energy summed).
_METER_UP = """
INSERT INTO flux.meter_{to} SELECT date_bin(%(w)s, bucket, timestamptz '2000-01-01 00:00+00'),
    site_id, device, sum(samples), sum(power_avg_kw * samples) / sum(samples),
    min(power_min_kw), max(power_max_kw), 50, 50, 50, 415, 415, 415, 0, 1,
    sum(energy_import_kwh), sum(energy_export_kwh)
FROM flux.meter_{src} GROUP BY 1, 2, 3
"""
_BESS_UP = """
INSERT INTO flux.bess_{to} SELECT date_bin(%(w)s, bucket, timestamptz '2000-01-01 00:00+00'),
    site_id, device, sum(samples), sum(soe_avg_kwh * samples) / sum(samples),
    min(soe_min_kwh), max(soe_max_kwh), sum(target_power_avg_kw * samples) / sum(samples),
    min(target_power_min_kw), max(target_power_max_kw), sum(actual_samples),
    sum(actual_power_avg_kw * actual_samples) / sum(actual_samples),
    min(actual_power_min_kw), max(actual_power_max_kw)
FROM flux.bess_{src} GROUP BY 1, 2, 3
"""
_FLEET_REST = (
    """
INSERT INTO flux.sites (site_id) SELECT format('fleet-%%s', lpad(k::text, 4, '0'))
FROM generate_series(0, %(n)s - 1) AS k
""",
    """
INSERT INTO flux.devices (site_id, device, kind)
SELECT format('fleet-%%s', lpad(k::text, 4, '0')), d,
       CASE WHEN d = 'bess' THEN 'bess' ELSE 'meter' END
FROM generate_series(0, %(n)s - 1) AS k, unnest(ARRAY['bess', 'site', 'solar']) AS d
""",
    """
INSERT INTO flux.market_data
SELECT t, format('fleet-%%s', lpad(k::text, 4, '0')), 'imbalance_price', t::date,
       1 + extract(epoch FROM t - date_trunc('day', t))::int / 1800,
       8 + 10 * sin(2 * pi() * extract(epoch FROM t) / 86400 - 1.3), 'bench',
       t + interval '20 minutes'
FROM generate_series(0, %(n)s - 1) AS k,
     generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '30 minutes',
                     interval '30 minutes') AS t
""",
)


def fill_fleet(url: str, n: int, start: datetime, end: datetime) -> dict[str, float]:
    """``n`` sites' 5 m, 30 m and 1 h rollups over [start, end), written straight into
    the rollup tables (no raw readings: a year of raw minutes for 1,000 sites is 1.5
    billion rows), with the sites, their devices and an imbalance price per period."""
    timings: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        conn.execute(FLEET_5M, {"n": n, "start": start, "end": end})
        t1 = time.perf_counter()
        for src, to, width in (("5m", "30m", "30 minutes"), ("30m", "1h", "1 hour")):
            conn.execute(_METER_UP.format(src=src, to=to), {"w": width})
            conn.execute(_BESS_UP.format(src=src, to=to), {"w": width})
        for statement in _FLEET_REST:
            conn.execute(statement, {"n": n, "start": start, "end": end})
        conn.execute("VACUUM ANALYZE")
        t2 = time.perf_counter()
        rows = conn.execute(
            "SELECT (SELECT count(*) FROM flux.meter_5m) + (SELECT count(*) FROM flux.bess_5m),"
            " (SELECT count(*) FROM flux.meter_30m) + (SELECT count(*) FROM flux.bess_30m),"
            " pg_database_size(current_database())"
        ).fetchone()
        assert rows is not None
    timings.update(
        fill_5m_s=t1 - t0,
        fill_rest_s=t2 - t1,
        rows_5m=float(rows[0]),
        rows_30m=float(rows[1]),
        db_mb=float(rows[2]) / 1e6,
    )
    return timings


def fleet_files(folder: Path, n: int) -> Path:
    """``n`` site files, the demo's with ids fleet-0000 ... (the fleet's --sites-dir)."""
    text = DEMO.read_text(encoding="utf-8")
    folder.mkdir()
    for k in range(n):
        (folder / f"fleet-{k:04d}.yaml").write_text(
            text.replace("id: demo", f"id: fleet-{k:04d}"), encoding="utf-8"
        )
    return folder


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
    started = time.perf_counter()
    before = previous.figures(url, site, rec)
    previous_s = time.perf_counter() - started
    same(figures, before, f"demo, {days} days")
    return {
        "previous_s": previous_s,
        "read_s": t1 - t0,
        "figures_s": t2 - t1,
        "html_s": t3 - t2,
        "html_kb": len(page) / 1000,
        "cli_s": cli_s,
        "periods": len(rec.periods),
        "captured_pct": figures["opportunity"]["captured_pct"] or 0.0,
    }


def same(now: dict[str, object], before: dict[str, object], what: str) -> None:
    """Exit unless the figures are the previous loop's, as the JSON prints them."""
    a, b = json.dumps(now, indent=2), json.dumps(before, indent=2)
    if a != b:
        pairs = zip(a.splitlines(), b.splitlines(), strict=False)
        diff = [f"{x} != {y}" for x, y in pairs if x != y]
        sys.exit(f"{what}: the figures differ from the per-half-hour loop's: {diff[:5]}")


def children_cpu_s() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


class BackendCpu:
    """CPU seconds used by the database server's backends serving the bench's database
    (the report's connections), sampled from /proc while the report runs (the server is on
    this machine; a backend's last 0.2 s before it ends may be missed). None where /proc
    cannot be read."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.seen: dict[int, float] = {}
        self.readable = True

    def sample(self) -> None:
        pids = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
        for (pid,) in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile
            ticks = int(fields[11]) + int(fields[12])  # utime, stime
            self.seen[int(pid)] = ticks / os.sysconf("SC_CLK_TCK")

    def total(self) -> float:
        return sum(self.seen.values())


def run_fleet(
    url: str, sites: Path, days: int, output: str, jobs: int
) -> tuple[float, float | None]:
    """Wall time of `flux report --fleet` as a user runs it (a new process), s, and the
    CPU seconds it and the database server used (None: the server's not measured)."""
    last = FIRST + timedelta(days=days)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"fleet.{output}"
        backends = BackendCpu(url)
        cpu = children_cpu_s()
        load = os.getloadavg()[0]
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "report", "--fleet", "--sites-dir", str(sites),
             "--from", FIRST.isoformat(), "--to", last.isoformat(), "--database-url", url,
             "--output", output, "--no-optimum", "--jobs", str(jobs), "--out", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        while proc.poll() is None:
            backends.sample()
            load = max(load, os.getloadavg()[0])
            time.sleep(0.2)
        took = time.perf_counter() - started
        _, err = proc.communicate()
        if proc.returncode:
            sys.exit(f"flux report --fleet failed: {err.decode()[-2000:]}")
        cpu = children_cpu_s() - cpu
        backends.conn.close()
        server = backends.total() if backends.seen else None
        size = out.stat().st_size / 1e6
    n = len(list(sites.iterdir()))
    said = "not measured" if server is None else f"{server:.1f} s ({server / n:.2f} s a site-year)"
    print(f"  --output {output}: {took:.1f} s ({took / n:.2f} s a site-year, {size:.1f} MB); "
          f"CPU: the report's processes {cpu:.1f} s ({cpu / n:.2f} s a site-year), the "
          f"database backends serving it {said}; load average up to {load:.1f} on "
          f"{os.cpu_count()} cores (shared with other work)")  # fmt: skip
    return took, None if server is None else cpu + server


def fleet(url: str, n: int, days: int, jobs: int) -> None:
    site = load_site(DEMO)
    start = local_midnight(site, FIRST).astimezone(UTC)
    end = local_midnight(site, FIRST + timedelta(days=days)).astimezone(UTC)
    made = fill_fleet(url, n, start, end)
    scale = FLEET / n
    print(
        f"filled {n} sites x {days} days of rollups: {made['rows_5m']:,.0f} 5 m rows, "
        f"{made['rows_30m']:,.0f} 30 m rows, {made['db_mb']:,.0f} MB "
        f"(5 m {made['fill_5m_s']:.0f} s, the rest {made['fill_rest_s']:.0f} s); "
        f"{FLEET:,} sites would be {made['db_mb'] * scale / 1000:,.0f} GB"
    )
    with tempfile.TemporaryDirectory() as tmp:
        sites = fleet_files(Path(tmp) / "sites", n)
        print(f"`flux report --fleet --no-optimum --jobs {jobs}` over {n} sites x {days} days:")
        took = {out: run_fleet(url, sites, days, out, jobs) for out in ("json", "html")}
    # The figures of a few sites against the per-half-hour loop they replaced (the baseline).
    memo = RateMemo()
    compute(site, read_record(url, site, start, end, "fleet-0000"), memo=memo)  # rates, once
    now_s = before_s = 0.0
    checked = min(n, 3)
    for k in range(checked):
        started = time.perf_counter()
        rec = read_record(url, site, start, end, f"fleet-{k:04d}")
        figures = compute(site, rec, with_optimum=False, memo=memo)
        now_s += time.perf_counter() - started
        started = time.perf_counter()
        before = previous.figures(url, site, rec, with_optimum=False)
        before_s += time.perf_counter() - started
        same(figures, before, f"fleet-{k:04d}")
    print(f"  {checked} site-years' figures identical to the per-half-hour loop's (JSON); "
          f"the record read and its figures computed in {now_s / checked:.2f} s a site-year, "
          f"the loop's reading of the periods and its figures {before_s / checked:.2f} s "
          f"({before_s / now_s:.1f}x), wall time in this process")  # fmt: skip
    # The optimum of one site-year, timed apart: it is per site, like the rest.
    rec = read_record(url, site, start, end, "fleet-0000")
    started = time.perf_counter()
    figures = compute(site, rec, with_optimum=True)
    optimum_s = time.perf_counter() - started
    print(f"  the optimum (perfect foresight) of one site-year: {optimum_s:.1f} s (captured "
          f"{figures['opportunity']['captured_pct'] or 0:.1f} %)")  # fmt: skip
    started = time.perf_counter()
    page = html([figures], "bench")
    charts_s = time.perf_counter() - started
    print(f"  one site-year's HTML with its 6 charts: {charts_s:.1f} s ({len(page) / 1e3:.0f} kB; "
          f"a fleet draws them up to {CHARTS_MAX_SITES} sites)")  # fmt: skip
    cores = os.cpu_count() or 1
    print(f"EXTRAPOLATED to {FLEET:,} sites (x{scale:.0f}, linear in sites; not run):")
    for out, (s, cpu) in took.items():
        verdict = "met" if s * scale < FLEET_GOAL_S else "NOT met"
        line = (f"  --output {out}: {s * scale / 60:.1f} min at this run's wall time; goal "
                f"under {FLEET_GOAL_S / 60:.0f} min: {verdict}")  # fmt: skip
        if cpu is not None:
            idle = cpu * scale / cores
            verdict = "met" if idle < FLEET_GOAL_S else "NOT met"
            line += (f"; {idle / 60:.1f} min from the CPU it and the server used, on "
                     f"{cores} cores nobody else uses: {verdict}")  # fmt: skip
        print(line)
    print(f"  with the optimum (--optimum): + {optimum_s * FLEET / jobs / 60:.0f} min on {jobs} "
          f"processes: so a fleet of more than {OPTIMUM_MAX_SITES} sites leaves it out unless "
          "asked, and says so")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--fleet", action="store_true", help="the fleet-year bench")
    parser.add_argument("--sites", type=int, default=50, help="--fleet: sites made")
    parser.add_argument("--fleet-days", type=int, default=366, help="--fleet: days (2024)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    dbname = f"flux_bench_{uuid.uuid4().hex[:10]}"
    url = args.admin_url.rsplit("/", 1)[0] + f"/{dbname}"
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    try:
        migrate(url)
        if args.fleet:
            fleet(url, args.sites, args.fleet_days, args.jobs)
            return
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
                f"{m['captured_pct']:.1f} %; the same figures as the per-half-hour loop "
                f"(which read its periods and computed in {m['previous_s']:.2f} s)"
            )
        ratio = month["cli_s"] / day["cli_s"]
        verdict = "met" if month["cli_s"] < GOAL_S else "NOT met"
        print(f"month / day: {ratio:.1f}x; goal a month < {GOAL_S:.0f} s: {verdict}")
    finally:
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


if __name__ == "__main__":
    main()
