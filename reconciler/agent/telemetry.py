"""The agent's TelemetryReady condition: is what it records getting to the database?

Read from the outbox (pending rows: a kept count; the oldest pending record: one index
step) and the uploader's state, so it costs the same at any backlog. Updated after each
upload round and when the uploader task goes down or comes back.

| status  | reason          | when                                                         |
|---------|-----------------|--------------------------------------------------------------|
| True    | NoDatabase      | no database URL: everything stays in the outbox, by design    |
| Unknown | Pending         | a database, no upload finished yet                           |
| False   | UploaderDown    | the uploader task failed and waits to be restarted           |
| False   | UploadFailing   | the last upload failed (the message has the error)           |
| False   | OutboxBacklog   | more rows wait than the site's telemetry.outbox_alert_rows   |
| True    | Uploading       | the last upload got through and the backlog is under the mark |

TelemetryReady does not count towards Ready (see ConditionType).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler.agent.ports import Store, Upload
from reconciler.config.model import WEEKDAYS, Site
from reconciler.logs import log_event
from reconciler.status.model import AgentStatus, ConditionStatus, TelemetryStats
from reconciler.status.model import ConditionType as C
from reconciler.telemetry.database import describe
from reconciler.telemetry.uploader import UploaderState, UploadResult

log = logging.getLogger("flux.telemetry")


@dataclass(frozen=True)
class Verdict:
    status: ConditionStatus
    reason: str
    message: str


def site_identity(site: Site) -> dict[str, Any]:
    """What the database's sites and devices tables say of a site (recorded with the
    revision that takes control): name, timezone, limits kW, nameplate kWh, and each
    device's kind and role (a meter's role; null for the battery)."""
    battery = site.devices.battery
    devices: list[dict[str, Any]] = [{"device": battery.name, "kind": "bess", "role": None}]
    devices += [
        {"device": name, "kind": "meter", "role": meter.role}
        for name, meter in site.devices.meters.items()
    ]
    return {
        "name": site.site.name,
        "timezone": site.site.timezone,
        "site_import_kw": site.limits.site_import_kw,
        "site_export_kw": site.limits.site_export_kw,
        "nameplate_energy_kwh": battery.nameplate_energy_kwh,
        "devices": devices,
        "red_bands": red_bands(site),
    }


def red_bands(site: Site) -> list[dict[str, Any]]:
    """The windows of the site's DUoS red-band rates, as the database's ``api.red_bands``
    reads them: ISO weekdays (1 Monday .. 7 Sunday) the window may start on, optional
    local dates (inclusive), and local start and end HH:MM (end <= start runs past
    midnight; days and dates apply to the day it starts, as in the site file)."""
    out: list[dict[str, Any]] = []
    for rate in site.rates:
        if not rate.is_red_band:
            continue
        for w in rate.windows:
            out.append(
                {
                    "days": _iso_days(w.days),
                    "from": w.dates.from_.isoformat() if w.dates else None,
                    "to": w.dates.to.isoformat() if w.dates else None,
                    "start": w.start,
                    "end": w.end,
                }
            )
    return out


def _iso_days(days: str | Sequence[str]) -> list[int]:
    if days == "all":
        return [1, 2, 3, 4, 5, 6, 7]
    if days == "weekdays":
        return [1, 2, 3, 4, 5]
    if days == "weekends":
        return [6, 7]
    return sorted({WEEKDAYS.index(d) + 1 for d in days})


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def judge(stats: TelemetryStats, *, uploader_down: str | None = None) -> Verdict:
    """TelemetryReady from the numbers (see the table in the module doc)."""
    waiting = f"{stats.pending_rows} rows waiting in the outbox"
    if stats.oldest_pending_age_s is not None and stats.pending_rows:
        waiting += f", the oldest {_age(stats.oldest_pending_age_s)} old"
    if stats.database is None:
        return Verdict(
            "True",
            "NoDatabase",
            f"no database configured: records are kept in the outbox ({waiting})",
        )
    if uploader_down is not None:
        return Verdict("False", "UploaderDown", f"{uploader_down}; {waiting}")
    if stats.consecutive_failures:
        return Verdict(
            "False",
            "UploadFailing",
            f"uploads to {stats.database} failing ({stats.consecutive_failures} in a row): "
            f"{stats.last_error}; {waiting}",
        )
    if stats.alert_rows is not None and stats.pending_rows > stats.alert_rows:
        return Verdict(
            "False",
            "OutboxBacklog",
            f"{waiting}: more than telemetry.outbox_alert_rows ({stats.alert_rows}); the "
            "database is behind",
        )
    if stats.last_success_at is None:
        return Verdict("Unknown", "Pending", f"no upload to {stats.database} yet; {waiting}")
    return Verdict("True", "Uploading", f"uploading to {stats.database}; {waiting}")


class TelemetryReporter:
    """Keeps TelemetryReady and the telemetry numbers of an agent's status current."""

    def __init__(self, status: AgentStatus, store: Store, uploader: Upload) -> None:
        self.status = status
        self.store = store
        self.uploader = uploader
        self.alert_rows: int | None = None
        self.uploader_down: str | None = None

    def stats(self, now: datetime) -> TelemetryStats:
        """``now`` on the agent's clock (the records' instants are on it too)."""
        state = self.uploader.state
        oldest = self.store.oldest_at()
        url = self.uploader.database_url
        return TelemetryStats(
            database=describe(url) if url else None,
            pending_rows=self.store.pending(),
            oldest_pending_age_s=(
                None if oldest is None else max(0.0, (now - oldest).total_seconds())
            ),
            alert_rows=self.alert_rows,
            quarantined_rows=self.store.quarantined_count(),
            consecutive_failures=state.consecutive_failures,
            upload_failures_total=state.failures_total,
            sent_total=state.sent_total,
            last_success_at=state.last_success_at,
            last_error=state.last_error,
            last_error_at=state.last_error_at,
        )

    def update(self, now: datetime) -> Verdict:
        stats = self.stats(now)
        verdict = judge(stats, uploader_down=self.uploader_down)
        self.status.set_telemetry(stats)
        before = self.status.condition(C.TELEMETRY_READY).reason
        self.status.set_condition(
            C.TELEMETRY_READY, verdict.status, verdict.reason, verdict.message
        )
        if verdict.reason == "OutboxBacklog" and before != "OutboxBacklog":
            log_event(
                log,
                "outbox_backlog",
                level=logging.WARNING,
                pending=stats.pending_rows,
                alert_rows=stats.alert_rows,
                oldest_age_s=stats.oldest_pending_age_s,
            )
        elif before == "OutboxBacklog" and verdict.reason != "OutboxBacklog":
            log_event(log, "outbox_backlog_cleared", pending=stats.pending_rows)
        return verdict


class KeepInStore:
    """The uploader of an agent with no database (the embedded default): nothing is
    uploaded, everything stays in the store for `flux db upload` or a later start."""

    database_url: str | None = None

    def __init__(self, store: Store) -> None:
        self.store = store
        self.state = UploaderState()

    async def run(
        self,
        stop_event: asyncio.Event,
        *,
        interval_s: float = 10.0,
        on_result: Callable[[UploadResult], object] | None = None,
    ) -> None:
        await stop_event.wait()

    async def drain_async(
        self, *, stop: asyncio.Event | None = None, budget_s: float | None = None
    ) -> UploadResult:
        return UploadResult(remaining=self.store.pending())

    def close(self) -> None:
        """Nothing to close."""
