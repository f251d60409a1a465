"""`flux db`: migrate, refresh rollups, list gaps, upload an outbox, show status, and
give login roles their part (agent, reader, API).

Exit codes: 0 done, 1 an upload did not finish (rows kept in the outbox), 2 a user error
(unreachable database, wrong schema version, bad flag).
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import psycopg
from psycopg.conninfo import conninfo_to_dict
from rich.console import Console
from rich.table import Table

from reconciler.clierrors import fail, user_errors
from reconciler.cliparams import instant
from reconciler.redact import redact
from reconciler.stopping import run_until_signalled, sleep_or_stop
from reconciler.telemetry import rollups
from reconciler.telemetry.database import ENV_URL, check_url, connect, describe
from reconciler.telemetry.errors import DatabaseUnreachable, TelemetryError
from reconciler.telemetry.gaps import find_gaps
from reconciler.telemetry.migrations import known_version, migrate, require_current, schema_state
from reconciler.telemetry.outbox import Outbox, read_counts
from reconciler.telemetry.roles import Part, grant, list_roles, revoke_agent
from reconciler.telemetry.uploader import DEFAULT_BATCH, Uploader

_TABLES = (
    "sites",
    "devices",
    "bess_readings",
    "meter_readings",
    "frequency_records",
    "control_decisions",
    "agent_status",
    "market_data",
    "config_revisions",
)

database_url_option = click.option(
    "--database-url",
    envvar=ENV_URL,
    required=True,
    metavar="URL",
    help=f"PostgreSQL URL, e.g. postgresql://postgres@127.0.0.1:5432/flux (or ${ENV_URL}).",
)


def _parse_time(value: str | None, name: str) -> datetime | None:
    # cliparams holds the years to 1970-2199: the hour and minute arithmetic on a time
    # near year 1 or 9999 overflows.
    return None if value is None else instant(value, UTC, name, example="2026-01-01T00:00Z")


@click.group()
def db() -> None:
    """The telemetry database: schema, rollups, gaps, uploads."""


@db.command("migrate")
@database_url_option
@click.option(
    "--flavour",
    type=click.Choice(["auto", "postgres", "timescale"]),
    default="auto",
    show_default=True,
    help="Schema branch; auto uses TimescaleDB when the extension can be created.",
)
@user_errors(TelemetryError)
def migrate_command(database_url: str, flavour: str) -> None:
    """Apply the numbered migrations (shipped in the package) that the database lacks."""
    result = migrate(database_url, flavour=flavour)  # type: ignore[arg-type]
    if result.note:
        click.echo(f"note: {result.note}", err=True)
    if result.applied:
        applied = ", ".join(f"{v:04d}" for v in result.applied)
        click.echo(
            f"{describe(database_url)}: applied {applied}; schema now at {result.version} "
            f"({result.flavour})"
        )
    else:
        click.echo(
            f"{describe(database_url)}: schema already at {result.version} ({result.flavour}); "
            "nothing to do"
        )


@db.command("refresh")
@database_url_option
@click.option(
    "--from",
    "since",
    default=None,
    help="Rebuild the rollups from this time (ISO 8601, UTC if no offset; widened to the hour).",
)
@click.option("--to", "until", default=None, help="...up to this time (exclusive; default now).")
@click.option(
    "--every",
    type=click.FloatRange(min=1.0),
    default=None,
    metavar="SECONDS",
    help="Keep running: refresh again every SECONDS until SIGINT/SIGTERM, saying only what "
    "changed (deploy/flux-rollups.service runs this as the aggregates' owner).",
)
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@user_errors(TelemetryError)
def refresh_command(
    database_url: str, since: str | None, until: str | None, every: float | None, output: str
) -> None:
    """Bring the 5 m, 30 m and 1 h rollups up to date with the readings (or, with
    --from/--to, rebuild them over that range), then apply the retention setting.

    On TimescaleDB only the aggregates' owner may refresh them, so an agent's uploads
    wait for this command (or a refresh policy): run it with --every as a service."""
    start = _parse_time(since, "--from")
    end = _parse_time(until, "--to")
    if end is not None and start is None:
        raise click.BadParameter("--to needs --from", param_hint="--to")
    if every is not None and start is not None:
        raise click.BadParameter(
            "--every keeps rollups current; --from rebuilds once", param_hint="--every"
        )
    if start is not None:
        end = end or datetime.now(UTC)
        if end <= start:
            raise click.BadParameter("--to must be after --from", param_hint="--to")
    spans = (
        [rollups.span_of(s, start, end - timedelta(microseconds=1)) for s in rollups.SOURCES]
        if start is not None and end is not None
        else None
    )
    if every is None:
        _print_refresh(database_url, _refresh_round(database_url, spans), output, quiet=False)
        return
    interval = every
    check_url(database_url)

    async def follow(stop: asyncio.Event) -> None:
        # Said once the stop signals are handled, so a supervisor can tell it is up.
        click.echo(
            f"{_now()} keeping the rollups of {describe(database_url)} current every"
            f" {interval:g} s; stop with Ctrl-C or SIGTERM",
            err=True,
        )
        first = True
        while not stop.is_set():
            try:
                done = await asyncio.to_thread(_refresh_round, database_url, None)
            except (TelemetryError, psycopg.OperationalError) as exc:
                if first and not _transient(exc):
                    raise
                click.echo(
                    f"{_now()} {describe(database_url)}: {_first_line(exc)};"
                    f" trying again in {interval:g} s",
                    err=True,
                )
            else:
                _print_refresh(database_url, done, output, quiet=True)
            first = False
            await sleep_or_stop(interval, stop)

    run_until_signalled(follow)


@dataclass(frozen=True)
class _Round:
    """One refresh: the flavour, what was refreshed, device-hours (PostgreSQL) and
    what retention removed."""

    flavour: str
    done: list[rollups.Refreshed]
    hours: int | None
    pruned: rollups.Pruned | None
    rebuild: bool


def _refresh_round(database_url: str, spans: list[rollups.Span] | None) -> _Round:
    with connect(database_url, autocommit=True) as conn:
        state = require_current(conn)
        flavour = state.flavour or "postgres"
        hours: int | None = None
        if flavour == "timescale":
            if not rollups.owns_rollups(conn):
                raise TelemetryError(
                    f"{describe(database_url)}: only the owner of the continuous aggregates "
                    "(the role that ran `flux db migrate`) can refresh them; use its URL"
                )
            pending = rollups.pending_timescale(conn) if spans is None else None
            if pending == []:
                done: list[rollups.Refreshed] = []  # nothing out of date: no refresh calls
            else:
                done = rollups.refresh_timescale(conn, spans, force=spans is not None)
            if pending:
                # What was out of date, refreshed through every aggregate (5 m, 30 m, 1 h).
                done = [
                    rollups.Refreshed(f"flux.{p.source}_5m/30m/1h", p.lo, p.hi, p.hours)
                    for p in pending
                ]
        else:
            try:
                with conn.transaction():
                    done, hours = rollups.refresh_postgres(conn, spans)
            except psycopg.errors.InsufficientPrivilege:
                raise TelemetryError(
                    f"{describe(database_url)}: only the role that ran `flux db migrate` can "
                    "run `flux db refresh` (an agent's uploads refresh the rollups themselves"
                    " on plain PostgreSQL); use its URL"
                ) from None
        pruned = rollups.apply_retention(conn, flavour)
    return _Round(flavour, done, hours, pruned, rebuild=spans is not None)


def _print_refresh(database_url: str, r: _Round, output: str, *, quiet: bool) -> None:
    """One round as a table or JSON; ``quiet`` (--every) prints nothing for a round that
    changed nothing, and stamps each line with the time (JSON: one object per line)."""
    if quiet and not r.done and r.pruned is None:
        return
    if output == "json":
        report: dict[str, Any] = {
            "flavour": r.flavour,
            "refreshed": [
                {
                    "rollup": d.name,
                    "from": d.lo.isoformat() if d.lo else None,
                    "to": d.hi.isoformat() if d.hi else None,
                    "hours": d.hours,
                }
                for d in r.done
            ],
            "device_hours": r.hours,
            "retention": None
            if r.pruned is None
            else {
                "cutoff": r.pruned.cutoff.isoformat(),
                "chunks": r.pruned.chunks,
                "rows": r.pruned.rows,
            },
        }
        if quiet:
            click.echo(json.dumps({"at": _now(), **report}))
        else:
            click.echo(json.dumps(report, indent=2))
        return
    stamp = f"{_now()} " if quiet else ""
    verb = "rebuilt" if r.rebuild else "refreshed"
    if not r.done:
        click.echo(
            f"{stamp}{describe(database_url)}: nothing to refresh; the rollups are up to date"
        )
    for step in r.done:
        click.echo(f"{stamp}{verb} {step.describe()}")
    if r.hours is not None and r.done:
        click.echo(f"{stamp}{r.hours} device-hour(s) recomputed")
    if r.pruned is not None:
        removed = (
            f"{r.pruned.chunks} chunk(s)" if r.flavour == "timescale" else f"{r.pruned.rows} row(s)"
        )
        click.echo(
            f"{stamp}retention: raw readings before {r.pruned.cutoff.isoformat()} removed"
            f" ({removed}); the rollups keep them"
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _first_line(exc: BaseException) -> str:
    return redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)


def _transient(exc: BaseException) -> bool:
    """A database that is down or restarting (try again), not a wrong role or schema
    (say so and stop). The URL's form was checked before the first round."""
    return isinstance(exc, (DatabaseUnreachable, psycopg.OperationalError))


@db.command("policy")
@database_url_option
@click.option(
    "--retention",
    default=None,
    metavar="DURATION",
    help="Keep raw readings this long (2y, 18m, 12w, 90d) or 'off' (the default: keep all). "
    "Applied by `flux db refresh`, after the rollups cover what it removes; rollups are kept.",
)
@user_errors(TelemetryError)
def policy_command(database_url: str, retention: str | None) -> None:
    """Show or change the database's data policy (retention of raw readings)."""
    interval: str | None = None
    if retention is not None:
        try:
            interval = rollups.parse_retention(retention)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--retention") from None
    with connect(database_url) as conn:
        require_current(conn)
        if retention is not None:
            rollups.set_retention(conn, interval)
            conn.commit()
        current = rollups.retention(conn)
    shown = f"raw readings kept {current}" if current else "raw readings kept forever (off)"
    click.echo(f"{describe(database_url)}: retention: {shown}; rollups kept forever")


@db.command("gaps")
@database_url_option
@click.option("--site", required=True, help="Site id.")
@click.option("--device", default=None, help="Only this device.")
@click.option("--since", default=None, help="Start of the window (ISO 8601, UTC if no offset).")
@click.option(
    "--until",
    default=None,
    help="End of the window, exclusive (default: now, to the minute: a device silent until "
    "now has a gap up to now).",
)
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@user_errors(TelemetryError)
def gaps_command(
    database_url: str,
    site: str,
    device: str | None,
    since: str | None,
    until: str | None,
    output: str,
) -> None:
    """List missing minutes per device (readings are expected every minute)."""
    start = _parse_time(since, "--since")
    # The current minute is not over: it is not missing yet.
    end = _parse_time(until, "--until") or datetime.now(UTC).replace(second=0, microsecond=0)
    if start and end <= start:
        raise click.BadParameter("--until must be after --since", param_hint="--until")
    with connect(database_url) as conn:
        require_current(conn)
        known = [str(r[0]) for r in conn.execute("SELECT site_id FROM flux.sites ORDER BY 1")]
        if site not in known:
            listed = ", ".join(known) if known else "none yet"
            raise click.BadParameter(
                f"no site {site!r} in {describe(database_url)}: it has never reported "
                f"(sites there: {listed})",
                param_hint="--site",
            )
        if device is not None:
            # Else a misspelt device has no readings, hence no gaps: "no missing minutes".
            devices = [
                str(r[0])
                for r in conn.execute(
                    "SELECT device FROM flux.devices WHERE site_id = %s ORDER BY 1", (site,)
                )
            ]
            if device not in devices:
                raise click.BadParameter(
                    f"site {site!r} has no device {device!r} in {describe(database_url)} "
                    f"(its devices: {', '.join(devices) or 'none yet'})",
                    param_hint="--device",
                )
        gaps = find_gaps(conn, site, device=device, since=start, until=end)
    if output == "json":
        click.echo(json.dumps([g.as_json() for g in gaps], indent=2))
        return
    if not gaps:
        click.echo(f"no missing minutes for site {site}")
        return
    table = Table(title=f"missing minutes, site {site}")
    for col in ("device", "from", "to (excl.)", "minutes"):
        table.add_column(col)
    for g in gaps:
        table.add_row(g.device, g.start.isoformat(), g.end.isoformat(), str(g.minutes))
    Console().print(table)
    click.echo(f"{sum(g.minutes for g in gaps)} missing minute(s) in {len(gaps)} gap(s)")


@db.command("upload")
@click.option(
    "--outbox",
    "outbox_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The agent's SQLite outbox file.",
)
@database_url_option
@click.option("--batch-size", default=DEFAULT_BATCH, show_default=True, type=click.IntRange(1))
@click.option("--follow", is_flag=True, help="Keep uploading until interrupted.")
@click.option("--interval", default=10.0, show_default=True, type=click.FloatRange(0.0))
@click.option("--attempts", default=5, show_default=True, type=click.IntRange(1))
@click.option("--no-refresh", is_flag=True, help="Do not refresh rollups after each batch.")
@user_errors(TelemetryError)
def upload_command(
    outbox_path: Path,
    database_url: str,
    batch_size: int,
    follow: bool,
    interval: float,
    attempts: int,
    no_refresh: bool,
) -> None:
    """Upload an outbox (oldest first) and remove what the database confirmed."""
    if not outbox_path.exists():
        fail(f"outbox {outbox_path} does not exist; pass the agent's outbox file")
    read_counts(outbox_path)  # refuses a file that is not an outbox, leaving it as it is
    with connect(database_url) as conn:
        require_current(conn)
    outbox = Outbox(outbox_path)
    uploader = Uploader(
        outbox,
        database_url,
        batch_size=batch_size,
        attempts=attempts,
        refresh_rollups=not no_refresh,
    )
    try:
        if follow:
            run_until_signalled(lambda stop: uploader.run(stop, interval_s=interval))
            return
        result = uploader.drain()
    finally:
        uploader.close()
        outbox.close()
    sent = ", ".join(f"{k} {n}" for k, n in sorted(result.sent.items())) or "nothing"
    click.echo(
        f"uploaded {sent}; {result.quarantined} quarantined; {result.remaining} left in outbox"
    )
    if not result.ok:
        fail(f"upload stopped: {result.error} (rows kept in the outbox)", code=1)


@db.command("status")
@database_url_option
@click.option(
    "--outbox",
    "outbox_path",
    default=None,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Also show this outbox's backlog.",
)
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@user_errors(TelemetryError)
def status_command(database_url: str, outbox_path: Path | None, output: str) -> None:
    """Schema version, row counts and the newest reading of each site."""
    # Read-only: a wrong file is refused, never made into an outbox.
    backlog = read_counts(outbox_path) if outbox_path is not None else None
    info: dict[str, Any] = {"database": describe(database_url)}
    with connect(database_url) as conn:
        state = schema_state(conn)
        info["schema_version"] = state.version
        info["known_version"] = known_version()
        info["flavour"] = state.flavour
        if state.version:
            info["rows"] = {t: _count(conn, f"flux.{t}") for t in _TABLES}
            latest = conn.execute(
                "SELECT site_id, max(time) FROM ("
                " SELECT site_id, time FROM flux.bess_readings"
                " UNION ALL SELECT site_id, time FROM flux.meter_readings) r"
                " GROUP BY site_id ORDER BY site_id"
            ).fetchall()
            info["latest"] = {str(site): str(at) for site, at in latest}
    if backlog is not None:
        info["outbox"] = backlog
    if output == "json":
        click.echo(json.dumps(info, indent=2))
        return
    console = Console()
    console.print(
        f"{info['database']}: schema {info['schema_version']} of {info['known_version']}"
        f" ({info['flavour'] or 'not migrated'})"
    )
    for section in ("rows", "latest", "outbox"):
        if section in info:
            table = Table(title=section)
            table.add_column("name")
            table.add_column("value")
            for key, value in info[section].items():
                table.add_row(key, str(value))
            console.print(table)


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(str(row[0])) if row else 0


# ---------------------------------------------------------------------- login roles

password_env_option = click.option(
    "--password-env",
    metavar="VAR",
    default=None,
    help="Set the role's password from this environment variable (never on the command "
    "line, where shell history would keep it). Without it the password is left as is.",
)


def _password(variable: str | None) -> str | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        fail(f"--password-env {variable}: the environment variable {variable} is not set")
    return value


def _grant(
    database_url: str, part: Part, name: str, sites: tuple[str, ...], pw: str | None
) -> None:
    with connect(database_url) as conn:
        require_current(conn)
        done = grant(conn, part, name, sites=sites, password=_password(pw))
        conn.commit()
    verb = "created login role" if done.created else "updated role"
    password = "; password set" if done.password_set else ""
    click.echo(f"{verb} {done.name}{password}; member of {', '.join(done.groups)}")
    if done.sites:
        click.echo(f"uploads for site(s): {', '.join(done.sites)}")
    parts = conninfo_to_dict(database_url)
    host, port = parts.get("host") or "localhost", parts.get("port") or "5432"
    click.echo(f"connect as: postgresql://{done.name}@{host}:{port}/{parts.get('dbname') or ''}")


@db.command("add-agent")
@click.argument("name")
@click.option("--site", "sites", multiple=True, required=True, help="Site id (repeatable).")
@password_env_option
@database_url_option
@user_errors(TelemetryError)
def add_agent_command(
    name: str, sites: tuple[str, ...], password_env: str | None, database_url: str
) -> None:
    """Let login role NAME (created if missing) upload for its sites only: one role per
    Revolution Pi, e.g. `flux db add-agent flux_wlce --site wlce`."""
    _grant(database_url, "agent", name, sites, password_env)


@db.command("add-reader")
@click.argument("name")
@password_env_option
@database_url_option
@user_errors(TelemetryError)
def add_reader_command(name: str, password_env: str | None, database_url: str) -> None:
    """Let login role NAME (created if missing) read every site: Grafana, analysts."""
    _grant(database_url, "reader", name, (), password_env)


@db.command("add-api")
@click.argument("name")
@password_env_option
@database_url_option
@user_errors(TelemetryError)
def add_api_command(name: str, password_env: str | None, database_url: str) -> None:
    """Create PostgREST's authenticator NAME: it logs in, then may only switch to
    flux_anon or flux_reader (see deploy/postgrest.conf)."""
    _grant(database_url, "api", name, (), password_env)


@db.command("remove-agent")
@click.argument("name")
@click.option(
    "--site", "sites", multiple=True, help="Only this site (repeatable); default: every site."
)
@database_url_option
@user_errors(TelemetryError)
def remove_agent_command(name: str, sites: tuple[str, ...], database_url: str) -> None:
    """Stop agent NAME uploading (for SITEs, or at all): a lost or replaced Pi. Takes
    effect on its next statement; the role itself is kept."""
    with connect(database_url) as conn:
        require_current(conn)
        left = revoke_agent(conn, name, sites)
        conn.commit()
    if left:
        click.echo(f"{name} keeps {left} site(s); `flux db roles` lists them")
    else:
        click.echo(f"{name} can no longer upload for any site (left flux_agent)")


@db.command("roles")
@database_url_option
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@user_errors(TelemetryError)
def roles_command(database_url: str, output: str) -> None:
    """Login roles with a Flux part, and each agent's sites in this database."""
    with connect(database_url) as conn:
        require_current(conn)
        roles = list_roles(conn)
    if output == "json":
        click.echo(json.dumps([r.as_json() for r in roles], indent=2))
        return
    table = Table(title=f"roles of {describe(database_url)}")
    table.add_column("role", no_wrap=True)
    for column in ("groups", "sites", "login", "password", "warning"):
        table.add_column(column)
    for r in roles:
        password = "?" if r.has_password is None else ("set" if r.has_password else "none")
        warning = "bypasses row-level security" if r.bypasses_rls else ""
        table.add_row(
            r.name,
            ", ".join(r.groups),
            ", ".join(r.sites),
            "yes" if r.can_login else "no",
            password,
            warning,
        )
    Console().print(table)
