"""Helpers for the control tests: small sites built from dicts, contexts, observations."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.config.model import Site
from reconciler.control.context import ModeContext
from reconciler.control.core import contexts
from reconciler.control.guard import Fresh
from reconciler.control.periods import SettlementPeriod
from reconciler.control.types import (
    BatteryReading,
    ControlState,
    MeterReading,
    Observation,
    PeriodValue,
    Signals,
)

#: A 1,000 kWh / 500 kW battery with round limits; efficiency 0.8 keeps sums exact.
BASE: dict[str, Any] = {
    "site": {"id": "test", "name": "Test site", "timezone": "Europe/London"},
    "devices": {
        "battery": {
            "profile": "tesla-powerpack",
            "host": "127.0.0.1",
            "nameplate_power_kw": 500,
            "nameplate_energy_kwh": 1000,
        },
        "meters": {"grid": {"role": "grid", "profile": "acuvim-ii", "host": "127.0.0.1"}},
    },
    "limits": {
        "battery_charge_kw": 400,
        "battery_discharge_kw": 400,
        "soe_min": 50,
        "soe_max": 950,
        "site_import_kw": 200,
        "site_export_kw": 300,
        "charge_efficiency": 0.8,
        "max_reading_age_s": 12,
    },
}


def make_site(schedule: list[dict[str, Any]] | None = None, **sections: Any) -> Site:
    """BASE with ``schedule`` and any top-level sections replaced (limits are merged)."""
    data = copy.deepcopy(BASE)
    data["schedule"] = schedule or []
    for key, value in sections.items():
        if key == "limits":
            data["limits"].update(value)
        else:
            data[key] = value
    return Site.model_validate(data)


def utc(*args: int) -> datetime:
    """A UTC instant; in January UK local time equals UTC."""
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def ctx_for(
    site: Site,
    at: datetime,
    *,
    soe: float,
    site_kw: float,
    last: float = 0.0,
    signals: Signals | None = None,
) -> ModeContext:
    """The context of the single active entry of ``site`` at ``at``."""
    found = contexts(
        # the battery at rest at its last target
        site,
        at,
        Fresh(soe, site_kw, last),
        signals or Signals(),
        ControlState(last_target_kw=last),
    )
    assert len(found) == 1, f"expected one active entry, got {[c.entry.label for c in found]}"
    return found[0]


def live(period: SettlementPeriod, price: float, volume: float) -> Signals:
    return Signals(PeriodValue(period, price), PeriodValue(period, volume))


def observe(at: datetime, soe: float, site_kw: float, *, age_s: float = 0.0) -> Observation:
    read_at = at - timedelta(seconds=age_s)
    return Observation(
        battery=BatteryReading(read_at, soe, 0.0), meters={"grid": MeterReading(read_at, site_kw)}
    )
