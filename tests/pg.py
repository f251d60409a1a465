"""The PostgreSQL servers the tests run on, from the environment.

``FLUX_TEST_DATABASE_URL``: a plain PostgreSQL server's admin URL (default the local
``postgresql://postgres@127.0.0.1:5432/postgres``). ``FLUX_TEST_TIMESCALE_URL``: a server
with TimescaleDB preloaded; when set, every test that asks for a database (fixture
``flux_server``) runs once per server, migrated to that server's flavour.

Databases are created per test and dropped after; a migrated template per server and
session is copied. A template that is expensive to fill is made once a run, for all the
xdist workers (:func:`shared_template`), and dropped when the run ends (:func:`drop_shared`).
TimescaleDB's scheduler keeps a connection to every database that has
the extension, and CREATE DATABASE ... TEMPLATE refuses a template anyone is connected
to: the template is closed to connections once migrated (a copy is open again).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from reconciler.telemetry.migrations import Flavour, migrate
from tests.shared import run_lock

ENV_PLAIN = "FLUX_TEST_DATABASE_URL"
ENV_TIMESCALE = "FLUX_TEST_TIMESCALE_URL"


@dataclass(frozen=True)
class Server:
    """A server to test on: its flavour and an administrator's URL."""

    flavour: Flavour
    admin_url: str

    @property
    def host(self) -> str:
        return str(conninfo_to_dict(self.admin_url).get("host") or "127.0.0.1")

    @property
    def port(self) -> int:
        return int(conninfo_to_dict(self.admin_url).get("port") or 5432)

    def url(self, dbname: str, user: str = "postgres", port: int | None = None) -> str:
        return f"postgresql://{user}@{self.host}:{port or self.port}/{dbname}"


def servers() -> dict[str, Server]:
    found = {
        "postgres": Server(
            "postgres",
            os.environ.get(ENV_PLAIN) or "postgresql://postgres@127.0.0.1:5432/postgres",
        )
    }
    timescale = os.environ.get(ENV_TIMESCALE)
    if timescale:
        found["timescale"] = Server("timescale", timescale)
    return found


SERVERS = servers()
PLAIN = SERVERS["postgres"]
#: Which server each test database lives on (by its unique name).
_HOME: dict[str, Server] = {}


def server_of(dbname: str) -> Server:
    return _HOME.get(dbname, PLAIN)


def url_for(dbname: str, user: str = "postgres", port: int | None = None) -> str:
    """The URL of a test database as ``user`` (``port``: e.g. a proxy in front of it)."""
    return server_of(dbname).url(dbname, user, port)


@contextmanager
def database(server: Server = PLAIN, template: str | None = None) -> Iterator[str]:
    """A new database on ``server`` (a copy of ``template``), dropped afterwards."""
    name = f"flux_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        clause = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{clause}')
    _HOME[name] = server
    try:
        yield name
    finally:
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _HOME.pop(name, None)


@contextmanager
def migrated_template(server: Server) -> Iterator[str]:
    """A database migrated to the server's flavour, closed to connections so it can be
    copied while TimescaleDB's scheduler runs."""
    with database(server) as name:
        migrate(server.url(name), flavour=server.flavour)
        close_to_connections(server, name)
        yield name


def close_to_connections(server: Server, name: str) -> None:
    """Make database ``name`` a template: closed to connections, so that CREATE DATABASE
    ... TEMPLATE can copy it while TimescaleDB's scheduler runs (each copy is open)."""
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )


#: Where the run's shared templates are listed, in the run's temporary folder.
_SHARED = "shared-templates"


def shared_template(server: Server, key: str, run: Path, fill: Callable[[str], None]) -> str:
    """The template ``key`` on ``server``, filled by ``fill(dbname)`` once a run: by the
    first xdist worker that asks (the others wait for it, then copy the same one), closed
    to connections once filled. ``run``: the run's temporary folder
    (:func:`tests.shared.run_folder`), where the template is listed for :func:`drop_shared`."""
    with run_lock(run, _SHARED) as folder:
        done = folder / f"{server.flavour}-{key}"
        ready = done.exists()
        name = done.read_text(encoding="utf-8") if ready else f"flux_test_{uuid.uuid4().hex[:12]}"
        _HOME[name] = server
        if not ready:
            with (folder / "made").open("a", encoding="utf-8") as listed:
                listed.write(f"{server.admin_url} {name}\n")  # dropped even if fill fails
            with psycopg.connect(server.admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            fill(name)
            close_to_connections(server, name)
            done.write_text(name, encoding="utf-8")
    return name


def drop_shared(run: Path) -> None:
    """Drop the templates :func:`shared_template` made in this run (at its very end: in
    the xdist controller, after every worker has finished)."""
    made = run / _SHARED / "made"
    if not made.exists():
        return
    for line in made.read_text(encoding="utf-8").splitlines():
        admin_url, name = line.rsplit(" ", 1)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    made.unlink()
