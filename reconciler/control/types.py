"""What the control core sees and what it decides. Plain, immutable data.

Units: kW, kWh, p/kWh, MWh (NIV). Signs (docs/domain.md): site power + import, battery power
+ discharge. Every instant is timezone-aware (UTC on the wire and in storage).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from reconciler.control.periods import SettlementPeriod
from reconciler.control.schedule import DayPlans

# --------------------------------------------------------------------------- observations


@dataclass(frozen=True)
class BatteryReading:
    """One read of the battery."""

    at: datetime
    soe_kwh: float
    target_power_kw: float
    available_blocks: int = 0
    command_source: int = 0


@dataclass(frozen=True)
class MeterReading:
    """One read of a power meter. ``power_kw`` is + import (into the site at that point)."""

    at: datetime
    power_kw: float
    frequency_hz: float = 0.0
    voltage_v: float = 0.0
    current_a: float = 0.0
    current_b: float = 0.0
    current_c: float = 0.0
    current_avg: float = 0.0
    power_a_kw: float = 0.0
    power_b_kw: float = 0.0
    power_c_kw: float = 0.0
    reactive_kvar: float = 0.0
    apparent_kva: float = 0.0
    power_factor: float = 0.0
    energy_import_kwh: float = 0.0
    energy_export_kwh: float = 0.0


@dataclass(frozen=True)
class FrequencyRecord:
    """One second of frequency response while the mode is active (the agent records one
    per second; see ``reconciler.agent.frequency``).

    ``at`` is the whole second (UTC) the sample fell in; ``frequency_hz`` the grid meter's
    reading; ``expected_kw`` the curve's response at it (kW, + discharge), None when the
    frequency was stale or frozen (no response was due); ``delivered_kw`` the battery's
    measured power (kW, + discharge); ``tolerance_kw`` how far from the expected response
    still counts as delivered; ``envelope_cut`` whether the hard envelope cut the
    contracted response that second."""

    at: datetime
    frequency_hz: float
    expected_kw: float | None
    delivered_kw: float
    tolerance_kw: float
    envelope_cut: bool = False

    @property
    def within(self) -> bool:
        """Delivered within tolerance of the expected response (a stale second is not)."""
        return (
            self.expected_kw is not None
            and abs(self.delivered_kw - self.expected_kw) <= self.tolerance_kw
        )


@dataclass(frozen=True)
class Observation:
    """The latest reading of every device, and the error of any that failed to read.

    A device is missing from ``meters`` (or ``battery`` is None) when it has never been
    read; ``errors`` names devices whose last read failed, with a human message.
    """

    battery: BatteryReading | None
    meters: Mapping[str, MeterReading] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    #: When the grid meter's frequency last changed value (None: the reading's own
    #: instant): a frequency that stops moving is frozen, whatever its reading's age.
    frequency_changed_at: datetime | None = None


# --------------------------------------------------------------------------- signals


@dataclass(frozen=True)
class PeriodValue:
    """A market value and the settlement period it belongs to."""

    period: SettlementPeriod
    value: float


AxleAction = Literal["charge_max", "discharge_max", "avoid_import", "avoid_export"]


@dataclass(frozen=True)
class AxleStep:
    """One step of an Axle Energy battery schedule."""

    start: datetime
    end: datetime
    action: AxleAction
    allow_deviation: bool = False


@dataclass(frozen=True)
class PlanStep:
    """One settlement period of a plan: the battery's power over it (kW, + discharge),
    the SoE it should end at (kWh) and the imbalance price it was planned on (p/kWh)."""

    start: datetime
    end: datetime
    battery_kw: float
    soe_end_kwh: float
    price: float


@dataclass(frozen=True)
class Plan:
    """A schedule for the battery made outside the tick from what was known at
    ``made_at`` (the `optimise` mode follows it). ``expected_value_gbp``: what the plan
    expects to earn over its horizon at its forecasts, £."""

    made_at: datetime
    steps: tuple[PlanStep, ...]
    expected_value_gbp: float = 0.0

    def step_at(self, at: datetime) -> PlanStep | None:
        for step in self.steps:
            if step.start <= at < step.end:
                return step
        return None

    def age_s(self, at: datetime) -> float:
        return (at - self.made_at).total_seconds()


@dataclass(frozen=True)
class Signals:
    """Market signals as known at decision time.

    ``imbalance_price`` in p/kWh; ``imbalance_volume`` (NIV) in MWh, + short; ``plan``:
    the battery's current plan, if a planner runs (see ``reconciler.planning``);
    ``day_ahead``: published day-ahead prices (p/kWh) of the current and later periods,
    for the planner only (empty without a day-ahead feed).
    """

    imbalance_price: PeriodValue | None = None
    imbalance_volume: PeriodValue | None = None
    axle_steps: tuple[AxleStep, ...] = ()
    plan: Plan | None = None
    day_ahead: tuple[PeriodValue, ...] = ()


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Component:
    """What one active mode proposes: an optional target and optional bounds, kW."""

    source: str
    mode: str
    priority: int
    target_kw: float | None = None
    min_kw: float | None = None
    max_kw: float | None = None
    note: str = ""


@dataclass(frozen=True)
class ControlState:
    """What the core remembers between ticks (held by the loop, passed in).

    ``plans`` is the schedule's memo for the current local day: it only saves work (a
    result never depends on it), so it takes no part in equality. Keep passing the same
    one (``dataclasses.replace`` keeps it) for ticks to reuse it.
    """

    last_target_kw: float = 0.0
    last_at: datetime | None = None
    plans: DayPlans = field(default_factory=DayPlans, compare=False, repr=False)


@dataclass(frozen=True)
class Decision:
    """The outcome of one tick: the setpoint and why."""

    at: datetime
    target_kw: float
    reason: str
    components: tuple[Component, ...] = ()
    effective: tuple[str, ...] = ()
    bound_by: tuple[str, ...] = ()
    safe_stop: bool = False
    winner: str | None = None
    site_power_kw: float | None = None
    predicted_site_power_kw: float | None = None
    soe_kwh: float | None = None
