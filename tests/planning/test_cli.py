"""`flux plan` as a user types it."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from reconciler.cli import cli
from tests.source.conftest import ROOT

SITES = ["--sites-dir", str(ROOT / "sites")]


def test_plan_json_keeps_the_battery_inside_its_limits(tmp_path: Path) -> None:
    png = tmp_path / "plan.png"
    result = CliRunner().invoke(
        cli,
        [
            "plan",
            "demo",
            "--at",
            "2024-01-17T15:00",
            "--output",
            "json",
            "--plot",
            str(png),
            *SITES,
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["site"] == "demo" and len(doc["steps"]) == 72
    assert doc["made_at"] == "2024-01-17T15:00:00+00:00"
    for step in doc["steps"]:
        assert -565.001 <= step["battery_kw"] <= 565.001
        assert 0.05 * 1280 - 0.01 <= step["soe_end_kwh"] <= 1280.01
    # a winter weekday evening: it discharges into the red band and charges at night
    assert max(s["battery_kw"] for s in doc["steps"]) > 100
    assert min(s["battery_kw"] for s in doc["steps"]) < -100
    assert png.read_bytes().startswith(b"\x89PNG")
    assert "no optimise entry" in result.stderr  # demo.yaml plans with the defaults


def plan(*args: str) -> Result:
    result = CliRunner().invoke(cli, ["plan", "demo", *args, *SITES])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_plan_says_what_is_wrong_with_its_options(tmp_path: Path) -> None:
    for args, message in (
        (["--at", "yesterday"], "'yesterday' is not an ISO 8601 time such as 2024-01-15T15:30"),
        (["--at", "0001-01-01T00:00"], "outside the years Flux works with (1970-2199)"),
        (["--at", "9999-12-31T23:59"], "outside the years Flux works with (1970-2199)"),
        (["--soe", "lots"], "'lots' is not kWh (e.g. 640) or a percentage"),
        (["--soe", "nan"], "'nan' is not kWh"),
        (["--soe", "inf"], "'inf' is not kWh"),
        (["--soe", "1e400"], "'1e400' is not kWh"),
        (["--soe", "1281"], "'1281' is 1,281.0 kWh, outside the battery (0 to 1,280 kWh)"),
        (["--soe", "-10%"], "'-10%' is -128.0 kWh, outside the battery"),
        (["--plot", str(tmp_path / "no" / "plan.png")], "does not exist"),
        # A folder nothing can be made in, even by root (for whom permissions all pass).
        (["--plot", "/proc/plan.png"], "/proc/plan.png: cannot write in the folder /proc"),
        (["--plot", str(tmp_path / "plan.txt")], "cannot draw a .txt"),
        (["--plot", str(tmp_path / "plan")], "cannot draw a file without an extension"),
    ):
        result = plan("--at", "2024-01-17T15:00", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert result.stdout == "", args  # refused before any plan is printed
    assert list(tmp_path.iterdir()) == []


def test_a_bare_soe_is_kwh_and_a_percentage_is_of_the_nameplate() -> None:
    def start_kwh(soe: str) -> float:
        result = plan("--at", "2024-01-17T03:00", "--soe", soe, "--output", "json")
        assert result.exit_code == 0, result.output
        return float(json.loads(result.stdout)["soe_start_kwh"])

    assert start_kwh("640") == start_kwh("50%") == 640.0  # the demo's nameplate is 1,280 kWh
    assert start_kwh("50") == 50.0


def test_a_local_time_the_clocks_skip_is_moved_on_and_said() -> None:
    result = plan("--at", "2024-03-31T01:30", "--output", "json")
    assert result.exit_code == 0, result.output
    assert "no such local time in Europe/London (the clocks go forward)" in result.stderr
    assert "planning from 2024-03-31 02:30 BST" in result.stderr
    assert json.loads(result.stdout)["made_at"] == "2024-03-31T02:30:00+01:00"  # 01:30 UTC
