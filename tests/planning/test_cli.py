"""`flux plan` as a user types it."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

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


def test_plan_says_what_is_wrong_with_its_options() -> None:
    bad_at = CliRunner().invoke(cli, ["plan", "demo", "--at", "yesterday", *SITES])
    assert bad_at.exit_code == 2 and "'yesterday' is not like 2024-01-15T15:30" in bad_at.output
    bad_soe = CliRunner().invoke(cli, ["plan", "demo", "--soe", "lots", *SITES])
    assert bad_soe.exit_code == 2 and "is not kWh or a percentage" in bad_soe.output
