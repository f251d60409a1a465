"""Market values as fetched, ready for the outbox (flux.market_data).

Types and units: ``imbalance_price``, ``system_sell_price``, ``system_buy_price`` in
p/kWh (APIs give £/MWh: divide by 10); ``niv`` in MWh, + short.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reconciler.control.periods import PERIOD, SettlementPeriod
from reconciler.control.types import PeriodValue

POUNDS_PER_MWH_TO_P_PER_KWH = 0.1
"""£1/MWh = 100p / 1000 kWh = 0.1 p/kWh."""


@dataclass(frozen=True)
class MarketPoint:
    """One value for one settlement period, from one source, as fetched at an instant."""

    period: SettlementPeriod
    type: str
    value: float
    source: str
    fetched_at: datetime


class ChangedOnly:
    """Remembers the last value recorded per (type, period), so a poll that sees the same
    values again records nothing, and a revision (a new settlement run, a moved estimate)
    is recorded as a new row."""

    def __init__(self, keep: int = 10_000) -> None:
        self._last: dict[tuple[str, str, SettlementPeriod], float] = {}
        self._keep = keep

    def new(self, points: list[MarketPoint]) -> list[MarketPoint]:
        fresh = []
        for p in points:
            key = (p.source, p.type, p.period)
            if self._last.get(key) != p.value:
                self._last[key] = p.value
                fresh.append(p)
        if len(self._last) > self._keep:
            # Oldest periods first: they will not be revised again by a live feed.
            for key in sorted(self._last, key=lambda k: k[2])[: len(self._last) - self._keep]:
                del self._last[key]
        return fresh


def is_fresh(value: PeriodValue | None, at: datetime) -> PeriodValue | None:
    """``value`` if its period is the one containing ``at`` or the one before (or later),
    else None: a value older than that means the feed has stopped, and serving it would
    let the control act on an hour-old market."""
    if value is None or value.period.end <= at - PERIOD:
        return None
    return value
