"""Migrations: apply, re-apply as a no-op, refuse a newer schema, roll back a failure."""

from __future__ import annotations

import zipfile
from importlib import resources
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.telemetry.errors import SchemaTooNew, TelemetryError
from reconciler.telemetry.migrations import discover, known_version, migrate
from tests.net import free_port
from tests.pg import Server


def _applied(url: str) -> list[tuple[int, str, str]]:
    with psycopg.connect(url) as conn:
        return [
            (int(v), str(n), str(f))
            for v, n, f in conn.execute(
                "SELECT version, name, flavour FROM flux.schema_migrations ORDER BY version"
            )
        ]


def test_migrate_applies_every_version_then_is_a_noop(pg_url: str, flux_server: Server) -> None:
    known = known_version()
    first = migrate(pg_url)
    assert first.applied == tuple(range(1, known + 1))
    # auto: TimescaleDB where it is preloaded (FLUX_TEST_TIMESCALE_URL), else plain.
    assert first.flavour == flux_server.flavour
    assert first.note is None
    before = _applied(pg_url)
    assert [v for v, _, _ in before] == list(range(1, known + 1))

    again = migrate(pg_url)
    assert again.applied == ()
    assert again.version == known
    assert _applied(pg_url) == before
    with psycopg.connect(pg_url) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'flux'"
            )
        }
    expected = {
        "sites",
        "devices",
        "config_revisions",
        "agent_status",
        "bess_readings",
        "meter_readings",
        "control_decisions",
        "market_data",
        "bess_5m",
        "bess_30m",
        "bess_1h",
        "meter_5m",
        "meter_30m",
        "meter_1h",
    }
    assert expected <= tables


def test_cli_migrate_twice_says_nothing_to_do(pg_url: str) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["db", "migrate", "--database-url", pg_url])
    assert first.exit_code == 0, first.output
    assert "applied 0001" in first.output
    second = runner.invoke(cli, ["db", "migrate"], env={"FLUX_DATABASE_URL": pg_url})
    assert second.exit_code == 0, second.output
    assert "nothing to do" in second.output


def test_refuses_a_database_with_a_newer_schema(migrated_url: str) -> None:
    known = known_version()
    with psycopg.connect(migrated_url) as conn:
        conn.execute(
            "INSERT INTO flux.schema_migrations (version, name, flavour)"
            " VALUES (%s, 'future', 'postgres')",
            (known + 4,),
        )
    message = f"database schema is at {known + 4}, this flux knows up to {known}: upgrade flux"
    with pytest.raises(SchemaTooNew, match=message):
        migrate(migrated_url)
    result = CliRunner().invoke(cli, ["db", "migrate", "--database-url", migrated_url])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_failing_migration_is_rolled_back(pg_url: str, tmp_path: Path) -> None:
    (tmp_path / "0001_one.sql").write_text(
        "CREATE SCHEMA IF NOT EXISTS flux; CREATE TABLE flux.a (x int);"
    )
    (tmp_path / "0002_two.sql").write_text(
        "CREATE TABLE flux.b (x int); SELECT no_such_function();"
    )
    with pytest.raises(TelemetryError, match="migration 0002_two failed and was rolled back"):
        migrate(pg_url, sql_dir=tmp_path)
    assert [v for v, _, _ in _applied(pg_url)] == [1]
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT to_regclass('flux.b')").fetchone()
    assert row == (None,)


def test_discover_rejects_holes_and_half_pairs(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("")
    (tmp_path / "0003_c.sql").write_text("")
    with pytest.raises(TelemetryError, match="migration 0002 is missing"):
        discover(tmp_path)
    (tmp_path / "0003_c.sql").unlink()
    (tmp_path / "0002_b.postgres.sql").write_text("")
    with pytest.raises(TelemetryError, match=r"\.postgres\.sql and one \.timescale\.sql"):
        discover(tmp_path)


def test_shipped_migrations_have_both_branches_where_needed() -> None:
    migrations = discover()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    rollups = [m for m in migrations if m.name == "rollups"]
    assert len(rollups) == 1 and set(rollups[0].files) == {"postgres", "timescale"}
    timescale = rollups[0].sql_for("timescale")
    for call in (
        "create_hypertable",
        "add_continuous_aggregate_policy",
        "timescaledb.continuous",
    ):
        assert call in timescale
    # 0006: the site check is row-level security again, retention a setting.
    (store,) = [m for m in migrations if m.name == "rollup_store"]
    later = store.sql_for("timescale")
    assert "ENABLE ROW LEVEL SECURITY" in later and "DROP TRIGGER bess_agent_site" in later
    assert "add_retention_policy" not in later


def test_migrations_are_read_through_importlib_resources_even_from_a_zip(
    pg_url: str, tmp_path: Path
) -> None:
    shipped = resources.files("reconciler.telemetry") / "sql"
    archive = tmp_path / "flux.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for entry in shipped.iterdir():
            zf.writestr(f"reconciler/telemetry/sql/{entry.name}", entry.read_bytes())
    in_zip = zipfile.Path(archive, "reconciler/telemetry/sql/")
    assert [m.version for m in discover(in_zip)] == [m.version for m in discover()]
    assert migrate(pg_url, sql_dir=in_zip).applied == tuple(range(1, known_version() + 1))


def test_unreachable_database_is_a_clear_cli_error() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/flux"
    for args in (
        ["db", "migrate", "--database-url", url],
        ["db", "status", "--database-url", url],
        ["db", "gaps", "--site", "x", "--database-url", url],
        ["db", "refresh", "--database-url", url],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert "cannot connect to the database postgres@127.0.0.1" in result.output
        assert "Traceback" not in result.output


def test_missing_database_url_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["db", "migrate"], env={"FLUX_DATABASE_URL": ""})
    assert result.exit_code == 2
    assert "--database-url" in result.output
