"""The reconcile loop: every tick observe, guard, decide, act, record.

Every collaborator is injected (clock, devices, desired-state source, telemetry sink,
market feeds), so the same loop runs on a site, against the simulator at 60x and in a
backtest with a manual clock. The decision itself is the pure control core's.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime

from reconciler.agent.frequency import FrequencyPerformance
from reconciler.agent.ports import (
    Battery,
    Markets,
    Meter,
    NoSignals,
    SettingChange,
    SignalSource,
    Sink,
)
from reconciler.clock import Clock
from reconciler.config.model import FrequencyResponseEntry, Site
from reconciler.control.core import decide
from reconciler.control.guard import battery_power_at, measured_battery_power, ramp_step
from reconciler.control.types import (
    BatteryReading,
    ControlState,
    Decision,
    FrequencyRecord,
    MeterReading,
    Observation,
    Signals,
)
from reconciler.logs import log_event

log = logging.getLogger("flux.agent")

#: How long (s) a battery found frozen is held in safe stop before it is tried again.
FROZEN_RETRY_S = 300.0
#: The least command (kW) a frozen-battery check counts as telling the battery to move: at
#: 1 kW a 12 s reading age moves the SoE register (1 Wh steps) three times.
MIN_MOVING_KW = 1.0
#: Frequency records (one a second) kept for the sink while it fails, at most: an hour.
MAX_PENDING_FREQUENCY_RECORDS = 3600


@dataclass(frozen=True)
class TickResult:
    """What one tick did, for health gating, status and the demo's live table."""

    at: datetime
    decision: Decision
    observation: Observation
    written_kw: float | None
    write_error: str | None
    tracking_ok: bool
    envelope_ok: bool
    signals: Signals = field(default_factory=Signals)  # the market signals decided on
    #: Battery settings found changed (a restart, a local override) and written again.
    settings_changed: tuple[SettingChange, ...] = ()
    #: Why the settings could not be read back or rewritten, if they could not.
    settings_error: str | None = None


@dataclass
class _DeviceMemory:
    """The last good reading of each device, and when each was last polled."""

    battery: BatteryReading | None = None
    meters: dict[str, MeterReading] = field(default_factory=dict)
    polled_at: dict[str, datetime] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: When each meter's values last changed (a live meter's frequency always moves).
    changed_at: dict[str, datetime] = field(default_factory=dict)
    #: The battery's values when they were found frozen; stale until they move again.
    frozen_battery: BatteryReading | None = None


#: The fields of each reading type other than its read time, taken in one call.
_VALUES_OF = {
    cls: operator.attrgetter(*(f.name for f in fields(cls) if f.name != "at"))
    for cls in (BatteryReading, MeterReading)
}


def _same_values(a: BatteryReading | MeterReading, b: BatteryReading | MeterReading) -> bool:
    """Whether two readings hold the same values, whatever their read times (what
    ``replace(a, at=b.at) == b`` says, without building a reading on every poll)."""
    values_of = _VALUES_OF[type(a)]
    return type(b) is type(a) and bool(values_of(a) == values_of(b))


def _envelope_cut(decision: Decision, label: str) -> bool:
    """Whether the hard envelope cut the response of the entry ``label``: a limit bound the
    decision and its setpoint is not what that entry held."""
    if not decision.bound_by:
        return False
    held = next((c.target_kw for c in decision.components if c.source == label), None)
    return held is not None and abs(decision.target_kw - held) > 1e-6


def observe_tick(markets: Markets, result: TickResult) -> None:
    """Tell the market signals what the site and battery did in a tick (for Axle's delivery
    reports and the planner's forecasts): not on a safe stop (readings may be stale) nor
    without readings. Battery power is the PowerPack's reported real-power target
    (register 201, kW, + discharge): it has no measured-power register."""
    battery, site_kw = result.observation.battery, result.decision.site_power_kw
    if battery is not None and site_kw is not None and not result.decision.safe_stop:
        markets.observe(result.at, site_kw, battery.target_power_kw, battery.soe_kwh)


def is_shadow(site: Site, override: bool | None) -> bool:
    """Shadow mode (decide and record, never write): the command line's choice, else the
    site file's."""
    return site.control.shadow if override is None else override


class ReconcileLoop:
    """One site's control loop.

    ``site_fn`` returns the desired state to use now (the staged or last-known-good
    revision) and its sha; it is read at the top of every tick so a new revision applies
    between ticks, never during one.
    """

    def __init__(
        self,
        *,
        site_fn: Callable[[], tuple[Site, str | None]],
        battery: Battery,
        meters: Mapping[str, Meter],
        clock: Clock,
        sink: Sink | None = None,
        signals: SignalSource | None = None,
        shadow: bool | None = None,
        on_tick: Callable[[TickResult], None] | None = None,
        concurrent_reads: bool = True,
    ) -> None:
        self._site_fn = site_fn
        #: Read the devices at the same time (over the network, a slow one must not
        #: delay the others), or in turn: devices that answer at once (the simulator's
        #: in-process transport, in a backtest) then need no event loop at all.
        self._concurrent_reads = concurrent_reads
        self.battery = battery
        self.meters = dict(meters)
        self.clock = clock
        self.sink = sink
        self.signals = signals or NoSignals()
        self._shadow_override = shadow
        self._on_tick = on_tick
        self.state = ControlState()
        self._memory = _DeviceMemory()
        #: The devices and their poll intervals, and the (site, battery, meters) they are for.
        self._device_list: (
            tuple[Site, Battery, dict[str, Meter], list[tuple[str, Battery | Meter, float]]] | None
        ) = None
        self._last_write_at: datetime | None = None
        self._last_written_kw: float | None = None
        #: The battery's power (kW) when the last setpoint was written: where its ramp began.
        self._power_at_write: float | None = None
        #: Since when a non-zero setpoint has been commanded (None: at 0 kW, or never).
        self._commanding_since: datetime | None = None
        self._last_record_bucket: int | None = None
        self._last_recorded_key: tuple[str | None, bool] | None = None
        self._started = False
        self._settings_checked = False
        self._logged_safe = False
        #: Why the last records could not be stored (None: they could).
        self._record_error: str | None = None
        self.ticks = 0
        #: Iterations of the fast path (frequency response) since start.
        self.fast_ticks = 0
        #: The signals of the last tick, reused by the fast path between ticks.
        self._signals: Signals = Signals()
        #: The grid meter's last frequency (Hz) and when it was first seen at that value.
        self._frequency: tuple[float, datetime] | None = None
        #: Frequency response delivered in the current contract block.
        self.frequency = FrequencyPerformance()
        #: Its one-second records not yet handed to the sink: (site, battery, record).
        self._frequency_records: list[tuple[str, str, FrequencyRecord]] = []

    # ------------------------------------------------------------------ observe

    async def _poll(self, site: Site, at: datetime) -> Observation:
        """Read every device that is due; keep the last good reading of each.

        A failed read leaves the previous reading in place (so its age keeps growing and
        the guard goes safe once it is stale) and names the device in ``errors``.
        """
        polled_at = self._memory.polled_at
        due = [
            (name, dev, interval)
            for name, dev, interval in self._devices(site)
            if (last := polled_at.get(name)) is None
            or (at - last).total_seconds() >= interval * 0.95
        ]
        results = await self._read_each([dev for _, dev, _ in due])
        memory = self._memory
        for (name, _dev, _), result in zip(due, results, strict=True):
            memory.polled_at[name] = at
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                # Kept until the device reads again, even on ticks it is not polled.
                memory.errors[name] = str(result) or type(result).__name__
                continue
            memory.errors.pop(name, None)
            if isinstance(result, BatteryReading):
                stuck = self._battery_frozen(site, result, at)
                if stuck is not None:
                    memory.errors[name] = stuck
                memory.battery = result
            elif isinstance(result, MeterReading):
                if name == site.grid_meter_name:
                    self._frequency_seen(result)
                frozen = self._frozen_for(name, result, at)
                if frozen > site.limits.max_reading_age_s:
                    # A gateway serving cached registers answers on time with old values:
                    # as stale as no answer at all.
                    memory.errors[name] = (
                        f"values unchanged for {frozen:.0f} s (frozen meter or gateway)"
                    )
                memory.meters[name] = result
        return self._observation()

    async def _read_each(
        self, devices: list[Battery | Meter] | list[Meter]
    ) -> list[BatteryReading | MeterReading | BaseException]:
        """Each device's reading, or the exception its read raised: all at once over the
        network, in turn for in-process devices (a backtest, which drives the loop with no
        event loop)."""
        if self._concurrent_reads:
            return list(await asyncio.gather(*(d.read() for d in devices), return_exceptions=True))
        results: list[BatteryReading | MeterReading | BaseException] = []
        for device in devices:
            try:
                results.append(await device.read())
            except Exception as exc:  # as gather(return_exceptions=True) hands it on
                results.append(exc)
        return results

    def _devices(self, site: Site) -> list[tuple[str, Battery | Meter, float]]:
        """Every device with its poll interval (s), the battery first: worked out once
        per site object and set of devices, not every tick."""
        cached = self._device_list
        if (
            cached is not None
            and cached[0] is site
            and cached[1] is self.battery
            and cached[2] is self.meters
        ):
            return cached[3]
        devices: list[tuple[str, Battery | Meter, float]] = [
            (self.battery.name, self.battery, site.devices.battery.poll_interval_s)
        ]
        for name, meter in self.meters.items():
            cfg = site.devices.meters.get(name)
            devices.append((name, meter, cfg.poll_interval_s if cfg else site.control.tick_s))
        self._device_list = (site, self.battery, self.meters, devices)
        return devices

    def _observation(self) -> Observation:
        memory = self._memory
        return Observation(
            battery=memory.battery,
            meters=dict(memory.meters),
            errors=dict(memory.errors),
            frequency_changed_at=self._frequency[1] if self._frequency else None,
        )

    def _frequency_seen(self, reading: MeterReading) -> None:
        """Keep when the grid frequency last changed: one that stops moving is frozen."""
        if self._frequency is None or self._frequency[0] != reading.frequency_hz:
            self._frequency = (reading.frequency_hz, reading.at)

    def _battery_frozen(self, site: Site, reading: BatteryReading, at: datetime) -> str | None:
        """Why the battery's registers look frozen, or None. A battery told to move, with
        inverter blocks available, whose SoE and power do not change for longer than
        the reading age limit is answering from cached registers (or not running):
        as stale as no answer. Measured from the later of the last change and the
        start of the non-zero command, so a battery at rest for hours is not frozen
        on its first command. Once found frozen it stays so until its values move,
        even across the safe stop's 0 kW (which would otherwise restart the count
        every other tick), or until ``FROZEN_RETRY_S`` has passed: a battery that
        simply never started moving reads the same at rest as when it froze, so it
        is tried again now and then.
        """
        memory = self._memory
        previous = memory.battery
        # No inverter block available: the battery says why it does not move. That is a
        # battery not following (the health gate and `flux diff` say so), not a cache.
        if previous is None or not _same_values(previous, reading) or not reading.available_blocks:
            memory.changed_at[self.battery.name] = at
            memory.frozen_battery = None
            return None
        frozen = memory.frozen_battery
        if frozen is not None:
            if (at - frozen.at).total_seconds() < FROZEN_RETRY_S:
                return self._frozen_message(frozen, at)
            memory.frozen_battery = None
            memory.changed_at[self.battery.name] = at
        since = self._commanding_since
        if since is None:
            return None
        start = max(memory.changed_at.get(self.battery.name, at), since)
        if (at - start).total_seconds() <= site.limits.max_reading_age_s:
            return None
        memory.frozen_battery = replace(reading, at=memory.changed_at.get(self.battery.name, at))
        return self._frozen_message(memory.frozen_battery, at)

    def _frozen_message(self, frozen: BatteryReading, at: datetime) -> str:
        return (
            f"SoE {frozen.soe_kwh:.1f} kWh and power {frozen.target_power_kw:.1f} kW "
            f"unchanged for {(at - frozen.at).total_seconds():.0f} s while commanded "
            f"{self._last_written_kw or 0.0:.0f} kW (frozen battery registers)"
        )

    def _frozen_for(self, name: str, reading: MeterReading, at: datetime) -> float:
        """Seconds the meter's values (everything but the read time) have not changed."""
        previous = self._memory.meters.get(name)
        if previous is None or not _same_values(previous, reading):
            self._memory.changed_at[name] = at
        return (at - self._memory.changed_at.get(name, at)).total_seconds()

    # ------------------------------------------------------------------ act

    def is_shadow(self, site: Site) -> bool:
        return is_shadow(site, self._shadow_override)

    def _should_write(self, site: Site, decision: Decision, at: datetime) -> bool:
        """Skip a write inside the deadband, but never let the heartbeat lapse, and never
        skip a stop: a safe stop or a move to exactly 0 kW is always written.

        The PowerPack's heartbeat toggles with every command, so a skipped write is also a
        skipped heartbeat: write at least three times per heartbeat timeout.
        """
        if self._last_written_kw is None or self._last_write_at is None:
            return True
        target_kw = decision.target_kw
        if decision.safe_stop or (target_kw == 0.0 and self._last_written_kw != 0.0):
            return True
        if abs(target_kw - self._last_written_kw) >= site.control.deadband_kw:
            return True
        since = (at - self._last_write_at).total_seconds()
        return since >= site.devices.battery.heartbeat_timeout_s / 3

    async def _act(
        self, site: Site, decision: Decision, at: datetime
    ) -> tuple[float | None, str | None]:
        shadow = self.is_shadow(site)
        if shadow or not self._should_write(site, decision, at):
            return None, None
        try:
            await self.battery.command(decision.target_kw)
        except Exception as exc:  # a device error must not stop the loop: say why and go on
            return None, str(exc) or type(exc).__name__
        self._last_write_at = at
        if abs(decision.target_kw) < MIN_MOVING_KW:
            # Too little to show in the SoE register within the reading age limit: the
            # battery is not told to move, so unchanged registers mean nothing.
            self._commanding_since = None
        elif self._commanding_since is None:
            self._commanding_since = at
        self._last_written_kw = decision.target_kw
        return decision.target_kw, None

    async def _ensure_settings(self) -> tuple[tuple[SettingChange, ...], str | None]:
        """After a write: read the battery's mode and settings back and rewrite what
        differs (a battery that restarted or left direct mode ignores every setpoint).

        The first check after start is the start-up sequence itself (direct mode after
        the first command), not drift: it is logged, not reported as a re-apply."""
        try:
            changes = await self.battery.ensure_settings()
        except Exception as exc:  # reported in the decision and status; control goes on
            return (), str(exc) or type(exc).__name__
        if not self._settings_checked:
            self._settings_checked = True
            log_event(
                log,
                "battery_settings_written",
                device=self.battery.name,
                changes=[str(c) for c in changes],
            )
            return (), None
        if changes:
            log_event(
                log,
                "battery_settings_reapplied",
                level=logging.WARNING,
                device=self.battery.name,
                changes=[str(c) for c in changes],
            )
        return changes, None

    # ------------------------------------------------------------------ record

    def _record(self, site: Site, sha: str | None, result: TickResult) -> None:
        """Readings and the decision every record interval; a decision also at once when
        the winning entry changes or the loop goes safe (what an engineer reviewing an
        incident needs, at the cost of one row)."""
        if self.sink is None:
            return
        at = result.at
        key = (result.decision.winner, result.decision.safe_stop)
        if result.settings_changed:
            self._last_recorded_key = None  # a re-apply is recorded at once, with its reason
        # Aligned to the interval (whole minutes by default), not to the last record: one
        # reading per minute bucket, so a missing minute in the database is a real gap.
        bucket = int(at.timestamp() // site.telemetry.record_interval_s)
        due = bucket != self._last_record_bucket
        if due or key != self._last_recorded_key:
            self.sink.add_decision(site.site.id, sha, result.decision)
            self._last_recorded_key = key
        if not due:
            return
        self._last_record_bucket = bucket
        obs = result.observation
        if obs.battery is not None and self.battery.name not in obs.errors:
            actual_kw, _ = measured_battery_power(site, obs, at)
            self.sink.add_bess(
                site.site.id, self.battery.name, obs.battery, actual_power_kw=actual_kw
            )
        for name, reading in obs.meters.items():
            if name not in obs.errors:
                self.sink.add_meter(site.site.id, name, reading)

    def flush_records(self) -> None:
        """Hand frequency response's records gathered since the last tick to the sink in
        one call per battery: once a tick, so the fast path (every 200 ms) never waits on
        the outbox's commit. A failing sink keeps them (up to an hour's) for the next tick;
        the error goes to the caller (see :meth:`_record_safely`)."""
        pending = self._frequency_records
        if self.sink is None or not pending:
            return
        groups: dict[tuple[str, str], list[FrequencyRecord]] = {}
        for site_id, device, record in pending:
            groups.setdefault((site_id, device), []).append(record)
        del pending[:]
        try:
            for (site_id, device), records in list(groups.items()):
                self.sink.add_frequency_many(site_id, device, records)
                del groups[site_id, device]
        finally:
            left = [(s, d, r) for (s, d), rs in groups.items() for r in rs]
            pending[:0] = left[-MAX_PENDING_FREQUENCY_RECORDS:]

    def _record_safely(self, site: Site, sha: str | None, result: TickResult) -> None:
        """Record, but never let the store stop control: a full disk or a locked outbox is
        logged (once, and again when it clears) and the battery is still run."""
        try:
            self._record(site, sha, result)
            self.flush_records()
        except Exception as exc:
            if self._record_error is None:
                log_event(log, "record_failed", level=logging.ERROR, error=str(exc))
            self._record_error = str(exc) or type(exc).__name__
            return
        if self._record_error is not None:
            log_event(log, "record_recovered", after=self._record_error)
            self._record_error = None

    def _log_safety(self, result: TickResult) -> None:
        """A warning when control goes safe, and a line when it comes back: once per
        change, never once per tick."""
        safe = result.decision.safe_stop
        if safe == self._logged_safe:
            return
        self._logged_safe = safe
        if safe:
            log_event(log, "safe_stop", level=logging.WARNING, reason=result.decision.reason)
        else:
            log_event(log, "safe_stop_cleared", reason=result.decision.reason)

    # ------------------------------------------------------------------ health

    def _tracking_ok(self, site: Site, obs: Observation, shadow: bool, at: datetime) -> bool:
        """The battery follows the last setpoint as fast as its ramp allows: its power is
        within tolerance of where a battery ramping from its power at the write would be
        now. A big step is not "not tracked" just because the ramp takes longer than a
        tick (565 kW at 100 kW/s needs 5.65 s); a battery that does not move still is."""
        written, before, when = self._last_written_kw, self._power_at_write, self._last_write_at
        if shadow or obs.battery is None or written is None:
            return True
        expected = written
        if before is not None and when is not None:
            elapsed_s = max(0.0, (at - when).total_seconds())
            expected = before + ramp_step(site, before, written, elapsed_s)
        return abs(obs.battery.target_power_kw - expected) <= site.control.tracking_tolerance_kw

    @staticmethod
    def _envelope_ok(site: Site, decision: Decision) -> bool:
        limits = site.limits
        if (
            not -limits.battery_charge_kw - 1e-6
            <= decision.target_kw
            <= limits.battery_discharge_kw + 1e-6
        ):
            return False
        soe = decision.soe_kwh
        if soe is None:
            return True
        # Outside the SoE band while still pushing further out is a breach.
        if soe < site.soe_min_kwh - 1e-6 and decision.target_kw > 0:
            return False
        return not (soe > site.soe_max_kwh + 1e-6 and decision.target_kw < 0)

    # ------------------------------------------------------------------ tick

    async def start(self) -> None:
        """Connect to the battery and write its start-up settings (not in shadow mode)."""
        site, _ = self._site_fn()
        shadow = self.is_shadow(site)
        if not shadow:
            try:
                await self.battery.start()
            except Exception as exc:
                # Keep going: the guard will hold 0 kW and say why until the battery answers.
                log_event(log, "battery_start_failed", level=logging.WARNING, error=str(exc))
        self._started = True

    async def tick(self) -> TickResult:
        """One pass: observe, guard + decide, act, record."""
        site, sha = self._site_fn()
        if not self._started:
            await self.start()
        at = self.clock.now()
        obs = await self._poll(site, at)
        if self.state.last_at is None and obs.battery is not None:
            # First tick (or a restart inside the heartbeat timeout, with the battery still
            # running the old setpoint): the site prediction must start from what the
            # battery is doing, not from 0 kW.
            self.state = ControlState(last_target_kw=obs.battery.target_power_kw)
        signals = self._signals = self.signals.signals_at(at)
        decision = decide(site, at, obs, signals, self.state)
        self._frequency_sample(site, at, obs, decision)
        shadow = self.is_shadow(site)
        tracking_ok = self._tracking_ok(site, obs, shadow, at)
        written, write_error = await self._act(site, decision, at)
        changed: tuple[SettingChange, ...] = ()
        settings_error: str | None = None
        if written is not None:
            self._power_at_write = obs.battery.target_power_kw if obs.battery else None
            changed, settings_error = await self._ensure_settings()
        if changed:
            listed = ", ".join(str(c) for c in changed)
            decision = replace(
                decision,
                reason=f"{decision.reason}; battery settings re-applied ({listed}): it had "
                "restarted or left direct mode",
            )
        elif settings_error is not None:
            decision = replace(
                decision,
                reason=f"{decision.reason}; battery settings not verified: {settings_error}",
            )
        self.state = replace(self.state, last_target_kw=decision.target_kw, last_at=at)
        result = TickResult(
            at=at,
            decision=decision,
            observation=obs,
            written_kw=written,
            write_error=write_error,
            tracking_ok=tracking_ok,
            envelope_ok=self._envelope_ok(site, decision),
            signals=signals,
            settings_changed=changed,
            settings_error=settings_error,
        )
        self._record_safely(site, sha, result)
        self._log_safety(result)
        self.ticks += 1
        if self._on_tick is not None:
            self._on_tick(result)
        return result

    # ------------------------------------------------------------------ fast path

    def fast_interval_s(self, at: datetime | None = None) -> float | None:
        """The fast path's cadence (s) while a frequency_response entry is active, else
        None: between ticks the agent then calls :meth:`fast_tick` this often."""
        site, _ = self._site_fn()
        when = at or self.clock.now()
        intervals = [
            a.entry.params.fast_interval_s
            for a in self.state.plans.plan(site, when).active_entries(when)
            if isinstance(a.entry, FrequencyResponseEntry)
        ]
        return min(intervals) if intervals else None

    async def fast_tick(self) -> Decision | None:
        """Between ticks: read the grid meter (and the battery's meter, if the site has
        one), decide again on them with the tick's other readings and signals, and write
        the setpoint if it moved past the deadband (the battery's settings are checked on
        ticks, not here). None when there is nothing to decide on yet or the grid meter
        did not answer (the next tick judges it)."""
        site, _ = self._site_fn()
        grid = site.grid_meter_name
        names = [grid, *(n for n, m in site.devices.meters.items() if m.role == "battery")]
        meters = [(n, self.meters[n]) for n in names if n in self.meters]
        if not self._started or not meters or meters[0][0] != grid or not self._memory.battery:
            return None
        readings = await self._read_each([m for _, m in meters])
        if isinstance(readings[0], BaseException):
            return None  # the tick's own read says what is wrong, and goes safe
        at = self.clock.now()
        for (name, _), reading in zip(meters, readings, strict=True):
            if isinstance(reading, MeterReading):
                self._frozen_for(name, reading, at)  # a value that moved counts as a change
                self._memory.meters[name] = reading
        self._frequency_seen(self._memory.meters[grid])
        obs = self._observation()
        decision = decide(site, at, obs, self._signals, self.state)
        self._frequency_sample(site, at, obs, decision)
        await self._act(site, decision, at)
        self.state = replace(self.state, last_target_kw=decision.target_kw, last_at=at)
        self.fast_ticks += 1
        return decision

    def _frequency_sample(
        self, site: Site, at: datetime, obs: Observation, decision: Decision
    ) -> None:
        """One second of frequency response performance, while the mode is active."""
        if decision.safe_stop or obs.battery is None:
            return
        labels = {c.source for c in decision.components if c.mode == "frequency_response"}
        if not labels:
            return
        active = self.state.plans.plan(site, at).active_entries(at)
        found = [a for a in active if a.label in labels]
        entry = found[0].entry if found else None
        meter = obs.meters.get(site.grid_meter_name)
        if not isinstance(entry, FrequencyResponseEntry) or meter is None:
            return
        since = obs.frequency_changed_at or meter.at
        fresh = (at - since).total_seconds() <= entry.params.max_frequency_age_s
        record = self.frequency.sample(
            site,
            found[0].label,
            entry.params,
            at,
            frequency_hz=meter.frequency_hz if fresh else None,
            delivered_kw=battery_power_at(site, obs, at, self.state.last_target_kw),
            soe_kwh=obs.battery.soe_kwh,
            grid_hz=meter.frequency_hz,
            envelope_cut=_envelope_cut(decision, found[0].label),
        )
        if record is not None and self.sink is not None:
            self._frequency_records.append((site.site.id, self.battery.name, record))

    async def replace_devices(self, battery: Battery, meters: Mapping[str, Meter]) -> None:
        """Swap in devices of a new revision (between ticks); the old ones are closed and
        their readings forgotten, so nothing stale carries over."""
        await self.close()
        self.battery = battery
        self.meters = dict(meters)
        self._memory = _DeviceMemory()
        self._last_write_at = None
        self._last_written_kw = None
        self._power_at_write = None
        self._commanding_since = None
        self._started = False
        self._settings_checked = False

    async def close(self) -> None:
        """Close every device connection (errors are logged, not raised)."""
        devices: list[Battery | Meter] = [self.battery, *self.meters.values()]
        for dev in devices:
            try:
                await dev.close()
            except Exception as exc:
                log_event(log, "device_close_failed", device=dev.name, error=str(exc))
