"""Connecting to PostgreSQL with errors a user can act on, and timeouts that hold on a
silent network (a partition that drops packets without closing anything).

Each layer bounds a different wait: ``connect_timeout`` the connection's set-up (the
driver gives up by itself); ``statement_timeout`` a statement the server is slow to
finish; TCP keepalives and ``tcp_user_timeout`` a peer that vanished on a real network
(the kernel declares the link dead). None of these fires when the data is acknowledged
but never answered (e.g. a stuck middlebox, or a loopback proxy in the tests): the
uploader also keeps a deadline of its own per attempt (uploader.py).
"""

from __future__ import annotations

import os
import re
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from reconciler.redact import redact
from reconciler.telemetry.errors import DatabaseUnreachable

ENV_URL = "FLUX_DATABASE_URL"
#: The option most commands take the URL from (it falls back to ENV_URL).
URL_OPTION = "--database-url"
#: How to write a URL, in errors. No password in it: the advice must survive redaction.
URL_EXAMPLE = "postgresql://USER@HOST:PORT/DBNAME"
CONNECT_TIMEOUT_S = 5
# libpq takes these two schemes (lower case only) and key/value strings ("host=...").
_SCHEMES = ("postgresql", "postgres")
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.-]*)://")

#: libpq's TCP settings for every connection: probe an idle link after 30 s, every 10 s,
#: dead after 3 lost probes; sent data unacknowledged for 60 s also means dead (Linux).
TCP_SETTINGS: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}


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
    return redact(f"{user}@{host}:{port}/{dbname}", url)


def driver_message(exc: BaseException, url: str | None = None) -> str:
    """The first line of a driver's error, passwords masked (``url``'s and any other)."""
    text = str(exc).strip().splitlines()
    return redact(text[0] if text else type(exc).__name__, url)


def _where(option: str) -> str:
    """Where a URL came from, for errors: ``--database-url`` falls back to ENV_URL, other
    options (``backtest --from-db``) do not."""
    return f"{option} or {ENV_URL}" if option == URL_OPTION else option


def check_url(url: str, option: str = URL_OPTION) -> dict[str, Any]:
    """The URL's parts, or :class:`DatabaseUnreachable` saying how to write one; ``option``
    is what the user gave it as."""
    if not url.strip():
        # libpq would connect to its defaults (the local server, as the OS user): a
        # migrate there changes a database nobody named.
        unset = f" or set {ENV_URL}" if option == URL_OPTION else ""
        raise DatabaseUnreachable(f"{option} is empty; give {URL_EXAMPLE}{unset}")
    scheme = _SCHEME.match(url)
    if scheme and scheme[1] not in _SCHEMES:
        raise DatabaseUnreachable(
            f"the database URL ({_where(option)}) is a {scheme[1]}:// URL, not a "
            f"postgresql:// URL; give {URL_EXAMPLE}"
        )
    try:
        return conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise DatabaseUnreachable(
            f"the database URL ({_where(option)}) is not valid ({driver_message(exc, url)}); "
            f"give {URL_EXAMPLE}"
        ) from None


def connect(
    url: str,
    *,
    autocommit: bool = False,
    timeout_s: float = CONNECT_TIMEOUT_S,
    statement_timeout_s: float | None = None,
    option: str = URL_OPTION,
) -> psycopg.Connection[tuple[object, ...]]:
    """Open a connection or raise :class:`DatabaseUnreachable` naming the database (never
    its password). ``statement_timeout_s`` bounds each statement on the server; ``option``
    is what the user gave the URL as (named in errors)."""
    given = check_url(url, option)
    # What the URL sets itself wins (a site may tune its link); options are added to.
    extra: dict[str, Any] = {k: v for k, v in TCP_SETTINGS.items() if k not in given}
    if statement_timeout_s is not None:
        ms = max(1, round(statement_timeout_s * 1000))
        extra["options"] = f"{given.get('options') or ''} -c statement_timeout={ms}".strip()
    try:
        return psycopg.connect(
            url,
            autocommit=autocommit,
            # libpq counts whole seconds, at least 2 (1 would be taken as 2).
            connect_timeout=max(2, round(timeout_s)),
            application_name="flux",
            **extra,
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnreachable(
            f"cannot connect to the database {describe(url)}: {driver_message(exc, url)}. "
            f"Check that PostgreSQL is running and the URL ({_where(option)}) is right."
        ) from None


def url_from_env(url: str | None) -> str | None:
    """The explicit URL, else ``FLUX_DATABASE_URL``, else None (embedded: outbox only)."""
    return url or os.environ.get(ENV_URL) or None
