"""The market clients of a running agent, built from the site file's ``markets:`` section.

:class:`LiveMarkets` is the agent's signal source (``signals_at``) and the task that polls
each configured client at its own interval. A failing API never stops control: the error
goes to the agent's status and log, the client backs off (honouring Retry-After), and the
modes that need its values become inactive once they are stale (the clients' own rules),
so the schedule falls through to lower priorities. Every value fetched is recorded in the
outbox (flux.market_data) when it is new or revised.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol

import httpx

from reconciler.clock import Clock
from reconciler.config.model import Markets, Site
from reconciler.control.signals import AxleFeed, ImbalanceFeed, signals_at
from reconciler.control.types import Signals
from reconciler.logs import log_event
from reconciler.markets.axle import AxleClient
from reconciler.markets.day_ahead import DayAheadClient
from reconciler.markets.delivery import AxleDelivery
from reconciler.markets.elexon import ElexonClient
from reconciler.markets.errors import MarketError, MarketUnavailable
from reconciler.markets.modo import ModoClient
from reconciler.markets.points import MarketPoint
from reconciler.status.model import MarketFeedStatus
from reconciler.stopping import sleep_or_stop

log = logging.getLogger("flux.markets")

MAX_BACKOFF_S = 900.0
"""A failing API is retried at least this often (s), however long it has failed."""
TIMEOUT_S = 10.0


class MarketClient(Protocol):
    """What the runner needs of a client (Modo, Elexon, Axle, day-ahead)."""

    source: str
    poll_s: float

    async def poll(self, now: datetime) -> list[MarketPoint]: ...


class MarketSink(Protocol):
    """Where fetched values go (the outbox)."""

    def add_market(
        self,
        site_id: str,
        *,
        type: str,
        period_start: datetime,
        settlement_date: date,
        settlement_period: int,
        value: float,
        source: str,
        fetched_at: datetime,
    ) -> None: ...


@dataclass
class FeedState:
    """How one client is doing, for the agent's status (times UTC)."""

    source: str
    next_poll_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    recorded_total: int = 0

    @property
    def ok(self) -> bool:
        return self.last_success_at is not None and self.consecutive_failures == 0


@dataclass
class BuiltClients:
    """The clients a markets section asks for, which of them feed control, and why any
    was left out or runs degraded (one line each, ``source: what to do``)."""

    clients: list[MarketClient] = field(default_factory=list)
    imbalance: ImbalanceFeed | None = None
    axle: AxleFeed | None = None
    delivery: AxleDelivery | None = None
    day_ahead: DayAheadClient | None = None
    problems: list[str] = field(default_factory=list)


Environ = Mapping[str, str]


def build_clients(markets: Markets, http: httpx.AsyncClient, environ: Environ) -> BuiltClients:
    """The clients the site file asks for. A credential variable that is not set leaves
    that client out and says so (the agent runs on without it)."""
    built = BuiltClients()
    if markets.modo is not None:
        key = environ.get(markets.modo.api_key_env) if markets.modo.api_key_env else None
        if markets.modo.api_key_env and not key:
            built.problems.append(
                f"modo: {markets.modo.api_key_env} is not set; calling without a key"
            )
        modo = ModoClient(markets.modo, client=http, api_key=key or None)
        built.clients.append(modo)
        built.imbalance = modo
    if markets.elexon is not None:
        elexon = ElexonClient(markets.elexon, client=http)
        built.clients.append(elexon)
        if built.imbalance is None:
            built.imbalance = elexon  # settled prices: a late fallback, but real
    if markets.axle is not None:
        axle_settings = markets.axle
        user = environ.get(axle_settings.username_env)
        password = environ.get(axle_settings.password_env)
        missing = [
            name
            for name, value in (
                (axle_settings.username_env, user),
                (axle_settings.password_env, password),
            )
            if not value
        ]
        if missing:
            built.problems.append(
                f"axle: {' and '.join(missing)} not set; Axle dispatch is off until they are"
                " (put them in /etc/flux/agent.env and restart)"
            )
        else:
            assert user is not None and password is not None
            axle = AxleClient(axle_settings, client=http, username=user, password=password)
            built.delivery = AxleDelivery(axle)
            built.clients += [axle, built.delivery]
            built.axle = axle
    if markets.day_ahead is not None:
        settings = markets.day_ahead
        key = environ.get(settings.api_key_env) if settings.api_key_env else None
        if settings.api_key_env and not key:
            built.problems.append(
                f"day_ahead: {settings.api_key_env} is not set; calling without a key"
            )
        built.day_ahead = DayAheadClient(settings, client=http, api_key=key or None)
        built.clients.append(built.day_ahead)
    return built


class LiveMarkets:
    """The agent's market signals and the task that keeps them fresh."""

    def __init__(
        self,
        *,
        clock: Clock,
        sink: MarketSink | None = None,
        environ: Environ | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.clock = clock
        self.sink = sink
        self.environ: Environ = environ if environ is not None else os.environ
        self.http = http or httpx.AsyncClient(timeout=TIMEOUT_S)
        self._markets: Markets | None = None
        self._site_id = ""
        self._built = BuiltClients()
        self.states: dict[str, FeedState] = {}

    # ------------------------------------------------------------------ configuration

    def configure(self, site: Site) -> None:
        """Follow the site's ``markets:`` section; rebuild clients only if it changed."""
        self._site_id = site.site.id
        if self._markets is not None and site.markets == self._markets:
            return
        self._markets = site.markets.model_copy(deep=True)
        self._built = build_clients(site.markets, self.http, self.environ)
        self.states = {c.source: FeedState(c.source) for c in self._built.clients}
        for problem in self._built.problems:
            log_event(log, "market_config_problem", level=logging.WARNING, problem=problem)
        log_event(
            log,
            "markets_configured",
            site=self._site_id,
            sources=[c.source for c in self._built.clients],
        )

    @property
    def problems(self) -> list[str]:
        return list(self._built.problems)

    # ------------------------------------------------------------------ signals

    def signals_at(self, at: datetime) -> Signals:
        built = self._built
        return signals_at(at, imbalance=built.imbalance, axle=built.axle, day_ahead=built.day_ahead)

    def observe(
        self, at: datetime, site_power_kw: float, battery_power_kw: float, soe_kwh: float
    ) -> None:
        """A tick's site power (kW, + import), battery power (kW, + discharge) and SoE
        (kWh), for delivery reports (only when Axle is configured)."""
        if self._built.delivery is not None:
            self._built.delivery.observe(at, site_power_kw, battery_power_kw, soe_kwh)

    # ------------------------------------------------------------------ polling

    async def poll_due(self) -> None:
        """Poll every client whose time has come (in order), record what is new, and
        schedule the next poll: its interval after a success, a growing backoff after a
        failure (at least the server's Retry-After)."""
        for client in list(self._built.clients):
            state = self.states[client.source]
            now = self.clock.now()
            if state.next_poll_at is not None and now < state.next_poll_at:
                continue
            try:
                points = await client.poll(now)
            except MarketError as exc:
                self._failed(client, state, exc, now)
                continue
            except Exception as exc:  # a client bug must not stop the others
                self._failed(client, state, MarketError(client.source, "poll", repr(exc)), now)
                continue
            for p in points:
                if self.sink is None:
                    break
                self.sink.add_market(
                    self._site_id,
                    type=p.type,
                    period_start=p.period.start,
                    settlement_date=p.period.day,
                    settlement_period=p.period.number,
                    value=p.value,
                    source=p.source,
                    fetched_at=p.fetched_at,
                )
            recovered = state.consecutive_failures > 0
            state.last_success_at = now
            state.consecutive_failures = 0
            state.recorded_total += len(points)
            state.next_poll_at = now + timedelta(seconds=client.poll_s)
            if recovered:
                log_event(log, "market_recovered", source=client.source)

    def _failed(
        self, client: MarketClient, state: FeedState, exc: MarketError, now: datetime
    ) -> None:
        state.consecutive_failures += 1
        state.last_error = str(exc)
        state.last_error_at = now
        wait = min(MAX_BACKOFF_S, client.poll_s * 2 ** (state.consecutive_failures - 1))
        if isinstance(exc, MarketUnavailable) and exc.retry_after_s is not None:
            wait = max(wait, min(exc.retry_after_s, MAX_BACKOFF_S))
        state.next_poll_at = now + timedelta(seconds=wait)
        log_event(
            log,
            "market_failed",
            level=logging.WARNING,
            source=client.source,
            error=str(exc),
            failures=state.consecutive_failures,
            retry_in_s=round(wait, 1),
        )

    def feed_status(self) -> tuple[list[MarketFeedStatus], list[str]]:
        """Each API as the agent's status shows it, and the problems (a credential not
        set, ...) that kept one from running."""
        feeds = [MarketFeedStatus(**asdict(s), ok=s.ok) for s in self.states.values()]
        return feeds, self.problems

    def seconds_to_next_poll(self) -> float | None:
        due = [s.next_poll_at for s in self.states.values()]
        if not due:
            return None
        now = self.clock.now()
        return max(0.0, min((d - now).total_seconds() if d else 0.0 for d in due))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop``; then close the HTTP client. Waits in real time, in steps of
        at most a second (a stop or a new configuration is noticed promptly): the APIs
        are live, whatever clock control runs on."""
        try:
            while not stop.is_set():
                await self.poll_due()
                wait = self.seconds_to_next_poll()
                step = 1.0 if wait is None else min(max(wait, 0.05), 1.0)
                await sleep_or_stop(step, stop)
        finally:
            await self.http.aclose()
