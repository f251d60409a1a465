"""What the control loop and the source's parts share: a revision, a tick's health, the
source protocol, and a checked commit waiting to be staged (a candidate)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from reconciler.config.model import Site
from reconciler.status.model import AgentStatus


@dataclass(frozen=True)
class Revision:
    """A desired state control can run: ``source`` is "git", "lkg" (from disk) or "file"."""

    sha: str
    site: Site
    source: str


@dataclass(frozen=True)
class TickHealth:
    """How one control tick went, for the health gate (see :mod:`reconciler.source.gate`).

    ``battery_ok``: the battery was read and took its setpoint without an error.
    ``grid_ok``: the grid meter's last read succeeded, with live values. ``tracking_ok``:
    the battery follows its last setpoint as fast as its ramp allows (meaningful only with
    ``battery_ok``: otherwise it compares against an old reading). ``envelope_ok``: the
    decision is inside the hard limits. ``other_errors`` names failing devices control does
    not use (solar, ...): reported, not judged.

    ``sha`` (optional) is the revision the tick ran; when given, ticks of another revision
    do not count for (or against) a staged one. Without it, ticks that started before the
    revision was staged (``at`` earlier) are not counted.
    """

    at: datetime
    battery_ok: bool
    grid_ok: bool
    tracking_ok: bool
    envelope_ok: bool
    detail: str = ""
    sha: str | None = None
    other_errors: tuple[str, ...] = ()

    @property
    def read_ok(self) -> bool:
        """The battery and the grid meter were read (no transient read error)."""
        return self.battery_ok and self.grid_ok

    @property
    def healthy(self) -> bool:
        return self.read_ok and self.tracking_ok and self.envelope_ok

    @property
    def reason(self) -> str:
        """The Healthy condition's reason for this tick."""
        if not self.read_ok:
            return "DevicesUnresponsive"
        if not self.tracking_ok:
            return "SetpointNotTracked"
        if not self.envelope_ok:
            return "EnvelopeBreach"
        return "Healthy"


def tolerated_read_errors(gate_ticks: int) -> int:
    """Ticks with a battery or grid-meter read error a gate of ``gate_ticks`` tolerates:
    one in five, rounded up (so at least one)."""
    return math.ceil(gate_ticks / 5)


@runtime_checkable
class DesiredStateSource(Protocol):
    """What the control loop needs from wherever the desired state comes from."""

    def current(self) -> Revision | None:
        """The revision control must use now (staged or last-known-good); None if none."""
        ...

    def observe_tick(self, health: TickHealth) -> None:
        """Called after every control tick."""
        ...

    async def run(self, stop: asyncio.Event) -> None:
        """The slow loop; returns when ``stop`` is set."""
        ...

    def status(self) -> AgentStatus: ...


@dataclass(frozen=True)
class Candidate:
    """A revision that passed every check, with what persisting it as last-known-good
    needs (the site file's path and text as committed, the resolved desired state)."""

    revision: Revision
    site_path: str
    site_yaml: str
    resolved: dict[str, Any]
    note: str = ""  # said while it is staged (an allowed rollback)


def short(sha: str | None) -> str:
    """A sha as the status shows it (12 characters; a file source's in full)."""
    if sha is None:
        return "none"
    return sha if sha.startswith("file:") else sha[:12]
