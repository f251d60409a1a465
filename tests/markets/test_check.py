"""`flux markets check`: one call to each configured API, and a plain answer per API.
The APIs are faked with httpx.MockTransport (routed by host); the command itself is run
against a closed port (a real connection refusal) and on site files without markets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.config.loader import check_site_text
from reconciler.config.model import Markets, Site
from reconciler.control.periods import period_at
from reconciler.markets.check import check_markets
from tests.markets.fakes import BASE, PASSWORD, T0, USER, FakeAxle
from tests.net import free_port
from tests.source.conftest import DEMO_TEXT

AXLE = {
    "base_url": BASE,
    "asset_id": "asset-1",
    "username_env": "AXLE_USERNAME",
    "password_env": "AXLE_PASSWORD",
}
MODO = {"base_url": "https://modo.test/markets", "api_key_env": "MODO_KEY"}
ELEXON = {"base_url": "https://elexon.test/bmrs/api/v1"}


def site_with(markets: dict[str, Any]) -> Site:
    site, problems = check_site_text(DEMO_TEXT, "demo.yaml")
    assert site is not None, problems
    return site.model_copy(update={"markets": Markets.model_validate(markets)})


def apis(axle: FakeAxle) -> httpx.MockTransport:
    period = period_at(T0)

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "modo.test":
            row = {"date": period.day.isoformat(), "settlement_period": period.number}
            return httpx.Response(200, json={"results": [{**row, "system_price": 92.5}]})
        if request.url.host == "elexon.test":
            return httpx.Response(502, text="bad gateway")
        return axle.handler(request)

    return httpx.MockTransport(handle)


def run_check(markets: dict[str, Any], environ: dict[str, str], axle: FakeAxle) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with httpx.AsyncClient(transport=apis(axle)) as http:
            results = await check_markets(site_with(markets), environ, http, T0)
        return {r.source: r for r in results}

    return asyncio.run(go())


def test_each_api_answers_once_with_what_it_gave() -> None:
    axle = FakeAxle()
    got = run_check(
        {"modo": MODO, "elexon": ELEXON, "axle": AXLE},
        {"AXLE_USERNAME": USER, "AXLE_PASSWORD": PASSWORD},
        axle,
    )
    assert sorted(got) == ["axle", "elexon", "modo"]
    modo = got["modo"]
    assert modo.ok
    assert f"latest imbalance_price 9.25 p/kWh for {period_at(T0)}" in modo.detail
    assert "MODO_KEY is not set" in modo.detail  # a note: Modo works without a key
    assert not got["elexon"].ok and "HTTP 502" in got["elexon"].detail
    assert got["axle"].ok and "step(s) ahead; next" in got["axle"].detail
    assert not axle.of("POST", "/api/data/readings")  # nothing is reported by a check
    assert PASSWORD not in json.dumps([r.as_json() for r in got.values()])


def test_missing_axle_credentials_are_a_failed_row_and_no_call() -> None:
    axle = FakeAxle()
    got = run_check({"axle": AXLE}, {"AXLE_USERNAME": USER}, axle)
    (row,) = got.values()
    assert row.source == "axle" and not row.ok
    assert "AXLE_PASSWORD not set" in row.detail
    assert axle.requests == []


def write_site(tmp_path: Path, markets_yaml: str) -> Path:
    text = DEMO_TEXT.replace("markets:\n", "", 1)
    start = text.index("  # NIV chase needs an imbalance price.")
    end = text.index("  modo: {}\n") + len("  modo: {}\n")
    path = tmp_path / "site.yaml"
    path.write_text(text[:start] + text[end:] + markets_yaml, encoding="utf-8")
    return path


def test_cli_exit_1_when_an_api_cannot_be_reached(tmp_path: Path) -> None:
    port = free_port()
    path = write_site(tmp_path, f"markets:\n  modo: {{base_url: 'http://127.0.0.1:{port}/m'}}\n")
    result = CliRunner().invoke(cli, ["markets", "check", str(path), "--output", "json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    (api,) = doc["apis"]
    assert api["source"] == "modo" and "cannot reach" in api["detail"]


def test_cli_with_no_markets_says_so_and_exits_0(tmp_path: Path) -> None:
    path = write_site(tmp_path, "")
    result = CliRunner().invoke(cli, ["markets", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "no market APIs configured" in result.output


def test_cli_refuses_an_invalid_site_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(DEMO_TEXT.replace("  tick_s: 4\n", "  tick_s: soon\n"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["markets", "check", str(path)])
    assert result.exit_code == 2
    assert "control.tick_s" in result.output and "Traceback" not in result.output
