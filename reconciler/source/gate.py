"""The health gate: the state machine that judges what a staged revision controls.

A staged revision becomes the last-known-good after W healthy ticks of its own, W being its
site file's ``control.health_gate_ticks`` (the agent's ``--health-gate-ticks`` overrides
it). It fails at once on a tick that leaves the envelope, or on which the battery, read
fine, does not follow its setpoint. A tick on which the battery or the grid meter could
not be read (an I/O error, a frozen grid meter) is a transient read error: up to one tick
in five of the window, ``ceil(W / 5)`` (so at least one), is tolerated and does not count
toward W; one more fails the gate. (A device polled less often than every tick keeps a
failed read until it is polled again, so that counts for every tick in between.) Other
meters, which control does not use, do not count. What a passed or failed gate does (the
last-known-good, the quarantine, a revert) is the source's: see
:class:`~reconciler.source.controller.GitSource`.

Each start of a gate is counted on disk (``gate.json``) until the gate ends: a revision
whose gates were started :data:`MAX_GATE_STARTS` times without ending killed the agent
each time and is not staged again (:func:`record_gate_start`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from reconciler.config.model import ControlSettings
from reconciler.source.revision import Candidate, TickHealth, tolerated_read_errors
from reconciler.source.store import GateInProgress, clear_gate, load_gate, save_gate

log = logging.getLogger("flux.source")

#: Gates of one revision started without the agent seeing them end before it is
#: quarantined: the agent died during each (see :func:`record_gate_start`).
MAX_GATE_STARTS = 2


@dataclass(frozen=True)
class Verdict:
    """What one tick did to the gate: it goes on (``pending``), the revision passed
    (``promote``) or it failed (``fail``, with the Applied reason and why)."""

    kind: Literal["pending", "promote", "fail"]
    reason: str = ""
    why: str = ""


PENDING = Verdict("pending")
PROMOTE = Verdict("promote")


def gate_length(override: int | None, candidate: Candidate | None) -> tuple[int, str]:
    """The gate's length for ``candidate`` (ticks) and where that value comes from: its
    site file, unless the agent's --health-gate-ticks (``override``) overrides it."""
    site_value = candidate.revision.site.control.health_gate_ticks if candidate else None
    if override is not None:
        if site_value is None:
            return override, "--health-gate-ticks"
        return override, f"--health-gate-ticks, overriding the site file's {site_value}"
    if site_value is None:
        default = ControlSettings.model_fields["health_gate_ticks"].default
        return int(default), "control.health_gate_ticks' default"
    return site_value, "control.health_gate_ticks of the site file"


class HealthGate:
    """The staged revision and its gate's counts (in memory; the start count is on disk)."""

    def __init__(self, override: int | None) -> None:
        self.override = override
        self.staged: Candidate | None = None
        self.staged_at: datetime | None = None
        self.passed = 0  # healthy ticks of the staged revision
        self.read_errors = 0  # in the staged revision's gate, tolerated so far

    def length(self, candidate: Candidate | None) -> tuple[int, str]:
        """See :func:`gate_length`."""
        return gate_length(self.override, candidate)

    def stage(self, candidate: Candidate, at: datetime) -> None:
        """Start ``candidate``'s gate (it pre-empts one in progress)."""
        self.staged = candidate
        self.staged_at = at
        self.passed = 0
        self.read_errors = 0

    def restart(self) -> None:
        """The gate failed with nothing to revert to: it starts again, same revision."""
        self.passed = 0
        self.read_errors = 0

    def counts_for(self, health: TickHealth) -> bool:
        """Whether ``health`` is a tick of the staged revision."""
        staged = self.staged
        if staged is None:
            return False
        if health.sha is not None:
            return health.sha == staged.revision.sha
        return self.staged_at is None or health.at >= self.staged_at

    def judge(self, health: TickHealth) -> Verdict:
        """One tick of the staged revision's gate (the rule: the module's docstring)."""
        assert self.staged is not None
        ticks, _ = self.length(self.staged)
        tolerated = tolerated_read_errors(ticks)
        detail = health.detail or health.reason
        if not health.envelope_ok:
            return Verdict("fail", "EnvelopeBreach", f"a decision left the envelope: {detail}")
        if health.battery_ok and not health.tracking_ok:
            return Verdict(
                "fail",
                "SetpointNotTracked",
                f"the battery did not follow its setpoint: {detail}",
            )
        if not health.read_ok:
            self.read_errors += 1
            if self.read_errors <= tolerated:
                return PENDING
            return Verdict(
                "fail",
                "DevicesUnresponsive",
                f"{self.read_errors} ticks with a battery or grid-meter read error, more "
                f"than the {tolerated} a {ticks}-tick gate tolerates; the last: {detail}",
            )
        self.passed += 1
        return PROMOTE if self.passed >= ticks else PENDING


def record_gate_start(path: Path, sha: str, at: datetime) -> int | None:
    """Count a start of ``sha``'s gate in ``path``. None: counted, the gate may run. A
    number: how many times the agent stopped during its gates, which were already started
    :data:`MAX_GATE_STARTS` times and never ended (a crash, a watchdog kill, a power cut
    while it was in control); it must not be staged again. One death may be bad luck;
    another is the revision's doing."""
    previous = load_gate(path)
    starts = previous.starts + 1 if previous is not None and previous.sha == sha else 1
    if starts > MAX_GATE_STARTS:
        clear_gate(path)
        return starts - 1
    try:
        save_gate(path, GateInProgress(sha=sha, starts=starts, started_at=at))
    except OSError as exc:  # advisory: the gate goes on without the count
        log.error("cannot persist the gate in progress to %s: %s", path, exc)
    return None
