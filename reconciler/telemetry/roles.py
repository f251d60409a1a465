"""Login roles for the people and programs that use the telemetry database.

The migrations create three group roles that cannot log in (``sql/0001_core.sql`` in
this package): ``flux_agent`` (uploads rows of its own sites; row-level security),
``flux_reader`` (dashboards: reads every site) and ``flux_anon`` (nothing). The functions
here give a login role one of those parts:

- an agent (one Revolution Pi): member of ``flux_agent``, its sites in flux.agent_sites;
- a reader (Grafana, an analyst): member of ``flux_reader``;
- an API authenticator (PostgREST): NOINHERIT, may switch to ``flux_anon`` or
  ``flux_reader`` only, as PostgREST does per request.

Passwords are hashed here (SCRAM-SHA-256, by libpq) so the clear text never reaches the
server's logs. Roles are cluster-wide; the agent's sites belong to one database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

from reconciler.telemetry.errors import TelemetryError

Part = Literal["agent", "reader", "api"]
GROUPS: tuple[str, ...] = ("flux_agent", "flux_reader", "flux_anon")
_GRANTS: dict[Part, tuple[str, ...]] = {
    "agent": ("flux_agent",),
    "reader": ("flux_reader",),
    "api": ("flux_anon", "flux_reader"),
}


class RoleError(TelemetryError):
    """A role that cannot safely be given the part asked for."""


@dataclass(frozen=True)
class RoleInfo:
    """One login role with a Flux part, as ``flux db roles`` lists it."""

    name: str
    groups: tuple[str, ...]
    sites: tuple[str, ...]
    can_login: bool
    has_password: bool | None  # None: not visible to this user
    bypasses_rls: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "role": self.name,
            "groups": list(self.groups),
            "sites": list(self.sites),
            "login": self.can_login,
            "password": self.has_password,
            "bypasses_rls": self.bypasses_rls,
        }


@dataclass(frozen=True)
class Granted:
    """What :func:`grant` did."""

    name: str
    created: bool
    password_set: bool
    groups: tuple[str, ...]
    sites: tuple[str, ...]


def grant(
    conn: psycopg.Connection[Any],
    part: Part,
    name: str,
    *,
    sites: tuple[str, ...] = (),
    password: str | None = None,
) -> Granted:
    """Create login role ``name`` if needed and give it ``part``; idempotent. The caller
    owns the transaction. Refuses the group roles themselves, and a superuser or
    BYPASSRLS role as an agent or API role (row-level security would not hold)."""
    if name in GROUPS:
        raise RoleError(
            f"{name} is one of Flux's group roles; give the login role its own name, "
            f"e.g. {name}_wlce"
        )
    if part == "agent" and not sites:
        raise RoleError("an agent role needs at least one --site")
    row = conn.execute(
        "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = %s", (name,)
    ).fetchone()
    role = sql.Identifier(name)
    created = row is None
    if row is None:
        options = sql.SQL("LOGIN NOINHERIT") if part == "api" else sql.SQL("LOGIN")
        conn.execute(sql.SQL("CREATE ROLE {} {}").format(role, options))
    else:
        superuser, bypass, can_login = row
        if part != "reader" and (superuser or bypass):
            raise RoleError(
                f"role {name} is a superuser or has BYPASSRLS: row-level security would not "
                "limit it to its sites; use a role of its own for the "
                f"{'agent' if part == 'agent' else 'API'}"
            )
        if not can_login:
            raise RoleError(
                f"role {name} exists but cannot log in; choose another name or "
                f"ALTER ROLE {name} LOGIN first"
            )
    if password is not None:
        hashed = conn.pgconn.encrypt_password(password.encode(), name.encode(), b"scram-sha-256")
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(hashed.decode()))
        )
    groups = _GRANTS[part]
    for group in groups:
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), role))
    for site in sites:
        conn.execute("SELECT flux.register_agent(%s, %s)", (name, site))
    return Granted(name, created, password is not None, groups, sites)


def revoke_agent(conn: psycopg.Connection[Any], name: str, sites: tuple[str, ...] = ()) -> int:
    """Take ``sites`` (all of them if empty) from agent ``name``; with none left it leaves
    flux_agent. Takes effect on the agent's next statement. Returns the sites left."""
    member = conn.execute(
        "SELECT pg_has_role(%s, 'flux_agent', 'MEMBER') FROM pg_roles WHERE rolname = %s",
        (name, name),
    ).fetchone()
    if member is None:
        raise RoleError(f"there is no role {name}; `flux db roles` lists Flux's roles")
    if sites:
        conn.execute(
            "DELETE FROM flux.agent_sites WHERE role_name = %s AND site_id = ANY(%s)",
            (name, list(sites)),
        )
    else:
        conn.execute("DELETE FROM flux.agent_sites WHERE role_name = %s", (name,))
    row = conn.execute(
        "SELECT count(*) FROM flux.agent_sites WHERE role_name = %s", (name,)
    ).fetchone()
    left = int(row[0]) if row else 0
    if left == 0 and member[0]:
        conn.execute(sql.SQL("REVOKE flux_agent FROM {}").format(sql.Identifier(name)))
    return left


def list_roles(conn: psycopg.Connection[Any]) -> list[RoleInfo]:
    """Every role that is a direct member of a Flux group role, with its sites here.
    Whether a password is set shows only to a superuser (None otherwise)."""
    readable = conn.execute(
        "SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')"
    ).fetchone()
    password = (
        "EXISTS (SELECT 1 FROM pg_authid p"
        " WHERE p.rolname = r.rolname AND p.rolpassword IS NOT NULL)"
        if readable and readable[0]
        else "NULL::boolean"
    )
    rows = conn.execute(
        sql.SQL(
            """
        SELECT r.rolname,
               array_agg(DISTINCT g.rolname ORDER BY g.rolname),
               coalesce((SELECT array_agg(site_id ORDER BY site_id) FROM flux.agent_sites a
                         WHERE a.role_name = r.rolname), '{{}}'),
               r.rolcanlogin, {password}, r.rolsuper OR r.rolbypassrls
        FROM pg_roles r
        JOIN pg_auth_members m ON m.member = r.oid
        JOIN pg_roles g ON g.oid = m.roleid AND g.rolname = ANY(%s)
        GROUP BY r.rolname, r.rolcanlogin, r.rolsuper, r.rolbypassrls
        ORDER BY r.rolname
        """
        ).format(password=sql.SQL(password)),
        (list(GROUPS),),
    ).fetchall()
    return [
        RoleInfo(name, tuple(groups), tuple(sites), login, has_password, bypass)
        for name, groups, sites, login, has_password, bypass in rows
    ]
