"""Predicting the imbalance price and direction of the current settlement period.

The live estimate (Modo) for the current period is unreliable early in the period, and for
the first minutes of a period the feed still serves the previous period. So:

- values for the current period are trusted only ``live_after_s`` into it;
- values for the previous period may stand in, only within ``max_seconds_into_period``
  and only if the previous ``|NIV| >= min_abs_niv_mwh``, with separate rules for a system
  that was short (NIV > 0) and one that was long;
- anything older (or price and volume for different periods) is no prediction at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reconciler.config.model import PredictionRule
from reconciler.control.periods import SettlementPeriod
from reconciler.control.types import Signals

#: A rule that never allows the previous period to stand in.
NEVER = PredictionRule(allow=False)


@dataclass(frozen=True)
class ImbalancePrediction:
    """Predicted imbalance for the current period: price p/kWh, NIV MWh (+ short)."""

    price: float
    volume: float
    source: Literal["live", "previous"]

    @property
    def direction(self) -> Literal["short", "long", "balanced"]:
        if self.volume > 0:
            return "short"
        if self.volume < 0:
            return "long"
        return "balanced"

    def describe(self) -> str:
        return f"price {self.price:.1f} p/kWh {self.direction} ({self.source})"


def predict_imbalance(
    signals: Signals,
    period: SettlementPeriod,
    seconds_into_period: float,
    *,
    live_after_s: float,
    when_short: PredictionRule,
    when_long: PredictionRule,
) -> ImbalancePrediction | None:
    """The prediction for ``period`` from the signals, or None when the rules allow none."""
    price, volume = signals.imbalance_price, signals.imbalance_volume
    if price is None or volume is None or price.period != volume.period:
        return None
    if price.period == period:
        if seconds_into_period < live_after_s:
            return None
        return ImbalancePrediction(price.value, volume.value, "live")
    if price.period == period.previous():
        rule = when_short if volume.value > 0 else when_long
        if not rule.allow:
            return None
        if seconds_into_period >= rule.max_seconds_into_period:
            return None
        if abs(volume.value) < rule.min_abs_niv_mwh:
            return None
        return ImbalancePrediction(price.value, volume.value, "previous")
    return None
