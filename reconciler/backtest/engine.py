"""A backtest: a site file's control run against the simulated site, tick by tick.

The same pieces as on a site, with the network taken out: the pure control core
(:func:`reconciler.control.core.decide`) decides every ``site.control.tick_s`` on readings
of the simulator's plant (:class:`reconciler.sim.plant.Plant`), and its setpoint is written
to the plant as the PowerPack driver writes it (ramps and always-active at start, each
command with the heartbeat toggled, direct mode and the heartbeat timeout after the first).
No I/O, no clock: time is the simulated one, and the plant's noise is seeded by
``site.simulation.seed``, so a run is repeatable.

Differences from the agent, on purpose: every device is read on every tick (the plant is
always reachable, so no safe stop comes from stale readings), a setpoint is written on
every tick (no deadband skip), and ``control.shadow`` is ignored (a backtest is about what
the control would do).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from reconciler.agent.ports import NoSignals, SignalSource
from reconciler.backtest.report import (
    BacktestResult,
    DayResult,
    MetricsBuilder,
    combine,
)
from reconciler.config.model import Site
from reconciler.control.core import decide
from reconciler.control.periods import periods_in_day
from reconciler.control.schedule import DayPlans, local_midnight, zone
from reconciler.control.types import (
    BatteryReading,
    ControlState,
    MeterReading,
    Observation,
)
from reconciler.devices.powerpack import DIRECT_MODE, HEARTBEAT_VALUES
from reconciler.diff.tolerances import limit_tolerances
from reconciler.sim.curves import HalfHourly
from reconciler.sim.plant import MAX_STEP_S, Plant
from reconciler.sim.registers import battery_values, meter_values

__all__ = ["BacktestResult", "observe", "run_backtest"]

#: Report progress at most this often, as a fraction of the run.
PROGRESS_STEP = 0.005


def observe(site: Site, plant: Plant) -> Observation:
    """What the agent would read from the plant's devices now (as the simulator's
    registers show it): battery SoE kWh and reported power kW, and every site meter."""
    at = plant.at
    bv = battery_values(plant)
    battery = BatteryReading(
        at=at,
        soe_kwh=float(bv["soe"]),
        target_power_kw=float(bv["target_power"]),
        available_blocks=int(bv["available_blocks"]),
        command_source=int(bv["command_source"]),
    )
    meters: dict[str, MeterReading] = {}
    for name, state in plant.meters.items():
        mv = meter_values(state)
        meters[name] = MeterReading(
            at=at,
            power_kw=plant.role_power_kw(state.role),
            frequency_hz=float(mv["frequency"]),
            voltage_v=float(mv["voltage_line_avg"]),
            current_a=float(mv["current_a"]),
            current_b=float(mv["current_b"]),
            current_c=float(mv["current_c"]),
            current_avg=float(mv["current_avg"]),
            power_a_kw=float(mv["power_a"]),
            power_b_kw=float(mv["power_b"]),
            power_c_kw=float(mv["power_c"]),
            reactive_kvar=float(mv["reactive_total"]),
            apparent_kva=float(mv["apparent_total"]),
            power_factor=float(mv["power_factor"]),
            energy_import_kwh=float(mv["energy_import"]),
            energy_export_kwh=float(mv["energy_export"]),
        )
    return Observation(battery=battery, meters=meters)


class _Driver:
    """Writes to the plant's battery what PowerPackBattery writes over Modbus."""

    def __init__(self, site: Site, plant: Plant) -> None:
        self.device = site.devices.battery
        self.plant = plant
        self.beats = 0
        self.direct = False

    def start(self) -> None:
        if self.device.ramp_up_kw_per_s is not None:
            self.plant.write("ramp_up", self.device.ramp_up_kw_per_s)
        if self.device.ramp_down_kw_per_s is not None:
            self.plant.write("ramp_down", self.device.ramp_down_kw_per_s)
        self.plant.write("always_active", 1 if self.device.always_active else 0)

    def command(self, power_kw: float) -> None:
        self.plant.write("power_command", power_kw)
        self.plant.write("heartbeat", HEARTBEAT_VALUES[self.beats % 2])
        self.beats += 1
        if not self.direct:
            self.plant.write("heartbeat_timeout", self.device.heartbeat_timeout_s)
            self.plant.write("real_power_mode", DIRECT_MODE)
            self.direct = True


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


def run_backtest(
    site: Site,
    start: datetime,
    end: datetime,
    *,
    signals: SignalSource | None,
    progress: Callable[[float], None] | None = None,
    load: HalfHourly | None = None,
    solar: HalfHourly | None = None,
) -> BacktestResult:
    """Run ``site``'s control on the simulated site from ``start`` to ``end`` (aware).

    ``signals`` gives the market signals at each tick (None: none at all, so modes that
    need a price propose nothing unless they have a default). ``progress`` is called with
    the fraction done (0..1) now and then, and with 1.0 at the end. ``load`` (one home, kW)
    and ``solar`` (one kWp, kW) replace the simulator's January profiles.

    Energy is integrated over every physics sub-step of the plant (at most 1 s, split at
    local midnight), so each day's hours add up to its real length.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise ValueError(f"end {end.isoformat()} is not after start {start.isoformat()}")

    tz = zone(site.site.timezone)
    source: SignalSource = signals if signals is not None else NoSignals()
    plant = Plant.for_site(site, start, load=load, solar=solar)
    driver = _Driver(site, plant)
    driver.start()

    nameplate = site.devices.battery.nameplate_energy_kwh
    limits = site.limits

    # The same tolerances as `flux diff`: overshoot of a tick's worth is not a breach.
    tolerances = limit_tolerances(site)
    power_tol, energy_tol = tolerances.power_kw, tolerances.energy_kwh

    def builder(soe: float) -> MetricsBuilder:
        return MetricsBuilder(
            soe_start_kwh=soe,
            nameplate_kwh=nameplate,
            import_limit_kw=limits.site_import_kw,
            export_limit_kw=limits.site_export_kw,
            soe_min_kwh=site.soe_min_kwh,
            soe_max_kwh=site.soe_max_kwh,
            power_tolerance_kw=power_tol,
            energy_tolerance_kwh=energy_tol,
            tz=tz,
        )

    days = _days(site, start, end)
    london = site.site.timezone == "Europe/London"
    done: list[DayResult] = []
    day_index = 0
    day, day_end = days[0]
    acc = builder(plant.soe_kwh)

    tick = timedelta(seconds=site.control.tick_s)
    sub = timedelta(seconds=MAX_STEP_S)
    total_s = (end - start).total_seconds()
    next_report = 0.0
    plans = DayPlans()  # the schedule's memo, reused by every tick of the run
    state = ControlState(plans=plans)
    ticks = 0
    at = start
    while at < end:
        obs = observe(site, plant)
        if state.last_at is None and obs.battery is not None:
            # As the loop does: the first prediction starts from what the battery does.
            state = ControlState(last_target_kw=obs.battery.target_power_kw, plans=plans)
        sig = source.signals_at(at)
        decision = decide(site, at, obs, sig, state)
        driver.command(decision.target_kw)
        state = ControlState(last_target_kw=decision.target_kw, last_at=at, plans=plans)
        ticks += 1

        import_rate, export_rate = plans.plan(site, at).rates_at(at)
        price = sig.imbalance_price.value if sig.imbalance_price is not None else None
        winner, safe = decision.winner, decision.safe_stop

        until = min(at + tick, end)
        t = at
        while t < until:
            if t >= day_end:
                done.append(_day_result(day, london, acc))
                acc = builder(plant.soe_kwh)
                day_index += 1
                day, day_end = days[day_index]
            stop = min(t + sub, until, day_end)
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
            )
            t = stop
        at = until

        if progress is not None:
            fraction = (at - start).total_seconds() / total_s
            if fraction >= next_report:
                progress(min(1.0, fraction))
                next_report = fraction + PROGRESS_STEP
    done.append(_day_result(day, london, acc))
    if progress is not None:
        progress(1.0)

    return BacktestResult(
        site_id=site.site.id,
        timezone=site.site.timezone,
        start=start.astimezone(tz),
        end=end.astimezone(tz),
        tick_s=site.control.tick_s,
        ticks=ticks,
        nameplate_kwh=nameplate,
        import_limit_kw=limits.site_import_kw,
        export_limit_kw=limits.site_export_kw,
        soe_min_kwh=site.soe_min_kwh,
        soe_max_kwh=site.soe_max_kwh,
        breach_tolerance_kw=power_tol,
        breach_tolerance_kwh=energy_tol,
        days=tuple(done),
        total=combine([d.metrics for d in done], nameplate),
    )


def _day_result(day: date, london: bool, acc: MetricsBuilder) -> DayResult:
    return DayResult(day, periods_in_day(day) if london else None, acc.build())
