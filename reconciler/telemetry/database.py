"""Connecting to PostgreSQL with errors a user can act on."""

from __future__ import annotations

import os

import psycopg
from psycopg.conninfo import conninfo_to_dict

from reconciler.telemetry.errors import DatabaseUnreachable

ENV_URL = "FLUX_DATABASE_URL"
CONNECT_TIMEOUT_S = 5


def describe(url: str) -> str:
    """``user@host:port/dbname`` of a URL, without its password, for messages."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparseable database URL>"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    user = parts.get("user") or "?"
    dbname = parts.get("dbname") or "?"
    return f"{user}@{host}:{port}/{dbname}"


def connect(
    url: str, *, autocommit: bool = False, timeout_s: int = CONNECT_TIMEOUT_S
) -> psycopg.Connection[tuple[object, ...]]:
    """Open a connection or raise :class:`DatabaseUnreachable` naming the database."""
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise DatabaseUnreachable(
            f"the database URL is not valid ({exc}); use postgresql://user@host:port/dbname"
        ) from None
    try:
        return psycopg.connect(
            url,
            autocommit=autocommit,
            connect_timeout=timeout_s,
            application_name="flux",
        )
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnreachable(
            f"cannot connect to the database {describe(url)}: {first}. "
            f"Check that PostgreSQL is running and the URL (--database-url or {ENV_URL}) is right."
        ) from None


def url_from_env(url: str | None) -> str | None:
    """The explicit URL, else ``FLUX_DATABASE_URL``, else None (embedded: outbox only)."""
    return url or os.environ.get(ENV_URL) or None
