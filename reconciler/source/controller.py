"""The desired-state source the control loop plugs into.

The loop asks :meth:`DesiredStateSource.current` at the top of every tick and reports each
tick's health with :meth:`DesiredStateSource.observe_tick`. :class:`GitSource` runs the slow
loop (fetch, verify, validate, stage) and the health gate. An unreachable remote, an
unsigned or invalid commit never stops control: the loop keeps the revision it has.
:class:`FileSource` is the plain ``--site file.yaml`` mode.

The health gate judges what a revision controls. A staged revision becomes the
last-known-good after W healthy ticks of its own, W being its site file's
``control.health_gate_ticks`` (the agent's ``--health-gate-ticks`` overrides it). It fails at
once on a tick that leaves the envelope, or on which the battery, read fine, does not
follow its setpoint. A tick on which the battery or the grid meter could not be read (an
I/O error, a frozen grid meter) is a transient read error: up to one tick in five of the
window, ``ceil(W / 5)`` (so at least one), is tolerated and does not count toward W; one
more fails the gate. (A device polled less often than every tick keeps a failed read
until it is polled again, so that counts for every tick in between.) Other meters, which
control does not use, do not count. A failed gate reverts to the last-known-good and
quarantines the revision; with no last-known-good it stays in control and the gate starts
again.

The followed branch (or tag) must move forward: a move to an ancestor of the revision in
control (a rollback) or to a commit that does not descend from it (a rewritten history)
is refused unless the agent runs with ``--allow-rollback`` or the site file *in control*
says ``control.allow_rollback: true`` (the commit being moved to cannot allow itself).
Going back to the last-known-good while a newer revision is in its gate is not refused:
it is what a failed gate does anyway. With signature verification on, the persisted
last-known-good is verified again at every start; one that fails is not run.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from reconciler.clock import Clock, WallClock
from reconciler.config.loader import Problem, SiteFileError
from reconciler.config.model import ControlSettings, Site
from reconciler.logs import log_event
from reconciler.source import flags
from reconciler.source.mirror import FetchError, GitMirror, Move
from reconciler.source.paths import StatePaths
from reconciler.source.settings import SourceSettings
from reconciler.source.store import (
    GateInProgress,
    StoredRevision,
    StoreError,
    clear_gate,
    load_gate,
    load_lkg,
    load_quarantine,
    save_gate,
    save_lkg,
    save_quarantine,
)
from reconciler.source.validate import (
    Validation,
    Validator,
    flux_validate,
    resolved_state,
    validate_text,
)
from reconciler.source.verify import VerifyResult, verify_commit
from reconciler.status.model import AgentStatus, ConditionType, QuarantinedRevision

log = logging.getLogger("flux.source")

#: How to allow what a refused rollback refuses (the status message says it).
ALLOW_ROLLBACK = "allow with control.allow_rollback or --allow-rollback"
#: Gates of one revision started without the agent seeing them end before it is
#: quarantined: the agent died during each (see GitSource._record_gate_start).
MAX_GATE_STARTS = 2

# How often (s, clock time) the wait between fetches looks for operator requests.
_POLL_S = 0.5

C = ConditionType


@dataclass(frozen=True)
class Revision:
    """A desired state control can run: ``source`` is "git", "lkg" (from disk) or "file"."""

    sha: str
    site: Site
    source: str


@dataclass(frozen=True)
class TickHealth:
    """How one control tick went, for the health gate (see the module's docstring).

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


def _short(sha: str | None) -> str:
    if sha is None:
        return "none"
    return sha if sha.startswith("file:") else sha[:12]


def _update_health(status: AgentStatus, health: TickHealth) -> None:
    if health.healthy:
        others = f"; not used by control: {'; '.join(health.other_errors)}"
        status.set_condition(
            C.HEALTHY,
            "True",
            "Healthy",
            "battery and grid meter responsive, setpoint tracked, within the envelope"
            + (others if health.other_errors else ""),
        )
    else:
        status.set_condition(C.HEALTHY, "False", health.reason, health.detail or health.reason)


def _update_ready(status: AgentStatus, current: Revision | None, extra: str = "") -> None:
    healthy = status.condition(C.HEALTHY)
    if current is None:
        why = [
            f"{c.type}: {c.message}"
            for c in (status.condition(t) for t in (C.SOURCE_READY, C.VERIFIED, C.VALIDATED))
            if c.status == "False"
        ]
        status.set_condition(
            C.READY,
            "False",
            "NoRevision",
            "no valid revision to control with yet" + (f" ({'; '.join(why)})" if why else ""),
        )
        return
    running = f"controlling with {_short(current.sha)}"
    if healthy.status == "False":
        status.set_condition(C.READY, "False", "Unhealthy", f"{running}; {healthy.message}")
    elif healthy.status == "Unknown":
        status.set_condition(C.READY, "Unknown", "AwaitingTicks", f"{running}; no tick yet")
    else:
        status.set_condition(C.READY, "True", "Running", running + extra)


@dataclass(frozen=True)
class _Candidate:
    revision: Revision
    site_path: str
    site_yaml: str
    resolved: dict[str, Any]
    note: str = ""  # said while it is staged (an allowed rollback)


@dataclass(frozen=True)
class _Outcome:
    """What one fetch-and-check found (computed in a worker thread, applied in the loop)."""

    at: datetime
    sha: str | None = None
    fetch_error: FetchError | None = None
    skipped: bool = False
    suspended: bool = False
    verify: VerifyResult | None = None
    missing: bool = False
    validation: Validation | None = None
    refused: tuple[str, str] | None = None  # (Validated reason, message) beyond the validator
    moved: str | None = None  # a refused rollback or rewritten history, said
    candidate: _Candidate | None = None
    in_control: str | None = None  # the revision in control the move was judged against


def _describe_move(move: Move, old: str, new: str) -> str:
    """A move of the followed ref that is not a fast-forward, for the status."""
    if move == "rollback":
        return f"rollback from {_short(old)} to {_short(new)}: not a fast-forward"
    return (
        f"move from {_short(old)} to {_short(new)}: not a fast-forward ({_short(new)} does "
        f"not descend from {_short(old)}: a rewritten history)"
    )


class SourceError(Exception):
    """The source cannot start (state folder not writable, ...)."""


class GitSource:
    """Desired state from a git repository, behind verification, validation and a health gate."""

    kind = "git"

    def __init__(
        self,
        settings: SourceSettings,
        *,
        clock: Clock,
        state_dir: Path | None = None,
        validator: Validator = flux_validate,
        status: AgentStatus | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if state_dir is not None and state_dir != settings.state_dir:
            settings = settings.model_copy(update={"state_dir": state_dir})
        self.settings = settings
        self.paths = StatePaths(settings.state_dir)
        try:
            self.paths.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SourceError(
                f"cannot use the state folder {self.paths.root}: {exc.strerror or exc}; "
                "create it (systemd: StateDirectory=flux) or pass --state-dir"
            ) from None
        self._clock = clock
        self._validator = validator
        self._rng = rng or random.Random()
        self._mirror = GitMirror(settings, self.paths)
        self._status = status or AgentStatus(
            clock=clock,
            site=settings.site,
            source="git",
            source_ref=f"{settings.ref_name} of {settings.redacted_repo()}",
            status_file=settings.effective_status_file,
            health_gate_required=settings.health_gate_ticks or 0,
        )
        self._lkg: _Candidate | None = None
        self._staged: _Candidate | None = None
        self._staged_at: datetime | None = None
        self._passed = 0
        self._read_errors = 0  # in the staged revision's gate, tolerated so far
        self._refused: str | None = None
        self._head: str | None = None
        self._suspension: flags.Suspension | None = None
        self._reconcile_asked = False
        self._quarantine = load_quarantine(self.paths.quarantine_file)
        self._status.set_quarantined(self._quarantine)
        self._status.set_condition(C.SOURCE_READY, "Unknown", "Pending", "not fetched yet")
        self._load_lkg()
        self._check_suspension()
        self._refresh()

    # ------------------------------------------------------------------ the seam

    def current(self) -> Revision | None:
        if self._staged is not None:
            return self._staged.revision
        if self._lkg is not None:
            return self._lkg.revision
        return None

    def status(self) -> AgentStatus:
        return self._status

    def observe_tick(self, health: TickHealth) -> None:
        _update_health(self._status, health)
        staged = self._staged
        if staged is not None and self._counts_for(staged, health):
            self._judge(staged, health)
        self._refresh()

    def _judge(self, staged: _Candidate, health: TickHealth) -> None:
        """One tick of the staged revision's health gate (the rule: the module docstring)."""
        ticks, _ = self._gate_ticks(staged)
        tolerated = tolerated_read_errors(ticks)
        detail = health.detail or health.reason
        if not health.envelope_ok:
            self._fail_gate(staged, "EnvelopeBreach", f"a decision left the envelope: {detail}")
        elif health.battery_ok and not health.tracking_ok:
            self._fail_gate(
                staged, "SetpointNotTracked", f"the battery did not follow its setpoint: {detail}"
            )
        elif not health.read_ok:
            self._read_errors += 1
            if self._read_errors > tolerated:
                self._fail_gate(
                    staged,
                    "DevicesUnresponsive",
                    f"{self._read_errors} ticks with a battery or grid-meter read error, more "
                    f"than the {tolerated} a {ticks}-tick gate tolerates; the last: {detail}",
                )
            else:
                self._status.set_condition(
                    C.APPLIED, "Unknown", "HealthGatePending", self._gate_message(staged)
                )
        else:
            self._passed += 1
            if self._passed >= ticks:
                self._promote(staged)
            else:
                self._status.set_condition(
                    C.APPLIED, "Unknown", "HealthGatePending", self._gate_message(staged)
                )

    async def run(self, stop: asyncio.Event) -> None:
        self._status.flush(force=True)
        while not stop.is_set():
            await self.sync_once()
            await self._pause(stop)
        # A clean stop is not the staged revision's doing: its next gate starts afresh.
        clear_gate(self.paths.gate_file)

    # ------------------------------------------------------------------ operator

    def request_reconcile(self) -> None:
        """Fetch now (the running :meth:`run` notices within a second)."""
        self._reconcile_asked = True

    @property
    def suspended(self) -> bool:
        return self._suspension is not None

    # ------------------------------------------------------------------ the slow loop

    async def sync_once(self) -> None:
        """One fetch, verify, validate and (if all pass) stage. Never raises."""
        self._check_suspension()
        at = self._clock.now()
        skip = {q.sha for q in self._quarantine}
        for cand in (self._lkg, self._staged):
            if cand is not None:
                skip.add(cand.revision.sha)
        if self._refused is not None:
            skip.add(self._refused)
        suspended = self._suspension is not None
        in_control = self._current_sha()
        allowance = self._rollback_allowance()
        lkg = self._lkg.revision.sha if self._lkg is not None else None
        try:
            outcome = await asyncio.to_thread(
                self._fetch_and_check, at, skip, suspended, in_control, allowance, lkg
            )
            self._apply(outcome)
        except Exception as exc:  # the slow loop must survive anything; control goes on
            log.exception("source sync failed")
            self._status.set_condition(
                C.SOURCE_READY, "False", "InternalError", f"the source failed: {exc!r}"
            )
        self._refresh()
        # once per fetch, so `flux agent reconcile` sees the fetch happen
        self._status.flush(force=True)

    def _fetch_and_check(
        self,
        at: datetime,
        skip: set[str],
        suspended: bool,
        in_control: str | None,
        allowance: str | None,
        lkg: str | None,
    ) -> _Outcome:
        """Runs in a worker thread: git and validation must not block the control loop.

        ``in_control`` is the revision a move of the followed ref is judged against;
        ``allowance`` what allows a rollback (None: refused); ``lkg`` the commit to keep
        referenced in the mirror."""
        if lkg is not None:
            try:
                self._mirror.pin(lkg)
            except Exception as exc:  # advisory: the fetch itself must still happen
                log.warning("cannot pin the last-known-good %s in the mirror: %s", lkg, exc)
        try:
            sha = self._mirror.fetch()
        except FetchError as exc:
            return _Outcome(at, fetch_error=exc)
        if sha in skip:
            return _Outcome(at, sha=sha, skipped=True)
        if suspended:
            return _Outcome(at, sha=sha, suspended=True)
        return replace(self._check_commit(at, sha, in_control, allowance), in_control=in_control)

    def _check_commit(
        self, at: datetime, sha: str, in_control: str | None, allowance: str | None
    ) -> _Outcome:
        """Verify ``sha``, judge the move to it from ``in_control``, validate it."""
        note = ""
        try:
            check = verify_commit(self._mirror.open(), sha, self.settings, self.paths)
            if not check.ok:
                return _Outcome(at, sha=sha, verify=check)
            if in_control is not None and in_control != sha:
                try:
                    move = self._mirror.relation(in_control, sha)
                except FetchError as exc:
                    return _Outcome(at, fetch_error=exc)
                if move != "forward":
                    what = _describe_move(move, in_control, sha)
                    if allowance is None:
                        moved = f"refused {what}; {ALLOW_ROLLBACK}"
                        return _Outcome(at, sha=sha, verify=check, moved=moved)
                    note = f"{what.replace(': not a fast-forward', '')} allowed by {allowance}"
            path = self.settings.site_path
            data = self._mirror.read_file(sha, path)
        except Exception as exc:
            return _Outcome(at, fetch_error=FetchError("FetchFailed", f"reading {sha}: {exc}"))
        if data is None:
            return _Outcome(at, sha=sha, verify=check, missing=True)
        validation = validate_text(data, path, self._validator)
        if validation.site is None or not validation.ok:
            return _Outcome(at, sha=sha, verify=check, validation=validation)
        site = validation.site
        if site.site.id != self.settings.site:
            refused = (
                "SiteIdMismatch",
                f"{path}: site.id is {site.site.id!r} but this agent runs site "
                f"{self.settings.site!r}; fix the file or the agent's --site",
            )
            return _Outcome(at, sha=sha, verify=check, validation=validation, refused=refused)
        try:
            resolved = resolved_state(site)
        except (KeyError, ValueError) as exc:
            refused = ("ProfileUnresolved", f"{path}: {exc}")
            return _Outcome(at, sha=sha, verify=check, validation=validation, refused=refused)
        candidate = _Candidate(
            Revision(sha, site, "git"), path, data.decode("utf-8", "replace"), resolved, note
        )
        return _Outcome(at, sha=sha, verify=check, validation=validation, candidate=candidate)

    def _apply(self, out: _Outcome) -> None:
        running = f"control continues on {_short(self._current_sha())}"
        if out.fetch_error is not None:
            self._status.record_fetch(out.at, ok=False)
            err = out.fetch_error
            self._status.set_condition(
                C.SOURCE_READY, "False", err.reason, f"{err.message}; {running}"
            )
            return
        assert out.sha is not None
        sha = out.sha
        self._status.record_fetch(out.at, ok=True)
        self._head = sha
        self._status.set_revisions(observed=sha)
        self._status.set_condition(
            C.SOURCE_READY,
            "True",
            "Fetched",
            f"{self.settings.ref_name} of {self.settings.redacted_repo()} is at {_short(sha)}",
        )
        if out.skipped:
            self._known_head(sha)
            return
        if out.suspended:
            self._status.set_condition(
                C.APPLIED,
                "False",
                "Suspended",
                f"{_short(sha)} waits: applying new revisions is "
                f"{self._suspension.describe() if self._suspension else 'suspended'}; {running}",
            )
            return
        if out.in_control != self._current_sha():
            # Control moved while this commit was checked (the gate reverted the staged
            # revision): judge it again, at once, against what is in control now.
            self._reconcile_asked = True
            return
        self._status.set_revisions(attempted=sha)
        check = out.verify
        assert check is not None
        self._status.set_condition(
            C.VERIFIED, "True" if check.ok else "False", check.reason, check.message
        )
        if not check.ok:
            self._refuse(
                sha, "VerificationFailed", f"{_short(sha)} refused: {check.reason}; {running}"
            )
            self._status.set_condition(
                C.VALIDATED,
                "Unknown",
                "NotChecked",
                f"{_short(sha)} was not validated: its signature was refused",
            )
            return
        if out.moved is not None:
            log_event(log, "rollback_refused", sha=sha, in_control=out.in_control)
            self._status.set_condition(
                C.VALIDATED,
                "Unknown",
                "NotChecked",
                f"{_short(sha)} was not validated: the move to it was refused",
            )
            self._refuse(sha, "RollbackRefused", f"{out.moved}; {running}")
            return
        if out.missing:
            self._status.set_condition(
                C.VALIDATED,
                "False",
                "SiteFileMissing",
                f"commit {_short(sha)} has no {self.settings.site_path}: a commit that deletes "
                "the site's desired state is refused",
            )
            self._refuse(
                sha, "ValidationFailed", f"{_short(sha)} refused: site file missing; {running}"
            )
            return
        validation = out.validation
        assert validation is not None
        if not validation.ok or out.refused is not None:
            if out.refused is not None:
                reason, message = out.refused
            else:
                reason, message = "Invalid", validation.message()
            self._status.set_condition(C.VALIDATED, "False", reason, message)
            count = max(1, len(validation.errors))
            self._refuse(
                sha,
                "ValidationFailed",
                f"{_short(sha)} refused: {count} error(s) in {self.settings.site_path}; {running}",
            )
            return
        warn = f" ({len(validation.warnings)} warning(s))" if validation.warnings else ""
        self._status.set_condition(
            C.VALIDATED,
            "True",
            "Valid",
            f"{self.settings.site_path} at {_short(sha)} is valid{warn}",
        )
        assert out.candidate is not None
        self._stage(out.candidate)

    def _known_head(self, sha: str) -> None:
        """The head is a commit already handled: say where it stands."""
        quarantined = next((q for q in self._quarantine if q.sha == sha), None)
        if self._lkg is not None and sha == self._lkg.revision.sha:
            if self._staged is not None:
                # the branch went back to the last-known-good: that pre-empts the staged one
                log_event(log, "unstaged", sha=self._staged.revision.sha, head=sha)
                self._staged = None
                self._status.set_revisions(staged=None)
            self._status.set_condition(
                C.APPLIED, "True", "Applied", f"{_short(sha)} is the last-known-good"
            )
        elif quarantined is not None:
            self._status.set_condition(
                C.APPLIED,
                "False",
                "Quarantined",
                f"{_short(sha)} failed the health gate ({quarantined.message}); it is not "
                f"retried until a newer commit; control continues on {_short(self._current_sha())}",
            )

    def _refuse(self, sha: str, reason: str, message: str) -> None:
        self._refused = sha
        self._status.set_condition(C.APPLIED, "False", reason, message)

    # ------------------------------------------------------------------ staging and the gate

    def _stage(self, candidate: _Candidate) -> None:
        if not self._record_gate_start(candidate):
            return
        previous = self._staged
        self._staged = candidate
        self._staged_at = self._clock.now()
        self._passed = 0
        self._read_errors = 0
        sha = candidate.revision.sha
        self._status.set_revisions(staged=sha)
        log_event(
            log,
            "staged",
            sha=sha,
            preempted=previous.revision.sha if previous else None,
            last_known_good=self._lkg.revision.sha if self._lkg else None,
            note=candidate.note or None,
        )
        self._status.set_condition(
            C.APPLIED, "Unknown", "HealthGatePending", self._gate_message(candidate)
        )

    def _record_gate_start(self, candidate: _Candidate) -> bool:
        """Count a start of ``candidate``'s gate on disk; False (and quarantined) when its
        gates were already started ``MAX_GATE_STARTS`` times and never ended: the agent died
        each time (a crash, a watchdog kill, a power cut) while it was in control. One
        death may be bad luck; another is the revision's doing."""
        sha = candidate.revision.sha
        previous = load_gate(self.paths.gate_file)
        starts = previous.starts + 1 if previous is not None and previous.sha == sha else 1
        if starts > MAX_GATE_STARTS:
            clear_gate(self.paths.gate_file)
            self._quarantine_sha(
                sha,
                "DiedInHealthGate",
                f"the agent stopped {starts - 1} times before {_short(sha)} finished its "
                "health gate (a crash, a watchdog kill or a power cut)",
            )
            lkg = self._lkg.revision.sha if self._lkg is not None else None
            self._status.set_condition(
                C.APPLIED,
                "False",
                "DiedInHealthGate",
                f"{_short(sha)} quarantined: the agent stopped {starts - 1} times during its "
                f"health gate; control stays on {_short(lkg)} until a newer commit",
            )
            return False
        try:
            save_gate(
                self.paths.gate_file,
                GateInProgress(sha=sha, starts=starts, started_at=self._clock.now()),
            )
        except OSError as exc:  # advisory: the gate goes on without the count
            log.error("cannot persist the gate in progress to %s: %s", self.paths.gate_file, exc)
        return True

    def _quarantine_sha(self, sha: str, reason: str, why: str) -> None:
        entry = QuarantinedRevision(sha=sha, at=self._clock.now(), reason=reason, message=why)
        self._quarantine = [q for q in self._quarantine if q.sha != sha] + [entry]
        try:
            save_quarantine(self.paths.quarantine_file, self._quarantine)
        except OSError as exc:
            log.error("cannot persist the quarantine to %s: %s", self.paths.quarantine_file, exc)
        self._status.set_quarantined(self._quarantine)

    def _gate_message(self, staged: _Candidate) -> str:
        ticks, source = self._gate_ticks(staged)
        errors = ""
        if self._read_errors:
            errors = (
                f"; {self._read_errors} of {tolerated_read_errors(ticks)} tolerated read "
                "error(s) so far"
            )
        note = f"; {staged.note}" if staged.note else ""
        return (
            f"{_short(staged.revision.sha)} staged; {self._passed}/{ticks} healthy ticks before "
            f"it becomes last-known-good (the gate is {ticks} ticks: {source}){errors}{note}"
        )

    def _gate_ticks(self, candidate: _Candidate | None) -> tuple[int, str]:
        """The gate's length for ``candidate`` (ticks) and where that value comes from: its
        site file, unless the agent's --health-gate-ticks overrides it."""
        override = self.settings.health_gate_ticks
        site_value = candidate.revision.site.control.health_gate_ticks if candidate else None
        if override is not None:
            if site_value is None:
                return override, "--health-gate-ticks"
            return override, f"--health-gate-ticks, overriding the site file's {site_value}"
        if site_value is None:
            default = ControlSettings.model_fields["health_gate_ticks"].default
            return int(default), "control.health_gate_ticks' default"
        return site_value, "control.health_gate_ticks of the site file"

    def _rollback_allowance(self) -> str | None:
        """What allows the followed ref to move back (None: nothing, it is refused). The
        site file that counts is the one in control: a commit cannot allow itself."""
        if self.settings.allow_rollback:
            return "--allow-rollback"
        current = self.current()
        if current is not None and current.site.control.allow_rollback:
            return f"control.allow_rollback in the site file of {_short(current.sha)}"
        return None

    def _counts_for(self, staged: _Candidate, health: TickHealth) -> bool:
        if health.sha is not None:
            return health.sha == staged.revision.sha
        return self._staged_at is None or health.at >= self._staged_at

    def _promote(self, staged: _Candidate) -> None:
        sha = staged.revision.sha
        note = ""
        try:
            save_lkg(
                self.paths.lkg_file,
                StoredRevision(
                    sha=sha,
                    source=staged.revision.source,
                    site_id=self.settings.site,
                    site_path=staged.site_path,
                    site_yaml=staged.site_yaml,
                    resolved=staged.resolved,
                    promoted_at=self._clock.now(),
                ),
            )
        except OSError as exc:
            log.error("cannot persist the last-known-good to %s: %s", self.paths.lkg_file, exc)
            note = f" (not persisted: {exc}; a restart would not find it)"
        self._lkg = staged
        self._staged = None
        self._read_errors = 0
        clear_gate(self.paths.gate_file)
        self._status.set_revisions(last_known_good=sha, staged=None)
        log_event(log, "promoted", sha=sha, ticks=self._passed)
        self._status.set_condition(
            C.APPLIED,
            "True",
            "Applied",
            f"{_short(sha)} passed the health gate ({self._passed} healthy ticks) and is the "
            f"last-known-good{note}",
        )

    def _fail_gate(self, staged: _Candidate, reason: str, why: str) -> None:
        sha = staged.revision.sha
        self._passed = 0
        self._read_errors = 0
        if self._lkg is None:
            # Nothing known-good to go back to: keep the only valid revision in control (the
            # hard envelope still holds) and start the gate again.
            self._status.set_condition(
                C.APPLIED,
                "Unknown",
                "HealthGateFailing",
                f"{_short(sha)} failed its health gate ({why}); there is no last-known-good "
                "to revert to, so it stays in control and the gate starts again",
            )
            return
        clear_gate(self.paths.gate_file)
        self._quarantine_sha(sha, reason, why)
        self._staged = None
        self._status.set_revisions(staged=None)
        lkg = self._lkg.revision.sha
        log_event(log, "reverted", level=logging.WARNING, sha=sha, to=lkg, why=why)
        self._status.set_condition(
            C.APPLIED,
            "False",
            "HealthCheckFailed",
            f"{_short(sha)} reverted to {_short(lkg)}: it failed its health gate ({why}); "
            "quarantined until a newer commit",
        )

    # ------------------------------------------------------------------ helpers

    def _current_sha(self) -> str | None:
        cur = self.current()
        return cur.sha if cur else None

    def _load_lkg(self) -> None:
        try:
            stored = load_lkg(self.paths.lkg_file)
        except StoreError as exc:
            log.error("%s", exc)
            self._status.set_condition(
                C.APPLIED, "False", "LastKnownGoodUnusable", f"{exc}; waiting for a valid commit"
            )
            return
        if stored is None:
            self._status.set_condition(
                C.APPLIED, "Unknown", "NoRevision", "no last-known-good yet; waiting for a commit"
            )
            return
        if stored.site_id != self.settings.site:
            self._status.set_condition(
                C.APPLIED,
                "Unknown",
                "NoRevision",
                f"the stored last-known-good is for site {stored.site_id!r}, not "
                f"{self.settings.site!r}; waiting for a commit",
            )
            return
        try:
            site = Site.model_validate(stored.resolved["site"])
        except (KeyError, ValidationError) as exc:
            first = str(exc).splitlines()[0]
            self._status.set_condition(
                C.APPLIED,
                "False",
                "LastKnownGoodUnusable",
                f"{self.paths.lkg_file} no longer validates ({first}); waiting for a commit",
            )
            return
        if self.settings.verify != "none":
            check = self._verify_stored(stored, site)
            self._status.set_condition(
                C.VERIFIED,
                "True" if check.ok else "False",
                check.reason,
                f"the persisted last-known-good: {check.message}",
            )
            if not check.ok:
                log_event(
                    log, "last_known_good_refused", level=logging.ERROR, sha=stored.sha,
                    reason=check.reason,
                )  # fmt: skip
                self._status.set_condition(
                    C.APPLIED,
                    "False",
                    "LastKnownGoodUnverified",
                    f"the persisted last-known-good {_short(stored.sha)} is not run "
                    f"({check.reason}); waiting for a verified commit, and meanwhile the "
                    "battery is not commanded: its heartbeat timeout holds it at 0 kW",
                )
                return
        self._lkg = _Candidate(
            Revision(stored.sha, site, "lkg"), stored.site_path, stored.site_yaml, stored.resolved
        )
        self._status.set_revisions(last_known_good=stored.sha, applied=stored.sha)
        self._status.set_condition(
            C.APPLIED,
            "True",
            "LastKnownGood",
            f"running {_short(stored.sha)} from the persisted last-known-good (promoted "
            f"{stored.promoted_at.isoformat(timespec='seconds')})",
        )

    def _verify_stored(self, stored: StoredRevision, site: Site) -> VerifyResult:
        """The checks a fetched commit gets, for the persisted last-known-good: its commit
        (in the mirror) is signed by an allowed key, and the file holds what that commit
        has, so what is stored cannot be changed behind the signature's back."""
        sha, short, where = stored.sha, _short(stored.sha), self.paths.lkg_file
        path = self.settings.site_path
        try:
            if not self._mirror.has_commit(sha):
                return VerifyResult(
                    False,
                    "CommitMissing",
                    f"commit {short} is not in the mirror {self.paths.repo_dir}, so its "
                    "signature cannot be checked",
                )
            check = verify_commit(self._mirror.open(), sha, self.settings, self.paths)
            if not check.ok:
                return check
            data = self._mirror.read_file(sha, path)
        except Exception as exc:  # never run what could not be checked; never fail to start
            return VerifyResult(False, "VerifierFailed", f"cannot check commit {short}: {exc}")
        changed = f"{where} does not hold {path} as committed in {short}: it was changed"
        if data is None or stored.site_path != path:
            return VerifyResult(False, "ContentMismatch", changed)
        if data.decode("utf-8", "replace") != stored.site_yaml:
            return VerifyResult(False, "ContentMismatch", changed)
        validation = validate_text(data, path, self._validator)
        if not validation.ok:
            first = validation.errors[0] if validation.errors else "not a valid site file"
            return VerifyResult(False, "Invalid", f"{path} at {short} does not validate: {first}")
        if validation.site != site:
            return VerifyResult(
                False,
                "ContentMismatch",
                f"{where}: the stored desired state differs from {path} as committed in "
                f"{short}: it was changed",
            )
        return check

    def _check_suspension(self) -> bool:
        """Read the suspend flag; True when it was just lifted (fetch at once)."""
        was = self._suspension
        self._suspension = flags.suspension(self.paths)
        now = self._suspension
        self._status.set_suspended(now is not None, now.describe() if now else None)
        if was is not None and now is None:
            log_event(log, "resumed")
            self._refresh()
            return True
        if was is None and now is not None:
            log_event(log, "suspended", detail=now.describe())
            self._refresh()
        return False

    def _refresh(self) -> None:
        cur = self.current()
        self._status.set_revisions(applied=cur.sha if cur else None)
        ticks, _ = self._gate_ticks(self._staged or self._lkg)
        self._status.set_health_gate(self._passed if self._staged else 0, ticks)
        extra = ""
        if self._staged is not None:
            extra = f" (staged, {self._passed}/{ticks} healthy ticks)"
        elif self._lkg is not None:
            extra = " (last-known-good)"
        if self._suspension is not None:
            extra += f"; applying new revisions is {self._suspension.describe()}"
        if self._status.condition(C.SOURCE_READY).status == "False":
            extra += "; the source is not ready"
        if self._status.condition(C.APPLIED).status == "False":
            extra += (
                f"; the newest commit is not applied ({self._status.condition(C.APPLIED).reason})"
            )
        _update_ready(self._status, cur, extra)
        self._status.flush()

    async def _pause(self, stop: asyncio.Event) -> None:
        """Wait interval + jitter, returning early on stop, reconcile request or resume."""
        total = self.settings.interval_s + self._rng.uniform(0, self.settings.jitter_s)
        waited = 0.0
        while waited < total and not stop.is_set():
            if self._reconcile_asked or flags.take_reconcile_request(self.paths):
                self._reconcile_asked = False
                log_event(log, "reconcile requested")
                return
            if self._check_suspension():
                return
            step = min(_POLL_S, total - waited)
            await self._clock.sleep(step)
            waited += step


class FileSource:
    """The plain ``--site file.yaml`` mode: one validated file, sha ``file:<sha256[:12]>``.

    Raises :class:`SiteFileError` when the file is invalid, with every problem.
    """

    kind = "file"

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock | None = None,
        status_file: Path | None = None,
        validator: Validator = flux_validate,
    ) -> None:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            problem = Problem(str(path), 1, 1, "", f"cannot read the site file: {exc.strerror}")
            raise SiteFileError([problem]) from None
        site, problems = validator(path)
        errors = [p for p in problems if p.severity == "error"]
        if site is None or errors:
            raise SiteFileError(errors or [Problem(str(path), 1, 1, "", "not a valid site file")])
        self.path = path
        sha = "file:" + hashlib.sha256(data).hexdigest()[:12]
        self._revision = Revision(sha, site, "file")
        self._status = AgentStatus(
            clock=clock or WallClock(),
            site=site.site.id,
            source="file",
            source_ref=str(path),
            status_file=status_file,
        )
        self._status.set_revisions(observed=sha, attempted=sha, applied=sha, last_known_good=sha)
        self._status.set_condition(C.SOURCE_READY, "True", "File", f"reading {path}")
        self._status.set_condition(
            C.VERIFIED, "True", "NotRequired", "a local file is not signature-checked"
        )
        warn = [p for p in problems if p.severity != "error"]
        self._status.set_condition(
            C.VALIDATED,
            "True",
            "Valid",
            f"{path} is valid" + (f" ({len(warn)} warning(s))" if warn else ""),
        )
        self._status.set_condition(C.APPLIED, "True", "Applied", f"running {sha}")
        _update_ready(self._status, self._revision)

    def current(self) -> Revision:
        return self._revision

    def observe_tick(self, health: TickHealth) -> None:
        _update_health(self._status, health)
        _update_ready(self._status, self._revision)
        self._status.flush()

    async def run(self, stop: asyncio.Event) -> None:
        self._status.flush(force=True)
        await stop.wait()

    def status(self) -> AgentStatus:
        return self._status
