"""`flux diff SITE` and `flux status`: desired (git) against observed (database or live).

Exit codes: 0 no drift, 1 drift, 2 an error the user can fix (database unreachable, site
missing, bad ref, bad flag), always as one clear line and never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import psycopg
from rich.console import Console

from reconciler.clierrors import user_errors
from reconciler.cliparams import instant
from reconciler.devices.errors import DeviceError
from reconciler.diff.compare import diff_site
from reconciler.diff.desired import Desired, DiffError, load_desired, open_repo, site_ids
from reconciler.diff.model import Report
from reconciler.diff.observed import (
    DEFAULT_AGENT_URL,
    latest_report,
    read_agent_status,
    read_database,
    read_live,
)
from reconciler.diff.render import print_report, print_status, report_json, status_row
from reconciler.diff.tolerances import limit_tolerances
from reconciler.telemetry.database import ENV_URL, connect
from reconciler.telemetry.errors import TelemetryError
from reconciler.telemetry.migrations import require_current

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
LATEST = "latest"


#: The longest --window: a year of a site's telemetry is already more than a diff reads
#: at a glance (and far beyond it the arithmetic on instants overflows).
MAX_WINDOW = timedelta(days=366)


def parse_window(_ctx: click.Context, _param: click.Parameter, value: str) -> timedelta:
    m = _DURATION_RE.match(value)
    if m is None or float(m.group(1)) <= 0:
        raise click.BadParameter(f"{value!r} is not a duration; write e.g. 24h, 90m, 2d or 600s")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds > MAX_WINDOW.total_seconds():
        raise click.BadParameter(f"{value!r} is longer than {MAX_WINDOW.days} days")
    return timedelta(seconds=seconds)


def parse_at(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | str:
    """An aware instant, now when not given, or ``latest`` (each site's latest report)."""
    if value is None:
        return datetime.now(UTC)
    if value.strip().lower() == LATEST:
        return LATEST
    return instant(value, UTC, "--at", example="2026-01-01T00:00Z, nor latest")


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
window_option = click.option(
    "--window",
    default="24h",
    show_default=True,
    callback=parse_window,
    help="How far back limits and telemetry are checked (e.g. 24h, 90m, 2d).",
)
at_option = click.option(
    "--at",
    callback=parse_at,
    metavar="TIME",
    help="Compare as of this instant (ISO 8601, UTC without an offset), or `latest`: the "
    "site's latest report (for `flux demo` and replays, which run on simulated time). "
    "Default: now.",
)
output_option = click.option(
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="A table for people, JSON (stable keys) for scripts.",
)


def _observe(
    conn: psycopg.Connection[Any], desired: Desired, at: datetime | str, window: timedelta
) -> Report:
    site = desired.site
    if isinstance(at, str):
        at = latest_report(conn, site.site.id) or datetime.now(UTC)
    obs = read_database(conn, site, at=at, window=window, tolerances=limit_tolerances(site))
    return diff_site(desired, obs, window=window)


@click.command()
@click.argument("site")
@repo_option
@click.option("--ref", default="HEAD", show_default=True, help="Commit, branch or tag.")
@database_option
@click.option("--live", is_flag=True, help="Read the devices now (read-only Modbus), on site.")
@click.option(
    "--agent-url",
    default=DEFAULT_AGENT_URL,
    show_default=True,
    envvar="FLUX_AGENT_URL",
    help="With --live: the agent's status endpoint, for the revision it runs.",
)
@window_option
@at_option
@output_option
@click.pass_context
@user_errors(DiffError, TelemetryError)
def diff(
    ctx: click.Context,
    site: str,
    repo: str,
    ref: str,
    database_url: str | None,
    live: bool,
    agent_url: str,
    window: timedelta,
    at: datetime | str,
    output: str,
) -> None:
    """Where SITE differs from its desired state at REF, and why.

    SITE is a site id (sites/<id>.yaml at --ref in --repo; an uncommitted edit is not
    desired) or a path to a site file (read as it is on disk). Observed is what the agent
    reported (--database-url) or the devices read now (--live). Exit 0 no drift, 1 drift,
    2 error.
    """
    source = click.core.ParameterSource.COMMANDLINE
    if live and ctx.get_parameter_source("database_url") == source:
        raise click.UsageError("give either --database-url or --live, not both")
    if not live and not database_url:
        raise click.UsageError(
            f"say where to observe: --database-url URL (or ${ENV_URL}) for what the agent "
            "reported, or --live to read the devices"
        )
    desired = load_desired(site, repo=repo, ref=ref)
    if live:
        # Device errors become telemetry lines; pymodbus's log lines would repeat them.
        logging.getLogger("pymodbus.logging").setLevel(logging.CRITICAL)
        # An explicit instant stamps the readings (the schedule is evaluated then).
        stamp = (
            at if isinstance(at, datetime) and ctx.get_parameter_source("at") == source else None
        )
        try:
            obs = asyncio.run(read_live(desired.site, at=stamp))
        except (DeviceError, ValueError) as exc:
            raise DiffError(f"cannot read the devices of {desired.site.site.id}: {exc}") from None
        read_agent_status(obs, desired.site.site.id, agent_url)
        report = diff_site(desired, obs, window=window)
    else:
        assert database_url is not None
        with connect(database_url) as conn:
            require_current(conn)
            report = _observe(conn, desired, at, window)
    if output == "json":
        click.echo(report_json(report))
    else:
        print_report(report, Console(soft_wrap=False))
    sys.exit(EXIT_DRIFT if report.drifted else EXIT_OK)


@click.command()
@repo_option
@database_option
@window_option
@at_option
@output_option
@user_errors(DiffError, TelemetryError)
def status(
    repo: str, database_url: str | None, window: timedelta, at: datetime | str, output: str
) -> None:
    """One row per site file in sites/ at HEAD: applied revision against HEAD, Ready, mode
    now, SoE, site power, last seen and drift count. Exit 0 no drift, 1 drift, 2 error."""
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
            report = _observe(conn, desired, at, window)
            rows.append((status_row(sid, report, None), report))
    drifting = any(r["error"] is not None or r["drift_count"] for r, _ in rows)
    if output == "json":
        doc = {
            "head": head,
            "at": at.isoformat() if isinstance(at, datetime) else at,
            "drift": drifting,
            "sites": [r for r, _ in rows],
        }
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print_status(rows, head, Console(soft_wrap=False))
    sys.exit(EXIT_DRIFT if drifting else EXIT_OK)
