"""`flux diff` end to end: the agent runs against the simulator, uploads to PostgreSQL, and
each kind of drift is made on purpose and must show with its reason (exit 1); a site that
does what it should exits 0."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from reconciler.agent.run import Agent, AgentOptions
from reconciler.devices.factory import open_site_devices
from reconciler.source.controller import FileSource
from tests.diff.conftest import World, invoke, variant
from tests.source.conftest import DEMO_TEXT

BIG_LOAD = variant(homes="250")  # import avoidance discharges ~200 kW at midday


def drifts(doc: dict[str, Any], category: str | None = None) -> list[dict[str, str]]:
    return [d for d in doc["drifts"] if category is None or d["category"] == category]


async def test_a_site_doing_what_it_should_has_no_drift(world: World) -> None:
    await world.run(600)
    world.upload()
    result = world.diff()
    assert result.exit_code == 0, result.output
    assert "no drift" in result.output
    for alarming in ("critical", "warning", "error"):
        assert alarming not in result.output.lower()

    code, doc = world.diff_json()
    assert code == 0
    assert doc["drift"] is False and doc["drifts"] == [] and doc["ignored_count"] == 0
    summary = doc["summary"]
    assert summary["applied"] == summary["desired"] == world.source.current().sha  # type: ignore[union-attr]
    assert summary["mode"] == "import_avoidance#4"
    assert summary["ready"].startswith("True")

    # `--at latest`: as of the agent's latest report (the demo runs on simulated time).
    latest = invoke(
        "diff", "demo", "--repo", str(world.repo), "--database-url", world.db_url,
        "--at", "latest", "--window", "1h", "--output", "json",
    )  # fmt: skip
    assert latest.exit_code == 0, latest.output
    assert json.loads(latest.stdout)["at"] < world.clock.now().isoformat()
    # Wall-clock now, two years on: the agent is long silent, and that is drift.
    now = invoke(
        "diff", "demo", "--repo", str(world.repo), "--database-url", world.db_url,
        "--output", "json",
    )  # fmt: skip
    assert now.exit_code == 1
    silent = [d for d in json.loads(now.stdout)["drifts"] if d["field"] == "agent"]
    assert silent and "stopped reporting" in silent[0]["reason"]


NIGHT = datetime(2024, 1, 16, 2, 30, tzinfo=UTC)  # weekday NIV chase on replayed prices


@pytest.mark.parametrize("market", [NIGHT], indirect=True)
async def test_niv_chase_is_re_derived_from_the_recorded_prices(world: World) -> None:
    """The prices the agent used are in flux.market_data: the diff decides again with
    them and agrees with the agent (no drift, no caveat)..."""
    await world.run(1200)
    world.upload()
    code, doc = world.diff_json()
    assert code == 0, doc["drifts"]
    assert doc["summary"]["mode"] == "weekday NIV chase"
    assert not any("market signals" in n for n in doc["notes"]), doc["notes"]

    # ...and it is the recorded prices that count: make them £1,000/MWh dearer and the
    # schedule wants a different setpoint from the one the battery follows.
    with psycopg.connect(world.db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE flux.market_data SET value = value + 100 WHERE type = 'imbalance_price'"
        )
    code, doc = world.diff_json()
    assert code == 1
    (line,) = drifts(doc, "operating")
    assert line["field"] == "setpoint" and "weekday NIV chase" in line["desired"]


@pytest.mark.parametrize("market", [NIGHT], indirect=True)
async def test_without_recorded_prices_the_agents_setpoint_is_the_reference(
    world: World,
) -> None:
    """No market data (an agent from before it was recorded): NIV chase cannot be
    re-derived, so the agent's own setpoint is the reference, and a battery that follows
    it is in order while one that does not is drift."""
    await world.run(1200)
    world.upload()
    with psycopg.connect(world.db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM flux.market_data")
    code, doc = world.diff_json()
    assert code == 0, doc["drifts"]
    assert any("market signals" in n for n in doc["notes"])

    world.sim.plant.battery.available_blocks = 0  # and one that does not follow is not
    await world.run(120)
    world.upload()
    with psycopg.connect(world.db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM flux.market_data")
    code, doc = world.diff_json()
    assert code == 1
    (line,) = drifts(doc, "operating")
    assert "the agent's" in line["desired"] and "not following" in line["reason"]


async def test_an_older_applied_sha_shows_as_revision_drift(world: World) -> None:
    await world.run(120)
    applied = world.source.current().sha  # type: ignore[union-attr]
    newer = world.commit(variant(homes="60"), "more homes")  # not fetched by the agent
    await world.run(60)
    world.upload()
    code, doc = world.diff_json()
    assert code == 1
    (line,) = drifts(doc, "revision")
    assert line["field"] == "applied"
    assert line["desired"] == newer[:12] and line["observed"] == applied[:12]
    assert "behind" in line["reason"] and "not fetched" in line["reason"]
    # Everything else still matches: only the revision drifts.
    assert len(drifts(doc)) == 1

    # The older ref is what the agent runs: no drift against it.
    result = world.diff("--ref", "HEAD~1")
    assert result.exit_code == 0, result.output


async def test_a_setting_of_a_revision_not_applied_yet_says_so(world: World) -> None:
    await world.run(60)
    world.commit(variant(ramp_up_kw_per_s="50"), "gentler ramps")  # not fetched yet
    world.sim.plant.write("ramp_down", 40.0)  # and one changed at the battery's panel
    await world.run(60)
    world.upload()
    code, doc = world.diff_json()
    assert code == 1
    lines = {d["field"]: d for d in drifts(doc, "device")}
    # the panel's change was put back by the agent; the commit's is still to come
    assert set(lines) == {"ramp_up"}
    assert (lines["ramp_up"]["desired"], lines["ramp_up"]["observed"]) == ("50 kW/s", "100 kW/s")
    assert "not applied yet" in lines["ramp_up"]["reason"]


async def test_a_commit_that_leaves_the_site_file_alone_is_not_drift(world: World) -> None:
    await world.run(60)
    applied = world.source.current().sha  # type: ignore[union-attr]
    head = world.upstream.commit(world.repo.joinpath("sites/demo.yaml").read_text(), "docs")
    assert head != applied
    world.upload()
    result = world.diff()
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("initial_text", [BIG_LOAD], indirect=True)
async def test_a_quarantined_revision_says_why_it_was_refused(world: World) -> None:
    # A load well over the tracking tolerance: a battery that stops following is seen.
    await world.run(60)
    good = world.source.current().sha  # type: ignore[union-attr]
    suspect = world.commit(variant(homes="260"), "suspect")
    await world.source.sync_once()
    world.sim.plant.battery.available_blocks = 0  # the battery stops following
    await world.run(16)
    assert world.source.current().sha == good  # type: ignore[union-attr]
    world.sim.plant.battery.available_blocks = world.sim.plant.battery.total_blocks
    await world.run(64)
    world.upload()
    code, doc = world.diff_json()
    assert code == 1
    (line,) = drifts(doc, "revision")
    assert line["desired"] == suspect[:12] and line["observed"] == good[:12]
    assert "quarantined" in line["reason"] and "health gate" not in line["observed"]


async def test_a_ramp_changed_at_the_battery_is_put_back_and_leaves_no_drift(
    world: World,
) -> None:
    """Someone changes a ramp at the battery's own panel: the agent reads the settings
    back after its next write and writes the desired one again, saying so in the decision;
    the diff then finds the battery as desired."""
    await world.run(60)
    world.sim.plant.write("ramp_up", 40.0)  # someone at the battery's own panel
    await world.run(120)
    assert world.sim.plant.battery.ramp_up_kw_per_s == pytest.approx(100.0)
    world.upload()
    code, doc = world.diff_json()
    assert code == 0, doc["drifts"]
    with psycopg.connect(world.db_url) as conn:
        reasons = [r for (r,) in conn.execute("SELECT reason FROM flux.control_decisions")]
    assert any("battery settings re-applied (ramp_up 40 -> 100)" in r for r in reasons)


@pytest.mark.parametrize("initial_text", [BIG_LOAD], indirect=True)
async def test_a_battery_held_at_zero_while_the_schedule_wants_discharge(world: World) -> None:
    await world.run(120)
    world.sim.plant.battery.available_blocks = 0  # every inverter block trips
    await world.run(120)
    world.upload()
    code, doc = world.diff_json()
    assert code == 1
    (line,) = drifts(doc, "operating")
    assert line["field"] == "setpoint"
    assert float(line["desired"].split(" kW")[0]) > 100  # import avoidance: the load
    assert line["observed"].startswith("0.0 kW")
    assert "not following" in line["reason"] and "no inverter block" in line["reason"]
    assert line["severity"] == "critical"


@pytest.mark.parametrize(
    "initial_text",
    [variant(homes="250", site_import_kw="60", initial_soe="5%")],
    indirect=True,
)
async def test_an_import_limit_breach_is_counted_with_its_worst_value(world: World) -> None:
    # The battery starts empty (at soe_min): nothing can hold the import under 60 kW.
    await world.run(300)
    world.upload()
    code, doc = world.diff_json()
    assert code == 1
    (line,) = drifts(doc, "limits")
    assert line["field"] == "site_import"
    assert line["desired"] == "<= 60.0 kW import"
    count, total = line["observed"].split(" readings")[0].split(" of ")
    assert int(count) == int(total) >= 5
    worst = float(line["observed"].split("worst ")[1].split(" kW")[0])
    assert worst > 60
    assert "could not cover the load" in line["reason"]
    assert not drifts(doc, "operating")  # at soe_min, holding 0 kW is what is wanted


async def test_a_telemetry_gap_shows_missing_minutes_per_device(world: World) -> None:
    await world.run(120)
    world.sim.faults.exception("solar", 4)  # the meter fails every read for 3 minutes
    await world.run(180)
    world.sim.faults.clear("solar")
    await world.run(120)
    world.upload()
    code, doc = world.diff_json()
    assert code == 1
    (line,) = drifts(doc)
    assert (line["category"], line["field"]) == ("telemetry", "solar")
    minutes = int(line["observed"].split(" min missing")[0])
    assert 2 <= minutes <= 4
    assert line["severity"] == "warning"


IGNORING_SOLAR = DEMO_TEXT + (
    "\ndiff:\n  ignore:\n    - {category: telemetry, field: sol*, reason: solar meter flaky}\n"
)


@pytest.mark.parametrize("initial_text", [IGNORING_SOLAR], indirect=True)
async def test_an_ignore_rule_hides_an_accepted_difference(world: World) -> None:
    await world.run(120)
    world.sim.faults.exception("solar", 4)  # the meter fails every read for 3 minutes
    await world.run(180)
    world.sim.faults.clear("solar")
    await world.run(120)
    world.upload()
    result = world.diff()
    assert result.exit_code == 0, result.output
    assert "1 ignored" in result.output and "solar meter flaky" in result.output
    code, doc = world.diff_json()
    assert code == 0 and doc["ignored_count"] == 1
    assert doc["ignored"][0]["field"] == "solar"


async def test_an_agent_that_never_reported_is_drift(world: World) -> None:
    code, doc = world.diff_json()
    assert code == 1
    fields = {(d["category"], d["field"]) for d in drifts(doc)}
    assert ("revision", "applied") in fields and ("telemetry", "agent") in fields


async def test_status_has_one_row_per_site_and_flags_the_drifting_one(world: World) -> None:
    await world.run(120)
    world.upload()
    args = [
        "status",
        "--repo",
        str(world.repo),
        "--database-url",
        world.db_url,
        "--at",
        world.clock.now().isoformat(),
        "--window",
        "1h",
    ]
    ok = invoke(*args)
    assert ok.exit_code == 0, ok.output
    assert "demo" in ok.output and "no drift" in ok.output

    world.commit(variant(homes="60"), "more homes")
    world.upstream.commit("site: {id: broken}\n", "half-written", path="sites/other.yaml")
    result = invoke(*args, "--output", "json")
    assert result.exit_code == 1, result.output
    import json

    doc = json.loads(result.stdout)
    rows = {r["site"]: r for r in doc["sites"]}
    assert set(rows) == {"demo", "other"}
    assert rows["demo"]["in_sync"] is False and rows["demo"]["drift_count"] == 1
    assert rows["demo"]["mode"] == "import_avoidance#4"
    assert rows["demo"]["soe_kwh"] > 0
    assert "not a valid site file" in rows["other"]["error"]
    table = invoke(*args)
    assert table.exit_code == 1
    assert "2 site(s) drift" in table.output


async def test_a_file_source_agent_is_compared_by_content(world: World, tmp_path: Path) -> None:
    """An agent run on a plain file (`flux agent run --site file.yaml`) reports
    file:<sha256[:12]>; the same bytes at the ref are no drift, other bytes are."""
    text = world.repo.joinpath("sites/demo.yaml").read_text(encoding="utf-8")
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    source = FileSource(path, clock=world.clock)
    agent = Agent(
        source,
        clock=world.clock,
        store=world.outbox,
        options=AgentOptions(http_port=None),
        devices=lambda s, c: open_site_devices(s, clock=c),
    )
    try:
        for _ in range(30):
            await agent.step()
            world.clock.advance(4)
    finally:
        if agent.loop is not None:
            await agent.loop.close()
    world.upload()
    assert source.current().sha.startswith("file:")
    same = world.diff()
    assert same.exit_code == 0, same.output
    by_path = invoke(
        "diff", str(path), "--database-url", world.db_url,
        "--at", world.clock.now().isoformat(), "--window", "1h",
    )  # fmt: skip
    assert by_path.exit_code == 0, by_path.output

    world.commit(variant(homes="60"), "more homes")
    code, doc = world.diff_json()
    assert code == 1
    (line,) = drifts(doc, "revision")
    assert line["observed"] == source.current().sha
    assert "local site file" in line["reason"]


async def test_a_failing_market_api_is_telemetry_drift(world: World) -> None:
    markets = world.agent.markets.inner  # under the planning wrapper
    assert markets is not None  # no replay: the agent runs the site file's market clients
    down = httpx.MockTransport(lambda request: httpx.Response(503, text="maintenance"))
    markets.http = httpx.AsyncClient(transport=down)
    for _ in range(40):  # 160 s: a failed call, and another after the backoff
        await world.run(4)
        await markets.poll_due()
    world.upload()
    code, doc = world.diff_json()
    assert code == 1
    (line,) = [d for d in drifts(doc, "telemetry") if d["field"] == "market:modo"]
    assert line["observed"].startswith("failing: 2 call(s) in a row")
    assert "HTTP 503" in line["reason"] and line["severity"] == "warning"


AXLE_SITE = DEMO_TEXT.replace(
    "  modo: {}\n",
    "  modo: {}\n  axle: {base_url: 'https://axle.test', asset_id: a-1,"
    " username_env: FLUX_T_AXLE_USER, password_env: FLUX_T_AXLE_PASSWORD}\n",
)


@pytest.mark.parametrize("initial_text", [AXLE_SITE], indirect=True)
async def test_a_market_api_the_agent_cannot_run_says_why(world: World) -> None:
    markets = world.agent.markets.inner  # under the planning wrapper
    assert markets is not None
    markets.environ = {}  # the credential variables are not set on the site
    await world.run(120)
    world.upload()
    code, doc = world.diff_json()
    assert code == 1
    lines = {d["field"]: d for d in drifts(doc, "telemetry")}
    assert lines["market:axle"]["observed"] == "not running"
    assert "FLUX_T_AXLE_USER and FLUX_T_AXLE_PASSWORD not set" in lines["market:axle"]["reason"]
    assert "market:modo" not in lines  # configured, running, not yet failing


def rewrite_statuses(world: World, expression: str) -> None:
    """Rewrite every stored heartbeat as an agent of another version would have stored it
    (``expression`` is SQL over the jsonb column ``conditions``)."""
    with psycopg.connect(world.db_url, autocommit=True) as conn:
        conn.execute(f"UPDATE flux.agent_status SET conditions = {expression}")  # type: ignore[arg-type]


def renamed(old: str, new: str) -> str:
    return f"conditions - '{old}' || jsonb_build_object('{new}', conditions -> '{old}')"


@pytest.mark.parametrize(
    ("old", "new", "severity"),
    [
        ("markets", "market_feeds", "warning"),  # had a default: read as an older agent's
        ("device_settings", "settings", "warning"),
        ("revisions", "revision", "critical"),  # required: the status cannot be read
    ],
)
async def test_a_renamed_status_field_is_named_not_silently_ignored(
    world: World, old: str, new: str, severity: str
) -> None:
    await world.run(120)
    world.upload()
    assert world.diff().exit_code == 0
    rewrite_statuses(world, renamed(old, new))
    code, doc = world.diff_json()
    assert code == 1
    (line,) = [d for d in drifts(doc, "telemetry") if d["field"] == "agent_status"]
    assert f"unknown field {new}" in line["observed"], line
    assert line["severity"] == severity
    if severity == "critical":
        assert f"{old}: missing" in line["observed"]
        assert "cannot be read" in line["reason"]
    table = world.diff()
    assert table.exit_code == 1 and "Traceback" not in table.output


async def test_a_status_of_a_newer_or_older_agent_is_read_with_what_is_known(
    world: World,
) -> None:
    await world.run(120)
    world.upload()
    # An older agent: no market section, no settings read-back error field.
    rewrite_statuses(world, "conditions - 'markets' - 'market_problems'")
    code, doc = world.diff_json()
    assert code == 0, doc["drifts"]
    assert doc["summary"]["ready"].startswith("True")
    # A newer agent: a field this flux does not know is named, the rest is still read.
    rewrite_statuses(world, """conditions || '{"battery_mode": "direct"}'""")
    code, doc = world.diff_json()
    assert code == 1
    (line,) = drifts(doc)
    assert line["field"] == "agent_status" and line["severity"] == "warning"
    assert "unknown field battery_mode" in line["observed"]
    assert "newer agent" in line["reason"]
    assert doc["summary"]["ready"].startswith("True")
