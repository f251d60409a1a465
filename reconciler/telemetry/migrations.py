"""Numbered SQL migrations, applied in order and recorded in the database.

They ship inside the package (``reconciler/telemetry/sql/``) and are read through
:mod:`importlib.resources`, so an installed wheel finds them wherever it lives (a zip
included); ``$FLUX_SQL_DIR`` points at another folder instead.

A file is ``NNNN_name.sql`` (every database) or a pair ``NNNN_name.postgres.sql`` and
``NNNN_name.timescale.sql`` (the branch for plain PostgreSQL or for TimescaleDB). The
flavour is chosen once, at the first migration, and recorded with every version, so a
database never mixes branches.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

import psycopg

from reconciler.telemetry.database import connect
from reconciler.telemetry.errors import SchemaMissing, SchemaTooNew, TelemetryError

Flavour = Literal["postgres", "timescale"]
FLAVOURS: tuple[Flavour, ...] = ("postgres", "timescale")
ENV_SQL_DIR = "FLUX_SQL_DIR"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(postgres|timescale))?\.sql$")
# Any constant: serialises concurrent `flux db migrate` runs against one database.
_LOCK_KEY = 0x466C7578


def default_sql_dir() -> Traversable:
    """``$FLUX_SQL_DIR``, else the migrations shipped in this package."""
    env = os.environ.get(ENV_SQL_DIR)
    if env:
        return Path(env)
    return resources.files("reconciler.telemetry") / "sql"


@dataclass(frozen=True)
class Migration:
    """One schema version: a file for every database, or one per flavour."""

    version: int
    name: str
    files: dict[str, Traversable] = field(default_factory=dict)  # "any" | flavour -> file

    def sql_for(self, flavour: Flavour) -> str:
        path = self.files.get("any") or self.files[flavour]
        return path.read_text(encoding="utf-8")


def discover(sql_dir: Traversable | None = None) -> list[Migration]:
    """The migrations in ``sql_dir``, checked to be numbered 1, 2, 3, ... without holes."""
    folder = sql_dir or default_sql_dir()
    if not folder.is_dir():
        raise TelemetryError(f"migration folder {folder} not found; set {ENV_SQL_DIR}")
    found: dict[int, Migration] = {}
    entries = (e for e in folder.iterdir() if e.is_file() and e.name.endswith(".sql"))
    for path in sorted(entries, key=lambda e: e.name):
        match = _FILE.match(path.name)
        if match is None:
            raise TelemetryError(
                f"{path}: a migration file is named NNNN_name.sql or "
                "NNNN_name.postgres.sql / NNNN_name.timescale.sql"
            )
        version, name, flavour = int(match[1]), match[2], match[3] or "any"
        migration = found.setdefault(version, Migration(version, name))
        if migration.name != name or flavour in migration.files:
            raise TelemetryError(f"{path}: version {version} is defined twice")
        migration.files[flavour] = path
    migrations = [found[v] for v in sorted(found)]
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise TelemetryError(f"{folder}: migration {expected:04d} is missing")
        has_any = "any" in migration.files
        has_both = all(f in migration.files for f in FLAVOURS)
        if has_any == has_both or (not has_any and len(migration.files) != 2):
            raise TelemetryError(
                f"{folder}: migration {migration.version:04d} needs one .sql file, or one "
                ".postgres.sql and one .timescale.sql"
            )
    return migrations


def known_version(sql_dir: Traversable | None = None) -> int:
    migrations = discover(sql_dir)
    return migrations[-1].version if migrations else 0


@dataclass(frozen=True)
class SchemaState:
    """What a database holds: its schema version (0 = none) and flavour."""

    version: int
    flavour: Flavour | None


def schema_state(conn: psycopg.Connection[tuple[object, ...]]) -> SchemaState:
    row = conn.execute("SELECT to_regclass('flux.schema_migrations') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return SchemaState(0, None)
    row = conn.execute(
        "SELECT max(version), (array_agg(flavour ORDER BY version))[1] FROM flux.schema_migrations"
    ).fetchone()
    if row is None or row[0] is None:
        return SchemaState(0, None)
    version, flavour = row
    assert isinstance(version, int)
    return SchemaState(version, "timescale" if flavour == "timescale" else "postgres")


def too_new_message(database: int, known: int) -> str:
    return f"database schema is at {database}, this flux knows up to {known}: upgrade flux"


def require_current(
    conn: psycopg.Connection[tuple[object, ...]], sql_dir: Traversable | None = None
) -> SchemaState:
    """The database's state, or an error when it is not at this flux's schema version."""
    state = schema_state(conn)
    known = known_version(sql_dir)
    if state.version > known:
        raise SchemaTooNew(too_new_message(state.version, known))
    if state.version < known:
        raise SchemaMissing(
            f"database schema is at {state.version}, this flux needs {known}: "
            "run `flux db migrate --database-url URL`"
        )
    return state


@dataclass(frozen=True)
class MigrateResult:
    flavour: Flavour
    applied: tuple[int, ...]
    version: int
    note: str | None = None  # why the flavour is not the one that was likely wanted


NOT_PRELOADED = (
    "TimescaleDB is installed on this server but not loaded: add timescaledb to "
    "shared_preload_libraries in postgresql.conf and restart PostgreSQL"
)


def _timescale_state(conn: psycopg.Connection[tuple[object, ...]]) -> str:
    """'absent' (not installed), 'unloaded' (installed, not preloaded) or 'ready'."""
    row = conn.execute(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    if not row or not row[0]:
        return "absent"
    # Checked before CREATE EXTENSION: without the preload TimescaleDB raises FATAL,
    # which ends the session (not an error the migration could catch and go on from).
    row = conn.execute(
        "SELECT 'timescaledb' = ANY (string_to_array("
        "replace(current_setting('shared_preload_libraries'), ' ', ''), ','))"
    ).fetchone()
    return "ready" if row and row[0] else "unloaded"


def _choose_flavour(
    conn: psycopg.Connection[tuple[object, ...]], wanted: Flavour | Literal["auto"]
) -> tuple[Flavour, str | None]:
    """The flavour for a new database, and a note for the user (or None)."""
    if wanted == "postgres":
        return "postgres", None
    found = _timescale_state(conn)
    if found == "ready":
        try:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        except psycopg.Error as exc:
            if conn.closed or conn.broken:
                raise TelemetryError(
                    f"CREATE EXTENSION timescaledb ended the session: {str(exc).strip()}"
                ) from None
            if wanted == "timescale":
                raise TelemetryError(
                    f"CREATE EXTENSION timescaledb failed: {str(exc).strip()}"
                ) from None
            return "postgres", (
                f"TimescaleDB could not be created ({str(exc).strip()}); "
                "this database uses plain PostgreSQL"
            )
        return "timescale", None
    if wanted == "timescale":
        reason = NOT_PRELOADED if found == "unloaded" else "TimescaleDB is not installed"
        raise TelemetryError(f"--flavour timescale: {reason}")
    if found == "unloaded":
        return "postgres", (
            f"{NOT_PRELOADED}, then migrate a new database to use it; "
            "this database uses plain PostgreSQL"
        )
    return "postgres", None


def migrate(
    url: str,
    *,
    sql_dir: Traversable | None = None,
    flavour: Flavour | Literal["auto"] = "auto",
) -> MigrateResult:
    """Apply every migration the database lacks, each in its own transaction.

    Re-running is a no-op. Refuses (:class:`SchemaTooNew`) when the database is newer.
    """
    migrations = discover(sql_dir)
    known = migrations[-1].version if migrations else 0
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            state = schema_state(conn)
            if state.version > known:
                raise SchemaTooNew(too_new_message(state.version, known))
            chosen: Flavour
            note: str | None = None
            if state.flavour is not None:
                chosen = state.flavour
            else:
                chosen, note = _choose_flavour(conn, flavour)
            conn.execute(
                "CREATE SCHEMA IF NOT EXISTS flux;"
                "CREATE TABLE IF NOT EXISTS flux.schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, flavour text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied: list[int] = []
            for migration in migrations:
                if migration.version <= state.version:
                    continue
                try:
                    with conn.transaction():
                        conn.execute(migration.sql_for(chosen).encode())
                        conn.execute(
                            "INSERT INTO flux.schema_migrations (version, name, flavour)"
                            " VALUES (%s, %s, %s)",
                            (migration.version, migration.name, chosen),
                        )
                except psycopg.Error as exc:
                    raise TelemetryError(
                        f"migration {migration.version:04d}_{migration.name} failed and was "
                        f"rolled back: {str(exc).strip()}"
                    ) from None
                applied.append(migration.version)
            return MigrateResult(chosen, tuple(applied), max(state.version, known), note)
        finally:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
