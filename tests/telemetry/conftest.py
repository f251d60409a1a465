"""Fixtures: a fresh PostgreSQL database per test (unique name, dropped after), login roles
with unique names, an outbox in a tmp folder, and a TCP proxy that can cut the database."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from reconciler.telemetry.outbox import Outbox
from tests.net import free_port
from tests.pg import Server, database, server_of, url_for
from tests.pg import migrated_template as migrated_template_on

__all__ = ["url_for"]

# Where the test databases live: tests/pg.py (FLUX_TEST_DATABASE_URL, and
# FLUX_TEST_TIMESCALE_URL for a second run on TimescaleDB).


def admin_url_for(dbname: str) -> str:
    """The administrator's URL of the server ``dbname`` lives on."""
    return server_of(dbname).admin_url


@pytest.fixture(scope="session")
def migrated_template(flux_server: Server) -> Iterator[str]:
    """One migrated database per server and test session; tests get copies (much faster
    than migrating each one)."""
    with migrated_template_on(flux_server) as name:
        yield name


@pytest.fixture
def dbname(request: pytest.FixtureRequest, flux_server: Server) -> Iterator[str]:
    """A fresh database: empty, or a copy of the migrated template if the test asks for
    ``migrated_url``."""
    template = (
        request.getfixturevalue("migrated_template")
        if "migrated_url" in request.fixturenames
        else None
    )
    with database(flux_server, template) as name:
        yield name


@pytest.fixture
def pg_url(dbname: str) -> str:
    return url_for(dbname)


@pytest.fixture
def migrated_url(dbname: str) -> str:
    return url_for(dbname)


@pytest.fixture
def role_names(dbname: str) -> Iterator[Callable[[], str]]:
    """Unique role names for a test; whatever roles by those names exist afterwards are
    dropped (before dbname's teardown, so what they hold there is revoked first)."""
    names: list[str] = []

    def new() -> str:
        names.append(f"flux_t_{uuid.uuid4().hex[:10]}")
        return names[-1]

    yield new
    with psycopg.connect(url_for(dbname), autocommit=True) as conn:
        for name in names:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                conn.execute(f'DROP OWNED BY "{name}"')
    with psycopg.connect(admin_url_for(dbname), autocommit=True) as conn:
        for name in names:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (name,),
            )
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')


@pytest.fixture
def make_role(role_names: Callable[[], str], dbname: str) -> Callable[[str], str]:
    """Create login roles with unique names (dropped after the test)."""

    def make(member_of: str) -> str:
        name = role_names()
        with psycopg.connect(admin_url_for(dbname), autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{name}" LOGIN IN ROLE {member_of}')
        return name

    return make


@pytest.fixture
def agent_for(
    migrated_url: str, dbname: str, make_role: Callable[[str], str]
) -> Callable[[str], str]:
    """The URL of a new agent role registered for a site (``agent_for("wlce")``)."""

    def make(site: str) -> str:
        role = make_role("flux_agent")
        with psycopg.connect(migrated_url) as conn:
            conn.execute("SELECT flux.register_agent(%s, %s)", (role, site))
        return url_for(dbname, role)

    return make


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db")
    yield box
    box.close()


class Proxy:
    """A TCP forwarder to PostgreSQL on a fixed local port that can be cut and restored:
    cutting closes the listener and every open connection, like a dropped link."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._frozen = threading.Event()

    def freeze(self) -> None:
        """A silent partition: connections stay open and new ones are accepted, but no
        byte goes through any more and nothing is closed (nothing tells the client)."""
        self._frozen.set()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if self._frozen.is_set():
                    continue  # swallowed: the far end never hears of it
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            # shutdown wakes the thread blocked in accept(); close alone would not.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()


@pytest.fixture
def proxy(flux_server: Server) -> Iterator[Proxy]:
    p = Proxy(flux_server.port)
    p.start()
    yield p
    p.cut()


class BlackHole:
    """A database host behind a silent partition: a loopback listener that accepts TCP
    connections and never answers (nor closes them until the test ends)."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen()
        self.port = int(self._listener.getsockname()[1])
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(conn)

    def url(self, password: str = "") -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://flux_site{secret}@127.0.0.1:{self.port}/flux"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()
