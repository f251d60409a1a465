"""What PostgREST does per request, driven statement by statement on the authenticator's
connection (deploy/postgrest.conf): log in as the authenticator, then in a transaction
set search_path to api, SET LOCAL ROLE to the JWT's role (or db-anon-role) and the claims,
then the query. Anonymous: nothing; flux_reader: reads; a forged role: refused."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from reconciler.telemetry.roles import grant

from .conftest import url_for

CONF = Path(__file__).resolve().parents[2] / "deploy" / "postgrest.conf"


def _settings() -> dict[str, str]:
    return dict(re.findall(r'^([a-z-]+)\s*=\s*"?([^"\n]*)"?$', CONF.read_text(), re.M))


@pytest.fixture
def authenticator(migrated_url: str, dbname: str, role_names: Callable[[], str]) -> str:
    name = role_names()
    with psycopg.connect(migrated_url) as conn:
        grant(conn, "api", name)
        conn.execute("INSERT INTO flux.sites (site_id, name) VALUES ('wlce', 'Water Lilies')")
    return url_for(dbname, name)


def _request(url: str, role: str | None, sql: str) -> list[tuple[Any, ...]]:
    """One GET as PostgREST runs it: ``role`` from the JWT, None for no JWT."""
    settings = _settings()
    claims = {} if role is None else {"role": role, "exp": 2_000_000_000}
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED READ ONLY")
        conn.execute(
            "SELECT set_config('search_path', %s, true), set_config('role', %s, true),"
            " set_config('request.jwt.claims', %s, true),"
            " set_config('request.method', 'GET', true),"
            " set_config('request.path', '/sites', true)",
            (settings["db-schemas"], role or settings["db-anon-role"], json.dumps(claims)),
        )
        return conn.execute(sql).fetchall()


def test_the_conf_names_the_api_schema_and_the_anonymous_role() -> None:
    settings = _settings()
    assert settings["db-schemas"] == "api"
    assert settings["db-anon-role"] == "flux_anon"
    text = CONF.read_text()
    # Where the password comes from, and tokens with an expiry.
    assert "PGPASSWORD" in text and ".pgpass" in text
    assert '"exp"' in text


def test_anonymous_reads_nothing(authenticator: str) -> None:
    # flux_anon has no USAGE on api: its views are not even visible on the search_path.
    with pytest.raises(psycopg.errors.UndefinedTable):
        _request(authenticator, None, "SELECT * FROM sites")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="schema api"):
        _request(authenticator, None, "SELECT * FROM api.sites")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _request(authenticator, None, "SELECT * FROM flux.sites")


def test_a_reader_token_reads_through_the_api_schema(authenticator: str) -> None:
    rows = _request(authenticator, "flux_reader", "SELECT site_id, name FROM sites")
    assert rows == [("wlce", "Water Lilies")]
    rollup = _request(
        authenticator,
        "flux_reader",
        "SELECT count(*) FROM meter_rollup('wlce', '30m', '2026-01-01', '2026-01-02')",
    )
    assert rollup == [(0,)]


@pytest.mark.parametrize("forged", ["flux_agent", "postgres", "flux_t_nobody"])
def test_a_forged_role_is_refused(authenticator: str, forged: str) -> None:
    with pytest.raises(psycopg.Error, match=r"permission denied to set role|does not exist"):
        _request(authenticator, forged, "SELECT * FROM sites")


def test_the_reader_cannot_write_or_reach_flux_tables(authenticator: str) -> None:
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        _request(authenticator, "flux_reader", "INSERT INTO flux.sites (site_id) VALUES ('x')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _request(authenticator, "flux_reader", "SELECT * FROM flux.agent_sites")


def test_the_authenticator_alone_reads_nothing(authenticator: str) -> None:
    # NOINHERIT: logging in as it gives none of its roles' rights until SET ROLE.
    with (
        psycopg.connect(authenticator) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("SELECT * FROM api.sites").fetchall()


def test_claims_are_visible_to_the_query(authenticator: str) -> None:
    rows = _request(
        authenticator, "flux_reader", "SELECT current_setting('request.jwt.claims')::json->>'role'"
    )
    assert rows == [("flux_reader",)]
