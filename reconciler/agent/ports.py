"""The seams of the reconcile loop, in one place: every collaborator the loop and the
agent are given is one of these small Protocols, so the same loop runs on a site, against
the simulator and in a backtest with only the parts swapped.

- ``Clock``: now and sleep (``WallClock``; ``ScaledClock`` in the demo).
- ``Battery``, ``Meter``: read, command, settings read-back, kW and kWh
  (``devices.powerpack``, ``devices.acuvim`` over Modbus TCP).
- ``Sink``: where readings and decisions go (``telemetry.outbox.Outbox``).
- ``Store``: the agent's whole durable record, a ``Sink`` that also keeps revisions,
  status records and market values and knows its backlog (``Outbox``).
- ``Upload``: what moves the store to the database (``telemetry.uploader.Uploader``;
  ``agent.telemetry.KeepInStore`` when there is no database).
- ``Endpoint``: the status endpoint (``agent.http.StatusServer``).
- ``SignalSource``: market signals at an instant, as the loop asks for them.
- ``Markets``: the agent's market signals and what keeps them current: the live APIs
  (``markets.live.LiveMarkets``) or a replay (``markets.replay.Replay``).
- ``DesiredStateSource``: the revision to run, and the health gate
  (``source.controller.GitSource``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from reconciler.clock import Clock
from reconciler.config.model import Site
from reconciler.control.types import (
    BatteryReading,
    Decision,
    FrequencyRecord,
    MeterReading,
    Signals,
)
from reconciler.devices.base import Battery, Meter, SettingChange
from reconciler.markets.live import MarketSink
from reconciler.source.controller import DesiredStateSource
from reconciler.status.model import MarketFeedStatus
from reconciler.telemetry.uploader import UploaderState, UploadResult

__all__ = [
    "Battery",
    "Clock",
    "DesiredStateSource",
    "Endpoint",
    "Markets",
    "Meter",
    "NoSignals",
    "SettingChange",
    "SignalSource",
    "Sink",
    "Store",
    "Upload",
]


class Sink(Protocol):
    """Where readings and decisions go (the durable outbox in production)."""

    def add_bess(
        self,
        site_id: str,
        device: str,
        reading: BatteryReading,
        *,
        actual_power_kw: float | None = None,
    ) -> None:
        """A battery reading and its measured power, kW (+ discharge)."""

    def add_meter(self, site_id: str, device: str, reading: MeterReading) -> None: ...

    def add_frequency_many(
        self, site_id: str, device: str, seconds: Iterable[FrequencyRecord]
    ) -> int:
        """Frequency response's one-second records of the battery ``device``; how many."""
        ...

    def add_decision(self, site_id: str, revision_sha: str | None, decision: Decision) -> None: ...


class Store(Sink, MarketSink, Protocol):
    """The agent's durable record (the SQLite outbox in production): what the loop
    records, plus revisions and status records, and how much waits to be uploaded."""

    def add_revision(
        self,
        site_id: str,
        sha: str,
        at: datetime,
        *,
        state: str,
        conditions: Mapping[str, Any] | None = None,
        errors: Sequence[str] = (),
        message: str = "",
        identity: Mapping[str, Any] | None = None,
    ) -> None: ...

    def add_status(self, site_id: str, at: datetime, conditions: Mapping[str, Any]) -> None: ...

    def pending(self) -> int:
        """Rows waiting to be uploaded."""
        ...

    def oldest_at(self) -> datetime | None:
        """The instant of the oldest pending row."""
        ...

    def quarantined_count(self) -> int:
        """Rows set aside as malformed."""
        ...


class Upload(Protocol):
    """Moves the store to the database, in the background and once more at stop."""

    @property
    def database_url(self) -> str | None: ...

    @property
    def state(self) -> UploaderState: ...

    async def run(
        self,
        stop_event: asyncio.Event,
        *,
        interval_s: float = ...,
        on_result: Callable[[UploadResult], object] | None = None,
    ) -> None: ...

    async def drain_async(
        self, *, stop: asyncio.Event | None = None, budget_s: float | None = None
    ) -> UploadResult: ...

    def close(self) -> None: ...


class Endpoint(Protocol):
    """A server the agent starts first (a taken port must stop it before anything runs)
    and closes last."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class SignalSource(Protocol):
    """Market signals as known at an instant (in-memory feeds, or the market clients)."""

    def signals_at(self, at: datetime) -> Signals: ...


class NoSignals:
    """No market data at all: modes that need prices stay inactive."""

    def signals_at(self, at: datetime) -> Signals:
        return Signals()


class Markets(SignalSource, Protocol):
    """Market signals for the agent: followed per revision, run beside control, told
    what the site did (for delivery reports), and shown in the status."""

    def configure(self, site: Site) -> None:
        """Follow ``site``'s markets section (called on every new revision)."""
        ...

    async def run(self, stop: asyncio.Event) -> None: ...

    def observe(
        self, at: datetime, site_power_kw: float, battery_power_kw: float, soe_kwh: float
    ) -> None:
        """A tick's site power (kW, + import), battery power (kW, + discharge), SoE (kWh)."""
        ...

    def feed_status(self) -> tuple[list[MarketFeedStatus], list[str]]: ...
