"""What a diff is made of: drift lines, grouped by category, and the report around them.

Units in values: kW, kWh, kW/s, s, minutes. Every line is one difference that survived
normalisation (units, defaults, deadbands): equal things never become a line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Category = Literal["revision", "device", "operating", "limits", "telemetry"]
CATEGORIES: tuple[Category, ...] = ("revision", "device", "operating", "limits", "telemetry")
Severity = Literal["critical", "warning"]
Source = Literal["database", "live"]


@dataclass(frozen=True)
class Drift:
    """One difference between desired and observed, and its likely reason.

    ``field`` names the thing within the category (a register, a device, ``setpoint``...);
    ignore rules in the site file match on (category, field).
    """

    category: Category
    field: str
    desired: str
    observed: str
    reason: str
    severity: Severity = "critical"

    def as_json(self) -> dict[str, str]:
        return {
            "category": self.category,
            "field": self.field,
            "desired": self.desired,
            "observed": self.observed,
            "reason": self.reason,
            "severity": self.severity,
        }


@dataclass(frozen=True)
class Ignored:
    """A drift hidden by an ignore rule of the site file, and the rule's reason."""

    drift: Drift
    because: str


@dataclass
class Summary:
    """The headline figures of a site (``flux status`` shows one row of these)."""

    applied: str | None = None
    desired: str | None = None
    ready: str | None = None
    mode: str | None = None
    soe_kwh: float | None = None
    site_power_kw: float | None = None
    last_seen: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "desired": self.desired,
            "ready": self.ready,
            "mode": self.mode,
            "soe_kwh": self.soe_kwh,
            "site_power_kw": self.site_power_kw,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
        }


@dataclass
class Report:
    """The diff of one site: drifts shown, drifts ignored, and what was not checked."""

    site: str
    ref: str
    at: datetime
    source: Source
    window_s: float
    drifts: list[Drift] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: Summary = field(default_factory=Summary)

    @property
    def drifted(self) -> bool:
        return bool(self.drifts)

    def as_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "ref": self.ref,
            "at": self.at.isoformat(),
            "observed_from": self.source,
            "window_s": self.window_s,
            "drift": self.drifted,
            "drift_count": len(self.drifts),
            "ignored_count": len(self.ignored),
            "drifts": [d.as_json() for d in self.drifts],
            "ignored": [{**i.drift.as_json(), "ignored_because": i.because} for i in self.ignored],
            "notes": list(self.notes),
            "summary": self.summary.as_json(),
        }
