"""Operator requests to a running source, as files in the state folder.

Files, not signals, so they work across users and restarts: ``flux agent suspend`` leaves a
flag the source honours until ``resume`` removes it (also after a reboot), and
``flux agent reconcile`` leaves a request the running source notices within a second.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
from dataclasses import dataclass
from datetime import datetime

from reconciler.atomic import write_atomic
from reconciler.source.paths import StatePaths


@dataclass(frozen=True)
class Suspension:
    at: str
    by: str
    reason: str

    def describe(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"suspended by {self.by} at {self.at}{why}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def suspend(paths: StatePaths, at: datetime, reason: str = "") -> Suspension:
    flag = Suspension(at=at.isoformat(timespec="seconds"), by=_user(), reason=reason)
    write_atomic(paths.suspend_file, json.dumps(flag.__dict__) + "\n")
    return flag


def resume(paths: StatePaths) -> bool:
    """Remove the suspend flag; False if there was none."""
    try:
        paths.suspend_file.unlink()
    except FileNotFoundError:
        return False
    return True


def suspension(paths: StatePaths) -> Suspension | None:
    """The current suspension, or None. A flag that cannot be parsed still suspends."""
    try:
        text = paths.suspend_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Suspension(at="?", by="?", reason=f"unreadable flag file: {exc}")
    try:
        data = json.loads(text)
        return Suspension(at=str(data["at"]), by=str(data["by"]), reason=str(data["reason"]))
    except (ValueError, KeyError, TypeError):
        return Suspension(at="?", by="?", reason="flag file present")


def request_reconcile(paths: StatePaths, at: datetime) -> None:
    write_atomic(paths.reconcile_file, at.isoformat() + "\n")


def take_reconcile_request(paths: StatePaths) -> bool:
    """True (and the request consumed) if a reconcile was requested."""
    with contextlib.suppress(FileNotFoundError):
        paths.reconcile_file.unlink()
        return True
    return False
