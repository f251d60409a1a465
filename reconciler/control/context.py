"""What a mode sees when it proposes a component: one immutable bundle per active entry."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from reconciler.config.model import PredictionRule, Site
from reconciler.control.periods import SettlementPeriod
from reconciler.control.prediction import ImbalancePrediction, predict_imbalance
from reconciler.control.schedule import ActiveEntry, DayPlan
from reconciler.control.types import Component, Signals

T = TypeVar("T")


@dataclass(frozen=True)
class ModeContext:
    """The inputs of one mode at one instant.

    Power in kW (battery + discharge, site + import), energy in kWh, rates in p/kWh,
    times in seconds. ``charge_cap_kw`` and ``discharge_cap_kw`` are the battery's usable
    power (the tighter of the limit and the nameplate), both positive.
    """

    at: datetime
    site: Site
    entry: ActiveEntry
    soe_kwh: float
    site_power_kw: float
    battery_power_kw: float
    last_target_kw: float
    import_rate: float
    export_rate: float
    signals: Signals
    period: SettlementPeriod
    seconds_into_period: float
    seconds_left_in_period: float
    charge_cap_kw: float
    discharge_cap_kw: float
    #: The grid meter's frequency, Hz, and how long since it last changed, s (None: no
    #: frequency read).
    frequency_hz: float | None = None
    frequency_age_s: float | None = None
    #: The day's memo (the caller's, see :class:`~reconciler.control.schedule.DayPlans`):
    #: where a mode keeps what it derives from the site file and the day alone. It never
    #: changes a proposal, so it takes no part in equality (None: nothing kept).
    day: DayPlan | None = field(default=None, compare=False, repr=False)

    def remember(self, key: Hashable, make: Callable[[], T]) -> T:
        """``make()``, kept for the rest of the local day when there is a day memo."""
        return make() if self.day is None else self.day.remember(key, make)

    @property
    def efficiency(self) -> float:
        """Charge efficiency: kWh stored per kWh drawn."""
        return self.site.limits.charge_efficiency

    @property
    def tick_s(self) -> float:
        return self.site.control.tick_s

    @property
    def seconds_to_window_end(self) -> float:
        """Seconds until the active entry's window closes."""
        return (self.entry.end - self.at).total_seconds()

    @property
    def residual_kw(self) -> float:
        """Site power with the battery's measured power taken out: load minus generation,
        kW. Measured, not the last target: a battery still ramping is not yet there."""
        return self.site_power_kw + self.battery_power_kw

    def predict(
        self, live_after_s: float, when_short: PredictionRule, when_long: PredictionRule
    ) -> ImbalancePrediction | None:
        return predict_imbalance(
            self.signals,
            self.period,
            self.seconds_into_period,
            live_after_s=live_after_s,
            when_short=when_short,
            when_long=when_long,
        )

    # ------------------------------------------------------------- component shapes

    def component(
        self,
        target_kw: float | None = None,
        *,
        min_kw: float | None = None,
        max_kw: float | None = None,
        note: str = "",
    ) -> Component:
        return Component(
            source=self.entry.label,
            mode=self.entry.entry.mode,
            priority=self.entry.priority,
            target_kw=target_kw,
            min_kw=min_kw,
            max_kw=max_kw,
            note=note,
        )

    def hold(self, target_kw: float, note: str = "") -> Component:
        """A target nothing lower may change (the reference's "greedy")."""
        return self.component(target_kw, min_kw=target_kw, max_kw=target_kw, note=note)

    def at_least_this_charge(self, target_kw: float, note: str = "") -> Component:
        """Charge at ``target_kw`` (< 0); lower priorities may charge harder, not less."""
        return self.component(target_kw, max_kw=target_kw, note=note)

    def at_least_this_discharge(self, target_kw: float, note: str = "") -> Component:
        """Discharge at ``target_kw`` (> 0); lower priorities may discharge harder, not less."""
        return self.component(target_kw, min_kw=target_kw, note=note)
