"""The deploy files: every Grafana query runs as the read-only role against the schema;
PostgREST serves the api schema with the anonymous role."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import psycopg
from ruamel.yaml import YAML

from .conftest import url_for

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "site.json").read_text())
    queries = [t["rawSql"] for p in dashboard["panels"] for t in p["targets"]]
    queries += [v["query"] for v in dashboard["templating"]["list"]]
    return queries


def test_dashboard_queries_run_as_the_reader(
    migrated_url: str, dbname: str, make_role: Callable[[str], str]
) -> None:
    queries = _queries()
    assert len(queries) >= 8
    reader = url_for(dbname, make_role("flux_reader"))
    with psycopg.connect(reader) as conn:
        for sql in queries:
            sql = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 > now() - interval '1 day'", sql)
            sql = sql.replace("$site", "wlce").replace("$grid_meter", "site")
            assert "$" not in sql, sql
            conn.execute(sql).fetchall()


def test_datasource_points_at_the_dashboard_uid() -> None:
    yaml = YAML(typ="safe")
    source = yaml.load(DEPLOY / "grafana" / "provisioning" / "datasources" / "flux.yaml")
    uid = source["datasources"][0]["uid"]
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "site.json").read_text())
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {uid}


def test_postgrest_serves_api_as_anon(migrated_url: str) -> None:
    conf = (DEPLOY / "postgrest.conf").read_text()
    settings = dict(re.findall(r'^([a-z-]+)\s*=\s*"?([^"\n]*)"?$', conf, re.M))
    assert settings["db-schemas"] == "api"
    assert settings["db-anon-role"] == "flux_anon"
    with psycopg.connect(migrated_url) as conn:
        roles = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles")}
    assert {"flux_anon", "flux_reader", "flux_agent"} <= roles
