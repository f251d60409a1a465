"""Roles: an agent writes and reads only its own site; the dashboard reader reads all and
writes nothing; the anonymous role gets nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.control.types import BatteryReading
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader
from tests.pg import Server

from .conftest import url_for

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
INSERT_BESS = (
    "INSERT INTO flux.bess_readings (time, site_id, device, soe_kwh, target_power_kw,"
    " available_blocks, command_source) VALUES (%s, %s, 'bess', 1, 0, 0, 0)"
)


def _readings(n: int) -> list[BatteryReading]:
    return [BatteryReading(T0 + timedelta(minutes=i), 100.0 + i, 0.0) for i in range(n)]


@pytest.fixture
def agent_url(migrated_url: str, dbname: str, make_role: Callable[[str], str]) -> str:
    role = make_role("flux_agent")
    with psycopg.connect(migrated_url) as conn:
        conn.execute("SELECT flux.register_agent(%s, 'site_a')", (role,))
        # Another site's data, written by an administrator.
        conn.execute(INSERT_BESS, (T0, "site_b"))
    return url_for(dbname, role)


def test_agent_uploads_its_own_site(
    agent_url: str, migrated_url: str, outbox: Outbox, flux_server: Server
) -> None:
    outbox.add_bess_many("site_a", "bess", _readings(5))
    result = Uploader(outbox, agent_url).drain()
    assert result.ok, result.error
    assert result.sent == {"bess": 5}
    if flux_server.flavour == "postgres":
        assert result.refreshed_hours >= 1  # its own hour (and the fixture's site_b hour)
    else:
        # Only the aggregates' owner may refresh them: the owner's refresh (or a policy)
        # rolls up what the agent's inserts invalidated.
        assert result.refreshed_hours == 0
        refreshed = CliRunner().invoke(cli, ["db", "refresh", "--database-url", migrated_url])
        assert refreshed.exit_code == 0, refreshed.output
    with psycopg.connect(migrated_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM flux.bess_readings WHERE site_id = 'site_a'"
        ).fetchone() == (5,)
        assert conn.execute(
            "SELECT samples FROM flux.bess_5m WHERE site_id = 'site_a'"
        ).fetchone() == (5,)


def test_agent_cannot_insert_another_sites_rows(agent_url: str) -> None:
    with (
        psycopg.connect(agent_url) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"),
    ):
        conn.execute(INSERT_BESS, (T0, "site_b"))


def test_agent_upload_of_another_site_keeps_the_rows(agent_url: str, outbox: Outbox) -> None:
    outbox.add_bess_many("site_b", "bess", _readings(3))
    result = Uploader(outbox, agent_url, attempts=1).drain()
    assert not result.ok
    assert result.error is not None and "row-level security" in result.error
    assert outbox.counts()["bess"] == 3  # kept, not dropped nor quarantined
    assert outbox.counts()["quarantined"] == 0


def test_agent_cannot_read_another_sites_rows(agent_url: str) -> None:
    with psycopg.connect(agent_url) as conn:
        conn.execute(INSERT_BESS, (T0, "site_a"))
        sites = conn.execute("SELECT DISTINCT site_id FROM flux.bess_readings").fetchall()
    assert sites == [("site_a",)]


def test_reader_reads_all_sites_and_writes_nothing(
    migrated_url: str, dbname: str, make_role: Callable[[str], str]
) -> None:
    with psycopg.connect(migrated_url) as conn:
        for site in ("site_a", "site_b"):
            conn.execute(INSERT_BESS, (T0, site))
        conn.execute("SELECT flux.refresh_rollups()")
    reader = url_for(dbname, make_role("flux_reader"))
    with psycopg.connect(reader) as conn:
        rows = conn.execute("SELECT site_id FROM api.bess_readings ORDER BY site_id").fetchall()
        assert rows == [("site_a",), ("site_b",)]
        assert conn.execute("SELECT count(*) FROM api.bess_5m").fetchone() == (2,)
        latest = conn.execute(
            "SELECT count(*) FROM api.bess_rollup('site_a', '5m', %s, %s)",
            (T0, T0 + timedelta(hours=1)),
        ).fetchone()
        assert latest == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(INSERT_BESS, (T0 + timedelta(minutes=1), "site_a"))


def test_anonymous_role_gets_nothing(
    migrated_url: str, dbname: str, make_role: Callable[[str], str]
) -> None:
    anon = url_for(dbname, make_role("flux_anon"))
    for query in (
        "SELECT * FROM api.bess_readings",
        "SELECT * FROM api.latest_status",
        "SELECT * FROM flux.bess_readings",
    ):
        with psycopg.connect(anon) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(query)


def test_an_agent_learns_only_its_own_sites(
    migrated_url: str, dbname: str, make_role: Callable[[str], str]
) -> None:
    a, b = make_role("flux_agent"), make_role("flux_agent")
    with psycopg.connect(migrated_url) as conn:
        conn.execute("SELECT flux.register_agent(%s, 'site_a')", (a,))
        conn.execute("SELECT flux.register_agent(%s, 'site_b')", (b,))
        conn.execute(INSERT_BESS, (T0, "site_b"))
    with psycopg.connect(url_for(dbname, a)) as conn:
        assert conn.execute("SELECT flux.sites_of(current_user)").fetchone() == (["site_a"],)
        assert conn.execute("SELECT flux.sites_of(%s)", (b,)).fetchone() == ([],)
        # What the policies need still works: its own rows in, another site's refused.
        conn.execute(INSERT_BESS, (T0, "site_a"))
        sites = conn.execute("SELECT DISTINCT site_id FROM flux.bess_readings").fetchall()
        assert sites == [("site_a",)]
    # An administrator trying an agent's view with SET ROLE sees what the agent sees.
    with psycopg.connect(migrated_url) as conn:
        conn.execute(f'SET ROLE "{b}"')
        sites = conn.execute("SELECT DISTINCT site_id FROM flux.bess_readings").fetchall()
        assert sites == [("site_b",)]


def test_only_agents_may_execute_sites_of(
    migrated_url: str, dbname: str, make_role: Callable[[str], str]
) -> None:
    with psycopg.connect(migrated_url) as conn:
        may = {
            role: conn.execute(
                "SELECT has_function_privilege(%s, 'flux.sites_of(name)', 'EXECUTE')", (role,)
            ).fetchone()
            for role in ("public", "flux_agent", "flux_reader", "flux_anon")
        }
    assert may == {
        "public": (False,),
        "flux_agent": (True,),
        "flux_reader": (False,),
        "flux_anon": (False,),
    }
    agent = make_role("flux_agent")
    with psycopg.connect(migrated_url) as conn:
        conn.execute("SELECT flux.register_agent(%s, 'site_a')", (agent,))
    reader = url_for(dbname, make_role("flux_reader"))
    with (
        psycopg.connect(reader) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="function sites_of"),
    ):
        conn.execute("SELECT flux.sites_of(%s)", (agent,))


def test_a_revision_in_control_names_the_site_and_its_devices_roles(
    agent_url: str, migrated_url: str, dbname: str, make_role: Callable[[str], str], outbox: Outbox
) -> None:
    from pathlib import Path

    from reconciler.agent.telemetry import site_identity
    from reconciler.config import load_site

    site = load_site(Path(__file__).resolve().parents[2] / "sites" / "hmce.yaml")
    identity = site_identity(site)
    outbox.add_revision("site_a", "abc123", T0, state="in_control", identity=identity)
    # A renamed site later: the newest identity wins.
    renamed = {**identity, "name": "Renamed"}
    outbox.add_revision(
        "site_a", "def456", T0 + timedelta(minutes=1), state="in_control", identity=renamed
    )
    outbox.add_bess_many("site_a", "bess", _readings(2))
    result = Uploader(outbox, agent_url).drain()
    assert result.ok, result.error
    reader = url_for(dbname, make_role("flux_reader"))
    with psycopg.connect(reader) as conn:
        assert conn.execute(
            "SELECT name, timezone, site_import_kw, site_export_kw, nameplate_energy_kwh"
            " FROM api.sites WHERE site_id = 'site_a'"
        ).fetchone() == ("Renamed", "Europe/London", 220.0, 475.0, 1280.0)
        roles = dict(
            conn.execute(
                "SELECT device, role FROM api.devices WHERE site_id = 'site_a' ORDER BY 1"
            ).fetchall()
        )
        # hmce calls its grid meter `boundary`: the dashboard selects it by role.
        grid = conn.execute(
            "SELECT device FROM api.devices WHERE site_id = 'site_a' AND role = 'grid'"
        ).fetchall()
        # hmce's red band (weekdays 17:00-19:00 local) on Monday 2024-01-15.
        bands = conn.execute(
            "SELECT starts, ends FROM api.red_bands('site_a', %s, %s)",
            (datetime(2024, 1, 14, tzinfo=UTC), datetime(2024, 1, 16, tzinfo=UTC)),
        ).fetchall()
    assert bands == [(datetime(2024, 1, 15, 17, tzinfo=UTC), datetime(2024, 1, 15, 19, tzinfo=UTC))]
    assert roles["bess"] is None
    assert grid == [("boundary",)]
    assert set(roles) == {"bess", *site.devices.meters}
    # The other site's row (written by an administrator) was not touched by the agent.
    with psycopg.connect(migrated_url) as conn:
        assert conn.execute("SELECT name FROM flux.sites WHERE site_id = 'site_b'").fetchone() in (
            None,
            (None,),
        )


def test_an_identity_for_another_site_is_refused(
    agent_url: str, migrated_url: str, outbox: Outbox
) -> None:
    outbox.add_revision(
        "site_b",
        "abc123",
        T0,
        state="in_control",
        identity={"name": "Hijack", "timezone": "UTC", "devices": []},
    )
    Uploader(outbox, agent_url).drain()
    with psycopg.connect(migrated_url) as conn:
        names = conn.execute("SELECT name FROM flux.sites WHERE site_id = 'site_b'").fetchall()
    assert ("Hijack",) not in names
