"""What the source keeps on disk: the last-known-good revision, the quarantine, and the
health gate in progress (whose counting is :mod:`reconciler.source.gate`'s).

Both are written atomically (temp file, fsync, rename), so a power cut leaves the old file
or the new one. The last-known-good holds the site YAML text as committed and the resolved
desired state as JSON; an agent that boots with no network runs it at once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler.atomic import write_atomic
from reconciler.config.model import Site
from reconciler.source.revision import Candidate
from reconciler.status.model import QuarantinedRevision

log = logging.getLogger("flux.source")

QUARANTINE_KEEP = 50


class StoreError(Exception):
    """A state file exists but cannot be used."""


class StoredRevision(BaseModel):
    """A last-known-good revision as persisted."""

    model_config = ConfigDict(extra="forbid")

    sha: str
    source: str
    site_id: str
    site_path: str
    site_yaml: str
    resolved: dict[str, Any]
    promoted_at: datetime


def save_lkg(path: Path, revision: StoredRevision) -> None:
    # The resolved state is already JSON data; pydantic's JSON mode would turn the NIV
    # curves' +/-inf into null, so json.dumps writes it (as Infinity, which reads back).
    data = revision.model_dump(mode="json", exclude={"resolved"})
    data["resolved"] = revision.resolved
    write_atomic(path, json.dumps(data, indent=1) + "\n")


def load_lkg(path: Path) -> StoredRevision | None:
    """The persisted last-known-good, None if there is none (raises StoreError if damaged)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc}") from None
    try:
        return StoredRevision.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        raise StoreError(f"{path} is damaged: {str(exc).splitlines()[0]}") from None


def save_quarantine(path: Path, entries: list[QuarantinedRevision]) -> None:
    data = [e.model_dump(mode="json") for e in entries[-QUARANTINE_KEEP:]]
    write_atomic(path, json.dumps(data, indent=1) + "\n")


def load_quarantine(path: Path) -> list[QuarantinedRevision]:
    """The quarantined revisions; an unreadable file counts as empty (it is advisory)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [QuarantinedRevision.model_validate(item) for item in data]
    except (OSError, ValueError, TypeError, ValidationError):
        return []


class GateInProgress(BaseModel):
    """A revision in its health gate, as persisted when the gate starts: how many times a
    gate of it was started without the agent seeing it end (promoted, failed, or a clean
    stop). A revision that keeps killing the agent mid-gate is found this way."""

    model_config = ConfigDict(extra="forbid")

    sha: str
    starts: int
    started_at: datetime


def save_gate(path: Path, gate: GateInProgress) -> None:
    write_atomic(path, gate.model_dump_json(indent=1) + "\n")


def load_gate(path: Path) -> GateInProgress | None:
    """The gate in progress when the agent last stopped; None if none (or unreadable: the
    file is advisory, and a damaged one must not stop a revision from being tried)."""
    try:
        return GateInProgress.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, ValidationError):
        return None


def clear_gate(path: Path) -> None:
    path.unlink(missing_ok=True)


# ---------------------------------------------------------------------- for the source


@dataclass(frozen=True)
class Unusable:
    """Why there is no last-known-good to run from disk (the Applied condition's status,
    reason and message)."""

    status: Literal["False", "Unknown"]
    reason: str
    message: str


def read_lkg(path: Path, site_id: str) -> tuple[StoredRevision, Site] | Unusable:
    """The persisted last-known-good of site ``site_id`` and its site, still valid; or why
    there is none to run (not yet, damaged, another site's, no longer valid)."""
    try:
        stored = load_lkg(path)
    except StoreError as exc:
        log.error("%s", exc)
        return Unusable("False", "LastKnownGoodUnusable", f"{exc}; waiting for a valid commit")
    if stored is None:
        return Unusable("Unknown", "NoRevision", "no last-known-good yet; waiting for a commit")
    if stored.site_id != site_id:
        return Unusable(
            "Unknown",
            "NoRevision",
            f"the stored last-known-good is for site {stored.site_id!r}, not {site_id!r}; "
            "waiting for a commit",
        )
    try:
        site = Site.model_validate(stored.resolved["site"])
    except (KeyError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        return Unusable(
            "False",
            "LastKnownGoodUnusable",
            f"{path} no longer validates ({first}); waiting for a commit",
        )
    return stored, site


def persist_lkg(path: Path, candidate: Candidate, site_id: str, at: datetime) -> str:
    """Save ``candidate`` as the last-known-good; "" or, when it could not be written, a
    note for the status (the revision still becomes the last-known-good in memory)."""
    revision = candidate.revision
    try:
        save_lkg(
            path,
            StoredRevision(
                sha=revision.sha,
                source=revision.source,
                site_id=site_id,
                site_path=candidate.site_path,
                site_yaml=candidate.site_yaml,
                resolved=candidate.resolved,
                promoted_at=at,
            ),
        )
    except OSError as exc:
        log.error("cannot persist the last-known-good to %s: %s", path, exc)
        return f" (not persisted: {exc}; a restart would not find it)"
    return ""


class Quarantine:
    """The quarantined revisions, kept in ``path`` (a failure to write is logged: the list
    in memory still holds)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries = load_quarantine(path)

    def find(self, sha: str) -> QuarantinedRevision | None:
        return next((q for q in self.entries if q.sha == sha), None)

    def add(self, sha: str, at: datetime, reason: str, why: str) -> None:
        entry = QuarantinedRevision(sha=sha, at=at, reason=reason, message=why)
        self.entries = [q for q in self.entries if q.sha != sha] + [entry]
        try:
            save_quarantine(self.path, self.entries)
        except OSError as exc:
            log.error("cannot persist the quarantine to %s: %s", self.path, exc)
