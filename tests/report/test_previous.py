"""The report's figures, computed over columns of periods (issue 16's fleet speed-up), are
those of the loop over one object per half hour they replaced (tests/report/previous.py),
to the last digit the JSON prints: on the agent's recording, and on minutes written across
both clock changes with gaps, imports and exports within a half hour, unmeasured battery
power, revised prices and days without readings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.config import load_site
from reconciler.control.schedule import local_midnight
from reconciler.report import figures
from reconciler.report.data import read_record
from reconciler.report.figures import compute
from tests.pg import Server, database, url_for
from tests.report import previous
from tests.report.conftest import DEMO, START

# Minutes of the demo site's grid meter, solar meter and battery (one a minute), over
# [a, b): noisy load and solar so the grid flips between import and export within a half
# hour, a night charge and an evening discharge, the battery's measured power missing for
# some minutes (its target stands in).
_FILL = (
    "SELECT setseed(0.16)",
    """
    CREATE TEMP TABLE m AS
    SELECT t, 35 + 30 * random() AS load,
           CASE WHEN extract(hour FROM t) BETWEEN 8 AND 16 THEN 90 * random() ELSE 0 END
               AS solar,
           CASE WHEN extract(hour FROM t) BETWEEN 2 AND 3 THEN -150 + 20 * random()
                WHEN extract(hour FROM t) BETWEEN 17 AND 18 THEN 120 * random()
                ELSE 10 * (random() - 0.5) END AS battery,
           200 + 400 * random() AS soe, random() < 0.05 AS unmeasured
    FROM generate_series(%(a)s::timestamptz, %(b)s::timestamptz - interval '1 minute',
                         interval '1 minute') AS t
    """,
    """
    INSERT INTO flux.meter_readings
    SELECT t, 'demo', d, p, 50, 415, 1, 1, 1, 1, p / 3, p / 3, p / 3, 0, abs(p), 1, 0, 0,
           greatest(p, 0) / 60, greatest(-p, 0) / 60
    FROM m, LATERAL (VALUES ('site', load - solar - battery), ('solar', -solar)) AS x(d, p)
    """,
    """
    INSERT INTO flux.bess_readings
    SELECT t, 'demo', 'bess', soe, battery, CASE WHEN NOT unmeasured THEN battery + 1 END, 9, 1
    FROM m
    """,
    # Imbalance prices, one period in seven without; every fifth fetched twice (revised).
    """
    INSERT INTO flux.market_data
    SELECT t, 'demo', 'imbalance_price', t::date, 1, v, 'test', t + interval '20 minutes'
    FROM (SELECT t, 10 * random() - 2 AS v, row_number() OVER (ORDER BY t) AS k
          FROM generate_series(%(a)s::timestamptz, %(b)s::timestamptz - interval '30 minutes',
                               interval '30 minutes') AS t) AS p
    WHERE k %% 7 <> 3
    """,
    """
    INSERT INTO flux.market_data
    SELECT t, 'demo', 'imbalance_price', t::date, 1, 30 * random(), 'test',
           t + interval '1 day'
    FROM generate_series(%(a)s::timestamptz, %(b)s::timestamptz - interval '30 minutes',
                         interval '150 minutes') AS t
    """,
    "DROP TABLE m",
)
# Gaps: three hours without the grid meter (missing periods), ten minutes without the
# battery (a period split from fewer 5 minute buckets).
_HOLES = (
    "DELETE FROM flux.meter_readings WHERE device = 'site' AND time >= %(a)s + interval "
    "'4 days 10 hours' AND time < %(a)s + interval '4 days 13 hours'",
    "DELETE FROM flux.bess_readings WHERE time >= %(a)s + interval '2 days 7 hours 5 minutes' "
    "AND time < %(a)s + interval '2 days 7 hours 15 minutes'",
)
#: The windows written: each holds a clock change (31 March, 27 October 2024).
WINDOWS = ((date(2024, 3, 27), date(2024, 4, 3)), (date(2024, 10, 24), date(2024, 10, 30)))


@pytest.fixture(scope="module")
def clock_change_url(template_db: str, flux_server: Server) -> Iterator[str]:
    site = load_site(DEMO)
    with database(flux_server, template_db) as name:
        url = url_for(name)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO flux.devices (site_id, device, kind) VALUES ('demo', 'bess', "
                "'bess'), ('demo', 'site', 'meter'), ('demo', 'solar', 'meter') "
                "ON CONFLICT DO NOTHING"
            )
            for first, last in WINDOWS:
                span = {"a": local_midnight(site, first), "b": local_midnight(site, last)}
                for statement in (*_FILL, *_HOLES):
                    conn.execute(statement, span)
        a, b = local_midnight(site, WINDOWS[0][0]), local_midnight(site, WINDOWS[-1][1])
        result = CliRunner().invoke(
            cli, ["db", "refresh", "--database-url", url, "--from", a.isoformat(),
                  "--to", b.isoformat()],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        yield url


def _unrounded(value: float, digits: int = 3) -> float:
    return 0.0 if value == 0 else value


def same_figures(url: str, first: date, last: date, *, with_optimum: bool) -> dict[str, Any]:
    """The figures over local days [first, last), after checking they are the loop's: as
    the JSON prints them, and to the last bit (every rounding left out)."""
    site = load_site(DEMO)
    rec = read_record(url, site, local_midnight(site, first), local_midnight(site, last), "demo")

    def both() -> tuple[list[str], list[str]]:
        now = compute(site, rec, with_optimum=with_optimum)
        before = previous.figures(url, site, rec, with_optimum=with_optimum)
        return json.dumps(now, indent=1).splitlines(), json.dumps(before, indent=1).splitlines()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures, "_r", _unrounded)
        mp.setattr(previous, "_r", _unrounded)
        now, before = both()
        assert now == before
    now, before = both()
    assert now == before
    doc: dict[str, Any] = json.loads("\n".join(now))
    return doc


def test_figures_are_the_loop_over_periods_across_clock_changes_and_gaps(
    clock_change_url: str,
) -> None:
    # Seven months: the two windows written, months without a reading between them.
    f = same_figures(clock_change_url, date(2024, 3, 20), date(2024, 11, 2), with_optimum=True)
    assert f["opportunity"]["computed"] and f["money"]["priced_periods"] > 0
    q = f["quality"]
    assert q["missing_periods"] > 9000 and q["missing_periods_by_day"]["2024-03-31"] == 6
    months = f["patterns"]["average_day_by_month"]
    assert list(months) == ["2024-03", "2024-04", "2024-10"]
    # The days the clocks change have 46 and 50 half hours.
    days = {d["date"]: d for d in f["energy"]["days"]}
    assert days["2024-03-31"]["load_kwh"] > 0 and days["2024-10-27"]["load_kwh"] > 0
    energy = f["energy"]["total"]
    assert energy["grid_import_kwh"] > 0 and energy["grid_export_kwh"] > 0


def test_figures_are_the_loop_over_periods_on_the_agents_recording(recorded_url: str) -> None:
    day = START.date()
    f = same_figures(recorded_url, day, day + timedelta(days=1), with_optimum=True)
    assert f["complete_periods"] > 0 and f["opportunity"]["computed"]
    assert f["battery"]["soe"]["samples"] > 0


def test_a_day_the_clocks_go_back_counts_its_fifty_half_hours(clock_change_url: str) -> None:
    f = same_figures(clock_change_url, date(2024, 10, 27), date(2024, 10, 28), with_optimum=False)
    assert f["periods"] == 50 and f["complete_periods"] == 50
    # 01:00 and 01:30 happen twice: the weekday grid holds both in Sunday's cells.
    assert all(v is not None for v in f["patterns"]["load_kw_by_weekday"][6])
