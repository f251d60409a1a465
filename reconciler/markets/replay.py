"""Replayed market signals (``flux demo``, ``flux agent run --replay-prices``): no API is
called; the prices and NIV control was fed are recorded, once per period and value, as
source ``replay``, so the dashboard's price panel and `flux diff` see what control saw.

It is the agent's Markets port, as :class:`reconciler.markets.live.LiveMarkets` is, so the
agent treats a replay and the live APIs alike.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Protocol

from reconciler.config.model import Site
from reconciler.control.types import PeriodValue, Signals
from reconciler.markets.live import MarketSink
from reconciler.status.model import MarketFeedStatus

#: The market line of an agent fed a replay: no API is called, on purpose.
REPLAYED = "replay: market signals are replayed (demo or --replay-prices); no API is called"


class _Signals(Protocol):
    def signals_at(self, at: datetime) -> Signals: ...


class Replay:
    """``signals`` served to control, and recorded in ``sink`` as they change."""

    def __init__(self, signals: _Signals, *, sink: MarketSink | None = None) -> None:
        self._signals = signals
        self._sink = sink
        self._site_id = ""
        self._recorded: dict[str, PeriodValue] = {}

    def configure(self, site: Site) -> None:
        self._site_id = site.site.id

    def signals_at(self, at: datetime) -> Signals:
        signals = self._signals.signals_at(at)
        if self._sink is not None:
            for type_, value in (
                ("imbalance_price", signals.imbalance_price),
                ("niv", signals.imbalance_volume),
            ):
                if value is None or self._recorded.get(type_) == value:
                    continue
                self._recorded[type_] = value
                self._sink.add_market(
                    self._site_id,
                    type=type_,
                    period_start=value.period.start,
                    settlement_date=value.period.day,
                    settlement_period=value.period.number,
                    value=value.value,
                    source="replay",
                    fetched_at=at,
                )
        return signals

    def observe(
        self, at: datetime, site_power_kw: float, battery_power_kw: float, soe_kwh: float
    ) -> None:
        """Nothing to report delivery to."""

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()

    def feed_status(self) -> tuple[list[MarketFeedStatus], list[str]]:
        return [], [REPLAYED]
