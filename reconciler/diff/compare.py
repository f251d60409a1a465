"""Each category's comparison of desired (a :class:`Desired`) with observed (an
:class:`Observed`), and the assembly of a :class:`Report` with the site's ignore rules."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime, timedelta

from reconciler.config.model import Site
from reconciler.control.core import decide
from reconciler.control.schedule import active_entries, winner
from reconciler.control.types import (
    BatteryReading,
    ControlState,
    Decision,
    Observation,
    Signals,
)
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
from reconciler.diff.observed import Breaches, DecisionRow, Observed
from reconciler.diff.tolerances import limit_tolerances
from reconciler.source.validate import validate_text
from reconciler.status.model import Condition, ConditionType, MarketFeedStatus
from reconciler.status.record import StatusRecord

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
    applied = obs.status.revisions.applied if obs.status is not None else None
    if applied:
        return applied
    return obs.in_control[0] if obs.in_control else None


def _condition(status: StatusRecord, kind: ConditionType) -> Condition | None:
    return next((c for c in status.conditions if c.type == kind), None)


def _refused(desired: Desired, status: StatusRecord) -> str | None:
    """Why the desired commit was refused (quarantined, suspended, not verified or not
    valid), from the agent's own status; None when it was not."""
    want = desired.revision
    for q in status.quarantined:
        if q.sha == want:
            why = q.message if q.message.startswith(q.reason) else f"{q.reason}: {q.message}"
            return (
                f"{short(want)} failed the health gate and is quarantined ({why}); it is not "
                "retried until a newer commit arrives"
            )
    if status.suspended:
        return f"applying is suspended: {status.suspended_reason or 'by an operator'}"
    if status.revisions.attempted == want:
        for kind in (ConditionType.VERIFIED, ConditionType.VALIDATED):
            cond = _condition(status, kind)
            if cond is not None and cond.status == "False":
                return (
                    f"{short(want)} was refused: {kind} {cond.reason}: "
                    + (cond.message.splitlines() or [""])[0]
                )
    return None


def _why_not_applied(desired: Desired, status: StatusRecord) -> str:
    """Why the agent is not running the desired commit, from its own status."""
    refused = _refused(desired, status)
    if refused is not None:
        return refused
    want = desired.revision
    if status.revisions.observed != want:
        ready = _condition(status, ConditionType.SOURCE_READY)
        fetch = status.last_successful_fetch_at
        detail = ""
        if ready is not None and ready.status == "False":
            detail = f" (SourceReady {ready.reason}: {ready.message})"
        return (
            f"the agent has not fetched {short(want)} yet; last successful fetch "
            f"{_when(fetch) if fetch else 'never'}{detail}"
        )
    return "the agent saw it but runs another revision; see `flux agent status` on site"


def _why_behind(desired: Desired, obs: Observed) -> str:
    if obs.status is not None:
        return _why_not_applied(desired, obs.status)
    if obs.status_invalid:
        return "its status cannot be read (see agent_status)"
    return "no status reported"


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
    status = obs.status
    if applied in (want, desired.file_sha):
        if status is None:
            return []
        staged, lkg = status.revisions.staged, status.revisions.last_known_good
        if staged == applied and lkg != applied:
            return [
                Drift(
                    "revision",
                    "staged",
                    f"{short(want)} trusted",
                    f"{short(applied)} staged",
                    f"in the health gate: {status.health_gate_passed}/"
                    f"{status.health_gate_required} healthy ticks so far",
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
            reason = "the agent is behind: " + _why_behind(desired, obs)
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


@dataclass(frozen=True)
class _Reference:
    """The setpoint the battery is held to (kW, + discharge), and how a line shows it."""

    kw: float
    text: str


def operating_drifts(
    desired: Desired, obs: Observed, revision_differs: bool
) -> tuple[list[Drift], list[str]]:
    """The schedule's winner and implied setpoint on the latest readings, against the
    battery's reported power and the agent's effective mode."""
    site = desired.site
    battery = obs.battery
    if battery is None:
        return [], ["operating point: no battery reading to compare"]
    at = max([battery.at, *(m.at for m in obs.meters.values())])
    observation = Observation(battery=battery, meters=obs.meters)
    # The battery's own power as the last target: what the modes add to (import avoidance
    # cancels site power on top of it), as the loop would on a battery that tracks.
    state = ControlState(last_target_kw=battery.target_power_kw)
    want = decide(site, at, observation, obs.signals or Signals(), state)
    if want.safe_stop:
        return [], [f"operating point: cannot evaluate the schedule ({want.reason})"]
    drifts: list[Drift] = []
    notes: list[str] = []
    reference = _schedule_reference(site, at, want)
    decision = obs.decision
    desired_mode = want.winner or "idle"
    if decision is not None and decision.safe_stop:
        drifts.append(
            Drift(
                "operating",
                "mode",
                desired_mode,
                "safe stop",
                f"the agent went safe: {decision.reason}",
            )
        )
    elif decision is not None and (decision.winner or "idle") != desired_mode:
        if _needs_signals_not_recorded(site, at, obs, decision):
            # The agent's market-driven setpoint cannot be re-derived here; the battery is
            # still held to it.
            notes.append(
                f"operating point: the agent runs {decision.winner}, which needs market "
                "signals the diff does not have; its own setpoint is the reference"
            )
            reference = _Reference(
                decision.target_kw, f"{kw(decision.target_kw)} (the agent's: {decision.reason})"
            )
        else:
            why = (
                "the agent runs another revision (see revision)"
                if revision_differs
                else f"the agent decided differently ({decision.reason})"
            )
            drifts.append(Drift("operating", "mode", desired_mode, decision.winner or "idle", why))
    if site.control.shadow:
        notes.append("operating point: shadow mode, the agent does not command the battery")
        return drifts, notes
    if abs(reference.kw - battery.target_power_kw) > power_tolerance_kw(site):
        drifts.append(_setpoint_drift(site, obs, battery, reference, revision_differs))
    return drifts, notes


def _schedule_reference(site: Site, at: datetime, want: Decision) -> _Reference:
    """The schedule's setpoint, saying so when the selected entry proposes nothing."""
    scheduled = winner(site, at)
    planned = scheduled.label if scheduled is not None else "idle"
    text = f"{kw(want.target_kw)} ({want.reason})"
    if planned != (want.winner or "idle"):
        text += f"; {planned} is selected but proposes nothing"
    return _Reference(want.target_kw, text)


def _needs_signals_not_recorded(
    site: Site, at: datetime, obs: Observed, decision: DecisionRow
) -> bool:
    """The agent's winner proposes from market signals the diff does not have: none were
    recorded, or it is Axle's schedule (never recorded)."""
    unknowable = NOT_RECORDED_MODES if obs.signals is not None else SIGNAL_MODES
    modes = {e.label: e.entry.mode for e in active_entries(site, at)}
    return modes.get(decision.winner or "", "") in unknowable


def _setpoint_drift(
    site: Site,
    obs: Observed,
    battery: BatteryReading,
    reference: _Reference,
    revision_differs: bool,
) -> Drift:
    """The battery away from the reference setpoint: the agent's part first, then the
    battery's own."""
    agent = _agent_cause(site, obs, battery, revision_differs)
    causes = ([agent] if agent else []) + _battery_causes(battery, obs.device_settings or {})
    return Drift(
        "operating",
        "setpoint",
        reference.text,
        f"{kw(battery.target_power_kw)} (SoE {kwh(battery.soe_kwh)})",
        "; ".join(causes) or "the battery does not do what the schedule implies",
    )


def _agent_cause(
    site: Site, obs: Observed, battery: BatteryReading, revision_differs: bool
) -> str | None:
    """What the agent did about the setpoint, from its latest decision."""
    decision = obs.decision
    if decision is None:
        return "is the agent running and commanding?" if obs.source == "live" else None
    if decision.safe_stop:
        return f"the agent holds 0 kW in safe stop ({decision.reason})"
    if abs(decision.target_kw - battery.target_power_kw) > power_tolerance_kw(site):
        # Checked first: a battery that does not follow winds the agent's own target up.
        return f"the battery is not following the agent's setpoint {kw(decision.target_kw)}"
    return f"the agent decided {kw(decision.target_kw)}" + (
        " on another revision" if revision_differs else f" ({decision.reason})"
    )


def _battery_causes(battery: BatteryReading, settings: dict[str, float]) -> list[str]:
    """Why the battery itself would not follow a setpoint."""
    causes: list[str] = []
    if battery.available_blocks == 0:
        causes.append("no inverter block available (tripped or in maintenance)")
    if settings.get("real_power_mode", 1.0) < 0.5:
        causes.append("the battery is not in direct real-power mode")
    if battery.command_source == 0:
        causes.append("command source 0: not under Modbus control")
    return causes


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


def status_drifts(obs: Observed) -> list[Drift]:
    """Fields of the agent's status this version of Flux does not know, or cannot read."""
    unknown, invalid = obs.status_unknown, obs.status_invalid
    if not unknown and not invalid:
        return []
    listed = list(invalid)
    if unknown:
        listed.append(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")
    observed = "; ".join(listed)
    if invalid:
        return [
            Drift(
                "telemetry",
                "agent_status",
                "a status this flux can read",
                observed,
                "the agent's status cannot be read, so its revisions, conditions and settings "
                "are not compared: an agent of another version, or a field renamed (compare "
                "`flux --version` with the agent's)",
            )
        ]
    return [
        Drift(
            "telemetry",
            "agent_status",
            "a status this flux can read",
            observed,
            "ignored: a newer agent (upgrade flux to compare them), or a field renamed",
            "warning",
        )
    ]


def _configured_markets(site: Site) -> list[str]:
    """The market feeds the site file has the agent run (Axle: its schedule and its
    delivery reports)."""
    names = [name for name in ("modo", "elexon", "axle") if getattr(site.markets, name)]
    if site.markets.axle is not None:
        names.append("axle-delivery")
    return names


def market_drifts(site: Site, obs: Observed) -> list[Drift]:
    """Market APIs the site file configures that the agent does not run, or that keep
    failing, from the agent's own status (nothing when its status has no market section:
    an agent from before the market clients)."""
    status = obs.status
    if status is None or "markets" not in status.model_fields_set:
        return []
    problems = status.market_problems
    if any(p.startswith("replay:") for p in problems):
        return []  # a demo or backtest-like run: the APIs are replaced on purpose
    feeds = {m.source: m for m in status.markets}
    drifts: list[Drift] = []
    for name in _configured_markets(site):
        feed = feeds.get(name)
        if feed is None:
            drifts.append(_market_not_running(name, problems))
        elif not feed.ok and feed.consecutive_failures > 0:
            drifts.append(_market_failing(name, feed))
    return drifts


def _market_not_running(name: str, problems: list[str]) -> Drift:
    base = name.split("-")[0]
    why = next((p for p in problems if p.startswith(f"{base}:")), None)
    return Drift(
        "telemetry",
        f"market:{name}",
        "called by the agent",
        "not running",
        why
        or "the agent's revision does not configure it (see revision), or the agent predates it",
    )


def _market_failing(name: str, feed: MarketFeedStatus) -> Drift:
    since = _when(feed.last_success_at) if feed.last_success_at else "the agent's start"
    return Drift(
        "telemetry",
        f"market:{name}",
        "answering",
        f"failing: {feed.consecutive_failures} call(s) in a row since {since}",
        feed.last_error or "no error recorded",
        "warning",
    )


def telemetry_drifts(site: Site, obs: Observed) -> list[Drift]:
    """Missing minutes per device, devices that cannot be read, market APIs that fail,
    and a silent agent."""
    drifts: list[Drift] = [*status_drifts(obs), *market_drifts(site, obs)]
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
    ready = _condition(obs.status, ConditionType.READY) if obs.status is not None else None
    grid = obs.meters.get(desired.site.grid_meter_name)
    mode: str | None = None
    if obs.decision is not None:
        mode = "safe stop" if obs.decision.safe_stop else (obs.decision.winner or "idle")
    return Summary(
        applied=applied_revision(obs),
        desired=desired.revision,
        ready=f"{ready.status} ({ready.reason})" if ready is not None else None,
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
