"""Reporting delivery to Axle: what the site and battery did, window by window.

The agent hands every tick's site power (kW, + import), battery power (kW, + discharge)
and SoE (kWh) to :meth:`AxleDelivery.observe`; each completed window (5 minutes, aligned
to the clock) becomes Axle's three readings (averages of the powers, the last SoE; signs
converted in :func:`~reconciler.markets.axle.delivery_readings`). :meth:`poll` sends what
is pending; the runner calls it like any market client, so a failed report is retried
with the same backoff and shows in the agent's status. Reports wait while Axle is
unreachable, up to a day of windows; beyond that the oldest are dropped (and counted):
Axle settles on recent delivery, and the readings themselves are in the outbox anyway.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from reconciler.logs import log_event
from reconciler.markets.axle import AxleClient, AxleReading, delivery_readings
from reconciler.markets.points import MarketPoint

log = logging.getLogger("flux.markets")

WINDOW_S = 300.0
KEEP_WINDOWS = 288  # one day of 5-minute windows


class AxleDelivery:
    """Averages per window, and the reports not yet accepted by Axle."""

    source = "axle-delivery"

    def __init__(
        self, axle: AxleClient, *, window_s: float = WINDOW_S, keep_windows: int = KEEP_WINDOWS
    ) -> None:
        self.axle = axle
        self.poll_s = window_s
        self.window_s = window_s
        self.keep_readings = keep_windows * 3
        self.pending: list[AxleReading] = []
        self.dropped = 0
        self._start: datetime | None = None
        self._n = 0
        self._site_sum = 0.0
        self._battery_sum = 0.0
        self._soe = 0.0

    def _window_start(self, at: datetime) -> datetime:
        seconds = at.timestamp() // self.window_s * self.window_s
        return datetime.fromtimestamp(seconds, UTC)

    def observe(
        self, at: datetime, site_power_kw: float, battery_power_kw: float, soe_kwh: float
    ) -> None:
        """One tick's values (Flux's signs)."""
        start = self._window_start(at)
        if self._start is not None and start != self._start:
            self._close()
        if self._start is None:
            self._start = start
        self._n += 1
        self._site_sum += site_power_kw
        self._battery_sum += battery_power_kw
        self._soe = soe_kwh

    def _close(self) -> None:
        if self._start is not None and self._n:
            end = self._start + timedelta(seconds=self.window_s)
            self.pending += delivery_readings(
                self._start,
                end,
                self._site_sum / self._n,
                self._battery_sum / self._n,
                self._soe,
            )
            excess = len(self.pending) - self.keep_readings
            if excess > 0:
                del self.pending[:excess]
                self.dropped += excess
                log_event(
                    log, "axle_delivery_dropped", level=logging.WARNING, readings=excess,
                    dropped_total=self.dropped,
                )  # fmt: skip
        self._start, self._n, self._site_sum, self._battery_sum = None, 0, 0.0, 0.0

    async def poll(self, now: datetime) -> list[MarketPoint]:
        """Close a window that has ended, then send every pending reading (kept if Axle
        does not accept them: the MarketError reaches the runner)."""
        if self._start is not None and now >= self._start + timedelta(seconds=self.window_s):
            self._close()
        if self.pending:
            batch = list(self.pending)
            await self.axle.report_readings(batch)
            del self.pending[: len(batch)]
        return []
