"""Where the agent keeps its state: one folder, shared by the agent and the operator CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

DEFAULT_STATE_DIR = Path("/var/lib/flux")


def state_dir_option(help: str) -> Callable[[Any], Any]:
    """The ``--state-dir`` option (env FLUX_STATE_DIR) every agent command shares."""
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_STATE_DIR,
        show_default=True,
        envvar="FLUX_STATE_DIR",
        help=help,
    )


@dataclass(frozen=True)
class StatePaths:
    """The files inside the agent's state folder (systemd ``StateDirectory=flux``)."""

    root: Path

    @property
    def repo_dir(self) -> Path:
        """The bare mirror of the config repository."""
        return self.root / "repo.git"

    @property
    def lkg_file(self) -> Path:
        """The last-known-good revision (sha, site YAML text, resolved JSON)."""
        return self.root / "last-known-good.json"

    @property
    def quarantine_file(self) -> Path:
        return self.root / "quarantine.json"

    @property
    def gate_file(self) -> Path:
        """The revision in its health gate, and how often its gate was started."""
        return self.root / "gate.json"

    @property
    def status_file(self) -> Path:
        return self.root / "status.json"

    @property
    def suspend_file(self) -> Path:
        """Present while the operator has suspended applying new revisions."""
        return self.root / "suspend.json"

    @property
    def reconcile_file(self) -> Path:
        """Touched by ``flux agent reconcile``; the running source fetches when it appears."""
        return self.root / "reconcile.request"

    @property
    def lock_file(self) -> Path:
        """Held (fcntl.flock) by the agent: it is the single writer to the battery."""
        return self.root / "agent.lock"

    @property
    def gnupg_dir(self) -> Path:
        """A private GNUPGHOME holding only the allowed keys (verify: gpg)."""
        return self.root / "gnupg"
