"""What the source says on the agent's status: its conditions and their messages.

The fetch pipeline and the health gate decide; these functions put what they decided into
words (the Healthy, Ready, SourceReady, Verified, Validated and Applied conditions).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from reconciler.config.loader import Problem
from reconciler.logs import log_event
from reconciler.source.flags import Suspension
from reconciler.source.gate import HealthGate
from reconciler.source.pipeline import Outcome
from reconciler.source.revision import (
    Candidate,
    Revision,
    TickHealth,
    short,
    tolerated_read_errors,
)
from reconciler.source.store import StoredRevision, Unusable
from reconciler.source.verify import VerifyResult
from reconciler.status.model import AgentStatus, ConditionType, QuarantinedRevision

log = logging.getLogger("flux.source")

C = ConditionType


# ---------------------------------------------------------------------- every source


def update_health(status: AgentStatus, health: TickHealth) -> None:
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


def update_ready(status: AgentStatus, current: Revision | None, extra: str = "") -> None:
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
    running = f"controlling with {short(current.sha)}"
    if healthy.status == "False":
        status.set_condition(C.READY, "False", "Unhealthy", f"{running}; {healthy.message}")
    elif healthy.status == "Unknown":
        status.set_condition(C.READY, "Unknown", "AwaitingTicks", f"{running}; no tick yet")
    else:
        status.set_condition(C.READY, "True", "Running", running + extra)


def file_source(status: AgentStatus, path: Path, sha: str, problems: list[Problem]) -> None:
    """A plain site file, valid (``problems`` holds its warnings), runs as ``sha``."""
    status.set_revisions(observed=sha, attempted=sha, applied=sha, last_known_good=sha)
    status.set_condition(C.SOURCE_READY, "True", "File", f"reading {path}")
    status.set_condition(C.VERIFIED, "True", "NotRequired", "a local file is not signature-checked")
    warn = [p for p in problems if p.severity != "error"]
    status.set_condition(
        C.VALIDATED,
        "True",
        "Valid",
        f"{path} is valid" + (f" ({len(warn)} warning(s))" if warn else ""),
    )
    status.set_condition(C.APPLIED, "True", "Applied", f"running {sha}")


# ---------------------------------------------------------------------- git: the whole picture


def refresh(
    status: AgentStatus,
    current: Revision | None,
    gate: HealthGate,
    lkg: Candidate | None,
    suspension: Suspension | None,
) -> None:
    """Revisions, the gate's counts and the Ready condition as they stand; flush."""
    status.set_revisions(applied=current.sha if current else None)
    ticks, _ = gate.length(gate.staged or lkg)
    status.set_health_gate(gate.passed if gate.staged else 0, ticks)
    extra = ""
    if gate.staged is not None:
        extra = f" (staged, {gate.passed}/{ticks} healthy ticks)"
    elif lkg is not None:
        extra = " (last-known-good)"
    if suspension is not None:
        extra += f"; applying new revisions is {suspension.describe()}"
    if status.condition(C.SOURCE_READY).status == "False":
        extra += "; the source is not ready"
    if status.condition(C.APPLIED).status == "False":
        extra += f"; the newest commit is not applied ({status.condition(C.APPLIED).reason})"
    update_ready(status, current, extra)
    status.flush()


# ---------------------------------------------------------------------- git: a fetch's outcome


def fetch_failed(status: AgentStatus, out: Outcome, running: str) -> None:
    assert out.fetch_error is not None
    status.record_fetch(out.at, ok=False)
    err = out.fetch_error
    status.set_condition(C.SOURCE_READY, "False", err.reason, f"{err.message}; {running}")


def fetched(status: AgentStatus, at: datetime, sha: str, where: str) -> None:
    status.record_fetch(at, ok=True)
    status.set_revisions(observed=sha)
    status.set_condition(C.SOURCE_READY, "True", "Fetched", f"{where} is at {short(sha)}")


def waits_suspended(
    status: AgentStatus, sha: str, suspension: Suspension | None, running: str
) -> None:
    status.set_condition(
        C.APPLIED,
        "False",
        "Suspended",
        f"{short(sha)} waits: applying new revisions is "
        f"{suspension.describe() if suspension else 'suspended'}; {running}",
    )


def checks(status: AgentStatus, out: Outcome, site_path: str, running: str) -> bool:
    """The Verified and Validated conditions for a checked commit; True when it is refused
    (the Applied condition then says why)."""
    assert out.sha is not None and out.verify is not None
    sha, check = out.sha, out.verify
    status.set_condition(C.VERIFIED, "True" if check.ok else "False", check.reason, check.message)
    if not check.ok:
        _refused(status, "VerificationFailed", f"{short(sha)} refused: {check.reason}; {running}")
        _not_validated(status, sha, "its signature was refused")
        return True
    if out.moved is not None:
        log_event(log, "rollback_refused", sha=sha, in_control=out.in_control)
        _not_validated(status, sha, "the move to it was refused")
        _refused(status, "RollbackRefused", f"{out.moved}; {running}")
        return True
    if out.missing:
        status.set_condition(
            C.VALIDATED,
            "False",
            "SiteFileMissing",
            f"commit {short(sha)} has no {site_path}: a commit that deletes "
            "the site's desired state is refused",
        )
        _refused(status, "ValidationFailed", f"{short(sha)} refused: site file missing; {running}")
        return True
    return _validated(status, out, site_path, running)


def _validated(status: AgentStatus, out: Outcome, site_path: str, running: str) -> bool:
    validation = out.validation
    assert validation is not None and out.sha is not None
    sha = out.sha
    if validation.ok and out.refused is None:
        warn = f" ({len(validation.warnings)} warning(s))" if validation.warnings else ""
        status.set_condition(
            C.VALIDATED, "True", "Valid", f"{site_path} at {short(sha)} is valid{warn}"
        )
        return False
    if out.refused is not None:
        reason, message = out.refused
    else:
        reason, message = "Invalid", validation.message()
    status.set_condition(C.VALIDATED, "False", reason, message)
    count = max(1, len(validation.errors))
    _refused(
        status,
        "ValidationFailed",
        f"{short(sha)} refused: {count} error(s) in {site_path}; {running}",
    )
    return True


def _not_validated(status: AgentStatus, sha: str, because: str) -> None:
    status.set_condition(
        C.VALIDATED, "Unknown", "NotChecked", f"{short(sha)} was not validated: {because}"
    )


def _refused(status: AgentStatus, reason: str, message: str) -> None:
    status.set_condition(C.APPLIED, "False", reason, message)


def head_is_lkg(status: AgentStatus, sha: str) -> None:
    status.set_condition(C.APPLIED, "True", "Applied", f"{short(sha)} is the last-known-good")


def head_quarantined(
    status: AgentStatus, entry: QuarantinedRevision, in_control: str | None
) -> None:
    status.set_condition(
        C.APPLIED,
        "False",
        "Quarantined",
        f"{short(entry.sha)} failed the health gate ({entry.message}); it is not "
        f"retried until a newer commit; control continues on {short(in_control)}",
    )


# ---------------------------------------------------------------------- git: the gate


def gate_message(gate: HealthGate) -> str:
    """Where the staged revision's gate stands."""
    staged = gate.staged
    assert staged is not None
    ticks, source = gate.length(staged)
    errors = ""
    if gate.read_errors:
        errors = (
            f"; {gate.read_errors} of {tolerated_read_errors(ticks)} tolerated read error(s) so far"
        )
    note = f"; {staged.note}" if staged.note else ""
    return (
        f"{short(staged.revision.sha)} staged; {gate.passed}/{ticks} healthy ticks before "
        f"it becomes last-known-good (the gate is {ticks} ticks: {source}){errors}{note}"
    )


def gate_pending(status: AgentStatus, gate: HealthGate) -> None:
    status.set_condition(C.APPLIED, "Unknown", "HealthGatePending", gate_message(gate))


def died_in_gate(status: AgentStatus, sha: str, stopped: int, lkg: str | None) -> None:
    status.set_condition(
        C.APPLIED,
        "False",
        "DiedInHealthGate",
        f"{short(sha)} quarantined: the agent stopped {stopped} times during its "
        f"health gate; control stays on {short(lkg)} until a newer commit",
    )


def promoted(status: AgentStatus, sha: str, passed: int, note: str) -> None:
    status.set_condition(
        C.APPLIED,
        "True",
        "Applied",
        f"{short(sha)} passed the health gate ({passed} healthy ticks) and is the "
        f"last-known-good{note}",
    )


def gate_restarts(status: AgentStatus, sha: str, why: str) -> None:
    status.set_condition(
        C.APPLIED,
        "Unknown",
        "HealthGateFailing",
        f"{short(sha)} failed its health gate ({why}); there is no last-known-good "
        "to revert to, so it stays in control and the gate starts again",
    )


def reverted(status: AgentStatus, sha: str, lkg: str, why: str) -> None:
    status.set_condition(
        C.APPLIED,
        "False",
        "HealthCheckFailed",
        f"{short(sha)} reverted to {short(lkg)}: it failed its health gate ({why}); "
        "quarantined until a newer commit",
    )


# ---------------------------------------------------------------------- git: the stored revision


def lkg_unusable(status: AgentStatus, why: Unusable) -> None:
    status.set_condition(C.APPLIED, why.status, why.reason, why.message)


def lkg_verified(status: AgentStatus, stored: StoredRevision, check: VerifyResult) -> None:
    """The persisted last-known-good's verification at start; when it failed, it is not
    run and the Applied condition says so."""
    status.set_condition(
        C.VERIFIED,
        "True" if check.ok else "False",
        check.reason,
        f"the persisted last-known-good: {check.message}",
    )
    if check.ok:
        return
    log_event(
        log, "last_known_good_refused", level=logging.ERROR, sha=stored.sha, reason=check.reason
    )
    status.set_condition(
        C.APPLIED,
        "False",
        "LastKnownGoodUnverified",
        f"the persisted last-known-good {short(stored.sha)} is not run "
        f"({check.reason}); waiting for a verified commit, and meanwhile the "
        "battery is not commanded: its heartbeat timeout holds it at 0 kW",
    )


def running_lkg(status: AgentStatus, stored: StoredRevision) -> None:
    status.set_revisions(last_known_good=stored.sha, applied=stored.sha)
    status.set_condition(
        C.APPLIED,
        "True",
        "LastKnownGood",
        f"running {short(stored.sha)} from the persisted last-known-good (promoted "
        f"{stored.promoted_at.isoformat(timespec='seconds')})",
    )
