"""The desired-state source the control loop plugs into.

The loop asks :meth:`DesiredStateSource.current` at the top of every tick and reports each
tick's health with :meth:`DesiredStateSource.observe_tick`. :class:`GitSource` runs the slow
loop (fetch, verify, validate, stage) and the health gate: a staged revision becomes the
last-known-good after N consecutive healthy ticks, and is reverted and quarantined at the
first unhealthy one. An unreachable remote, an unsigned or invalid commit never stops
control: the loop keeps the revision it has. :class:`FileSource` is the plain
``--site file.yaml`` mode.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from reconciler.agent.status import AgentStatus, ConditionType, QuarantinedRevision
from reconciler.clock import Clock, WallClock
from reconciler.config.loader import Problem, SiteFileError
from reconciler.config.model import Site
from reconciler.logs import log_event
from reconciler.source import flags
from reconciler.source.mirror import FetchError, GitMirror
from reconciler.source.paths import StatePaths
from reconciler.source.settings import SourceSettings
from reconciler.source.store import (
    StoredRevision,
    StoreError,
    load_lkg,
    load_quarantine,
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

log = logging.getLogger("flux.source")

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
    """How one control tick went, for the health gate.

    ``sha`` (optional) is the revision the tick ran; when given, ticks of another revision
    do not count for (or against) a staged one. Without it, ticks that started before the
    revision was staged (``at`` earlier) are not counted.
    """

    at: datetime
    devices_ok: bool
    tracking_ok: bool
    envelope_ok: bool
    detail: str = ""
    sha: str | None = None

    @property
    def healthy(self) -> bool:
        return self.devices_ok and self.tracking_ok and self.envelope_ok

    @property
    def reason(self) -> str:
        """The Healthy condition's reason for this tick."""
        if not self.devices_ok:
            return "DevicesUnresponsive"
        if not self.tracking_ok:
            return "SetpointNotTracked"
        if not self.envelope_ok:
            return "EnvelopeBreach"
        return "Healthy"


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
        status.set_condition(
            C.HEALTHY,
            "True",
            "Healthy",
            "devices responsive, setpoint tracked, within the envelope",
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
    candidate: _Candidate | None = None


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
            health_gate_required=settings.health_gate_ticks,
        )
        self._status.set_health_gate(0, settings.health_gate_ticks)
        self._lkg: _Candidate | None = None
        self._staged: _Candidate | None = None
        self._staged_at: datetime | None = None
        self._passed = 0
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
            if health.healthy:
                self._passed += 1
                self._status.set_health_gate(self._passed, self.settings.health_gate_ticks)
                if self._passed >= self.settings.health_gate_ticks:
                    self._promote(staged)
                else:
                    self._status.set_condition(
                        C.APPLIED, "Unknown", "HealthGatePending", self._gate_message(staged)
                    )
            else:
                self._fail_gate(staged, health)
        self._refresh()

    async def run(self, stop: asyncio.Event) -> None:
        self._status.flush(force=True)
        while not stop.is_set():
            await self.sync_once()
            await self._pause(stop)

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
        try:
            outcome = await asyncio.to_thread(self._fetch_and_check, at, skip, suspended)
            self._apply(outcome)
        except Exception as exc:  # the slow loop must survive anything; control goes on
            log.exception("source sync failed")
            self._status.set_condition(
                C.SOURCE_READY, "False", "InternalError", f"the source failed: {exc!r}"
            )
        self._refresh()
        # once per fetch, so `flux agent reconcile` sees the fetch happen
        self._status.flush(force=True)

    def _fetch_and_check(self, at: datetime, skip: set[str], suspended: bool) -> _Outcome:
        """Runs in a worker thread: git and validation must not block the control loop."""
        try:
            sha = self._mirror.fetch()
        except FetchError as exc:
            return _Outcome(at, fetch_error=exc)
        if sha in skip:
            return _Outcome(at, sha=sha, skipped=True)
        if suspended:
            return _Outcome(at, sha=sha, suspended=True)
        try:
            check = verify_commit(self._mirror.open(), sha, self.settings, self.paths)
            if not check.ok:
                return _Outcome(at, sha=sha, verify=check)
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
            Revision(sha, site, "git"), path, data.decode("utf-8", "replace"), resolved
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
        previous = self._staged
        self._staged = candidate
        self._staged_at = self._clock.now()
        self._passed = 0
        sha = candidate.revision.sha
        self._status.set_health_gate(0, self.settings.health_gate_ticks)
        self._status.set_revisions(staged=sha)
        log_event(
            log,
            "staged",
            sha=sha,
            preempted=previous.revision.sha if previous else None,
            last_known_good=self._lkg.revision.sha if self._lkg else None,
        )
        self._status.set_condition(
            C.APPLIED, "Unknown", "HealthGatePending", self._gate_message(candidate)
        )

    def _gate_message(self, staged: _Candidate) -> str:
        return (
            f"{_short(staged.revision.sha)} staged; {self._passed}/"
            f"{self.settings.health_gate_ticks} healthy ticks before it becomes last-known-good"
        )

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
        self._status.set_revisions(last_known_good=sha, staged=None)
        log_event(log, "promoted", sha=sha, ticks=self._passed)
        self._status.set_condition(
            C.APPLIED,
            "True",
            "Applied",
            f"{_short(sha)} passed the health gate ({self._passed} healthy ticks) and is the "
            f"last-known-good{note}",
        )

    def _fail_gate(self, staged: _Candidate, health: TickHealth) -> None:
        sha = staged.revision.sha
        why = f"{health.reason}: {health.detail}" if health.detail else health.reason
        if self._lkg is None:
            # Nothing known-good to go back to: keep the only valid revision in control (the
            # hard envelope still holds) and start the gate again.
            self._passed = 0
            self._status.set_health_gate(0, self.settings.health_gate_ticks)
            self._status.set_condition(
                C.APPLIED,
                "Unknown",
                "HealthGateFailing",
                f"{_short(sha)} had an unhealthy tick ({why}); there is no last-known-good to "
                "revert to, so it stays in control and the gate starts again",
            )
            return
        entry = QuarantinedRevision(
            sha=sha, at=self._clock.now(), reason=health.reason, message=why
        )
        self._quarantine = [q for q in self._quarantine if q.sha != sha] + [entry]
        try:
            save_quarantine(self.paths.quarantine_file, self._quarantine)
        except OSError as exc:
            log.error("cannot persist the quarantine to %s: %s", self.paths.quarantine_file, exc)
        self._status.set_quarantined(self._quarantine)
        self._staged = None
        self._passed = 0
        self._status.set_health_gate(0, self.settings.health_gate_ticks)
        self._status.set_revisions(staged=None)
        lkg = self._lkg.revision.sha
        log_event(log, "reverted", level=logging.WARNING, sha=sha, to=lkg, why=why)
        self._status.set_condition(
            C.APPLIED,
            "False",
            "HealthCheckFailed",
            f"{_short(sha)} reverted to {_short(lkg)} after an unhealthy tick ({why}); "
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
        extra = ""
        if self._staged is not None:
            extra = f" (staged, {self._passed}/{self.settings.health_gate_ticks} healthy ticks)"
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
