"""Each category's comparison of desired (a :class:`Desired`) with observed (an
:class:`Observed`), and the assembly of a :class:`Report` with the site's ignore rules."""

from __future__ import annotations

import fnmatch
from datetime import datetime, timedelta
from typing import Any

from reconciler.config.model import Site
from reconciler.control.core import decide
from reconciler.control.schedule import active_entries, winner
from reconciler.control.types import ControlState, Observation, Signals
from reconciler.diff.desired import Desired
from reconciler.diff.model import Drift, Ignored, Report, Severity, Summary
from reconciler.diff.normalise import (
    desired_settings,
    kw,
    kwh,
    power_tolerance_kw,
    same_setting,
    setting,
)
from reconciler.diff.observed import Breaches, Observed
from reconciler.diff.tolerances import limit_tolerances
from reconciler.source.validate import validate_text

#: Modes whose proposal depends on market signals. The imbalance price and NIV the agent
#: recorded let the diff re-derive all but Axle's (the schedule is not recorded); without
#: them none can be. When the agent's winner cannot be re-derived, its own setpoint is the
#: reference the battery is held to, and a different winner is not called drift.
SIGNAL_MODES = frozenset(
    {
        "niv_chase",
        "axle",
        "import_avoidance_when_short",
        "dynamic_peak_discharge",
        "dynamic_peak_approach",
    }
)
NOT_RECORDED_MODES = frozenset({"axle"})


def short(sha: str | None) -> str:
    if sha is None:
        return "none"
    return sha if sha.startswith("file:") else sha[:12]


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%SZ") if at is not None else "?"


# --------------------------------------------------------------------------- revision


def applied_revision(obs: Observed) -> str | None:
    revisions = (obs.status or {}).get("revisions") or {}
    applied = revisions.get("applied")
    if applied:
        return str(applied)
    return obs.in_control[0] if obs.in_control else None


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in status.get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def _why_not_applied(desired: Desired, status: dict[str, Any]) -> str:
    """Why the agent is not running the desired commit, from its own status."""
    want = desired.revision
    revisions = status.get("revisions") or {}
    for q in status.get("quarantined") or []:
        if q.get("sha") == want:
            reason, message = str(q.get("reason", "?")), str(q.get("message", ""))
            why = message if message.startswith(reason) else f"{reason}: {message}"
            return (
                f"{short(want)} failed the health gate and is quarantined ({why}); it is not "
                "retried until a newer commit arrives"
            )
    if status.get("suspended"):
        return f"applying is suspended: {status.get('suspended_reason') or 'by an operator'}"
    if revisions.get("attempted") == want:
        for kind in ("Verified", "Validated"):
            cond = _condition(status, kind)
            if cond is not None and cond.get("status") == "False":
                return (
                    f"{short(want)} was refused: {kind} {cond.get('reason')}: "
                    + str(cond.get("message", "")).splitlines()[0]
                )
    if revisions.get("observed") != want:
        ready = _condition(status, "SourceReady")
        fetch = status.get("last_successful_fetch_at")
        detail = ""
        if ready is not None and ready.get("status") == "False":
            detail = f" (SourceReady {ready.get('reason')}: {ready.get('message', '')})"
        return (
            f"the agent has not fetched {short(want)} yet; last successful fetch "
            f"{fetch or 'never'}{detail}"
        )
    return "the agent saw it but runs another revision; see `flux agent status` on site"


def revision_drifts(desired: Desired, obs: Observed) -> list[Drift]:
    """The revision the agent applied against the ref's (or the file's) revision."""
    want = desired.revision
    applied = applied_revision(obs)
    if applied is None:
        return [
            Drift(
                "revision",
                "applied",
                short(want),
                "none reported",
                "the agent never reported a revision: not running, or not uploading",
            )
        ]
    status = obs.status or {}
    revisions = status.get("revisions") or {}
    if applied in (want, desired.file_sha):
        staged, lkg = revisions.get("staged"), revisions.get("last_known_good")
        if staged == applied and lkg != applied:
            return [
                Drift(
                    "revision",
                    "staged",
                    f"{short(want)} trusted",
                    f"{short(applied)} staged",
                    f"in the health gate: {status.get('health_gate_passed', 0)}/"
                    f"{status.get('health_gate_required', 0)} healthy ticks so far",
                    "warning",
                )
            ]
        return []
    if applied.startswith("file:"):
        reason = "the agent runs a local site file whose content differs from the desired one"
    else:
        content = desired.content_at(applied)
        if content is not None and content == desired.data:
            return []  # another commit, same site file: the same desired state
        ancestor = desired.is_ancestor(applied)
        if content is None and desired.repo is not None:
            reason = f"{short(applied)} is not in this repository: fetch, or another repo?"
        elif ancestor is False:
            reason = f"{short(applied)} is not in the history of {desired.ref} (another branch?)"
        else:
            reason = "the agent is behind: "
            reason += _why_not_applied(desired, status) if status else "no status reported"
    return [Drift("revision", "applied", short(want), short(applied), reason)]


# --------------------------------------------------------------------------- device


def applied_site(desired: Desired, obs: Observed) -> Site | None:
    """The site of the revision the agent runs, if this repository has it and it is valid."""
    sha = applied_revision(obs)
    data = desired.content_at(sha) if sha and not sha.startswith("file:") else None
    if data is None:
        return None
    return validate_text(data, desired.rel_path).site


def device_drifts(
    site: Site, obs: Observed, applied: Site | None = None, *, behind: bool = False
) -> list[Drift]:
    """The battery's writable settings read back against the site file. ``applied`` is
    the site of the revision the agent runs, when it is another one (``behind``): a
    setting that matches it is a revision not applied yet, not a change behind the agent's
    back."""
    if site.control.shadow or (obs.source == "database" and obs.status is None):
        return []  # not commanded, or no report at all (the revision line says so)
    if obs.device_settings is None:
        if site.devices.battery.name in obs.errors:
            return []  # the battery did not answer at all: a telemetry line says so
        why = obs.settings_error or "the agent reported no device settings read-back"
        return [Drift("device", "read_back", "settings read back", "unknown", why, "warning")]
    drifts: list[Drift] = []
    for name, want in desired_settings(site).items():
        got = obs.device_settings.get(name)
        if got is None:
            continue  # the profile has no such register
        if same_setting(name, want, got):
            continue
        running = desired_settings(applied).get(name) if applied is not None else None
        if running is not None and same_setting(name, running, got):
            reason = "the desired revision is not applied yet (see revision)"
        elif behind and applied is None:
            reason = "the desired revision is not applied yet (see revision), or it was changed "
            reason += "on the battery"
        elif name == "real_power_mode":
            reason = (
                "the battery left direct mode (local control, or its controller restarted): "
                "it ignores the agent's setpoints until the agent commands again"
            )
        elif name == "heartbeat_timeout":
            reason = "changed on the battery; the agent writes it only after its first command"
        else:
            reason = (
                "changed on the battery behind the agent's back; the agent writes it at start:"
                " restart the agent to write it again"
            )
        severity: Severity = "warning" if name.startswith("ramp_") else "critical"
        drifts.append(
            Drift("device", name, setting(name, want), setting(name, got), reason, severity)
        )
    return drifts


# --------------------------------------------------------------------------- operating


def operating_drifts(
    desired: Desired, obs: Observed, revision_differs: bool
) -> tuple[list[Drift], list[str]]:
    """The schedule's winner and implied setpoint on the latest readings, against the
    battery's reported power and the agent's effective mode."""
    site = desired.site
    notes: list[str] = []
    battery = obs.battery
    if battery is None:
        return [], ["operating point: no battery reading to compare"]
    at = max([battery.at, *(m.at for m in obs.meters.values())])
    observation = Observation(battery=battery, meters=obs.meters)
    # The battery's own power as the last target: what the modes add to (import avoidance
    # cancels site power on top of it), as the loop would on a battery that tracks.
    state = ControlState(last_target_kw=battery.target_power_kw)
    signals = obs.signals or Signals()
    want = decide(site, at, observation, signals, state)
    unknowable = NOT_RECORDED_MODES if obs.signals is not None else SIGNAL_MODES
    scheduled = winner(site, at)
    planned = scheduled.label if scheduled is not None else "idle"
    soe = f"SoE {kwh(battery.soe_kwh)}"
    if want.safe_stop:
        return [], [f"operating point: cannot evaluate the schedule ({want.reason})"]
    drifts: list[Drift] = []
    decision = obs.decision
    tol = power_tolerance_kw(site)
    desired_mode = want.winner or "idle"
    target_kw = want.target_kw
    target = f"{kw(want.target_kw)} ({want.reason})" + (
        f"; {planned} is selected but proposes nothing" if planned != desired_mode else ""
    )
    if decision is not None:
        if decision.safe_stop:
            drifts.append(
                Drift(
                    "operating",
                    "mode",
                    desired_mode,
                    "safe stop",
                    f"the agent went safe: {decision.reason}",
                )
            )
        elif (decision.winner or "idle") != desired_mode:
            modes = {e.label: e.entry.mode for e in active_entries(site, at)}
            if modes.get(decision.winner or "", "") in unknowable:
                # The agent's market-driven setpoint cannot be re-derived here; the battery
                # is still held to it.
                notes.append(
                    f"operating point: the agent runs {decision.winner}, which needs market "
                    "signals the diff does not have; its own setpoint is the reference"
                )
                target_kw = decision.target_kw
                target = f"{kw(decision.target_kw)} (the agent's: {decision.reason})"
            else:
                why = (
                    "the agent runs another revision (see revision)"
                    if revision_differs
                    else f"the agent decided differently ({decision.reason})"
                )
                drifts.append(
                    Drift("operating", "mode", desired_mode, decision.winner or "idle", why)
                )
    if site.control.shadow:
        notes.append("operating point: shadow mode, the agent does not command the battery")
        return drifts, notes
    if abs(target_kw - battery.target_power_kw) <= tol:
        return drifts, notes
    settings = obs.device_settings or {}
    causes: list[str] = []
    if battery.available_blocks == 0:
        causes.append("no inverter block available (tripped or in maintenance)")
    if settings.get("real_power_mode", 1.0) < 0.5:
        causes.append("the battery is not in direct real-power mode")
    if battery.command_source == 0:
        causes.append("command source 0: not under Modbus control")
    if decision is not None and decision.safe_stop:
        causes.insert(0, f"the agent holds 0 kW in safe stop ({decision.reason})")
    elif decision is not None and abs(decision.target_kw - battery.target_power_kw) > tol:
        # Checked first: a battery that does not follow winds the agent's own target up.
        causes.insert(
            0, f"the battery is not following the agent's setpoint {kw(decision.target_kw)}"
        )
    elif decision is not None:
        causes.insert(
            0,
            f"the agent decided {kw(decision.target_kw)}"
            + (" on another revision" if revision_differs else f" ({decision.reason})"),
        )
    elif obs.source == "live":
        causes.insert(0, "is the agent running and commanding?")
    drifts.append(
        Drift(
            "operating",
            "setpoint",
            target,
            f"{kw(battery.target_power_kw)} ({soe})",
            "; ".join(causes) or "the battery does not do what the schedule implies",
        )
    )
    return drifts, notes


# --------------------------------------------------------------------------- limits


def _breach_reason(site: Site, kind: str, at: datetime | None) -> str:
    if kind in ("site_import", "site_export") and at is not None:
        mode = "import_avoidance" if kind == "site_import" else "export_avoidance"
        if not any(e.entry.mode == mode for e in active_entries(site, at)):
            return (
                f"no {mode} entry was active then: the envelope alone only stops the battery "
                "adding to it"
            )
    return {
        "site_import": "the battery could not cover the load (at its discharge limit, its SoE "
        "minimum, or not following)",
        "site_export": "the battery could not absorb the export (at its charge limit, full, or "
        "not following)",
        "soe_min": "discharged below the minimum: the battery was not under the agent's control"
        " or the reported SoE jumped",
        "soe_max": "charged above the maximum: the battery was not under the agent's control or "
        "the reported SoE jumped",
    }[kind]


def limits_drifts(site: Site, obs: Observed) -> list[Drift]:
    """Readings outside the site's import/export and SoE limits in the window."""
    lim = site.limits
    if obs.source == "live":
        tol = limit_tolerances(site)
        out = []
        grid = obs.meters.get(site.grid_meter_name)
        if grid is not None and grid.power_kw > lim.site_import_kw + tol.power_kw:
            out.append(("site_import", f"<= {kw(lim.site_import_kw)} import", kw(grid.power_kw)))
        if grid is not None and -grid.power_kw > lim.site_export_kw + tol.power_kw:
            out.append(("site_export", f"<= {kw(lim.site_export_kw)} export", kw(grid.power_kw)))
        soe = obs.battery.soe_kwh if obs.battery is not None else None
        if soe is not None and soe < site.soe_min_kwh - tol.energy_kwh:
            out.append(("soe_min", f">= {kwh(site.soe_min_kwh)}", kwh(soe)))
        if soe is not None and soe > site.soe_max_kwh + tol.energy_kwh:
            out.append(("soe_max", f"<= {kwh(site.soe_max_kwh)}", kwh(soe)))
        return [
            Drift("limits", f, d, f"now {o}", _breach_reason(site, f, obs.at)) for f, d, o in out
        ]
    stats = obs.limits
    if stats is None:
        return []
    rows: list[tuple[str, str, Breaches, int, str]] = [
        (
            "site_import",
            f"<= {kw(lim.site_import_kw)} import",
            stats.site_import,
            stats.grid_readings,
            "kW",
        ),
        (
            "site_export",
            f"<= {kw(lim.site_export_kw)} export",
            stats.site_export,
            stats.grid_readings,
            "kW",
        ),
        ("soe_min", f">= {kwh(site.soe_min_kwh)}", stats.soe_min, stats.soe_readings, "kWh"),
        ("soe_max", f"<= {kwh(site.soe_max_kwh)}", stats.soe_max, stats.soe_readings, "kWh"),
    ]
    drifts = []
    for name, want, b, total, unit in rows:
        if b.count == 0:
            continue
        worst = "?" if b.worst is None else f"{b.worst:.1f} {unit}"
        drifts.append(
            Drift(
                "limits",
                name,
                want,
                f"{b.count} of {total} readings outside, worst {worst} "
                f"({_when(b.first)} .. {_when(b.last)})",
                _breach_reason(site, name, b.first),
            )
        )
    return drifts


# --------------------------------------------------------------------------- telemetry


def silent_after_s(site: Site) -> float:
    """How long without any report before the agent counts as silent, s."""
    return max(3 * site.telemetry.record_interval_s, 180.0)


def market_drifts(site: Site, obs: Observed) -> list[Drift]:
    """Market APIs the site file configures that the agent does not run, or that keep
    failing, from the agent's own status (nothing when its status has no market section:
    an agent from before the market clients)."""
    status = obs.status
    if status is None or "markets" not in status:
        return []
    feeds = {str(m.get("source")): m for m in status.get("markets") or [] if isinstance(m, dict)}
    problems = [str(p) for p in status.get("market_problems") or []]
    if any(p.startswith("replay:") for p in problems):
        return []  # a demo or backtest-like run: the APIs are replaced on purpose
    configured = [name for name in ("modo", "elexon", "axle") if getattr(site.markets, name)]
    if site.markets.axle is not None:
        configured.append("axle-delivery")
    drifts: list[Drift] = []
    for name in configured:
        feed = feeds.get(name)
        field = f"market:{name}"
        if feed is None:
            base = name.split("-")[0]
            why = next((p for p in problems if p.startswith(f"{base}:")), None)
            drifts.append(
                Drift(
                    "telemetry",
                    field,
                    "called by the agent",
                    "not running",
                    why
                    or "the agent's revision does not configure it (see revision), or the "
                    "agent predates it",
                )
            )
        elif not feed.get("ok") and int(feed.get("consecutive_failures") or 0) > 0:
            since = feed.get("last_success_at") or "the agent's start"
            drifts.append(
                Drift(
                    "telemetry",
                    field,
                    "answering",
                    f"failing: {feed.get('consecutive_failures')} call(s) in a row since {since}",
                    str(feed.get("last_error") or "no error recorded"),
                    "warning",
                )
            )
    return drifts


def telemetry_drifts(site: Site, obs: Observed) -> list[Drift]:
    """Missing minutes per device, devices that cannot be read, market APIs that fail,
    and a silent agent."""
    drifts: list[Drift] = market_drifts(site, obs)
    if obs.source == "live":
        for name, err in sorted(obs.errors.items()):
            drifts.append(Drift("telemetry", name, "readable", "unreachable", err))
        return drifts
    if obs.last_seen is None:
        return [
            *drifts,
            Drift(
                "telemetry",
                "agent",
                f"reports every {site.telemetry.record_interval_s:g} s",
                "nothing in the database",
                "the agent never uploaded: not running, no --database-url, or uploads failing "
                "(`flux db status` on site)",
            ),
        ]
    silent = (obs.at - obs.last_seen).total_seconds()
    if silent > silent_after_s(site):
        drifts.append(
            Drift(
                "telemetry",
                "agent",
                f"reports every {site.telemetry.record_interval_s:g} s",
                f"last seen {_when(obs.last_seen)} ({silent / 60:.0f} min ago)",
                "the agent stopped reporting: down, or its uploads fail (the outbox keeps rows)",
            )
        )
    for gap in obs.gaps or []:
        drifts.append(
            Drift(
                "telemetry",
                gap.device,
                "a reading every minute",
                f"{gap.minutes} min missing in {gap.gaps} gap(s), longest {gap.longest} min, "
                f"first {_when(gap.first)}",
                "the device did not answer the agent then (or the agent was down)",
                "warning",
            )
        )
    return drifts


# --------------------------------------------------------------------------- the report


def apply_ignores(site: Site, drifts: list[Drift]) -> tuple[list[Drift], list[Ignored]]:
    """Split drifts into those shown and those an ignore rule of the site file accepts
    (rule ``field`` is a glob: ``*``, ``ramp_*``)."""
    shown: list[Drift] = []
    ignored: list[Ignored] = []
    for d in drifts:
        rule = next(
            (
                r
                for r in site.diff.ignore
                if r.category == d.category and fnmatch.fnmatchcase(d.field, r.field)
            ),
            None,
        )
        if rule is None:
            shown.append(d)
        else:
            ignored.append(Ignored(d, rule.reason))
    return shown, ignored


def summarise(desired: Desired, obs: Observed) -> Summary:
    status = obs.status or {}
    ready = _condition(status, "Ready")
    grid = obs.meters.get(desired.site.grid_meter_name)
    mode: str | None = None
    if obs.decision is not None:
        mode = "safe stop" if obs.decision.safe_stop else (obs.decision.winner or "idle")
    return Summary(
        applied=applied_revision(obs),
        desired=desired.revision,
        ready=(f"{ready.get('status')} ({ready.get('reason')})" if ready else None),
        mode=mode,
        soe_kwh=obs.battery.soe_kwh if obs.battery else None,
        site_power_kw=grid.power_kw if grid else None,
        last_seen=obs.last_seen,
    )


def diff_site(desired: Desired, obs: Observed, *, window: timedelta) -> Report:
    """Every category's drifts, with the site file's ignore rules applied."""
    site = desired.site
    report = Report(
        site=site.site.id,
        ref=desired.ref,
        at=obs.at,
        source=obs.source,
        window_s=window.total_seconds(),
    )
    drifts: list[Drift] = []
    if obs.source == "database" or obs.status is not None:
        revision = revision_drifts(desired, obs)
        drifts += revision
    else:
        revision = []
        why = f" ({obs.status_error})" if obs.status_error else ""
        report.notes.append(
            f"revision: not observable from the devices{why}; use --agent-url on site, "
            "or --database-url"
        )
    behind = any(d.field == "applied" for d in revision)
    drifts += device_drifts(
        site, obs, applied_site(desired, obs) if behind else None, behind=behind
    )
    operating, notes = operating_drifts(desired, obs, behind)
    drifts += operating
    report.notes += notes
    drifts += limits_drifts(site, obs)
    drifts += telemetry_drifts(site, obs)
    if obs.since is not None and obs.source == "database":
        span = (obs.at - obs.since).total_seconds()
        if span < window.total_seconds() - 1:
            report.notes.append(
                f"limits and telemetry: the site's first reading is {_when(obs.since)}; "
                f"checked {span / 3600:.1f} h, not the whole window"
            )
    report.drifts, report.ignored = apply_ignores(site, drifts)
    report.summary = summarise(desired, obs)
    return report
