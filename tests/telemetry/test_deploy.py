"""The deploy files: every Grafana query (dashboard and alert rules) runs as the read-only
role against the schema and gives the right numbers on known data; the datasource uses only
the variable syntax Grafana expands; the Prometheus rules pass promtool and name metrics the
agent serves; PostgREST serves the api schema with the anonymous role."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from ruamel.yaml import YAML

from .conftest import url_for

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROVISIONING = DEPLOY / "grafana" / "provisioning"
yaml = YAML(typ="safe")

# A range of 10 whole minutes an hour ago.
T0 = (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0)
T1 = T0 + timedelta(minutes=10)


def _dashboard() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        (DEPLOY / "grafana" / "dashboards" / "site.json").read_text()
    )
    return result


def _panels() -> dict[str, list[str]]:
    return {p["title"]: [t["rawSql"] for t in p["targets"]] for p in _dashboard()["panels"]}


def _variables() -> dict[str, str]:
    return {v["name"]: v["query"] for v in _dashboard()["templating"]["list"]}


def _expand_macros(sql: str, site: str = "", grid: str = "") -> str:
    """What Grafana's PostgreSQL datasource sends for the range [T0, T1]."""
    lo, hi = f"'{T0.isoformat()}'", f"'{T1.isoformat()}'"
    sql = re.sub(r"\$__timeFilter\((\w+(?:\.\w+)?)\)", rf"\1 BETWEEN {lo} AND {hi}", sql)
    sql = sql.replace("$__timeFrom()", lo).replace("$__timeTo()", hi)
    sql = sql.replace("$site", site).replace("$grid_meter", grid)
    assert "$" not in sql, sql
    return sql


@pytest.fixture
def filled(migrated_url: str) -> str:
    """hmce (grid meter `boundary`, import limit 220 kW) with 10 minutes of readings: 7 at
    100 kW, 3 at 250 kW (over the limit); a red band over minutes 2 to 5 (local time); a
    battery meter that a name-based choice would have taken; decisions with 4 minutes of
    safe stop; a status saying Ready."""
    london = ZoneInfo("Europe/London")
    band = [
        {
            "days": [1, 2, 3, 4, 5, 6, 7],
            "from": None,
            "to": None,
            "start": (T0 + timedelta(minutes=2)).astimezone(london).strftime("%H:%M"),
            "end": (T0 + timedelta(minutes=6)).astimezone(london).strftime("%H:%M"),
        }
    ]
    with psycopg.connect(migrated_url) as conn:
        conn.execute(
            "INSERT INTO flux.sites (site_id, name, timezone, site_import_kw, site_export_kw,"
            " nameplate_energy_kwh, red_bands)"
            " VALUES ('hmce', 'Hazelmead', 'Europe/London', 220, 475, 1280, %s)",
            (json.dumps(band),),
        )
        conn.execute(
            "INSERT INTO flux.devices (site_id, device, kind, role) VALUES"
            " ('hmce', 'boundary', 'meter', 'grid'), ('hmce', 'site', 'meter', 'battery'),"
            " ('hmce', 'bess', 'bess', NULL)"
        )
        for i in range(10):
            at = T0 + timedelta(minutes=i)
            grid_kw = 250.0 if i >= 7 else 100.0
            for device, kw in (("boundary", grid_kw), ("site", -50.0)):
                conn.execute(
                    "INSERT INTO flux.meter_readings (time, site_id, device, power_kw,"
                    " frequency_hz, voltage_v, current_a, current_b, current_c, current_avg,"
                    " power_a_kw, power_b_kw, power_c_kw, reactive_kvar, apparent_kva,"
                    " power_factor, energy_import_kwh, energy_export_kwh,"
                    " energy_import_delta_kwh) VALUES"
                    " (%s, 'hmce', %s, %s, 50, 230, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, %s, 0, %s)",
                    (at, device, kw, 1000 + i * 2, 2.0),
                )
            conn.execute(
                "INSERT INTO flux.bess_readings (time, site_id, device, soe_kwh, target_power_kw,"
                " actual_power_kw, available_blocks, command_source)"
                " VALUES (%s, 'hmce', 'bess', 640, 60, 60, 1, 1)",
                (at,),
            )
            conn.execute(
                "INSERT INTO flux.control_decisions (time, site_id, target_kw, reason, safe_stop,"
                " winner, components, effective, bound_by, soe_kwh)"
                " VALUES (%s, 'hmce', 60, 'r', %s, %s, '[]', '{}', '{}', 640)",
                (at, 3 <= i < 7, None if 3 <= i < 7 else "niv_chase"),
            )
        status = {"conditions": [{"type": "Ready", "status": "True"}], "telemetry": {}}
        conn.execute(
            "INSERT INTO flux.agent_status (time, site_id, conditions) VALUES (%s, 'hmce', %s)",
            (T1, json.dumps(status)),
        )
        conn.execute("SELECT flux.refresh_rollups()")
    return migrated_url


@pytest.fixture
def reader(dbname: str, make_role: Callable[[str], str]) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url_for(dbname, make_role("flux_reader"))) as conn:
        yield conn


def _one(conn: psycopg.Connection[Any], sql: str) -> Any:
    rows = conn.execute(_expand_macros(sql, "hmce", "boundary")).fetchall()
    assert len(rows) == 1, rows
    return rows[0][-1]


def test_the_grid_meter_is_chosen_by_role(filled: str, reader: psycopg.Connection[Any]) -> None:
    rows = reader.execute(_expand_macros(_variables()["grid_meter"], "hmce")).fetchall()
    assert rows == [("boundary",)]


def test_every_dashboard_query_runs_as_the_reader(
    filled: str, reader: psycopg.Connection[Any]
) -> None:
    queries = [q for qs in _panels().values() for q in qs] + list(_variables().values())
    assert len(queries) >= 18
    for sql in queries:
        reader.execute(_expand_macros(sql, "hmce", "boundary")).fetchall()


def test_the_kpis_on_known_data(filled: str, reader: psycopg.Connection[Any]) -> None:
    panels = _panels()
    assert _one(reader, panels["Imported"][0]) == pytest.approx(20.0)  # 10 deltas of 2 kWh
    assert _one(reader, panels["Exported"][0]) == 0
    assert _one(reader, panels["Peak import"][0]) == pytest.approx(250.0)
    # Inside the red band (minutes 2 to 5) the import was 100 kW.
    assert _one(reader, panels["Peak import"][1]) == pytest.approx(100.0)
    assert _one(reader, panels["Minutes outside limits"][0]) == 3
    assert _one(reader, panels["Time in safe stop"][0]) == pytest.approx(4.0)
    # 60 kW for 10 minutes (two 5-minute buckets) = 10 kWh; / (2 x 1280 kWh) cycles.
    assert _one(reader, panels["Battery throughput"][0]) == pytest.approx(10.0)
    assert _one(reader, panels["Equivalent cycles"][0]) == pytest.approx(10.0 / 2560)
    assert float(_one(reader, panels["Data completeness"][0])) == pytest.approx(100.0)
    fleet = reader.execute(_expand_macros(panels["Fleet overview"][0])).fetchall()
    assert [(r[0], r[1], r[2], r[4], float(r[5])) for r in fleet] == [
        ("hmce", "Hazelmead", "True", "niv_chase", 640.0)
    ]


def test_the_dashboard_shows_local_time() -> None:
    assert _dashboard()["timezone"] == "browser"


def test_datasource_points_at_the_dashboard_uid() -> None:
    source = yaml.load(PROVISIONING / "datasources" / "flux.yaml")
    uid = source["datasources"][0]["uid"]
    assert {p["datasource"]["uid"] for p in _dashboard()["panels"]} == {uid}


def _grafana_expand(text: str, env: dict[str, str]) -> str:
    """Grafana's provisioning expansion (Go's os.Expand): ${NAME} and $NAME; anything else
    inside ${...} is taken as the name, so ${A:-b} is the variable "A:-b"."""

    def sub(m: re.Match[str]) -> str:
        return env.get(m.group(1) or m.group(2), "")

    return re.sub(r"\$\{([^}]*)\}|\$([A-Za-z0-9_]+)", sub, text)


def test_the_datasource_connects_with_the_variables_set() -> None:
    path = PROVISIONING / "datasources" / "flux.yaml"
    text = path.read_text()
    names = re.findall(r"\$\{([^}]*)\}", text.split("apiVersion", 1)[1])
    # Only the syntax Grafana expands, and every variable documented in the file's header.
    assert all(re.fullmatch(r"[A-Z_][A-Z0-9_]*", n) for n in names), names
    header = text.split("apiVersion", 1)[0]
    assert all(n in header for n in names)
    env = {n: f"value-of-{n}" for n in names}
    env |= {"FLUX_DB_HOST": "db.example", "FLUX_DB_PORT": "5433"}
    source = yaml.load(_grafana_expand(text, env))["datasources"][0]
    assert source["url"] == "db.example:5433"
    assert source["user"] == "value-of-FLUX_GRAFANA_USER"
    assert source["jsonData"]["database"] == "value-of-FLUX_DB_NAME"
    assert source["jsonData"]["sslmode"] == "value-of-FLUX_DB_SSLMODE"
    assert source["secureJsonData"]["password"] == "value-of-FLUX_GRAFANA_PASSWORD"


# --------------------------------------------------------------------------- alerts

PROM_RULES = DEPLOY / "prometheus" / "flux-rules.yml"
GRAFANA_RULES = PROVISIONING / "alerting" / "flux.yaml"


def _grafana_rules() -> dict[str, dict[str, Any]]:
    groups = yaml.load(GRAFANA_RULES)["groups"]
    return {r["title"]: r for g in groups for r in g["rules"]}


def _prometheus_rules() -> dict[str, dict[str, Any]]:
    groups = yaml.load(PROM_RULES)["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"]}


def test_grafana_and_prometheus_have_the_same_alerts() -> None:
    expected = {
        "FluxAgentNotReporting",
        "FluxAgentNotReady",
        "FluxSafeStop",
        "FluxTelemetryBacklog",
        "FluxMarketFeedFailing",
        "FluxSiteImportOverLimit",
        "FluxSiteExportOverLimit",
        "FluxRevisionQuarantined",
    }
    assert set(_grafana_rules()) == set(_prometheus_rules()) == expected
    for name, rule in _grafana_rules().items():
        assert rule["condition"] in {d["refId"] for d in rule["data"]}, name
        assert rule["labels"]["severity"] == _prometheus_rules()[name]["labels"]["severity"]


def test_the_prometheus_rules_name_metrics_the_agent_serves() -> None:
    from reconciler.agent.http import render_metrics
    from reconciler.clock import ManualClock
    from reconciler.status.model import AgentStatus, MarketFeedStatus

    status = AgentStatus(clock=ManualClock(T0), site="s", source="file")
    status.set_markets([MarketFeedStatus(source="modo", ok=False)], [])
    served = set(re.findall(r"^# TYPE (\w+)", render_metrics(status.snapshot()), re.M))
    used: set[str] = set()
    for rule in _prometheus_rules().values():
        used |= set(re.findall(r"\bflux_\w+", rule["expr"]))
    assert len(used) >= 8
    assert used <= served, used - served


def _promtool() -> str | None:
    found = shutil.which("promtool")
    local = ROOT / ".venv" / "bin" / "promtool"
    return found or (str(local) if local.exists() else None)


@pytest.mark.skipif(
    _promtool() is None, reason="promtool not installed (scripts/test.sh installs it)"
)
def test_promtool_checks_and_tests_the_rules() -> None:
    promtool = _promtool()
    assert promtool is not None
    env = {**os.environ, "NO_COLOR": "1"}
    check = subprocess.run(
        [promtool, "check", "rules", str(PROM_RULES)], capture_output=True, text=True, env=env
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 8 rules found" in check.stdout
    tests = ROOT / "tests" / "telemetry" / "prometheus_rules_test.yml"
    run = subprocess.run(
        [promtool, "test", "rules", str(tests)], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_grafana_alert_query_runs_as_the_reader(
    filled: str, reader: psycopg.Connection[Any]
) -> None:
    for name, rule in _grafana_rules().items():
        query = next(d for d in rule["data"] if d["refId"] == "A")
        rows = reader.execute(query["model"]["rawSql"]).fetchall()
        assert isinstance(rows, list), name
    # On the known data: hmce is Ready, not in safe stop (the last decision), quarantines none.
    values = {
        name: reader.execute(rule["data"][0]["model"]["rawSql"]).fetchall()
        for name, rule in _grafana_rules().items()
    }
    assert values["FluxAgentNotReady"] == [("hmce", 0)]
    assert values["FluxSafeStop"] == [("hmce", 0)]
    assert values["FluxRevisionQuarantined"] == [("hmce", 0)]
    # The readings are an hour old: the agent has been silent about an hour.
    [(site, silent_s)] = values["FluxAgentNotReporting"]
    assert site == "hmce" and 3000 < silent_s < 4000


def test_the_limit_alerts_see_a_site_over_its_limit(
    filled: str, reader: psycopg.Connection[Any], migrated_url: str
) -> None:
    with psycopg.connect(migrated_url) as conn:
        for device, kw in (("boundary", 240.0), ("site", -600.0)):
            conn.execute(
                "INSERT INTO flux.meter_readings (time, site_id, device, power_kw,"
                " frequency_hz, voltage_v, current_a, current_b, current_c, current_avg,"
                " power_a_kw, power_b_kw, power_c_kw, reactive_kvar, apparent_kva,"
                " power_factor, energy_import_kwh, energy_export_kwh) VALUES"
                " (now() - interval '1 minute', 'hmce', %s, %s, 50, 230, 0, 0, 0, 0, 0, 0, 0,"
                " 0, 0, 1, 0, 0)",
                (device, kw),
            )
    rules = _grafana_rules()
    over = reader.execute(rules["FluxSiteImportOverLimit"]["data"][0]["model"]["rawSql"])
    assert over.fetchall() == [("hmce", pytest.approx(20.0))]
    # The battery meter's -600 kW is not the site's export: only the grid meter counts.
    export = reader.execute(rules["FluxSiteExportOverLimit"]["data"][0]["model"]["rawSql"])
    assert export.fetchall() == [("hmce", pytest.approx(-240.0 - 475.0))]


def test_postgrest_serves_api_as_anon(migrated_url: str) -> None:
    conf = (DEPLOY / "postgrest.conf").read_text()
    settings = dict(re.findall(r'^([a-z-]+)\s*=\s*"?([^"\n]*)"?$', conf, re.M))
    assert settings["db-schemas"] == "api"
    assert settings["db-anon-role"] == "flux_anon"
    with psycopg.connect(migrated_url) as conn:
        roles = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles")}
    assert {"flux_anon", "flux_reader", "flux_agent"} <= roles
