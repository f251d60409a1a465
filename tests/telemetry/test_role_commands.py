"""`flux db add-agent / add-reader / add-api / remove-agent / roles` against the real
server: the roles they make can do exactly their part and no more."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from click.testing import CliRunner, Result

from reconciler.cli import cli

from .conftest import url_for

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
INSERT_BESS = (
    "INSERT INTO flux.bess_readings (time, site_id, device, soe_kwh, target_power_kw,"
    " available_blocks, command_source) VALUES (%s, %s, 'bess', 1, 0, 0, 0)"
)


def flux_db(url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["db", *args, "--database-url", url], env=env)


_MINUTES = itertools.count()


def can_insert(url: str, site: str) -> bool:
    at = T0 + timedelta(minutes=next(_MINUTES))  # a new key each time: only RLS can refuse
    try:
        with psycopg.connect(url) as conn:
            conn.execute(INSERT_BESS, (at, site))
        return True
    except psycopg.errors.InsufficientPrivilege:
        return False


def test_add_agent_makes_a_login_that_writes_only_its_sites(
    migrated_url: str, dbname: str, role_names: Callable[[], str]
) -> None:
    name = role_names()
    result = flux_db(
        migrated_url, "add-agent", name, "--site", "wlce", "--password-env", "PI_PW",
        env={"PI_PW": "correct horse"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"created login role {name}; password set; member of flux_agent" in result.output
    assert f"connect as: {url_for(dbname, name)}" in result.output
    agent = url_for(dbname, name)
    assert can_insert(agent, "wlce")
    assert not can_insert(agent, "hmce")
    with psycopg.connect(migrated_url) as conn:
        stored = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (name,))
        assert str(stored.fetchone()[0]).startswith("SCRAM-SHA-256$")  # type: ignore[index]

    # A second site is added to the first; removing one takes only that one.
    assert flux_db(migrated_url, "add-agent", name, "--site", "hmce").exit_code == 0
    assert can_insert(agent, "hmce")
    result = flux_db(migrated_url, "remove-agent", name, "--site", "hmce")
    assert result.exit_code == 0 and "keeps 1 site(s)" in result.output
    assert not can_insert(agent, "hmce") and can_insert(agent, "wlce")

    # Removing every site also takes the agent out of flux_agent: no table is writable.
    result = flux_db(migrated_url, "remove-agent", name)
    assert result.exit_code == 0 and "can no longer upload" in result.output
    with psycopg.connect(agent) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(INSERT_BESS, (T0, "wlce"))


def test_roles_lists_parts_and_sites(migrated_url: str, role_names: Callable[[], str]) -> None:
    agent, reader, api = role_names(), role_names(), role_names()
    assert (
        flux_db(migrated_url, "add-agent", agent, "--site", "wlce", "--site", "bcce").exit_code == 0
    )
    assert flux_db(migrated_url, "add-reader", reader).exit_code == 0
    assert flux_db(migrated_url, "add-api", api).exit_code == 0
    result = flux_db(migrated_url, "roles", "--output", "json")
    assert result.exit_code == 0, result.output
    listed = {r["role"]: r for r in json.loads(result.output)}
    assert listed[agent]["groups"] == ["flux_agent"]
    assert listed[agent]["sites"] == ["bcce", "wlce"]
    assert listed[reader]["groups"] == ["flux_reader"]
    assert listed[api]["groups"] == ["flux_anon", "flux_reader"]
    assert listed[api]["password"] is False and listed[api]["login"] is True
    table = flux_db(migrated_url, "roles")
    assert table.exit_code == 0 and agent in table.output


def test_add_reader_reads_every_site_and_writes_nothing(
    migrated_url: str, dbname: str, role_names: Callable[[], str]
) -> None:
    with psycopg.connect(migrated_url) as conn:
        conn.execute(INSERT_BESS, (T0, "wlce"))
        conn.execute(INSERT_BESS, (T0, "hmce"))
    name = role_names()
    assert flux_db(migrated_url, "add-reader", name).exit_code == 0
    reader = url_for(dbname, name)
    with psycopg.connect(reader) as conn:
        sites = conn.execute("SELECT DISTINCT site_id FROM api.bess_readings ORDER BY 1")
        assert sites.fetchall() == [("hmce",), ("wlce",)]
    assert not can_insert(reader, "wlce")


def test_add_api_makes_an_authenticator_that_only_switches_roles(
    migrated_url: str, dbname: str, role_names: Callable[[], str]
) -> None:
    with psycopg.connect(migrated_url) as conn:
        conn.execute(INSERT_BESS, (T0, "wlce"))
    name = role_names()
    assert flux_db(migrated_url, "add-api", name).exit_code == 0
    with psycopg.connect(url_for(dbname, name), autocommit=True) as conn:
        # NOINHERIT: logged in, it reads nothing by itself...
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM api.bess_readings")
        # ...as flux_reader (what PostgREST does for a reader's JWT) it reads...
        conn.execute("SET ROLE flux_reader")
        assert conn.execute("SELECT count(*) FROM api.bess_readings").fetchone() == (1,)
        # ...and it cannot become an agent or the superuser.
        conn.execute("RESET ROLE")
        for other in ("flux_agent", "postgres"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SET ROLE {other}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add-agent", "postgres", "--site", "wlce"], "superuser or has BYPASSRLS"),
        (["add-api", "postgres"], "superuser or has BYPASSRLS"),
        (["add-agent", "flux_agent", "--site", "wlce"], "one of Flux's group roles"),
        (["remove-agent", "nobody_at_all"], "there is no role nobody_at_all"),
    ],
)
def test_unsafe_or_unknown_roles_are_refused(
    migrated_url: str, args: list[str], message: str
) -> None:
    result = flux_db(migrated_url, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_missing_password_variable_creates_nothing(
    migrated_url: str, role_names: Callable[[], str]
) -> None:
    name = role_names()
    result = flux_db(
        migrated_url, "add-agent", name, "--site", "wlce", "--password-env", "NOT_SET_HERE",
        env={"NOT_SET_HERE": ""},
    )  # fmt: skip
    assert result.exit_code == 2
    assert "the environment variable NOT_SET_HERE is not set" in result.output
    with psycopg.connect(migrated_url) as conn:
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is None


def test_an_unmigrated_database_is_a_clear_error(pg_url: str) -> None:
    result = flux_db(pg_url, "add-reader", "flux_t_never")
    assert result.exit_code == 2
    assert "flux db migrate" in result.output
