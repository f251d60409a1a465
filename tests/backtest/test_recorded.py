"""`flux backtest --from-db`: a site's recorded day from a real PostgreSQL database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from reconciler.backtest.recorded import RECORDED, RecordedDataError, load_recorded
from reconciler.cli import cli
from reconciler.config.loader import load_site
from reconciler.control.periods import period_at
from reconciler.telemetry.migrations import migrate
from tests.backtest.conftest import DEMO
from tests.pg import PLAIN, Server, database

#: 2024-08-01 in London (BST): 2024-07-31 23:00 to 2024-08-01 23:00 UTC.
START = datetime(2024, 7, 31, 23, tzinfo=UTC)
LOAD_KW = 50.0
MARKET_ROW = "INSERT INTO flux.market_data VALUES (%s, 'demo', %s, %s, %s, %s, 'modo', %s)"


def battery_kw(at: datetime) -> float:
    """Charge 100 kW 02:00-04:00 UTC, discharge 100 kW 16:00-18:00 UTC (17-19 local)."""
    if 2 <= at.hour < 4:
        return -100.0
    if 16 <= at.hour < 18:
        return 100.0
    return 0.0


def solar_kw(at: datetime) -> float:
    return 20.0 if 11 <= at.hour < 14 else 0.0


def price(at: datetime) -> float:
    return 20.0 if 16 <= at.hour < 18 else 5.0


@pytest.fixture
def recorded_url(flux_server: Server) -> Iterator[str]:
    """A migrated database holding one recorded day of the demo site, a reading a minute
    (on each server the tests run on: plain PostgreSQL, and TimescaleDB where given)."""
    with database(flux_server) as name:
        url = flux_server.url(name)
        migrate(url, flavour=flux_server.flavour)
        soe = 600.0
        meter_rows, bess_rows = [], []
        for m in range(24 * 60):
            at = START + timedelta(minutes=m)
            b = battery_kw(at)
            grid = LOAD_KW - solar_kw(at) - b
            for device, kw in (("site", grid), ("solar", -solar_kw(at)), ("battery_meter", -b)):
                meter_rows.append((at, "demo", device, kw, 50, 400, *[0] * 9, 1, 0, 0))
            soe -= (b if b > 0 else b * 0.85) / 60
            bess_rows.append((at, "demo", "bess", soe, b, b, 9, 1))
        with psycopg.connect(url) as conn, conn.cursor() as cur:
            with cur.copy(
                "COPY flux.meter_readings (time, site_id, device, power_kw, frequency_hz, "
                "voltage_v, current_a, current_b, current_c, current_avg, power_a_kw, "
                "power_b_kw, power_c_kw, reactive_kvar, apparent_kva, power_factor, "
                "energy_import_kwh, energy_export_kwh) FROM STDIN"
            ) as copy:
                for row in meter_rows:
                    copy.write_row(row)
            with cur.copy(
                "COPY flux.bess_readings (time, site_id, device, soe_kwh, target_power_kw, "
                "actual_power_kw, available_blocks, command_source) FROM STDIN"
            ) as copy:
                for row in bess_rows:
                    copy.write_row(row)
            for i in range(48):
                at = START + i * timedelta(minutes=30)
                sp = period_at(at)
                for kind, value in (("imbalance_price", price(at)), ("niv", 100.0)):
                    cur.execute(
                        MARKET_ROW,
                        (at, kind, sp.day, sp.number, value, at + timedelta(minutes=20)),
                    )
                # An earlier fetch of the same period, superseded by the later one.
                cur.execute(
                    MARKET_ROW,
                    (at, "imbalance_price", sp.day, sp.number, 99.0, at + timedelta(minutes=1)),
                )
        yield url


def test_recorded_day_reconstructs_load_and_accounts_what_the_site_did(recorded_url: str) -> None:
    site = load_site(DEMO)
    rec = load_recorded(recorded_url, site, START, START + timedelta(days=1))
    assert rec.site_id == "demo" and rec.soe_start_kwh == pytest.approx(600.0)
    assert rec.prices is not None and len(rec.prices.prices) == 48
    assert rec.prices.price(datetime(2024, 8, 1, 16, tzinfo=UTC)) == 20.0  # latest fetch wins
    base = rec.base.total
    assert base.load_kwh == pytest.approx(LOAD_KW * 24)  # grid + solar + battery
    assert base.solar_kwh == pytest.approx(20 * 3)
    assert base.battery_discharged_kwh == pytest.approx(200) == base.battery_charged_kwh
    # Discharged 200 kWh at 20 p, charged 200 kWh at 5 p.
    assert base.imbalance_value_gbp == pytest.approx(40.0 - 10.0)
    assert dict(base.hours_by_winner) == {RECORDED: pytest.approx(24.0)}
    assert base.soe_end_kwh == pytest.approx(600 - 200 + 200 * 0.85)
    # Traced at each period's end, as a simulated run is (what --plot draws).
    trace = rec.base.trace
    assert [p.at for p in trace] == [START + timedelta(minutes=30 * (k + 1)) for k in range(48)]
    assert trace[-1].soe_kwh == base.soe_end_kwh
    assert trace[-1].value_gbp == pytest.approx(base.battery_value_gbp)
    # The profiles hold one home and one kWp, as the plant scales them.
    loads, solars = rec.profiles.period_means([datetime(2024, 8, 1, 12, 30, tzinfo=UTC)], 54, 210)
    assert loads == [pytest.approx(LOAD_KW)] and solars == [pytest.approx(20.0)]
    with pytest.raises(RecordedDataError, match="48 of 48 settlement periods have no grid"):
        load_recorded(recorded_url, site, START + timedelta(days=1), START + timedelta(days=2))


def flux(*args: str) -> Result:
    result = CliRunner().invoke(cli, ["backtest", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@pytest.mark.slow
def test_backtest_from_db_puts_the_site_file_beside_what_the_site_did(
    recorded_url: str, tmp_path: Path
) -> None:
    plot = tmp_path / "recorded.png"
    result = flux(
        str(DEMO), "--from-db", recorded_url, "--from", "2024-08-01", "--output", "json",
        "--plot", str(plot),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:4] == b"\x89PNG"
    doc = json.loads(result.stdout)
    assert doc["base_file"] == "recorded on site demo" and doc["prices"] == "recorded"
    base, this = doc["base"]["total"], doc["this"]["total"]
    assert base["hours_by_winner"] == {RECORDED: 24.0}
    assert this["load_kwh"] == pytest.approx(base["load_kwh"], rel=1e-3)
    assert this["soe_start_kwh"] == pytest.approx(600.0)
    # One optimum for both: the same inputs and the same site file.
    assert base["optimum"]["optimum_gbp"] == this["optimum"]["optimum_gbp"] > 0
    assert base["optimum"]["strategy_gbp"] <= base["optimum"]["optimum_gbp"]
    assert this["optimum"]["strategy_gbp"] <= this["optimum"]["optimum_gbp"]
    assert "Captured of the perfect-foresight optimum" in doc["summary"]


def test_backtest_from_db_usage_and_data_errors(recorded_url: str) -> None:
    missing = flux(str(DEMO), "--from-db", recorded_url, "--from", "2024-08-05")
    assert missing.exit_code == 2 and "have no grid meter ('site') readings" in missing.stderr
    assert "Traceback" not in missing.output
    no_from = flux(str(DEMO), "--from-db", recorded_url)
    assert no_from.exit_code == 2 and "needs --from DATE" in no_from.output
    simulated = ("--from", "2024-08-01", "--day-ahead", "2018-03")
    only_simulated = flux(str(DEMO), "--from-db", recorded_url, *simulated)
    assert only_simulated.exit_code == 2 and "for simulated runs" in only_simulated.output
    both = flux(str(DEMO), "--from-db", recorded_url, "--from", "2024-08-01", "--base", str(DEMO))
    assert both.exit_code == 2 and "leave out --base" in both.output
    down = flux(str(DEMO), "--from-db", PLAIN.url("no_such_db"), "--from", "2024-08-01")
    assert down.exit_code == 2 and "cannot connect to the database" in down.stderr
    # The URL's errors name the option it came from.
    empty = flux(str(DEMO), "--from-db", " ", "--from", "2024-08-01")
    assert empty.exit_code == 2 and "--from-db is empty" in empty.stderr
    assert "FLUX_DATABASE_URL" not in empty.stderr
