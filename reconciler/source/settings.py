"""The agent's source settings: where the desired state comes from and how it is trusted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reconciler.source.paths import DEFAULT_STATE_DIR, StatePaths

_SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class SourceSettings(BaseModel):
    """How the agent follows its config repository.

    The site file is ``sites/<site>.yaml`` in the repository. Credentials never come from
    the repository: an SSH key file named here, or the environment (credential helpers,
    ``GIT_ASKPASS``, ``GIT_SSH_COMMAND``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = Field(description="Repository URL or local path.")
    branch: str | None = Field(default=None, description="Branch to follow (default main).")
    tag: str | None = Field(default=None, description="Tag to follow instead of a branch.")
    site: str = Field(description="Site id; the file is sites/<site>.yaml.")
    interval_s: float = Field(default=60.0, gt=0, description="Fetch interval, s.")
    jitter_s: float = Field(
        default=10.0, ge=0, description="Up to this many seconds added to each interval, s."
    )
    shallow: bool = Field(default=True, description="Fetch depth 1 where the remote allows.")
    fetch_timeout_s: float = Field(default=120.0, gt=0, description="Git command timeout, s.")
    verify: Literal["none", "gpg", "ssh"] = "none"
    allowed_signers_file: Path | None = Field(
        default=None, description="ssh-keygen allowed-signers file (verify: ssh)."
    )
    gpg_keyring_file: Path | None = Field(
        default=None, description="Exported public keys allowed to sign (verify: gpg)."
    )
    ssh_key_file: Path | None = Field(default=None, description="Private key for ssh remotes.")
    ssh_known_hosts_file: Path | None = None
    health_gate_ticks: int | None = Field(
        default=None,
        ge=1,
        description="Overrides the site file's control.health_gate_ticks (None: the site file's).",
    )
    allow_rollback: bool = Field(
        default=False,
        description="Follow the branch back to an older commit or onto a rewritten history "
        "(the site file's control.allow_rollback also allows it).",
    )
    state_dir: Path = DEFAULT_STATE_DIR
    status_file: Path | None = Field(
        default=None, description="Status JSON (default <state_dir>/status.json)."
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(
        default=9464, ge=-1, le=65535, description="0: any free port; -1: no endpoint."
    )

    @field_validator("site")
    @classmethod
    def _site_id(cls, value: str) -> str:
        if not _SITE_ID.match(value):
            raise ValueError(
                f"site id {value!r} must be lower-case letters, digits, '-' or '_' "
                "(the file is sites/<id>.yaml)"
            )
        return value

    @field_validator("repo")
    @classmethod
    def _no_secret_in_url(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("repo is empty: give a URL or a local path")
        if "://" in value:
            parts = urlsplit(value)
            if parts.password:
                raise ValueError(
                    "the repo URL contains a password; remove it and give credentials through "
                    "the environment (a git credential helper or GIT_ASKPASS) or ssh_key_file"
                )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SourceSettings:
        if self.branch is not None and self.tag is not None:
            raise ValueError("give a branch or a tag to follow, not both")
        if self.verify == "ssh" and self.allowed_signers_file is None:
            raise ValueError("verify: ssh needs allowed_signers_file")
        if self.verify == "gpg" and self.gpg_keyring_file is None:
            raise ValueError("verify: gpg needs gpg_keyring_file (the allowed public keys)")
        return self

    @property
    def ref_name(self) -> str:
        """A human name for what is followed: ``branch main`` or ``tag v3``."""
        return f"tag {self.tag}" if self.tag else f"branch {self.branch or 'main'}"

    @property
    def site_path(self) -> str:
        """The site file's path inside the repository."""
        return f"sites/{self.site}.yaml"

    @property
    def paths(self) -> StatePaths:
        return StatePaths(self.state_dir)

    @property
    def effective_status_file(self) -> Path:
        return self.status_file or self.paths.status_file

    def redacted_repo(self) -> str:
        """The repo for messages, with any user name in a URL hidden."""
        if "://" not in self.repo:
            return self.repo
        parts = urlsplit(self.repo)
        if parts.username:
            host = parts.hostname or ""
            if parts.port:
                host += f":{parts.port}"
            return parts._replace(netloc=f"***@{host}").geturl()
        return self.repo
