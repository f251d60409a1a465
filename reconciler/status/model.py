"""The agent's status: conditions with reasons, revisions, recent transitions, loop numbers.

One ``AgentStatus`` per agent. The desired-state source sets the conditions; the control
loop publishes its numbers with :meth:`AgentStatus.record_tick`. The status is written to a
JSON file atomically (read by ``flux agent status``), served over HTTP (agent/http.py) and
logged once per condition change, never once per tick.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.atomic import write_atomic
from reconciler.clock import Clock
from reconciler.logs import log_event

log = logging.getLogger("flux.status")

HISTORY_LENGTH = 10
# Tick counters change every tick; writing the file each time would wear a controller's SD
# card, so numbers alone are flushed at most this often (changes of condition: at once).
FILE_FLUSH_INTERVAL_S = 30.0


class ConditionType(StrEnum):
    SOURCE_READY = "SourceReady"
    VERIFIED = "Verified"
    VALIDATED = "Validated"
    APPLIED = "Applied"
    HEALTHY = "Healthy"
    READY = "Ready"
    # Not part of Ready, on purpose: Ready says whether the battery is under control on a
    # trusted revision. Telemetry that does not get through, a side task restarting, or
    # battery settings found changed and written back never stop control, so they are
    # reported beside it (/status, /healthz's body, /metrics, `flux agent status`)
    # without making the agent "not ready".
    #: The battery holds the mode and settings Flux writes (read back after each write).
    BATTERY_SETTINGS = "BatterySettings"
    TELEMETRY_READY = "TelemetryReady"
    TASKS_RUNNING = "TasksRunning"


ConditionStatus = Literal["True", "False", "Unknown"]
CONDITION_ORDER: tuple[ConditionType, ...] = tuple(ConditionType)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Condition(_Model):
    """One aspect of the agent's state, in the Kubernetes style."""

    type: ConditionType
    status: ConditionStatus = "Unknown"
    reason: str = "Pending"
    message: str = ""
    last_transition_time: datetime


class Transition(_Model):
    """A condition changing status or reason."""

    at: datetime
    type: ConditionType
    status: ConditionStatus
    reason: str
    message: str


class QuarantinedRevision(_Model):
    """A revision refused by the health gate; not retried until a newer commit arrives."""

    sha: str
    at: datetime
    reason: str
    message: str


class LoopStats(_Model):
    """Numbers published by the control loop (units: kW, s)."""

    ticks_total: int = 0
    safe_ticks_total: int = 0
    last_tick_at: datetime | None = None
    last_decision_reason: str | None = None
    last_setpoint_kw: float | None = None
    outbox_size: int | None = None
    #: Whether the last tick went to the safe state (0 kW: stale or failed readings).
    safe_stop: bool = False
    #: The grid meter's power the last tick decided on, kW (+ import), and the site's
    #: limits then (kW, positive): what an alert on the site's boundary compares.
    site_power_kw: float | None = None
    site_import_limit_kw: float | None = None
    site_export_limit_kw: float | None = None


class Revisions(_Model):
    """Which commit is where. ``applied`` is what control uses now (staged or LKG)."""

    observed: str | None = None
    attempted: str | None = None
    applied: str | None = None
    staged: str | None = None
    last_known_good: str | None = None


class MarketFeedStatus(_Model):
    """One market API as the agent sees it (times UTC)."""

    source: str
    ok: bool
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    next_poll_at: datetime | None = None
    recorded_total: int = 0
    #: One line more for people (the plan's age and expected value, ...).
    detail: str | None = None


class FrequencyBlock(_Model):
    """Frequency response over the current 4-hour contract block (EFA block, from 23:00
    local; times UTC): seconds counted once each while the mode was active."""

    entry: str
    block_start: datetime
    block_end: datetime
    band_low_kwh: float
    band_high_kwh: float
    seconds: int = 0
    #: Seconds the battery's measured power was within tolerance of the curve's value.
    seconds_within: int = 0
    #: Seconds with a stale or frozen frequency (no response given).
    seconds_stale: int = 0
    #: Seconds with the SoE outside the band the contract needs.
    seconds_outside_band: int = 0
    worst_shortfall_kw: float = 0.0

    @property
    def performance(self) -> float | None:
        """Share (0-1) of the block's seconds delivered within tolerance."""
        return self.seconds_within / self.seconds if self.seconds else None


class TelemetryStats(_Model):
    """Telemetry as the agent sees it: the outbox and the uploads (times UTC)."""

    database: str | None = None  # user@host:port/db, never a password; None: outbox only
    pending_rows: int = 0
    oldest_pending_age_s: float | None = None
    alert_rows: int | None = None  # the site file's telemetry.outbox_alert_rows
    quarantined_rows: int = 0
    consecutive_failures: int = 0
    upload_failures_total: int = 0
    sent_total: int = 0
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None


class SideTaskStatus(_Model):
    """A supervised side task (source, uploader, notifier, markets)."""

    name: str
    running: bool = True
    restarts: int = 0
    last_error: str | None = None


class StatusSnapshot(_Model):
    """Everything ``/status`` and the status file hold."""

    site: str
    source: str
    source_ref: str = ""
    pid: int
    updated_at: datetime
    conditions: list[Condition]
    revisions: Revisions
    health_gate_passed: int = 0
    health_gate_required: int = 0
    suspended: bool = False
    suspended_reason: str | None = None
    last_fetch_at: datetime | None = None
    last_successful_fetch_at: datetime | None = None
    fetch_failures_total: int = 0
    quarantined: list[QuarantinedRevision] = Field(default_factory=list)
    transitions: list[Transition] = Field(default_factory=list)
    loop: LoopStats = Field(default_factory=LoopStats)
    markets: list[MarketFeedStatus] = Field(default_factory=list)
    market_problems: list[str] = Field(default_factory=list)
    telemetry: TelemetryStats = Field(default_factory=TelemetryStats)
    tasks: list[SideTaskStatus] = Field(default_factory=list)
    frequency: FrequencyBlock | None = None

    def condition(self, kind: ConditionType) -> Condition:
        for cond in self.conditions:
            if cond.type == kind:
                return cond
        raise KeyError(kind)

    @property
    def ready(self) -> bool:
        return self.condition(ConditionType.READY).status == "True"


class AgentStatus:
    """The live status: mutated by the source and the loop, read by HTTP and the CLI."""

    def __init__(
        self,
        *,
        clock: Clock,
        site: str,
        source: str,
        source_ref: str = "",
        status_file: Path | None = None,
        health_gate_required: int = 0,
    ) -> None:
        self._clock = clock
        self._file = status_file
        now = clock.now()
        self._snap = StatusSnapshot(
            site=site,
            source=source,
            source_ref=source_ref,
            pid=os.getpid(),
            updated_at=now,
            conditions=[Condition(type=t, last_transition_time=now) for t in CONDITION_ORDER],
            revisions=Revisions(),
            health_gate_required=health_gate_required,
        )
        self._dirty = True
        self._last_flush: datetime | None = None

    # ------------------------------------------------------------------ conditions

    def condition(self, kind: ConditionType) -> Condition:
        return self._snap.condition(kind)

    def set_condition(
        self, kind: ConditionType, status: ConditionStatus, reason: str, message: str
    ) -> bool:
        """Set a condition; True when its status or reason changed (a transition).

        A new message alone updates the condition without a transition or a log line, so a
        message that carries a count (3/5 healthy ticks) does not flood the log.
        """
        cond = self.condition(kind)
        if cond.status == status and cond.reason == reason:
            if cond.message != message:
                cond.message = message
                self._dirty = True
            return False
        now = self._clock.now()
        cond.status = status
        cond.reason = reason
        cond.message = message
        cond.last_transition_time = now
        self._snap.transitions.append(
            Transition(at=now, type=kind, status=status, reason=reason, message=message)
        )
        del self._snap.transitions[:-HISTORY_LENGTH]
        log_event(
            log,
            "condition",
            # journald and alerting key on levels: a condition going False is a warning
            level=logging.WARNING if status == "False" else logging.INFO,
            site=self._snap.site,
            type=str(kind),
            status=status,
            reason=reason,
            message=message,
        )
        self._dirty = True
        self.flush(force=True)
        return True

    # ------------------------------------------------------------------ source facts

    def set_revisions(self, **changes: str | None) -> None:
        """Update any of observed, attempted, applied, staged, last_known_good."""
        data = self._snap.revisions.model_dump() | changes
        new = Revisions.model_validate(data)
        if new != self._snap.revisions:
            self._snap.revisions = new
            self._dirty = True

    def set_health_gate(self, passed: int, required: int) -> None:
        if (passed, required) != (self._snap.health_gate_passed, self._snap.health_gate_required):
            self._snap.health_gate_passed = passed
            self._snap.health_gate_required = required
            self._dirty = True

    def set_suspended(self, suspended: bool, reason: str | None = None) -> None:
        if (suspended, reason) != (self._snap.suspended, self._snap.suspended_reason):
            self._snap.suspended = suspended
            self._snap.suspended_reason = reason
            self._dirty = True
            self.flush(force=True)

    def record_fetch(self, at: datetime, ok: bool) -> None:
        self._snap.last_fetch_at = at
        if ok:
            self._snap.last_successful_fetch_at = at
        else:
            self._snap.fetch_failures_total += 1
        self._dirty = True

    def set_quarantined(self, entries: list[QuarantinedRevision]) -> None:
        if entries != self._snap.quarantined:
            self._snap.quarantined = list(entries)
            self._dirty = True
            self.flush(force=True)

    # ------------------------------------------------------------------ loop numbers

    def record_tick(
        self,
        *,
        at: datetime,
        decision_reason: str | None = None,
        setpoint_kw: float | None = None,
        outbox_size: int | None = None,
        safe: bool = False,
        site_power_kw: float | None = None,
        limits_kw: tuple[float, float] | None = None,
    ) -> None:
        """Called by the control loop after each tick (setpoint kW, + discharge; site power
        kW, + import; ``limits_kw`` the site's (import, export) limits, kW)."""
        loop = self._snap.loop
        loop.ticks_total += 1
        if safe:
            loop.safe_ticks_total += 1
        loop.safe_stop = safe
        loop.site_power_kw = site_power_kw
        if limits_kw is not None:
            loop.site_import_limit_kw, loop.site_export_limit_kw = limits_kw
        loop.last_tick_at = at
        loop.last_decision_reason = decision_reason
        loop.last_setpoint_kw = setpoint_kw
        if outbox_size is not None:
            loop.outbox_size = outbox_size
        self._dirty = True
        self.flush()

    def set_markets(self, feeds: list[MarketFeedStatus], problems: list[str]) -> None:
        """The market clients' state (see reconciler.markets.live)."""
        self._snap.markets = feeds
        self._snap.market_problems = problems
        self._dirty = True

    def set_outbox_size(self, size: int) -> None:
        self._snap.loop.outbox_size = size
        self._dirty = True

    def set_telemetry(self, stats: TelemetryStats) -> None:
        """The outbox's and the uploader's numbers (see agent/telemetry.py)."""
        if stats != self._snap.telemetry:
            self._snap.telemetry = stats
            self._dirty = True

    def set_frequency(self, block: FrequencyBlock | None) -> None:
        """Frequency response in the current block (see agent/frequency.py)."""
        if block != self._snap.frequency:
            self._snap.frequency = block.model_copy() if block is not None else None
            self._dirty = True

    def set_tasks(self, tasks: list[SideTaskStatus]) -> None:
        if tasks != self._snap.tasks:
            self._snap.tasks = list(tasks)
            self._dirty = True

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> StatusSnapshot:
        """A deep copy, safe to serialise or hand to another task."""
        snap = self._snap.model_copy(deep=True)
        snap.updated_at = self._clock.now()
        return snap

    @property
    def ready(self) -> bool:
        return self.condition(ConditionType.READY).status == "True"

    # ------------------------------------------------------------------ the file

    @property
    def status_file(self) -> Path | None:
        return self._file

    def flush(self, *, force: bool = False) -> None:
        """Write the status file if something changed (numbers only: at most every 30 s).

        A failure to write (disk full, read-only) is logged, never raised: reporting must
        not stop control.
        """
        if self._file is None or not self._dirty:
            return
        now = self._clock.now()
        if (
            not force
            and self._last_flush is not None
            and (now - self._last_flush).total_seconds() < FILE_FLUSH_INTERVAL_S
        ):
            return
        try:
            write_atomic(self._file, self.snapshot().model_dump_json(indent=2) + "\n")
        except OSError as exc:
            log.warning("cannot write the status file %s: %s", self._file, exc)
            return
        self._dirty = False
        self._last_flush = now


class NotAStatusFile(ValueError):
    """A file that is not a status file written by flux agent; the message says why in
    one line (pydantic's own message spans many, and names a class the user never saw)."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"not a status file written by flux agent: {problem}")


_JSON_KINDS: tuple[tuple[type, str], ...] = (
    (list, "a list"),
    (str, "a string"),
    (bool, "true or false"),
    (int, "a number"),
    (float, "a number"),
    (type(None), "null"),
)


def _first_problem(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    if first["type"] == "json_invalid":
        return f"not JSON ({first.get('ctx', {}).get('error', first['msg'])})"
    if not first["loc"]:
        found: Any = first["input"]
        kind = next((k for t, k in _JSON_KINDS if isinstance(found, t)), "not an object")
        return f"the file holds {kind}, not a JSON object"
    where = ".".join(str(part) for part in first["loc"])
    problem = "missing" if first["type"] == "missing" else first["msg"]
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {problem}{more}"


def read_status_file(path: Path) -> StatusSnapshot:
    """Read a status file written by :class:`AgentStatus` (raises OSError, or
    :class:`NotAStatusFile`, a ValueError, saying what is wrong with the file)."""
    # Bytes: text that is not UTF-8 is then "not JSON" like any other garbage.
    raw = path.read_bytes()
    if not raw.strip():
        raise NotAStatusFile("the file is empty")
    try:
        return StatusSnapshot.model_validate_json(raw)
    except ValidationError as exc:
        raise NotAStatusFile(_first_problem(exc)) from None
