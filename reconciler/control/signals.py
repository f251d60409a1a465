"""Market signals as small Protocols, and the snapshot the loop hands to :func:`decide`.

Feeds take the instant they are asked about, so a live client (which ignores it and
serves its latest cache) and a replay of history (which looks it up) fit the same seam.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from reconciler.control.types import AxleStep, PeriodValue, Signals


class ImbalanceFeed(Protocol):
    """Imbalance price (p/kWh) and volume (NIV, MWh, + short), each with its period."""

    def imbalance_price(self, at: datetime) -> PeriodValue | None:
        """The latest price known at ``at`` and the settlement period it is for."""
        ...

    def imbalance_volume(self, at: datetime) -> PeriodValue | None:
        """The latest NIV known at ``at`` and the settlement period it is for."""
        ...


class AxleFeed(Protocol):
    """The Axle Energy battery schedule as known at an instant."""

    def axle_steps(self, at: datetime) -> Sequence[AxleStep]: ...


class DayAheadFeed(Protocol):
    """Day-ahead prices (p/kWh) as published by an instant."""

    def day_ahead(self, at: datetime) -> tuple[PeriodValue, ...]:
        """The published prices of ``at``'s period and later ones, in time order."""
        ...


def signals_at(
    at: datetime,
    *,
    imbalance: ImbalanceFeed | None = None,
    axle: AxleFeed | None = None,
    day_ahead: DayAheadFeed | None = None,
) -> Signals:
    """The snapshot of every feed at ``at`` (a missing feed gives no values)."""
    return Signals(
        imbalance_price=imbalance.imbalance_price(at) if imbalance is not None else None,
        imbalance_volume=imbalance.imbalance_volume(at) if imbalance is not None else None,
        axle_steps=tuple(axle.axle_steps(at)) if axle is not None else (),
        day_ahead=day_ahead.day_ahead(at) if day_ahead is not None else (),
    )


@dataclass(frozen=True)
class FeedSignals:
    """A signal source for the loop (``signals_at(at)``) built from feeds."""

    imbalance: ImbalanceFeed | None = None
    axle: AxleFeed | None = None
    day_ahead: DayAheadFeed | None = None
    #: The last snapshot made, handed out again while the feeds answer with the same
    #: values (a replay's change once per period; ticks come every few seconds).
    _last: list[Signals] = field(default_factory=list, init=False, compare=False, repr=False)

    def signals_at(self, at: datetime) -> Signals:
        if self.axle is not None or self.day_ahead is not None or self.imbalance is None:
            return signals_at(
                at, imbalance=self.imbalance, axle=self.axle, day_ahead=self.day_ahead
            )
        price = self.imbalance.imbalance_price(at)
        volume = self.imbalance.imbalance_volume(at)
        last = self._last
        if last and last[0].imbalance_price is price and last[0].imbalance_volume is volume:
            return last[0]
        signals = Signals(imbalance_price=price, imbalance_volume=volume)
        last[:] = [signals]
        return signals
