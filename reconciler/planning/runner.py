"""Plans made beside control and handed to it as a signal.

:class:`Planning` wraps the agent's market signals (the live APIs or a replay): it passes
everything through, learns the settled prices from them and the site's net load and SoE
from what the agent reports after each tick, and adds the current plan to the signals
control sees. It plans only while the site file has an `optimise` entry.

A new plan is made at each settlement-period boundary and when the current period's
live price changes or new day-ahead prices are published (at most once a minute): in a
worker process by :meth:`run` on a site, or at once inside :meth:`signals_at` when
``synchronous`` (a backtest, whose simulated clock must not run ahead of its plans). A
plan that fails leaves the last one in force; the `optimise` mode stops following a plan
once it is older than its ``plan_max_age_min``.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from reconciler.config.model import OptimiseEntry, OptimiseParams, Site
from reconciler.control.periods import period_start
from reconciler.control.types import Plan, Signals
from reconciler.logs import log_event
from reconciler.planning.forecast import MIN_HISTORY
from reconciler.planning.planner import Planner
from reconciler.status.model import MarketFeedStatus
from reconciler.stopping import sleep_or_stop

log = logging.getLogger("flux.planning")

#: Least time between two plans in one period (s of the agent's clock).
MIN_REPLAN_S = 60.0
SPAWN = multiprocessing.get_context("spawn")
#: How often the background task looks whether a plan is due (s, wall time).
POLL_S = 1.0


class _Markets(Protocol):
    """The agent's Markets port (agent/ports.py), restated: planning sits below agent."""

    def signals_at(self, at: datetime) -> Signals: ...

    def configure(self, site: Site) -> None: ...

    async def run(self, stop: asyncio.Event) -> None: ...

    def observe(
        self, at: datetime, site_power_kw: float, battery_power_kw: float, soe_kwh: float
    ) -> None: ...

    def feed_status(self) -> tuple[list[MarketFeedStatus], list[str]]: ...


@dataclass(frozen=True)
class _Now:
    at: datetime
    soe_kwh: float
    net_load_kw: float


def optimise_params(site: Site) -> OptimiseParams | None:
    """The first `optimise` entry's parameters, or None when the site has none."""
    for entry in site.schedule:
        if isinstance(entry, OptimiseEntry):
            return entry.params
    return None


class Planning:
    """Market signals plus the battery's plan (see the module doc)."""

    def __init__(self, inner: _Markets, *, synchronous: bool = False) -> None:
        self.inner = inner
        self.synchronous = synchronous
        self.planner: Planner | None = None
        self.plan: Plan | None = None
        self.last_error: str | None = None
        self._now: _Now | None = None
        self._live: tuple[datetime, float] | None = None
        #: Day-ahead prices taken in that were new or changed (a count: a plan is due
        #: when it moves).
        self._published = 0
        self._planned_for: tuple[datetime, float | None, int] | None = None
        self._planned_at: datetime | None = None
        self._made = 0
        self._failures = 0
        self._failed_at: datetime | None = None

    # ------------------------------------------------------------------ Markets port

    def configure(self, site: Site) -> None:
        self.inner.configure(site)
        params = optimise_params(site)
        if params is None:
            self.planner, self.plan = None, None
        elif self.planner is None:
            self.planner = Planner(site, params)
        else:
            self.planner.follow(site, params)

    def signals_at(self, at: datetime) -> Signals:
        signals = self.inner.signals_at(at)
        if self.planner is None:
            return signals
        price = signals.imbalance_price
        if price is not None:
            # The latest value of a period stands for its settled price once it is over.
            self.planner.prices.add(price.period.start, price.value)
            if price.period.start <= at < price.period.end:
                self._live = (price.period.start, price.value)
        for published in signals.day_ahead:
            if self.planner.prices.publish(published.period.start, published.value):
                self._published += 1
        if self.synchronous and self.due(at):
            self.replan()
        return replace(signals, plan=self.plan)

    def observe(
        self, at: datetime, site_power_kw: float, battery_power_kw: float, soe_kwh: float
    ) -> None:
        self.inner.observe(at, site_power_kw, battery_power_kw, soe_kwh)
        net = site_power_kw + battery_power_kw  # load minus generation, kW
        self._now = _Now(at, soe_kwh, net)
        if self.planner is not None:
            self.planner.net_load.observe(period_start(at), net)

    async def run(self, stop: asyncio.Event) -> None:
        if self.synchronous:
            await self.inner.run(stop)
            return
        await asyncio.gather(self.inner.run(stop), self._plan_beside(stop))

    def feed_status(self) -> tuple[list[MarketFeedStatus], list[str]]:
        """The market APIs, and the planner beside them as source ``plan``."""
        feeds, problems = self.inner.feed_status()
        if self.planner is None:
            return feeds, problems
        plan = self.plan
        if plan is None:
            known = len(self.planner.prices.history.recent(self._now.at)) if self._now else 0
            detail = f"no plan yet: waiting for a day of prices ({known} of {MIN_HISTORY} known)"
        else:
            hours = (plan.steps[-1].end - plan.steps[0].start).total_seconds() / 3600
            detail = (
                f"plan of {plan.made_at:%Y-%m-%d %H:%M}Z: {plan.expected_value_gbp:+,.2f} £ "
                f"expected over {hours:.0f} h"
            )
        feeds = [
            *feeds,
            MarketFeedStatus(
                source="plan",
                ok=plan is not None and self.last_error is None,
                last_success_at=plan.made_at if plan else None,
                last_error=self.last_error,
                last_error_at=self._failed_at,
                consecutive_failures=self._failures,
                recorded_total=self._made,
                detail=detail,
            ),
        ]
        return feeds, problems

    # ------------------------------------------------------------------ planning

    def seed(self, prices: Iterable[tuple[datetime, float]]) -> None:
        """Settled prices known before control started (period start, p/kWh): a backtest
        gives the days before its first; an agent learns them as it runs (its plans start
        after a day of prices, see forecast.MIN_HISTORY)."""
        if self.planner is None:
            return
        for start, price in prices:
            self.planner.prices.add(start, price)

    def _live_price(self, at: datetime) -> float | None:
        if self._live is None or self._live[0] != period_start(at):
            return None
        return self._live[1]

    def due(self, at: datetime) -> bool:
        """A plan is due: none yet, a new period, or a new live price or day-ahead prices
        (not more than once a minute) since the last one."""
        if self.planner is None or self._now is None:
            return False
        key = (period_start(at), self._live_price(at), self._published)
        if self._planned_for is None or self._planned_at is None:
            return True
        if key[0] != self._planned_for[0]:
            return True
        recent = (at - self._planned_at).total_seconds() < MIN_REPLAN_S
        return key != self._planned_for and not recent

    def _job(self) -> PlanJob | None:
        """What the next plan is made from, taken on the event loop (where the history
        grows) so that it can be solved anywhere; marks the plan as made."""
        now, planner = self._now, self.planner
        if now is None or planner is None:
            return None
        live = self._live_price(now.at)
        self._planned_for = (period_start(now.at), live, self._published)
        self._planned_at = now.at
        return PlanJob(planner.snapshot(), now.at, now.soe_kwh, now.net_load_kw, live)

    def _accept(self, plan: Plan | None, error: BaseException | None = None) -> None:
        if error is not None:  # a failed plan leaves the last one in force
            self.last_error = f"{type(error).__name__}: {error}"
            self._failures += 1
            self._failed_at = self._planned_at
            log_event(log, "plan_failed", level=logging.ERROR, error=self.last_error)
            return
        self.last_error, self._failures = None, 0
        if plan is not None:
            self.plan = plan
            self._made += 1

    def replan(self) -> Plan | None:
        """Make a plan now, here, from the latest observation (a backtest's way)."""
        job = self._job()
        if job is not None:
            try:
                self._accept(job.run())
            except Exception as exc:
                self._accept(None, exc)
        return self.plan

    async def _plan_beside(self, stop: asyncio.Event) -> None:
        """Plans made in a worker process: a solve holds no lock control needs (the GIL
        included), so a tick is never late for one."""
        loop = asyncio.get_running_loop()
        pool: ProcessPoolExecutor | None = None
        try:
            while not stop.is_set():
                job = self._job() if self._now is not None and self.due(self._now.at) else None
                if job is not None:
                    if pool is None:
                        pool = ProcessPoolExecutor(
                            1, mp_context=multiprocessing.get_context("spawn")
                        )
                    try:
                        self._accept(await loop.run_in_executor(pool, job.run))
                    except BrokenProcessPool as exc:  # the worker died: a new one next time
                        pool = None
                        self._accept(None, exc)
                    except Exception as exc:
                        self._accept(None, exc)
                await sleep_or_stop(POLL_S, stop)
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class PlanJob:
    """One plan to make: a copy of the planner (its history as of now) and the instant's
    observation. Picklable, so it runs in a worker process."""

    planner: Planner
    at: datetime
    soe_kwh: float
    net_load_kw: float
    live_price: float | None

    def run(self) -> Plan | None:
        return self.planner.plan(
            self.at, soe_kwh=self.soe_kwh, net_load_kw=self.net_load_kw, live_price=self.live_price
        )
