"""Click options for the git source, for ``flux agent run`` (each also read from FLUX_*).

``--site`` is not here: the run command owns it (a site id with ``--repo``, or a site file
path without). Build the settings with :func:`settings_from_options`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from reconciler.clock import Clock
from reconciler.config.loader import SiteFileError
from reconciler.source.controller import FileSource, GitSource, SourceError
from reconciler.source.paths import DEFAULT_STATE_DIR, StatePaths, state_dir_option
from reconciler.source.settings import SourceSettings

F = TypeVar("F", bound=Callable[..., Any])

_FILE = click.Path(dir_okay=False, path_type=Path)

_OPTIONS: list[Callable[[F], F]] = [
    click.option("--repo", envvar="FLUX_REPO", help="Config repository URL or local path."),
    click.option("--branch", envvar="FLUX_BRANCH", help="Branch to follow (default main)."),
    click.option("--tag", envvar="FLUX_TAG", help="Follow a tag instead of a branch."),
    click.option(
        "--interval",
        "interval_s",
        type=float,
        default=60.0,
        show_default=True,
        envvar="FLUX_INTERVAL",
        help="Seconds between fetches.",
    ),
    click.option(
        "--jitter",
        "jitter_s",
        type=float,
        default=10.0,
        show_default=True,
        envvar="FLUX_JITTER",
        help="Up to this many seconds added to each interval.",
    ),
    click.option(
        "--shallow/--no-shallow",
        default=True,
        show_default=True,
        envvar="FLUX_SHALLOW",
        help="Fetch depth 1 where the remote allows.",
    ),
    click.option(
        "--verify",
        type=click.Choice(["none", "gpg", "ssh"]),
        default="none",
        show_default=True,
        envvar="FLUX_VERIFY",
        help="Require signed commits.",
    ),
    click.option(
        "--allowed-signers-file",
        type=_FILE,
        envvar="FLUX_ALLOWED_SIGNERS_FILE",
        help="ssh-keygen allowed-signers file (--verify ssh).",
    ),
    click.option(
        "--gpg-keyring-file",
        type=_FILE,
        envvar="FLUX_GPG_KEYRING_FILE",
        help="Exported public keys allowed to sign (--verify gpg).",
    ),
    click.option(
        "--ssh-key-file",
        type=_FILE,
        envvar="FLUX_SSH_KEY_FILE",
        help="Private key for SSH remotes (never put credentials in the repo).",
    ),
    click.option(
        "--ssh-known-hosts-file",
        type=_FILE,
        envvar="FLUX_SSH_KNOWN_HOSTS_FILE",
        help="known_hosts for SSH remotes (default: accept a new host once).",
    ),
    click.option(
        "--health-gate-ticks",
        type=int,
        default=None,
        envvar="FLUX_HEALTH_GATE_TICKS",
        help="Healthy ticks before a new revision becomes last-known-good. Overrides the "
        "site file's control.health_gate_ticks (default: the site file's).",
    ),
    click.option(
        "--allow-rollback",
        is_flag=True,
        default=False,
        envvar="FLUX_ALLOW_ROLLBACK",
        help="Follow the branch back to an older commit or onto a rewritten history "
        "(refused by default; the site file's control.allow_rollback also allows it).",
    ),
    state_dir_option("Where the mirror, last-known-good, status and lock live."),
    click.option(
        "--status-file",
        type=_FILE,
        envvar="FLUX_STATUS_FILE",
        help="Status JSON (default <state-dir>/status.json).",
    ),
    click.option(
        "--http-host",
        default="127.0.0.1",
        show_default=True,
        envvar="FLUX_HTTP_HOST",
        help="Address of /healthz, /status, /metrics.",
    ),
    click.option(
        "--http-port",
        type=int,
        default=9464,
        show_default=True,
        envvar="FLUX_HTTP_PORT",
        help="Port of /healthz, /status and /metrics on --http-host (0: any free port, "
        "logged at start; -1: no endpoint).",
    ),
]

OPTION_NAMES = (
    "repo", "branch", "tag", "interval_s", "jitter_s", "shallow", "verify",
    "allowed_signers_file", "gpg_keyring_file", "ssh_key_file", "ssh_known_hosts_file",
    "health_gate_ticks", "allow_rollback", "state_dir", "status_file", "http_host", "http_port",
)  # fmt: skip


def source_options(func: F) -> F:
    """Add the git source options to a click command."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def settings_from_options(site: str, options: dict[str, Any]) -> SourceSettings:
    """Settings from the command's options; a clear click.UsageError (exit 2) if wrong.

    ``options`` may hold other keys (the command's own); only the source's are used.
    """
    data = {k: options[k] for k in OPTION_NAMES if options.get(k) is not None}
    data["site"] = site
    try:
        return SourceSettings.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = (
                "--" + str(err["loc"][0]).removesuffix("_s").replace("_", "-") if err["loc"] else ""
            )
            msg = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"{where}: {msg}" if where else msg)
        raise click.UsageError("; ".join(lines)) from None


def source_from_options(
    site: str, options: dict[str, Any], *, clock: Clock
) -> GitSource | FileSource:
    """The source ``flux agent run`` asked for, or a click error saying what is wrong.

    With ``--repo``: a :class:`GitSource` following ``sites/<site>.yaml`` in that repo.
    Without: ``site`` is a site file (or an id looked up as ``sites/<id>.yaml``) run as a
    :class:`FileSource`; its status file goes to the state folder when that is writable.
    """
    if options.get("repo"):
        settings = settings_from_options(site, options)
        try:
            return GitSource(settings, clock=clock)
        except SourceError as exc:
            raise click.ClickException(str(exc)) from None
    path = Path(site)
    if not path.exists() and (Path("sites") / f"{site}.yaml").exists():
        path = Path("sites") / f"{site}.yaml"
    if not path.exists():
        raise click.UsageError(
            f"--site {site}: no such file (and no sites/{site}.yaml); give a site file, "
            "or --repo with a site id"
        )
    status_file: Path | None = options.get("status_file")
    if status_file is None:
        state_dir = Path(options.get("state_dir") or DEFAULT_STATE_DIR)
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError:
            status_file = None
        else:
            if os.access(state_dir, os.W_OK):
                status_file = StatePaths(state_dir).status_file
    try:
        return FileSource(path, clock=clock, status_file=status_file)
    except SiteFileError as exc:
        raise click.ClickException(f"{path} is not a valid site file:\n{exc}") from None
