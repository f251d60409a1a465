"""`flux backtest` through click: outputs, the --base comparison, and usage errors."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.backtest.report import NUMERIC_METRICS
from reconciler.cli import cli
from reconciler.control.periods import PERIOD
from tests.backtest.conftest import DEMO, ROOT, variant

SITES = ROOT / "sites"


def flux(*args: str) -> Result:
    result = CliRunner().invoke(cli, ["backtest", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@dataclass(frozen=True)
class Run:
    """A backtest through click, and the agent's log level before and after it."""

    result: Result
    level_before: int
    level_after: int


@pytest.fixture(scope="module")
def demo_json() -> Run:
    """`flux backtest demo --output json` (a simulated day: shared by the module's tests)."""
    agent_log = logging.getLogger("flux.agent")
    before = agent_log.level
    result = flux("demo", "--sites-dir", str(SITES), "--output", "json")
    return Run(result, before, agent_log.level)


def test_json_has_stable_keys_with_breaches_as_counts(demo_json: Run) -> None:
    result = demo_json.result
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {
        "file",
        "prices",
        "site",
        "timezone",
        "start",
        "end",
        "tick_s",
        "ticks",
        "limits",
        "days",
        "total",
    } <= set(doc)
    assert doc["site"] == "demo" and doc["prices"] == "january-2024"
    assert doc["start"] == "2024-01-15T00:00:00+00:00"  # the default --from, local midnight
    assert [d["date"] for d in doc["days"]] == ["2024-01-15"]
    for part in (doc["days"][0], doc["total"]):
        assert set(NUMERIC_METRICS) <= set(part)
        assert {"peak_import_at", "hours_by_winner"} <= set(part)
        for key in (
            "minutes_over_import_limit",
            "minutes_over_export_limit",
            "minutes_soe_outside_limits",
        ):
            assert isinstance(part[key], (int, float))
    assert sum(doc["total"]["hours_by_winner"].values()) == 24.0
    for part in (doc["days"][0], doc["total"]):
        ref = part["optimum"]
        assert set(ref) == {
            "strategy_gbp",
            "strategy_cycles",
            "optimum_gbp",
            "optimum_cycles",
            "captured_pct",
            "same_day_gbp",
            "same_day_cycles",
            "same_day_captured_pct",
        }
        assert ref["strategy_gbp"] == part["battery_value_gbp"]
        assert 0 < ref["strategy_gbp"] <= ref["same_day_gbp"] <= ref["optimum_gbp"]
        assert ref["captured_pct"] == round(100 * ref["strategy_gbp"] / ref["optimum_gbp"], 2)


def test_markdown_with_base_is_a_pr_comment(tmp_path: Path) -> None:
    # The pull request raises import avoidance above NIV chase.
    changed = tmp_path / "demo.yaml"
    changed.write_text(
        variant("  - mode: import_avoidance\n", "  - mode: import_avoidance\n    priority: 65\n"),
        encoding="utf-8",
    )
    result = flux(
        str(changed), "--base", str(DEMO), "--base-label", "main:sites/demo.yaml",
        "--output", "markdown",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("#### Backtest of `demo`: `main:sites/demo.yaml` (base)")
    assert "| metric | base | this file | difference |" in lines
    assert "|---|---:|---:|---:|" in lines
    assert any(line.startswith("Over 2024-01-15 (1 day), this change would have") for line in lines)
    captured = next(line for line in lines if line.startswith("| captured % of optimum |"))
    base_pct, this_pct, _ = (cell.strip() for cell in captured.strip("|").split("|")[1:])
    assert base_pct.endswith("%") and this_pct.endswith("%")
    summary = next(line for line in lines if line.startswith("Over 2024-01-15"))
    assert f"Captured of the perfect-foresight optimum: {this_pct} (base {base_pct})." in summary
    row = next(line for line in lines if line.startswith("| hours won: weekday NIV chase |"))
    base, this, diff = (cell.strip() for cell in row.strip("|").split("|")[1:])
    assert float(this) < float(base) and diff.startswith("-")
    # January 2024 played on its own days, with the licence's line for the year shown.
    assert "January 2024" in result.stdout and "replayed on its own dates" in result.stdout
    assert "wrapped" not in result.stdout
    assert "Contains BMRS data © Elexon Limited copyright and database right 2024." in lines[-1]


def test_markdown_without_base_has_a_column_per_day_and_a_total() -> None:
    result = flux(
        str(DEMO), "--from", "2024-01-20", "--days", "2", "--prices", "none", "--output", "markdown"
    )
    assert result.exit_code == 0, result.output
    assert "| metric | 2024-01-20 | 2024-01-21 | total |" in result.stdout.splitlines()
    assert "no market prices" in result.stdout


def test_an_invalid_site_file_exits_2_with_file_and_line(tmp_path: Path) -> None:
    text = variant("  soe_min: 5%\n", "  soe_min: lots\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    line = text.splitlines().index("  soe_min: lots") + 1
    for args in ([str(bad)], [str(DEMO), "--base", str(bad)]):
        result = flux(*args)
        assert result.exit_code == 2
        assert f"{bad}:{line}:" in result.stderr
        assert "limits.soe_min" in result.stderr
        assert "Traceback" not in result.output
        assert result.stdout == ""


def test_usage_errors_exit_2() -> None:
    for args in (
        [str(DEMO), "--days", "0"],
        [str(DEMO), "--days", "367"],
        [str(DEMO), "--prices", "february-2024"],
        [str(DEMO), "--from", "15/01/2024"],
        [str(DEMO), "--from", "0001-01-01"],
        [str(DEMO), "--from", "9999-12-31"],
        [str(DEMO), "--from", "2024-02-30"],
        [str(DEMO), "--load-homes", "nan"],
        [str(DEMO), "--load-homes", "inf"],
        [str(DEMO), "--load-homes", "1e-300"],
        [str(DEMO), "--solar-kwp", "nan"],
        ["no-such-site", "--sites-dir", str(SITES)],
    ):
        result = flux(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "Usage:" in result.output or "no site" in result.output
    assert "Invalid value for '--days'" in flux(str(DEMO), "--days", "0").output
    assert "Invalid value for '--days'" in flux(str(DEMO), "--days", "367").output
    years = flux(str(DEMO), "--from", "0001-01-01").output
    assert "'0001-01-01' is outside the years Flux works with (1970-2199)" in years
    assert "is not a day of the calendar" in flux(str(DEMO), "--from", "2024-02-30").output
    assert "'nan' is not a finite number" in flux(str(DEMO), "--load-homes", "nan").output


def test_a_price_file_and_a_load_file(tmp_path: Path) -> None:
    # A plain CSV of one autumn clock-change day (50 periods), starting at local midnight.
    start = datetime(2018, 10, 27, 23, tzinfo=UTC)
    prices = tmp_path / "prices.csv"
    prices.write_text(
        "time,price_p_per_kwh,niv_mwh\n"
        + "".join(
            f"{(start + i * timedelta(minutes=30)).isoformat()},{2 if i < 30 else 12},100\n"
            for i in range(50)
        ),
        encoding="utf-8",
    )
    load = tmp_path / "load.csv"
    load.write_text("time,kw\n2018-10-27T23:00Z,27\n2018-10-27T23:30Z,27\n", encoding="utf-8")
    result = flux(
        str(DEMO), "--prices", str(prices), "--load", str(load), "--load-homes", "27",
        "--output", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [d["date"] for d in doc["days"]] == ["2018-10-28"]  # the file's first local day
    day = doc["days"][0]
    assert day["settlement_periods"] == 50 and day["hours"] == 25.0
    assert day["load_kwh"] == pytest.approx(54 * 25.0)  # 1 kW per home, 54 homes, 25 h
    assert day["optimum"]["optimum_gbp"] > 0


def test_a_price_file_played_on_other_days_says_so_and_gives_its_years(tmp_path: Path) -> None:
    # A day of December 2018 and the first of January 2019, played on a day in March 2024.
    start = datetime(2018, 12, 31, tzinfo=UTC)
    prices = tmp_path / "prices.csv"
    prices.write_text(
        "time,price_p_per_kwh\n"
        + "".join(f"{(start + i * PERIOD).isoformat()},{5 + i % 7}\n" for i in range(96)),
        encoding="utf-8",
    )
    result = flux(
        str(DEMO), "--prices", str(prices), "--from", "2024-03-05", "--days", "1",
        "--no-optimum", "--output", "markdown",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    note = result.stdout.splitlines()[-1]
    assert f"{prices} replayed, wrapped onto dates outside it" in note, note
    assert note.endswith(
        "Contains BMRS data © Elexon Limited copyright and database right 2018-2019."
    )


def test_bad_price_and_load_files_exit_2_with_file_and_line(tmp_path: Path) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_text("time,price_p_per_kwh\n2024-01-15T00:00Z,cheap\n", encoding="utf-8")
    result = flux(str(DEMO), "--prices", str(prices))
    assert result.exit_code == 2
    assert f"{prices}:2: price_p_per_kwh: 'cheap' is not a number" in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    load = tmp_path / "load.csv"
    load.write_text("time,kw\n2024-01-15 00:00,1\n2024-01-15 00:20,1\n", encoding="utf-8")
    result = flux(str(DEMO), "--load", str(load))
    assert result.exit_code == 2
    assert f"{load}:3: time: rows 0:20:00 apart" in result.stderr


@pytest.mark.slow
def test_a_day_ahead_feed_reaches_the_plans() -> None:
    """March 2018's own imbalance prices as the day-ahead feed (a perfect forecast,
    published at noon the day before): the optimise variant's plans follow it and capture
    far more of the optimum than from its own forecast."""
    args = [str(SITES / "variants" / "demo-optimise.yaml"), "--prices", "2018-03",
            "--from", "2018-03-13", "--output", "json"]  # fmt: skip
    captured = []
    for extra in ([], ["--day-ahead", "2018-03"]):
        result = flux(*args, *extra)
        assert result.exit_code == 0, result.output
        captured.append(json.loads(result.stdout)["total"]["optimum"]["captured_pct"])
    own, published = captured
    assert published > own + 30 and published > 80, captured


def test_an_unknown_day_ahead_choice_names_its_option() -> None:
    result = flux("demo", "--sites-dir", str(SITES), "--day-ahead", "nope")
    assert result.exit_code == 2
    assert "Invalid value for '--day-ahead': 'nope' is neither a file nor one of" in result.output


def test_the_agents_log_level_is_put_back_after_a_backtest(demo_json: Run) -> None:
    assert demo_json.result.exit_code == 0
    assert demo_json.level_after == demo_json.level_before


@pytest.mark.slow
def test_the_base_and_the_file_side_by_side_give_the_figures_of_one_after_the_other() -> None:
    args = [
        str(SITES / "variants" / "demo-optimise.yaml"), "--base", str(DEMO),
        "--output", "json", "--from", "2024-01-16",
    ]  # fmt: skip
    apart = flux(*args, "--jobs", "1")
    together = flux(*args, "--jobs", "2")
    assert apart.exit_code == 0 and together.exit_code == 0, apart.output + together.output
    one, two = json.loads(apart.stdout), json.loads(together.stdout)
    assert one == two
    # Two different files were run: the comparison is not of a run with itself.
    assert one["base"]["total"] != one["this"]["total"]
