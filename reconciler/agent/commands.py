"""`flux agent ...` and `flux demo`."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import click

from reconciler.agent import operator
from reconciler.agent.lock import DEFAULT_LOCK_DIR, BatteryLock, StateFolderInUse, lock_holder
from reconciler.agent.run import Agent, AgentOptions
from reconciler.clock import Clock, WallClock
from reconciler.control.signals import FeedSignals
from reconciler.logs import configure, log_event
from reconciler.markets.memory import ReplayImbalanceFeed
from reconciler.markets.replay import Replay
from reconciler.source.controller import DesiredStateSource, GitSource
from reconciler.source.options import source_from_options, source_options
from reconciler.source.paths import StatePaths
from reconciler.stopping import run_until_signalled
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader

log = logging.getLogger("flux.agent")


@click.group("agent")
def agent() -> None:
    """Run the site agent and talk to a running one."""


for _command in (operator.status, operator.suspend, operator.resume, operator.reconcile):
    agent.add_command(_command)


def open_outbox(path: Path, what_to_do: str) -> Outbox:
    """The telemetry outbox at ``path`` (folders made as needed), or a click error that
    says why it cannot be used and ``what_to_do``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return Outbox(path)
    except (OSError, sqlite3.Error) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise click.ClickException(f"cannot open {path}: {reason}; {what_to_do}") from None


def database_url_for(source: DesiredStateSource, explicit: str | None) -> str | None:
    """--database-url, else the variable the site file names (telemetry.database_url_env)."""
    if explicit:
        return explicit
    revision = source.current()
    if revision is None or revision.site.telemetry.database_url_env is None:
        return None
    return os.environ.get(revision.site.telemetry.database_url_env) or None


def replay_signals(name: str | None, outbox: Outbox) -> Replay | None:
    """The shipped month ``name`` replayed (what it feeds control recorded in ``outbox``),
    or None for the live market APIs."""
    if name is None:
        return None
    if name == "january-2024":
        feed = ReplayImbalanceFeed.january_2024(publish_delay_s=60)
        return Replay(FeedSignals(imbalance=feed), sink=outbox)
    raise click.BadParameter(f"unknown replay {name!r}; the one shipped is january-2024")


def _refuse_unknown_site(
    source: DesiredStateSource, lock: BatteryLock, shadow: bool | None
) -> None:
    """At a first start in git mode (nothing ever in control) fetch once before running:
    a --site that names no file in the repository is a usage error (exit 2), not a commit
    to refuse while the agent runs on nothing. A fetch that fails is not judged here."""
    if not isinstance(source, GitSource) or source.current() is not None:
        return
    asyncio.run(source.sync_once())
    message = source.missing_site()
    if message is None:
        return
    if not shadow:
        lock.release()
    click.echo(f"Error: {message}", err=True)
    raise SystemExit(2)


@agent.command("run")
@click.option(
    "--site",
    required=True,
    envvar="FLUX_SITE",
    help="Site file (or id, as sites/<id>.yaml); with --repo, the site id in the repo.",
)
@source_options
@click.option(
    "--shadow/--no-shadow",
    default=None,
    help="Decide and record but never write (default: the site file's control.shadow).",
)
@click.option(
    "--database-url",
    envvar="FLUX_DATABASE_URL",
    help="PostgreSQL to upload to (default: the site's telemetry.database_url_env, else none).",
)
@click.option(
    "--outbox",
    "outbox_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Telemetry outbox (SQLite; default <state-dir>/outbox.sqlite).",
)
@click.option(
    "--replay-prices",
    type=click.Choice(["january-2024"]),
    help="Feed the imbalance price and NIV of a shipped month (for simulation).",
)
@click.option(
    "--lock-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_LOCK_DIR,
    show_default=True,
    envvar="FLUX_LOCK_DIR",
    help="Where battery locks are taken: one writer per battery, whatever the state folder.",
)
@click.option("--log-level", default="info", show_default=True, help="debug, info, warning.")
def run(
    site: str,
    shadow: bool | None,
    database_url: str | None,
    outbox_path: Path | None,
    replay_prices: str | None,
    lock_dir: Path,
    log_level: str,
    **options: Any,
) -> None:
    """Run the reconcile loop for one site until stopped (SIGINT/SIGTERM).

    Without --repo, SITE is a local site file; with --repo, the agent follows the config
    repository and applies new revisions behind the health gate.
    """
    configure(log_level)
    clock: Clock = WallClock()
    state_dir = Path(options["state_dir"])
    # The lock first: a second agent must not touch the running one's status file.
    lock = BatteryLock(state_dir)
    if shadow:
        # A shadow agent writes nothing to the battery, so it takes no lock; but it must
        # not share a running agent's status file and outbox either.
        holder = lock_holder(state_dir)
        if holder is not None:
            raise StateFolderInUse(holder or None, state_dir)
    else:
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            lock.acquire()  # BatteryLockHeld (exit 3) says who holds it
        except OSError as exc:
            raise click.ClickException(
                f"cannot take the battery lock in {state_dir}: {exc.strerror}"
            ) from None
    source = source_from_options(site, options, clock=clock)
    _refuse_unknown_site(source, lock, shadow)
    outbox_file = outbox_path or StatePaths(state_dir).root / "outbox.sqlite"
    outbox = open_outbox(outbox_file, "choose --outbox or --state-dir in a writable folder")
    http_port = options.get("http_port")
    agent_ = Agent(
        source,
        clock=clock,
        store=outbox,
        uploader=Uploader(outbox, database_url_for(source, database_url)),
        options=AgentOptions(
            shadow=shadow,
            http_host=options.get("http_host") or "127.0.0.1",
            http_port=None if http_port in (None, -1) else int(http_port),
            lock_dir=None if shadow else lock_dir,
        ),
        signals=replay_signals(replay_prices, outbox),
    )
    log_event(log, "agent_starting", site=site, shadow=shadow, outbox=str(outbox_file))
    code = 0
    try:
        code = run_until_signalled(agent_.run) or 0
    finally:
        outbox.close()
        if not shadow:
            lock.release()
        log_event(log, "agent_stopped", site=site, exit_code=code)
    if code:
        # A side task kept failing (supervise.py): exit non-zero so systemd restarts us.
        raise SystemExit(code)


def _environment_epilog(command: click.Command) -> str:
    """The FLUX_* variables ``command`` reads, from its options (one place to keep)."""
    pairs = []
    for param in command.params:
        if isinstance(param, click.Option) and isinstance(param.envvar, str):
            pairs.append((param.envvar, param.opts[-1]))
    width = max(len(name) for name, _ in pairs)
    lines = [f"  {name:<{width}}  {opt}" for name, opt in sorted(pairs)]
    return "\n".join(
        [
            "Environment (each sets the option beside it; the option wins):",
            "",
            "\b",
            *lines,
            "",
            "The site file names the variables that hold secrets (markets.*.api_key_env, "
            "username_env, password_env) and the database URL (telemetry.database_url_env, "
            "used when --database-url is not given).",
        ]
    )


run.epilog = _environment_epilog(run)
