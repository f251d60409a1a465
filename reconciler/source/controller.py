"""The desired-state source the control loop plugs into.

The loop asks :meth:`DesiredStateSource.current` at the top of every tick and reports each
tick's health with :meth:`DesiredStateSource.observe_tick`. :class:`GitSource` runs the slow
loop (fetch, verify, validate, stage) and the health gate. An unreachable remote, an
unsigned or invalid commit never stops control: the loop keeps the revision it has.
:class:`FileSource` is the plain ``--site file.yaml`` mode.

:class:`GitSource` composes the parts: the fetch pipeline (:mod:`~reconciler.source.pipeline`,
which also holds the rule for moves of the followed ref), the health gate
(:mod:`~reconciler.source.gate`, with the rule it judges by), what is kept on disk
(:mod:`~reconciler.source.store`) and what is said on the status
(:mod:`~reconciler.source.report`). It decides what a finished gate does: a passed gate makes
the staged revision the last-known-good; a failed one reverts to the last-known-good and
quarantines the revision; with no last-known-good it stays in control and the gate starts
again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

from reconciler.clock import Clock
from reconciler.logs import log_event
from reconciler.source import flags, report
from reconciler.source.file import FileSource
from reconciler.source.gate import MAX_GATE_STARTS, HealthGate, record_gate_start
from reconciler.source.mirror import GitMirror
from reconciler.source.paths import StatePaths
from reconciler.source.pipeline import ALLOW_ROLLBACK, Outcome, Pipeline
from reconciler.source.revision import (
    Candidate,
    DesiredStateSource,
    Revision,
    TickHealth,
    short,
    tolerated_read_errors,
)
from reconciler.source.settings import SourceSettings
from reconciler.source.store import Quarantine, Unusable, clear_gate, persist_lkg, read_lkg
from reconciler.source.validate import Validator, flux_validate
from reconciler.status.model import AgentStatus, ConditionType

__all__ = [
    "ALLOW_ROLLBACK",
    "MAX_GATE_STARTS",
    "DesiredStateSource",
    "FileSource",
    "GitSource",
    "Revision",
    "SourceError",
    "TickHealth",
    "tolerated_read_errors",
]

log = logging.getLogger("flux.source")

# How often (s, clock time) the wait between fetches looks for operator requests.
_POLL_S = 0.5

C = ConditionType


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
        self._rng = rng or random.Random()
        self._pipeline = Pipeline(settings, self.paths, GitMirror(settings, self.paths), validator)
        self._status = status or AgentStatus(
            clock=clock,
            site=settings.site,
            source="git",
            source_ref=f"{settings.ref_name} of {settings.redacted_repo()}",
            status_file=settings.effective_status_file,
            health_gate_required=settings.health_gate_ticks or 0,
        )
        self._lkg: Candidate | None = None
        self._gate = HealthGate(settings.health_gate_ticks)
        self._refused: str | None = None
        self._head: str | None = None
        self._suspension: flags.Suspension | None = None
        self._reconcile_asked = False
        #: Set when the first fetch, with nothing ever in control, finds no site file:
        #: the site id is wrong (see :meth:`missing_site`).
        self._missing_site: str | None = None
        self._quarantine = Quarantine(self.paths.quarantine_file)
        self._status.set_quarantined(self._quarantine.entries)
        self._status.set_condition(C.SOURCE_READY, "Unknown", "Pending", "not fetched yet")
        self._load_lkg()
        self._check_suspension()
        self._refresh()

    # ------------------------------------------------------------------ the seam

    def current(self) -> Revision | None:
        if self._gate.staged is not None:
            return self._gate.staged.revision
        if self._lkg is not None:
            return self._lkg.revision
        return None

    def status(self) -> AgentStatus:
        return self._status

    def observe_tick(self, health: TickHealth) -> None:
        report.update_health(self._status, health)
        staged = self._gate.staged
        if staged is not None and self._gate.counts_for(health):
            verdict = self._gate.judge(health)
            if verdict.kind == "fail":
                self._fail_gate(staged, verdict.reason, verdict.why)
            elif verdict.kind == "promote":
                self._promote(staged)
            else:
                report.gate_pending(self._status, self._gate)
        self._refresh()

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
        skip = {q.sha for q in self._quarantine.entries}
        for cand in (self._lkg, self._gate.staged):
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
                self._pipeline.fetch_and_check, at, skip, suspended, in_control, allowance, lkg
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

    def _apply(self, out: Outcome) -> None:
        running = f"control continues on {short(self._current_sha())}"
        if out.fetch_error is not None:
            report.fetch_failed(self._status, out, running)
            return
        assert out.sha is not None
        sha = out.sha
        where = f"{self.settings.ref_name} of {self.settings.redacted_repo()}"
        self._head = sha
        report.fetched(self._status, out.at, sha, where)
        if out.skipped:
            self._known_head(sha)
        elif out.suspended:
            report.waits_suspended(self._status, sha, self._suspension, running)
        elif out.in_control != self._current_sha():
            # Control moved while this commit was checked (the gate reverted the staged
            # revision): judge it again, at once, against what is in control now.
            self._reconcile_asked = True
        else:
            self._status.set_revisions(attempted=sha)
            if out.missing and self._current_sha() is None:
                self._missing_site = self._missing_site_message(sha)
            if report.checks(self._status, out, self.settings.site_path, running):
                self._refused = sha
            else:
                assert out.candidate is not None
                self._stage(out.candidate)

    def missing_site(self) -> str | None:
        """Why the site id names nothing, when the followed commit has no site file and no
        revision was ever in control (a first start with a wrong --site): a usage error,
        not a commit to refuse. None otherwise."""
        return self._missing_site

    def _missing_site_message(self, sha: str) -> str:
        path = self.settings.site_path
        folder, _, _ = path.rpartition("/")
        try:
            names = self._pipeline.mirror.list_folder(sha, folder)
        except Exception:  # only for the message; the fetch itself went through
            names = []
        ids = [n.removesuffix(".yaml") for n in names if n.endswith(".yaml")]
        where = f"{self.settings.ref_name} of {self.settings.redacted_repo()}"
        there = f"the site ids there: {', '.join(ids)}" if ids else f"{folder or '.'} is empty"
        return (
            f"--site {self.settings.site}: there is no {path} in {where} (commit {short(sha)}); "
            f"{there}. Check --site (a site id is its file's name under {folder or '.'}/)"
        )

    def _known_head(self, sha: str) -> None:
        """The head is a commit already handled: say where it stands."""
        quarantined = self._quarantine.find(sha)
        if self._lkg is not None and sha == self._lkg.revision.sha:
            staged = self._gate.staged
            if staged is not None:
                # the branch went back to the last-known-good: that pre-empts the staged one
                log_event(log, "unstaged", sha=staged.revision.sha, head=sha)
                self._gate.staged = None
                self._status.set_revisions(staged=None)
            report.head_is_lkg(self._status, sha)
        elif quarantined is not None:
            report.head_quarantined(self._status, quarantined, self._current_sha())

    # ------------------------------------------------------------------ staging and the gate

    def _stage(self, candidate: Candidate) -> None:
        sha = candidate.revision.sha
        stopped = record_gate_start(self.paths.gate_file, sha, self._clock.now())
        if stopped is not None:
            self._quarantine_sha(
                sha,
                "DiedInHealthGate",
                f"the agent stopped {stopped} times before {short(sha)} finished its "
                "health gate (a crash, a watchdog kill or a power cut)",
            )
            lkg = self._lkg.revision.sha if self._lkg is not None else None
            report.died_in_gate(self._status, sha, stopped, lkg)
            return
        previous = self._gate.staged
        self._gate.stage(candidate, self._clock.now())
        self._status.set_revisions(staged=sha)
        log_event(
            log,
            "staged",
            sha=sha,
            preempted=previous.revision.sha if previous else None,
            last_known_good=self._lkg.revision.sha if self._lkg else None,
            note=candidate.note or None,
        )
        report.gate_pending(self._status, self._gate)

    def _quarantine_sha(self, sha: str, reason: str, why: str) -> None:
        self._quarantine.add(sha, self._clock.now(), reason, why)
        self._status.set_quarantined(self._quarantine.entries)

    def _rollback_allowance(self) -> str | None:
        """What allows the followed ref to move back (None: nothing, it is refused). The
        site file that counts is the one in control: a commit cannot allow itself."""
        if self.settings.allow_rollback:
            return "--allow-rollback"
        current = self.current()
        if current is not None and current.site.control.allow_rollback:
            return f"control.allow_rollback in the site file of {short(current.sha)}"
        return None

    def _promote(self, staged: Candidate) -> None:
        sha = staged.revision.sha
        note = persist_lkg(self.paths.lkg_file, staged, self.settings.site, self._clock.now())
        self._lkg = staged
        self._gate.staged = None
        self._gate.read_errors = 0
        clear_gate(self.paths.gate_file)
        self._status.set_revisions(last_known_good=sha, staged=None)
        log_event(log, "promoted", sha=sha, ticks=self._gate.passed)
        report.promoted(self._status, sha, self._gate.passed, note)

    def _fail_gate(self, staged: Candidate, reason: str, why: str) -> None:
        sha = staged.revision.sha
        self._gate.restart()
        if self._lkg is None:
            # Nothing known-good to go back to: keep the only valid revision in control (the
            # hard envelope still holds) and start the gate again.
            report.gate_restarts(self._status, sha, why)
            return
        clear_gate(self.paths.gate_file)
        self._quarantine_sha(sha, reason, why)
        self._gate.staged = None
        self._status.set_revisions(staged=None)
        lkg = self._lkg.revision.sha
        log_event(log, "reverted", level=logging.WARNING, sha=sha, to=lkg, why=why)
        report.reverted(self._status, sha, lkg, why)

    # ------------------------------------------------------------------ helpers

    def _current_sha(self) -> str | None:
        cur = self.current()
        return cur.sha if cur else None

    def _load_lkg(self) -> None:
        found = read_lkg(self.paths.lkg_file, self.settings.site)
        if isinstance(found, Unusable):
            report.lkg_unusable(self._status, found)
            return
        stored, site = found
        if self.settings.verify != "none":
            check = self._pipeline.verify_stored(stored, site)
            report.lkg_verified(self._status, stored, check)
            if not check.ok:
                return
        self._lkg = Candidate(
            Revision(stored.sha, site, "lkg"), stored.site_path, stored.site_yaml, stored.resolved
        )
        report.running_lkg(self._status, stored)

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
        report.refresh(self._status, self.current(), self._gate, self._lkg, self._suspension)

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
