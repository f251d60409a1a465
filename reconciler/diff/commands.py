"""`flux diff SITE` and `flux status`: desired (git) against observed (database or live).

Exit codes: 0 no drift, 1 drift, 2 an error the user can fix (database unreachable, site
missing, bad ref, bad flag), always as one clear line and never a traceback.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import click
import psycopg
from rich.console import Console

from reconciler.devices.errors import DeviceError
from reconciler.diff.compare import diff_site
from reconciler.diff.desired import DiffError, load_desired, open_repo, site_ids
from reconciler.diff.model import Report
from reconciler.diff.normalise import limit_tolerances
from reconciler.diff.observed import read_database, read_live
from reconciler.diff.render import print_report, print_status, report_json, status_row
from reconciler.telemetry.database import ENV_URL, connect
from reconciler.telemetry.errors import TelemetryError
from reconciler.telemetry.migrations import require_current

P = ParamSpec("P")
R = TypeVar("R")

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_ERROR)


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Every error a user can act on as one line on stderr and exit 2."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (DiffError, TelemetryError) as exc:
            _fail(str(exc))
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()
            _fail(f"database error: {first[0] if first else type(exc).__name__}")
        raise AssertionError("unreachable")

    return wrapper


def parse_window(_ctx: click.Context, _param: click.Parameter, value: str) -> timedelta:
    m = _DURATION_RE.match(value)
    if m is None or float(m.group(1)) <= 0:
        raise click.BadParameter(f"{value!r} is not a duration; write e.g. 24h, 90m, 2d or 600s")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def parse_at(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time such as 2026-01-01T00:00Z"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


repo_option = click.option(
    "--repo",
    default=".",
    show_default=True,
    metavar="PATH",
    help="The config repository (holds sites/<id>.yaml).",
)
database_option = click.option(
    "--database-url",
    envvar=ENV_URL,
    metavar="URL",
    help=f"PostgreSQL the agents upload to (or ${ENV_URL}): observed = what they reported.",
)
output_option = click.option(
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="A table for people, JSON (stable keys) for scripts.",
)
at_option = click.option(
    "--at",
    callback=parse_at,
    metavar="TIME",
    help="Compare as of this instant (ISO 8601, UTC if no offset); default now.",
)


def _from_database(url: str, desired: Any, at: datetime, window: timedelta) -> Report:
    site = desired.site
    with connect(url) as conn:
        require_current(conn)
        obs = read_database(conn, site, at=at, window=window, tolerances=limit_tolerances(site))
    return diff_site(desired, obs, window=window)


@click.command()
@click.argument("site")
@repo_option
@click.option("--ref", default="HEAD", show_default=True, help="Commit, branch or tag.")
@database_option
@click.option("--live", is_flag=True, help="Read the devices now (read-only Modbus), on site.")
@click.option(
    "--window",
    default="24h",
    show_default=True,
    callback=parse_window,
    help="How far back limits and telemetry are checked (e.g. 24h, 90m, 2d).",
)
@at_option
@output_option
@click.pass_context
@user_errors
def diff(
    ctx: click.Context,
    site: str,
    repo: str,
    ref: str,
    database_url: str | None,
    live: bool,
    window: timedelta,
    at: datetime,
    output: str,
) -> None:
    """Where SITE differs from its desired state at REF, and why.

    SITE is a site id (sites/<id>.yaml at --ref in --repo; an uncommitted edit is not
    desired) or a path to a site file. Exit 0 no drift, 1 drift, 2 error.
    """
    explicit = ctx.get_parameter_source("database_url") == click.core.ParameterSource.COMMANDLINE
    if live and explicit:
        raise click.UsageError("give either --database-url or --live, not both")
    if not live and not database_url:
        raise click.UsageError(
            f"say where to observe: --database-url URL (or ${ENV_URL}) for what the agent "
            "reported, or --live to read the devices"
        )
    desired = load_desired(site, repo=repo, ref=ref)
    if live:
        try:
            obs = asyncio.run(read_live(desired.site))
        except (DeviceError, ValueError) as exc:
            raise DiffError(f"cannot read the devices of {desired.site.site.id}: {exc}") from None
        report = diff_site(desired, obs, window=window)
    else:
        assert database_url is not None
        report = _from_database(database_url, desired, at, window)
    if output == "json":
        click.echo(report_json(report))
    else:
        print_report(report, Console(soft_wrap=False))
    sys.exit(EXIT_DRIFT if report.drifted else EXIT_OK)


@click.command()
@repo_option
@database_option
@click.option(
    "--window",
    default="24h",
    show_default=True,
    callback=parse_window,
    help="How far back limits and telemetry are checked for the drift count.",
)
@at_option
@output_option
@user_errors
def status(
    repo: str, database_url: str | None, window: timedelta, at: datetime, output: str
) -> None:
    """One row per site file in sites/ at HEAD: applied revision against HEAD, Ready, mode
    now, SoE, site power, last seen and drift count. Exit 0 no drift, 1 drift, 2 error."""
    import json

    if not database_url:
        raise click.UsageError(f"give --database-url URL (or ${ENV_URL})")
    gitrepo = open_repo(repo)
    head, ids = site_ids(gitrepo, "HEAD")
    if not ids:
        raise DiffError(
            f"no site files in {repo}/sites at HEAD ({head[:12]}); is this the config repository?"
        )
    rows: list[tuple[dict[str, Any], Report | None]] = []
    with connect(database_url) as conn:
        require_current(conn)
        for sid in ids:
            try:
                desired = load_desired(sid, repo=repo, ref="HEAD")
            except DiffError as exc:
                rows.append((status_row(sid, None, str(exc)), None))
                continue
            site = desired.site
            obs = read_database(conn, site, at=at, window=window, tolerances=limit_tolerances(site))
            report = diff_site(desired, obs, window=window)
            rows.append((status_row(sid, report, None), report))
    drifting = any(r["error"] is not None or r["drift_count"] for r, _ in rows)
    if output == "json":
        doc = {
            "head": head,
            "at": at.isoformat(),
            "drift": drifting,
            "sites": [r for r, _ in rows],
        }
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print_status(rows, head, at, Console(soft_wrap=False))
    sys.exit(EXIT_DRIFT if drifting else EXIT_OK)
