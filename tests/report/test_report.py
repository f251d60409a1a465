"""`flux report` on a database the agent filled by driving the simulator: the report's
figures against sums computed here from the raw readings, its renderings, its errors."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner, Result

from reconciler.cli import cli
from reconciler.report.figures import round_trip
from reconciler.report.fleet import CHARTS_MAX_SITES, NO_OPTIMUM, OPTIMUM_MAX_SITES
from tests.pg import url_for
from tests.report.conftest import DEMO, HOURS

DAY = ("--from", "2024-01-15", "--to", "2024-01-16")


def flux(*args: str) -> Result:
    result = CliRunner().invoke(cli, ["report", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def report_json(url: str, *args: str) -> dict[str, Any]:
    result = flux(str(DEMO), *DAY, "--database-url", url, "--output", "json", *args)
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def raw(url: str) -> dict[str, float]:
    """Sums of the raw readings (one a minute, each standing for its minute), kWh and £."""
    with psycopg.connect(url) as conn:
        grid: dict[datetime, float] = dict(
            conn.execute(
                "SELECT time, power_kw FROM flux.meter_readings WHERE device = 'site'"
            ).fetchall()
        )
        solar: dict[datetime, float] = dict(
            conn.execute(
                "SELECT time, -power_kw FROM flux.meter_readings WHERE device = 'solar'"
            ).fetchall()
        )
        bess: dict[datetime, float] = dict(
            conn.execute(
                "SELECT time, coalesce(actual_power_kw, target_power_kw) "
                "FROM flux.bess_readings WHERE device = 'bess'"
            ).fetchall()
        )
        counted = conn.execute(
            "SELECT (max(energy_import_kwh) - min(energy_import_kwh))"
            " - (max(energy_export_kwh) - min(energy_export_kwh))"
            " FROM flux.meter_readings WHERE device = 'site'"
        ).fetchone()
        assert counted is not None
        prices: dict[datetime, float] = dict(
            conn.execute(
                "SELECT DISTINCT ON (time) time, value FROM flux.market_data "
                "WHERE type = 'imbalance_price' ORDER BY time, fetched_at DESC"
            ).fetchall()
        )
    h = 1 / 60
    imbalance = 0.0
    for at, kw in bess.items():
        period = at.replace(minute=at.minute // 30 * 30, second=0, microsecond=0)
        imbalance += kw * h * prices.get(period, 0.0) / 100
    return {
        "grid_net_kwh": sum(grid.values()) * h,
        "counted_net_kwh": float(counted[0]),
        "grid_import_kwh": sum(max(v, 0.0) for v in grid.values()) * h,
        "battery_net_kwh": sum(bess.values()) * h,
        "load_kwh": sum(grid[t] + max(solar.get(t, 0.0), 0.0) + bess[t] for t in grid) * h,
        "imbalance_gbp": imbalance,
        "minutes": len(grid),
    }


def test_figures_match_the_raw_readings_read_as_a_reader(
    recorded_url: str, reader_url: str
) -> None:
    doc = report_json(reader_url)
    sums = raw(recorded_url)
    assert sums["minutes"] == pytest.approx(HOURS * 60, abs=2)
    e = doc["energy"]["total"]
    # Energy balance at the grid meter, and its counters beside its power readings.
    assert e["grid_import_kwh"] - e["grid_export_kwh"] == pytest.approx(
        sums["grid_net_kwh"], rel=0.005
    )
    assert e["grid_import_kwh"] == pytest.approx(sums["grid_import_kwh"], rel=0.005)
    assert e["battery_discharged_kwh"] - e["battery_charged_kwh"] == pytest.approx(
        sums["battery_net_kwh"], rel=0.005
    )
    assert e["load_kwh"] == pytest.approx(sums["load_kwh"], rel=0.005)
    assert e["load_kwh"] == pytest.approx(
        e["grid_import_kwh"] - e["grid_export_kwh"] + e["solar_kwh"]
        + e["battery_discharged_kwh"] - e["battery_charged_kwh"], abs=0.01
    )  # fmt: skip
    counters = doc["quality"]["grid_meter_counters"]
    assert counters["import_kwh"] - counters["export_kwh"] == pytest.approx(
        sums["counted_net_kwh"], rel=0.005
    )
    assert abs(counters["net_difference_pct"]) < 2
    assert [d["date"] for d in doc["energy"]["days"]] == ["2024-01-15"]
    m = doc["money"]["total"]
    assert m["imbalance_value_gbp"] == pytest.approx(sums["imbalance_gbp"], abs=0.01)
    assert m["battery_value_gbp"] == pytest.approx(
        m["imbalance_value_gbp"] + m["bill_saved_gbp"], abs=0.011
    )
    # The red band (17:00-19:00): the battery discharged, so import fell.
    assert m["red_band_import_avoided_kwh"] > 0
    assert m["import_bill_gbp"] < m["import_bill_without_battery_gbp"]
    (peak,) = doc["peaks"]["days"]
    assert peak["date"] == "2024-01-15" and peak["without_battery_kw"] > peak["with_battery_kw"]

    b = doc["battery"]
    assert b["throughput_kwh"] == pytest.approx(
        e["battery_charged_kwh"] + e["battery_discharged_kwh"], abs=0.01
    )
    assert b["equivalent_full_cycles"] == pytest.approx(b["throughput_kwh"] / 2 / 1280, abs=1e-3)
    # Every recorded minute is in one mode or in safe stop.
    modes = sum(b["hours_by_mode"].values()) + b["safe_stop_hours"]
    assert modes == pytest.approx(HOURS, abs=2 / 60)
    assert b["hours_by_mode"]["red-band discharge"] == pytest.approx(2.0, abs=2 / 60)

    o = doc["opportunity"]
    assert o["computed"] and o["optimum_gbp"] >= o["earned_gbp"] - 0.01
    assert 0 < o["captured_pct"] <= 100.5
    assert o["earned_gbp"] == pytest.approx(m["battery_value_gbp"], abs=0.01)
    lefts = [t["left_gbp"] for t in o["top_periods"]]
    assert lefts == sorted(lefts, reverse=True) and all(v > 0 for v in lefts)
    assert o["left_gbp"] == pytest.approx(o["optimum_gbp"] - o["earned_gbp"], abs=0.011)

    pat = doc["patterns"]
    monday = pat["load_kw_by_weekday"][0]  # 16:00-19:30 GMT recorded, a Monday
    assert [h for h, v in zip(pat["half_hours"], monday, strict=True) if v is not None] == [
        "16:00", "16:30", "17:00", "17:30", "18:00", "18:30", "19:00",
    ]  # fmt: skip
    assert all(v is None for row in pat["load_kw_by_weekday"][1:] for v in row)
    recorded = [v for v in monday if v is not None]
    assert sum(recorded) * 0.5 == pytest.approx(e["load_kwh"], rel=0.01)
    assert pat["average_day_by_month"]["2024-01"]["load_kw"] == monday

    q = doc["quality"]
    periods = round(HOURS * 2)
    assert doc["complete_periods"] == periods and q["missing_periods"] == 48 - periods
    assert q["priced_periods"] >= periods
    for device in ("site", "solar", "bess", "battery_meter"):
        assert q["devices"][device]["completeness_pct"] == pytest.approx(100 * HOURS / 24, abs=0.2)
    assert any("lack grid meter or battery readings" in n for n in doc["notes"])
    elexon = "Contains BMRS data © Elexon Limited copyright and database right 2024."
    assert doc["attribution"] == elexon


def test_markdown_and_self_contained_html(reader_url: str, tmp_path: Path) -> None:
    md = flux(str(DEMO), *DAY, "--database-url", reader_url, "--output", "markdown")
    assert md.exit_code == 0, md.output
    headings = ("Energy (total)", "Money (total, £)", "Battery", "SoE distribution",
                "Red-band peaks", "Market opportunity", "Periods where most was left",
                "Average day per month", "Data quality")  # fmt: skip
    for heading in headings:
        assert f"### {heading}" in md.stdout
    assert "Elexon" in md.stdout
    assert "| round-trip efficiency % |" in md.stdout and "rows late > 10 min" in md.stdout

    out = tmp_path / "report.html"
    result = flux(str(DEMO), *DAY, "--database-url", reader_url, "--out", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 6
    assert all(base64.b64decode(i).startswith(b"\x89PNG\r\n\x1a\n") for i in images)
    # Nothing fetched from elsewhere: it opens from an email attachment.
    assert "<script" not in page and not re.search(r'(src|href)="https?:', page)


def test_a_database_without_market_data_says_so(unpriced_url: str) -> None:
    doc = report_json(unpriced_url)
    assert doc["complete_periods"] == 1
    assert doc["money"]["total"]["imbalance_value_gbp"] == 0 and doc["money"]["prices"] is None
    assert doc["opportunity"]["computed"] is False and doc["attribution"] is None
    assert any("no imbalance prices" in n for n in doc["notes"])
    md = flux(str(DEMO), *DAY, "--database-url", unpriced_url, "--output", "markdown")
    assert md.exit_code == 0 and "no imbalance prices" in md.stdout


def test_bad_input_is_one_line_and_an_exit_code(
    recorded_url: str, bare_url: str, tmp_path: Path
) -> None:
    def err(result: Result, code: int, text: str) -> None:
        assert result.exit_code == code, result.output
        assert text in result.output, result.output
        # One line says it (click's usage errors add their usage lines above it).
        assert any(text in line for line in result.stderr.splitlines()), result.stderr

    url = ("--database-url", recorded_url)
    err(flux(str(DEMO), *DAY, *url, "--db-site", "nowhere"), 2, "knows no site 'nowhere'")
    err(flux("nowhere", *DAY, *url), 2, "no site 'nowhere'")
    err(
        flux(str(DEMO), "--from", "2024-01-15", "--to", "2024-01-15", *url),
        2,
        "the range is empty",
    )
    err(
        flux(str(DEMO), "--from", "2024-02-01", "--to", "2024-02-03", *url),
        3,
        "holds no grid meter and battery readings of site 'demo' from 2024-02-01",
    )
    err(flux(str(DEMO), *DAY, "--database-url", bare_url), 2, "no flux schema")
    err(flux(str(DEMO), *DAY, "--database-url", url_for("no_such_db")), 2, "cannot connect")
    err(flux(str(DEMO), *DAY), 2, "give --database-url")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--from", "0001-01-01"], "'0001-01-01' is outside the years Flux works with"),
        (["--to", "9999-12-31"], "'9999-12-31' is outside the years Flux works with"),
        (["--from", "2024-02-30"], "'2024-02-30' is not a day of the calendar"),
        (["--from", "15/01/2024"], "'15/01/2024' is not a date written YYYY-MM-DD"),
        (["--database-url", " "], "--database-url is empty; give postgresql://USER@HOST"),
        (["--database-url", "mysql://flux@h/d"], "is a mysql:// URL, not a postgresql:// URL"),
        (["--out", "{tmp}/nodir/x.html"], "the folder {tmp}/nodir does not exist"),
        (["--out", "{tmp}/file/x.html"], "the folder {tmp}/file does not exist"),
        (["--out", "/proc/x.html"], "/proc/x.html: cannot write in the folder /proc"),
        (["--out", "{tmp}/dir", "--fleet"], "'{tmp}/dir' is a directory"),
    ],
)
def test_bad_options_are_refused_before_the_database_is_read(
    tmp_path: Path, args: list[str], text: str
) -> None:
    (tmp_path / "file").write_text("", encoding="utf-8")
    (tmp_path / "dir").mkdir()
    # A database that does not exist: reading it first would say "cannot connect".
    url = url_for("flux_no_such_database")
    values = {"--from": "2024-01-15", "--to": "2024-01-16", "--database-url": url}
    given = [a.format(tmp=tmp_path) for a in args]
    for option, value in values.items():
        if option not in given:
            given += [option, value]
    site = [] if "--fleet" in given else [str(DEMO)]
    result = flux(*site, *given)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if text.format(tmp=tmp_path) in line]
    assert len(lines) == 1, result.stderr
    assert not list(tmp_path.rglob("*.html"))


def test_fleet_reports_each_site_and_names_the_ones_it_cannot(
    reader_url: str, tmp_path: Path
) -> None:
    sites = tmp_path / "sites"
    sites.mkdir()
    text = DEMO.read_text(encoding="utf-8")
    (sites / "demo.yaml").write_text(text, encoding="utf-8")
    (sites / "other.yaml").write_text(text.replace("id: demo", "id: other"), encoding="utf-8")
    result = flux("--fleet", "--sites-dir", str(sites), *DAY, "--database-url", reader_url,
                  "--output", "json", "--no-optimum")  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [s["site"] for s in doc["sites"]] == ["demo"]
    assert doc["sites"][0]["opportunity"]["computed"] is False
    assert "knows no site 'other'" in doc["errors"]["other"]
    fleet = doc["fleet"]
    assert fleet["sites_reported"] == 1 and fleet["sites_failed"] == 1
    (row,) = fleet["by_site"]
    site = doc["sites"][0]
    assert row["site"] == "demo" and row["load_kwh"] == site["energy"]["total"]["load_kwh"]
    assert fleet["total"]["battery_value_gbp"] == site["money"]["total"]["battery_value_gbp"]
    assert row["round_trip_efficiency"] == site["battery"]["round_trip"]["efficiency"]
    html = flux("--fleet", "--sites-dir", str(sites), *DAY, "--database-url", reader_url,
                "--no-optimum", "--jobs", "1")  # fmt: skip
    assert html.exit_code == 0 and "knows no site &#x27;other&#x27;" in html.stdout
    assert "<h3>Fleet (1 sites reported, 1 not)</h3>" in html.stdout
    assert html.stdout.count("<img") == 6  # the one site's charts
    # A site without readings in the range keeps its section, saying so; with no readings
    # of any site the fleet exits 3, as one site does (the report is still written).
    empty = flux("--fleet", "--sites-dir", str(sites), "--from", "2024-02-01", "--to",
                 "2024-02-02", "--database-url", reader_url, "--no-optimum")  # fmt: skip
    assert empty.exit_code == 3 and "<h2>Demo microgrid (simulated) (demo)" in empty.stdout
    assert "holds no grid meter and battery readings for this range" in empty.stdout
    assert empty.stderr.strip() == (
        "error: the database holds no grid meter and battery readings of any of the 2 "
        "site(s) from 2024-02-01 to 2024-02-02 (exclusive); choose days they recorded "
        "(`flux db gaps` lists what is missing)"
    )
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "other.yaml").write_text(text.replace("id: demo", "id: other"), encoding="utf-8")
    out = tmp_path / "fleet.json"
    none = flux("--fleet", "--sites-dir", str(unknown), *DAY, "--database-url", reader_url,
                "--output", "json", "--out", str(out))  # fmt: skip
    assert none.exit_code == 3, none.output
    assert json.loads(out.read_text(encoding="utf-8"))["fleet"]["sites_reported"] == 0
    md = flux("--fleet", "--sites-dir", str(sites), *DAY, "--database-url", reader_url,
              "--no-optimum", "--output", "markdown")  # fmt: skip
    assert md.exit_code == 0 and "### Sites" in md.stdout and "| demo |" in md.stdout

    # A large fleet's document keeps the summary and each site's tables, not their charts.
    for k in range(CHARTS_MAX_SITES):
        (sites / f"x{k:02d}.yaml").write_text(
            text.replace("id: demo", f"id: x{k:02d}"), encoding="utf-8"
        )
    big = flux("--fleet", "--sites-dir", str(sites), *DAY, "--database-url", reader_url,
               "--no-optimum")  # fmt: skip
    assert big.exit_code == 0, big.output
    assert "Charts per site are drawn for fleets of up to" in big.stdout
    assert "<img" not in big.stdout
    assert "<h3>Energy (total)</h3>" in big.stdout

    # Past OPTIMUM_MAX_SITES sites the optimum is left out unless asked, and the report says so.
    assert len(list(sites.iterdir())) > OPTIMUM_MAX_SITES
    plain = flux("--fleet", "--sites-dir", str(sites), *DAY, "--database-url", reader_url,
                 "--output", "json")  # fmt: skip
    doc = json.loads(plain.stdout)
    assert doc["fleet"]["optimum_note"] == NO_OPTIMUM
    assert doc["sites"][0]["opportunity"]["computed"] is False
    asked = flux("--fleet", "--sites-dir", str(sites), *DAY, "--database-url", reader_url,
                 "--output", "json", "--optimum")  # fmt: skip
    doc = json.loads(asked.stdout)
    assert doc["fleet"]["optimum_note"] is None
    assert doc["sites"][0]["opportunity"]["computed"] is True
    md = flux("--fleet", "--sites-dir", str(sites), *DAY, "--database-url", reader_url,
              "--output", "markdown")  # fmt: skip
    assert f"> {NO_OPTIMUM}" in md.stdout
    assert NO_OPTIMUM in flux(
        "--fleet", "--sites-dir", str(sites), *DAY, "--database-url", reader_url
    ).stdout.replace("&#x27;", "'").replace("&#x60;", "`")
    # A small fleet computes it by default.
    for extra in sites.glob("x*.yaml"):
        extra.unlink()
    small = json.loads(
        flux("--fleet", "--sites-dir", str(sites), *DAY, "--database-url", reader_url,
             "--output", "json").stdout
    )  # fmt: skip
    assert small["fleet"]["optimum_note"] is None
    assert small["sites"][0]["opportunity"]["computed"] is True


def test_soe_distribution_and_round_trip_efficiency_from_the_raw_readings(
    recorded_url: str, reader_url: str
) -> None:
    b = report_json(reader_url)["battery"]
    with psycopg.connect(recorded_url) as conn:
        rows = conn.execute(
            "SELECT time, soe_kwh, coalesce(actual_power_kw, target_power_kw)"
            " FROM flux.bess_readings WHERE device = 'bess' ORDER BY time"
        ).fetchall()
    # The SoE at each half hour's end: its last reading.
    ends: dict[datetime, float] = {}
    for at, soe, _ in rows:
        ends[at.replace(minute=at.minute // 30 * 30, second=0, microsecond=0)] = soe
    soe = b["soe"]
    assert soe["samples"] == len(ends) == round(HOURS * 2)
    for q in (5, 25, 50, 75, 95):
        expected = float(np.percentile(list(ends.values()), q))
        assert soe["percentiles_kwh"][f"p{q}"] == pytest.approx(expected, abs=0.06)
        assert soe["percentiles_pct"][f"p{q}"] == pytest.approx(100 * expected / 1280, abs=0.06)
    assert sum(soe["hours_by_band"]) == pytest.approx(0.5 * len(ends))
    for band, hours in zip(soe["bands_pct"], soe["hours_by_band"], strict=True):
        lo = int(band.split("-")[0])
        inside = [v for v in ends.values() if lo <= 100 * v / 1280 < lo + 10]
        assert hours == 0.5 * len(inside), band

    # Round trip from the readings: charge and discharge at the terminals, kept apart per
    # 5 minutes as the report does (a bucket that turns from charge to discharge nets), and
    # the SoE change from the first reading to the last.
    buckets: dict[datetime, list[float]] = {}
    for at, _, kw in rows:
        five = at.replace(minute=at.minute // 5 * 5, second=0, microsecond=0)
        buckets.setdefault(five, []).append(kw)
    means = [sum(v) / len(v) for v in buckets.values()]
    charged = sum(max(-kw, 0.0) for kw in means) * 5 / 60
    discharged = sum(max(kw, 0.0) for kw in means) * 5 / 60
    change = rows[-1][1] - rows[0][1]
    rt = b["round_trip"]
    assert rt["charged_kwh"] == pytest.approx(charged, rel=0.005)
    assert rt["discharged_kwh"] == pytest.approx(discharged, rel=0.005)
    assert rt["soe_change_kwh"] == pytest.approx(change, abs=1.0)
    assert rt["efficiency"] == pytest.approx((discharged + change) / charged, abs=0.01)
    # The simulator loses 15 % on charging (demo.yaml's charge_efficiency 0.85).
    assert 0.8 < rt["efficiency"] < 0.87 and rt["reason"] is None


def test_round_trip_efficiency_formula_and_when_it_is_not_given() -> None:
    # 100 kWh charged at 85 %, 50 discharged: 35 kWh stay in the battery.
    assert round_trip(100.0, 50.0, 85.0 - 50.0, 1000.0)["efficiency"] == 0.85
    assert round_trip(100.0, 85.0, 0.0, 1000.0)["efficiency"] == 0.85
    dominated = round_trip(100.0, 20.0, 65.0, 1000.0)
    assert dominated["efficiency"] is None and "SoE changed by +65.0 kWh" in dominated["reason"]
    little = round_trip(10.0, 8.5, 0.0, 1000.0)
    assert little["efficiency"] is None and "too little" in little["reason"]
    unknown = round_trip(0.0, 0.0, None, 1000.0)
    assert unknown["efficiency"] is None and "no period" in unknown["reason"]


def test_the_average_day_of_each_month(reader_url: str) -> None:
    pat = report_json(reader_url)["patterns"]
    (month,) = pat["average_day_by_month"].items()
    name, day = month
    assert name == "2024-01"
    load = [v for v in day["load_kw"] if v is not None]
    assert day["peak_load_kw"] == max(load)
    assert day["peak_load_at"] == pat["half_hours"][day["load_kw"].index(max(load))]
    assert day["mean_load_kw"] == pytest.approx(sum(load) / len(load), abs=0.05)
    assert day["peak_solar_kw"] == max(v for v in day["solar_kw"] if v is not None)
