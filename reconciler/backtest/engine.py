"""A backtest: a site file's control run against the simulated site, tick by tick.

The agent's own :class:`~reconciler.agent.loop.ReconcileLoop` runs it, with a manual clock
and the real drivers (PowerPack, Acuvim) on the simulator's register banks through the
in-process transport (:meth:`reconciler.sim.simulator.SiteSimulator.in_process_devices`):
the same reads, guard, decision, deadband, heartbeat, settings read-back and recording as
on a site, so a change to any of them shows here. The market signals come through the
agent's Markets seam (:class:`reconciler.markets.replay.Replay`) at simulated time.

This module only sets that up and keeps the accounts: between ticks the plant's physics
runs in sub-steps of at most 1 s (split at local midnight) and each sub-step's energy,
money and limits go into the day's :class:`~reconciler.backtest.report.MetricsBuilder`.
No I/O, no wall clock, no sleeping: the plant's noise is seeded by
``site.simulation.seed``, so a run is repeatable to the last digit.

On purpose, ``control.shadow`` is ignored (a backtest is about what the control would do),
and records go to an in-memory sink (:class:`MemorySink`), not the outbox.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from reconciler.agent.loop import ReconcileLoop, TickResult, observe_tick
from reconciler.agent.ports import NoSignals, SignalSource, Sink
from reconciler.backtest.accounts import SiteAccounts
from reconciler.backtest.report import (
    BacktestResult,
    DayResult,
)
from reconciler.clock import ManualClock
from reconciler.config.model import FrequencyResponseEntry, Site
from reconciler.control.modes.frequency_response import band_kwh
from reconciler.control.periods import PERIOD, period_start
from reconciler.control.schedule import local_midnight, zone
from reconciler.control.types import BatteryReading, Decision, FrequencyRecord, MeterReading
from reconciler.markets.replay import Replay
from reconciler.planning.runner import Planning, optimise_params
from reconciler.sim.curves import HalfHourly
from reconciler.sim.plant import MAX_STEP_S, RepeatedEvent
from reconciler.sim.simulator import SiteSimulator

__all__ = ["BacktestResult", "MemorySink", "run_backtest"]


#: Report progress at most this often, as a fraction of the run.
PROGRESS_STEP = 0.005

T = TypeVar("T")


@dataclass
class MemorySink:
    """Where a backtest's loop records (the agent's Sink port): row counts by kind, and
    the decisions when ``keep_decisions`` (a month at 4 s ticks records ~45,000)."""

    keep_decisions: bool = False
    bess_rows: int = 0
    meter_rows: int = 0
    frequency_rows: int = 0
    decision_rows: int = 0
    decisions: list[Decision] = field(default_factory=list)

    def add_bess(
        self,
        site_id: str,
        device: str,
        reading: BatteryReading,
        *,
        actual_power_kw: float | None = None,
    ) -> None:
        self.bess_rows += 1

    def add_meter(self, site_id: str, device: str, reading: MeterReading) -> None:
        self.meter_rows += 1

    def add_frequency_many(
        self, site_id: str, device: str, seconds: Iterable[FrequencyRecord]
    ) -> int:
        added = sum(1 for _ in seconds)
        self.frequency_rows += added
        return added

    def add_decision(self, site_id: str, revision_sha: str | None, decision: Decision) -> None:
        self.decision_rows += 1
        if self.keep_decisions:
            self.decisions.append(decision)


def run_now(step: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never waits (the loop on in-process devices), with
    no event loop: one ``send``. Raises RuntimeError if it tried to wait on something."""
    try:
        step.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    step.close()
    raise RuntimeError("a backtest tick waited on I/O; in-process devices answer at once")


def _days(site: Site, start: datetime, end: datetime) -> list[tuple[date, datetime]]:
    """Each local day touched by [start, end) and the UTC instant it ends."""
    tz = zone(site.site.timezone)
    day = start.astimezone(tz).date()
    out: list[tuple[date, datetime]] = []
    while True:
        day_end = local_midnight(site, day + timedelta(days=1))
        out.append((day, day_end))
        if day_end >= end:
            return out
        day += timedelta(days=1)


def loop_on_simulator(
    site: Site,
    clock: ManualClock,
    *,
    sink: Sink | None = None,
    signals: SignalSource | None = None,
    on_tick: Callable[[TickResult], None] | None = None,
    load: HalfHourly | None = None,
    solar: HalfHourly | None = None,
) -> tuple[SiteSimulator, ReconcileLoop]:
    """The simulator (never listening) and the agent's loop on its registers in-process:
    the real drivers, reads in turn, each tick driven with :func:`run_now`."""
    sim = SiteSimulator(
        site, clock=clock, ports="ephemeral", cache_values=True, load=load, solar=solar
    )
    battery, meters = sim.in_process_devices(log=False)
    loop = ReconcileLoop(
        site_fn=lambda: (site, None),
        battery=battery,
        meters=meters,
        clock=clock,
        sink=sink if sink is not None else MemorySink(),
        signals=signals,
        shadow=False,
        on_tick=on_tick,
        concurrent_reads=False,
    )
    return sim, loop


def run_backtest(
    site: Site,
    start: datetime,
    end: datetime,
    *,
    signals: SignalSource | None,
    progress: Callable[[float], None] | None = None,
    load: HalfHourly | None = None,
    solar: HalfHourly | None = None,
    sink: MemorySink | None = None,
    on_tick: Callable[[TickResult], None] | None = None,
    frequency_events: Sequence[RepeatedEvent] = (),
    seed: Sequence[tuple[datetime, float]] | None = None,
) -> BacktestResult:
    """Run ``site``'s control on the simulated site from ``start`` to ``end`` (aware).

    ``signals`` gives the market signals at each tick (None: none at all, so modes that
    need a price propose nothing unless they have a default). ``progress`` is called with
    the fraction done (0..1) now and then, and with 1.0 at the end. ``load`` (one home, kW)
    and ``solar`` (one kWp, kW) replace the simulator's January profiles. ``sink`` receives
    what the loop records; ``on_tick`` every tick's result (what was read, decided, written).
    ``frequency_events``: grid events the simulated frequency goes through, repeated
    from ``start`` (as ``flux sim --frequency-events``). ``seed``: the settled prices
    (period start, p/kWh) an optimise entry's forecasts start from, as an agent would
    have learnt them by ``start`` (:meth:`~reconciler.backtest.prices.PriceSeries.known_before`);
    None takes the ``history_days`` before ``start`` from ``signals`` (a replay wrapped
    onto other dates, whose past is the same history played again).

    While a frequency_response entry is active the loop's fast path runs between ticks at
    the entry's own cadence, as the agent runs it.

    Energy is integrated over every physics sub-step of the plant (at most 1 s, split at
    local midnight), so each day's hours add up to its real length.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise ValueError(f"end {end.isoformat()} is not after start {start.isoformat()}")

    clock = ManualClock(start)
    markets = Planning(Replay(signals if signals is not None else NoSignals()), synchronous=True)
    markets.configure(site)
    if seed is None and signals is not None:
        seed = _prices_before(signals, start, days=planning_history_days(site))
    markets.seed(seed or ())
    sim, loop = loop_on_simulator(
        site, clock, sink=sink, signals=markets, on_tick=on_tick, load=load, solar=solar
    )
    plant = sim.plant

    accounts = SiteAccounts(site)
    responds = any(isinstance(e, FrequencyResponseEntry) for e in site.schedule)

    days = _days(site, start, end)
    done: list[DayResult] = []
    day_index = 0
    day, day_end = days[0]
    acc = accounts.day(plant.soe_kwh)

    tick = timedelta(seconds=site.control.tick_s)
    sub = timedelta(seconds=MAX_STEP_S)
    total_s = (end - start).total_seconds()
    next_report = 0.0
    ticks = 0
    at = start
    next_period = period_start(start) + PERIOD
    while at < end:
        until = min(at + tick, end)
        for event in frequency_events:  # known in advance: in place before the tick reads
            for when in event.starts(start, at, until):
                plant.frequency_event(event.kind, at=when, hold_s=event.hold_s)
        clock.set(at)
        result = run_now(loop.tick())
        ticks += 1
        decision = result.decision
        observe_tick(markets, result)
        # The loop keeps the schedule's memo in its state: the rates cost no new plan.
        plan = loop.state.plans.plan(site, at)
        import_rate, export_rate = plan.rates_at(at)
        # The band of the frequency_response entry active this tick (the first: the one
        # whose contract the SoE is steered for), for the time outside it.
        band = (
            next(
                (
                    band_kwh(site, a.entry.params)
                    for a in plan.active_entries(at)
                    if isinstance(a.entry, FrequencyResponseEntry)
                ),
                None,
            )
            if responds
            else None
        )
        imbalance = result.signals.imbalance_price
        price = imbalance.value if imbalance is not None else None
        winner, safe = decision.winner, decision.safe_stop

        fast = loop.fast_interval_s(at) if responds else None
        next_fast = at + timedelta(seconds=fast) if fast else end
        t = at
        while t < until:
            if t >= day_end:
                done.append(accounts.day_result(day, acc))
                acc = accounts.day(plant.soe_kwh)
                day_index += 1
                day, day_end = days[day_index]
            stop = min(t + sub, until, day_end, next_fast)
            plant.advance_to(stop)
            acc.add(
                (stop - t).total_seconds(),
                stop,
                grid_kw=plant.grid_kw,
                load_kw=plant.load_kw,
                solar_kw=plant.solar_kw,
                battery_kw=plant.battery_kw,
                soe_kwh=plant.soe_kwh,
                import_rate=import_rate,
                export_rate=export_rate,
                price=price,
                winner=winner,
                safe_stop=safe,
                frequency_band=band,
            )
            if stop >= next_period:
                accounts.mark(stop, acc)
                next_period += PERIOD
            t = stop
            if t >= next_fast and t < until and fast:
                clock.set(t)
                run_now(loop.fast_tick())
                next_fast = t + timedelta(seconds=fast)
        at = until

        if progress is not None:
            fraction = (at - start).total_seconds() / total_s
            if fraction >= next_report:
                progress(min(1.0, fraction))
                next_report = fraction + PROGRESS_STEP
    done.append(accounts.day_result(day, acc))
    if progress is not None:
        progress(1.0)

    return accounts.result(start, end, ticks, done)


def planning_history_days(site: Site) -> int:
    """Days of settled prices the site's optimise entry forecasts from (0: it has none)."""
    params = optimise_params(site)
    return params.history_days if params is not None else 0


def _prices_before(
    signals: SignalSource, start: datetime, *, days: int
) -> list[tuple[datetime, float]]:
    """The imbalance prices of the ``days`` before ``start``, as the signals give them."""
    first = start - timedelta(days=days)
    seen: dict[datetime, float] = {}
    for k in range(days * 48):
        price = signals.signals_at(first + k * PERIOD + PERIOD / 2).imbalance_price
        if price is not None and price.period.start < start:
            seen[price.period.start] = price.value
    return sorted(seen.items())
