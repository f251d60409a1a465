"""What the source keeps on disk: the last-known-good revision, the quarantine, and the
health gate in progress.

Both are written atomically (temp file, fsync, rename), so a power cut leaves the old file
or the new one. The last-known-good holds the site YAML text as committed and the resolved
desired state as JSON; an agent that boots with no network runs it at once.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler.atomic import write_atomic
from reconciler.status.model import QuarantinedRevision

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
