"""Operator controls: ``flux agent status | suspend | resume | reconcile``.

They talk to a running agent only through its state folder (the status file, a suspend flag,
a reconcile request and the battery lock), so they work as any user who can read or write
that folder, and need no connection to the agent.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from reconciler.agent.lock import lock_holder
from reconciler.source import flags
from reconciler.source.paths import StatePaths, state_dir_option
from reconciler.status.model import NotAStatusFile, StatusSnapshot, read_status_file

EXIT_NOT_READY = 1
EXIT_NO_STATUS = 2
EXIT_USAGE = 2

STATE_DIR_OPTION = state_dir_option("The agent's state folder (env FLUX_STATE_DIR).")


def _age(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "never"
    seconds = max(0, int((now - at).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    if seconds < 172800:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


class NoStatus(click.ClickException):
    exit_code = EXIT_NO_STATUS


def _load(state_dir: Path, status_file: Path | None) -> StatusSnapshot:
    path = status_file or StatePaths(state_dir).status_file
    # The option the user gave (or the default they relied on) is the one to name.
    option = "--status-file" if status_file else f"--state-dir {state_dir}"
    if path.exists() and not path.is_file():
        # A FIFO would make the read wait for ever.
        raise NoStatus(f"{path} ({option}) is not a regular file, not a status file")
    try:
        return read_status_file(path)
    except FileNotFoundError:
        if status_file is not None:
            raise NoStatus(
                f"no status file at {path} (--status-file): check the path, or pass the "
                "agent's --state-dir instead"
            ) from None
        raise NoStatus(
            f"no status file at {path}: the agent has not run with --state-dir {state_dir} "
            "(start it, or pass the --state-dir it uses)"
        ) from None
    except NotAStatusFile as exc:
        raise NoStatus(f"{path} ({option}) is {exc}") from None
    except OSError as exc:
        raise NoStatus(
            f"cannot read the status file {path} ({option}): {exc.strerror or exc}"
        ) from None


def _print_table(snap: StatusSnapshot, pid: int | None, console: Console) -> None:
    now = datetime.now(UTC)
    running = (
        f"running (pid {pid})"
        if pid
        else f"NOT RUNNING (status written {_age(snap.updated_at, now)}, pid {snap.pid})"
    )
    console.print(f"[bold]site[/] {snap.site}   [bold]source[/] {snap.source} {snap.source_ref}")
    console.print(f"[bold]agent[/] {running}")
    for section in (_print_revisions, _print_conditions, _print_telemetry, _print_markets):
        section(snap, now, console)
    if snap.frequency is not None:
        fr = snap.frequency
        share = f"{100 * fr.performance:.1f}%" if fr.performance is not None else "-"
        console.print(
            f"[bold]frequency response[/] ({fr.entry}), block from "
            f"{fr.block_start.isoformat(timespec='minutes')}: {share} of {fr.seconds} s within "
            f"tolerance; {fr.seconds_stale} s stale frequency; {fr.seconds_outside_band} s "
            f"outside the SoE band {fr.band_low_kwh:,.0f}-{fr.band_high_kwh:,.0f} kWh",
            highlight=False,
        )
    if snap.quarantined:
        console.print("[bold]quarantined[/] (not retried until a newer commit):")
        for q in snap.quarantined:
            console.print(f"  {q.sha}  {q.at.isoformat(timespec='seconds')}  {q.message}")
    if snap.transitions:
        console.print("[bold]recent transitions[/]:")
        for t in reversed(snap.transitions):
            console.print(
                f"  {t.at.isoformat(timespec='seconds')}  {t.type}={t.status} {t.reason}",
                highlight=False,
            )


def _print_revisions(snap: StatusSnapshot, now: datetime, console: Console) -> None:
    revs = snap.revisions
    console.print(
        f"[bold]applied[/] {revs.applied or '-'}   [bold]last-known-good[/] "
        f"{revs.last_known_good or '-'}"
    )
    staged = (
        f" ({snap.health_gate_passed}/{snap.health_gate_required} healthy ticks)"
        if revs.staged
        else ""
    )
    console.print(
        f"[bold]observed[/] {revs.observed or '-'}   [bold]attempted[/] {revs.attempted or '-'}"
        f"   [bold]staged[/] {revs.staged or '-'}{staged}"
    )
    console.print(
        f"[bold]last fetch[/] {_age(snap.last_fetch_at, now)}   [bold]last good fetch[/] "
        f"{_age(snap.last_successful_fetch_at, now)}   [bold]ticks[/] {snap.loop.ticks_total}"
    )
    if snap.suspended:
        console.print(f"[bold yellow]SUSPENDED[/] {snap.suspended_reason or ''}")


def _print_conditions(snap: StatusSnapshot, now: datetime, console: Console) -> None:
    table = Table(title="conditions", title_justify="left", expand=False)
    for col in ("type", "status", "reason", "since", "message"):
        table.add_column(col, overflow="fold")
    colours = {"True": "green", "False": "red", "Unknown": "yellow"}
    for cond in snap.conditions:
        table.add_row(
            str(cond.type),
            f"[{colours[cond.status]}]{cond.status}[/]",
            cond.reason,
            _age(cond.last_transition_time, now),
            cond.message,
        )
    console.print(table)


def _print_telemetry(snap: StatusSnapshot, now: datetime, console: Console) -> None:
    tel = snap.telemetry
    oldest = (
        "" if tel.oldest_pending_age_s is None else f", oldest {tel.oldest_pending_age_s:.0f}s old"
    )
    console.print(
        f"[bold]telemetry[/] {tel.database or 'no database (outbox only)'}   "
        f"[bold]pending[/] {tel.pending_rows} rows{oldest}   [bold]last upload[/] "
        f"{_age(tel.last_success_at, now)}   [bold]failures[/] {tel.consecutive_failures} in a "
        f"row, {tel.upload_failures_total} total",
        highlight=False,
    )


def _print_markets(snap: StatusSnapshot, now: datetime, console: Console) -> None:
    if not snap.markets and not snap.market_problems:
        return
    markets = Table(title="market APIs", title_justify="left", expand=False)
    for col in ("source", "state", "last success", "failures", "next poll", "last error"):
        markets.add_column(col, overflow="fold")
    for m in snap.markets:
        state = "[green]ok[/]" if m.ok else ("[red]failing[/]" if m.last_error else "waiting")
        markets.add_row(
            m.source,
            state,
            _age(m.last_success_at, now),
            str(m.consecutive_failures),
            m.next_poll_at.isoformat(timespec="seconds") if m.next_poll_at else "-",
            m.last_error or "",
        )
    console.print(markets)
    for m in snap.markets:
        if m.detail:
            console.print(f"[bold]{m.source}:[/] {m.detail}", highlight=False)
    for problem in snap.market_problems:
        console.print(f"[yellow]markets:[/] {problem}", highlight=False)


@click.command("status")
@STATE_DIR_OPTION
@click.option(
    "--status-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read this status file instead of <state-dir>/status.json.",
)
@click.option(
    "--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def status(state_dir: Path, status_file: Path | None, output: str) -> None:
    """Show the agent's conditions, revisions and recent transitions.

    Exit 0 when the agent is running and Ready, 1 when it is not, 2 when there is no
    status to read.
    """
    snap = _load(state_dir, status_file)
    pid = lock_holder(_agent_folder(state_dir, status_file))
    if output == "json":
        data = json.loads(snap.model_dump_json())
        data["agent_running"] = pid is not None
        data["agent_pid"] = pid or None
        click.echo(json.dumps(data, indent=2))
    else:
        _print_table(snap, pid, Console(soft_wrap=False, width=160))
    if pid is None or not snap.ready:
        raise SystemExit(EXIT_NOT_READY)


def _agent_folder(state_dir: Path, status_file: Path | None) -> Path:
    """Where to ask whether the status file's agent runs: the state folder the user
    named, else the one the status file lies in (not the default /var/lib/flux, whose
    agent may be another one, or none)."""
    source = click.get_current_context().get_parameter_source("state_dir")
    named = source not in (None, click.core.ParameterSource.DEFAULT)
    return state_dir if status_file is None or named else status_file.parent


def _refuse_file_agent(paths: StatePaths, what: str) -> None:
    """An agent on a site file (--site FILE) has no source to fetch and applies no
    revisions: suspend and reconcile would be accepted and do nothing. Say so at once
    (only of a running agent: a stopped one may be started next in git mode)."""
    if lock_holder(paths.root) is None:
        return
    try:
        snap = read_status_file(paths.status_file)
    except (OSError, ValueError):
        return  # no agent has run here yet: nothing to tell
    if snap.source != "file":
        return
    click.echo(
        f"error: the agent in {paths.root} runs the site file {snap.source_ref or '(a file)'} "
        f"(--site FILE): it has no source to fetch, so there is nothing to {what}. Edit the "
        "file and restart the agent, or run it in git mode (--repo) to fetch revisions.",
        err=True,
    )
    raise SystemExit(EXIT_USAGE)


@click.command("suspend")
@STATE_DIR_OPTION
@click.option("--reason", default="", help="Why (shown in the status).")
def suspend(state_dir: Path, reason: str) -> None:
    """Stop applying new revisions; control continues on the current one."""
    paths = StatePaths(state_dir)
    _refuse_file_agent(paths, "suspend")
    try:
        flag = flags.suspend(paths, datetime.now(UTC), reason)
    except OSError as exc:
        raise click.ClickException(
            f"cannot write {paths.suspend_file}: {exc.strerror or exc} (run as the agent's user?)"
        ) from None
    click.echo(
        f"suspended ({flag.describe()}): no new revision is applied until `flux agent resume`"
    )
    if lock_holder(state_dir) is None:
        click.echo("note: the agent is not running; it will start suspended")


@click.command("resume")
@STATE_DIR_OPTION
def resume(state_dir: Path) -> None:
    """Apply new revisions again (the agent fetches at once)."""
    paths = StatePaths(state_dir)
    try:
        removed = flags.resume(paths)
    except OSError as exc:
        raise click.ClickException(f"cannot remove {paths.suspend_file}: {exc}") from None
    click.echo("resumed" if removed else "was not suspended")


@click.command("reconcile")
@STATE_DIR_OPTION
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the fetch.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait.")
def reconcile(state_dir: Path, wait: bool, timeout: float) -> None:
    """Ask the running agent to fetch now (it notices within a second)."""
    paths = StatePaths(state_dir)
    _refuse_file_agent(paths, "reconcile")
    if lock_holder(state_dir) is None:
        raise click.ClickException(
            f"the agent is not running (nothing holds {paths.lock_file}); it fetches as soon "
            "as it starts"
        )
    asked = datetime.now(UTC)
    try:
        flags.request_reconcile(paths, asked)
    except OSError as exc:
        raise click.ClickException(f"cannot write {paths.reconcile_file}: {exc}") from None
    if not wait:
        click.echo("reconcile requested")
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            snap = read_status_file(paths.status_file)
        except (OSError, ValueError):
            continue
        if snap.last_fetch_at is not None and snap.last_fetch_at >= asked:
            for kind in ("SourceReady", "Applied"):
                cond = next(c for c in snap.conditions if c.type == kind)
                click.echo(f"{kind}={cond.status} {cond.reason}: {cond.message}")
            return
    raise click.ClickException(f"the agent did not fetch within {timeout:g} s")
