"""The physics of a simulated site: one battery, the homes' load, solar, and the meters.

Signs (docs/domain.md): battery power + discharge; meter power + import at the meter's point;
grid = load - solar - battery. Units: kW, kvar, kWh, V, A, Hz, seconds.

The battery knows only its nameplate (power, energy) and its efficiency, not the site's soft
limits: it is the agent's job to keep within those.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Literal

from reconciler.config.model import Site
from reconciler.sim.curves import HalfHourly, load_per_home, solar_per_kwp

#: Longest physics sub-step, s: keeps ramps and SoE limits accurate when time jumps.
MAX_STEP_S = 1.0
#: Power of one inverter block, kW (the battery reports available blocks).
BLOCK_KW = 62.5
#: Power factor of the homes' load (lagging): their reactive power is load * tan(acos(pf)).
LOAD_POWER_FACTOR = 0.95
#: Reactive per active power of that load (kvar/kW), worked out once.
_LOAD_TAN_PHI = math.tan(math.acos(LOAD_POWER_FACTOR))
NOMINAL_VOLTAGE_V = 400.0
NOMINAL_FREQUENCY_HZ = 50.0
#: command_source the simulated battery reports: 1 once direct (Modbus) mode is on, else 0.
SOURCE_LOCAL, SOURCE_MODBUS = 0, 1


@dataclass
class BatteryState:
    """The simulated battery: what its registers hold and what it does."""

    nameplate_power_kw: float
    nameplate_energy_kwh: float
    charge_efficiency: float
    soe_kwh: float
    total_blocks: int
    available_blocks: int
    power_kw: float = 0.0
    setpoint_kw: float = 0.0
    real_power_mode: int = 0
    always_active: int = 0
    peak_power_mode: int = 0
    heartbeat: int = 0
    heartbeat_timeout_s: int = 10
    ramp_up_kw_per_s: float = 0.0
    ramp_down_kw_per_s: float = 0.0
    last_heartbeat_change: datetime | None = None
    #: True after the heartbeat stopped for longer than its timeout (battery at 0 kW).
    heartbeat_lost: bool = False

    @property
    def direct(self) -> bool:
        return self.real_power_mode == 1

    @property
    def command_source(self) -> int:
        return SOURCE_MODBUS if self.direct else SOURCE_LOCAL

    @property
    def max_power_kw(self) -> float:
        return self.nameplate_power_kw * self.available_blocks / max(1, self.total_blocks)

    @property
    def target_kw(self) -> float:
        """What the battery is heading for (kW): the setpoint in direct mode, else 0."""
        if not self.direct or self.heartbeat_lost:
            return 0.0
        return max(-self.max_power_kw, min(self.max_power_kw, self.setpoint_kw))


@dataclass
class MeterState:
    """One meter's physical quantities; energy counters only increase."""

    role: str
    power_kw: float = 0.0
    reactive_kvar: float = 0.0
    voltage_v: float = NOMINAL_VOLTAGE_V
    frequency_hz: float = NOMINAL_FREQUENCY_HZ
    energy_import_kwh: float = 0.0
    energy_export_kwh: float = 0.0
    reactive_import_kvarh: float = 0.0
    reactive_export_kvarh: float = 0.0

    @property
    def apparent_kva(self) -> float:
        return math.hypot(self.power_kw, self.reactive_kvar)

    @property
    def power_factor(self) -> float:
        s = self.apparent_kva
        return 1.0 if s < 1e-9 else abs(self.power_kw) / s

    @property
    def current_a(self) -> float:
        """Phase current (A) of a balanced three-phase load at the line voltage."""
        return self.apparent_kva * 1000.0 / (math.sqrt(3.0) * self.voltage_v)


#: GB grid frequency between events: a mean-reverting random walk around 50 Hz with this
#: standard deviation (Hz) and time constant (s): mostly inside +-0.2 Hz, wandering over
#: minutes, as the system operator's published 1-second data does.
FREQUENCY_STD_HZ = 0.06
FREQUENCY_TAU_S = 60.0

FrequencyEventKind = Literal["step", "drop", "high"]
FREQUENCY_EVENTS: tuple[str, ...] = ("step", "drop", "high")


@dataclass(frozen=True)
class FrequencyEvent:
    """A grid event (times from ``start``, s): ``step`` to 49.5 Hz for 60 s; ``drop``
    down to 48.8 Hz over 60 s, held 10 s, back to 50 Hz over 60 s; ``high`` to 50.5 Hz
    for 60 s. Between events the wander goes on underneath."""

    kind: FrequencyEventKind
    start: datetime
    #: How long a step or high event holds its frequency, s.
    hold_s: float = 60.0

    def hz_at(self, at: datetime) -> float | None:
        t = (at - self.start).total_seconds()
        if t < 0:
            return None
        if self.kind == "step":
            return 49.5 if t < self.hold_s else None
        if self.kind == "high":
            return 50.5 if t < self.hold_s else None
        if t < 60:
            return 50.0 - 1.2 * t / 60
        if t < 70:
            return 48.8
        if t < 130:
            return 48.8 + 1.2 * (t - 70) / 60
        return None


@dataclass(frozen=True)
class RepeatedEvent:
    """``KIND:EVERY_S[:HOLD_S]``: a grid frequency event every EVERY_S seconds of
    simulated time, a step or high one held HOLD_S (default half the period)."""

    kind: FrequencyEventKind
    every_s: float
    hold_s: float

    @classmethod
    def parse(cls, text: str) -> RepeatedEvent:
        parts = text.split(":")
        if len(parts) not in (2, 3) or parts[0] not in FREQUENCY_EVENTS:
            raise ValueError(f"{text!r}: write KIND:EVERY_S[:HOLD_S], KIND one of step, drop, high")
        try:
            every = float(parts[1])
            hold = float(parts[2]) if len(parts) == 3 else every / 2
        except ValueError:
            raise ValueError(f"{text!r}: EVERY_S and HOLD_S are seconds") from None
        if every <= 0 or not 0 < hold <= every:
            raise ValueError(f"{text!r}: EVERY_S > 0 and 0 < HOLD_S <= EVERY_S")
        return cls(parts[0], every, hold)  # type: ignore[arg-type]

    def starts(self, first: datetime, lo: datetime, hi: datetime) -> list[datetime]:
        """The events' starts in [lo, hi): every EVERY_S from ``first`` (not at it)."""
        every = timedelta(seconds=self.every_s)
        k = max(1, math.ceil((lo - first) / every))
        out = []
        while first + k * every < hi:
            out.append(first + k * every)
            k += 1
        return out


@dataclass
class Plant:
    """The shared state every simulated device server reads from and writes to."""

    site: Site
    at: datetime
    load: HalfHourly
    solar: HalfHourly
    battery: BatteryState
    meters: dict[str, MeterState]
    load_kw: float = 0.0
    solar_kw: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    #: Changes whenever anything a register shows may have changed (time, a write).
    version: int = 0
    #: The wander's own random numbers, so frequency takes none from the load noise.
    frequency_rng: random.Random = field(default_factory=random.Random)
    wander_hz: float = NOMINAL_FREQUENCY_HZ
    frequency_events: list[FrequencyEvent] = field(default_factory=list)

    @classmethod
    def for_site(
        cls,
        site: Site,
        start: datetime,
        *,
        load: HalfHourly | None = None,
        solar: HalfHourly | None = None,
    ) -> Plant:
        """A plant for ``site`` at ``start``: load of ``site.homes`` homes and solar of
        ``site.solar_kwp`` kWp (the shipped profiles unless given, per home / per kWp)."""
        dev = site.devices.battery
        blocks = max(1, math.ceil(dev.nameplate_power_kw / BLOCK_KW))
        battery = BatteryState(
            nameplate_power_kw=dev.nameplate_power_kw,
            nameplate_energy_kwh=dev.nameplate_energy_kwh,
            charge_efficiency=site.limits.charge_efficiency,
            soe_kwh=min(dev.nameplate_energy_kwh, site.energy_kwh(site.simulation.initial_soe)),
            total_blocks=blocks,
            available_blocks=blocks,
            # Until the driver writes its own, the battery ramps to full power in 1 s.
            ramp_up_kw_per_s=dev.nameplate_power_kw,
            ramp_down_kw_per_s=dev.nameplate_power_kw,
        )
        meters = {name: MeterState(role=m.role) for name, m in site.devices.meters.items()}
        plant = cls(
            site=site,
            at=start,
            load=(load or load_per_home()).scaled(site.site.homes),
            solar=(solar or solar_per_kwp()).scaled(site.site.solar_kwp),
            battery=battery,
            meters=meters,
            rng=random.Random(site.simulation.seed),
            frequency_rng=random.Random(f"frequency-{site.simulation.seed}"),
        )
        plant._update_flows()
        return plant

    # ------------------------------------------------------------------ views

    @property
    def soe_kwh(self) -> float:
        return self.battery.soe_kwh

    @property
    def battery_kw(self) -> float:
        """Actual battery power, kW (+ discharge)."""
        return self.battery.power_kw

    @property
    def grid_kw(self) -> float:
        """Site boundary power, kW (+ import)."""
        return self.load_kw - self.solar_kw - self.battery.power_kw

    def role_power_kw(self, role: str) -> float:
        """Active power (kW, + import at that point) a meter of ``role`` measures."""
        # 0.0 - x, not -x: a meter at rest reads 0, not -0.
        if role == "battery":
            return 0.0 - self.battery.power_kw
        if role == "solar":
            return 0.0 - self.solar_kw
        if role == "load":
            return self.load_kw
        return self.grid_kw  # grid and feeder meters see the whole site

    def role_reactive_kvar(self, role: str) -> float:
        if role in ("grid", "feeder", "load"):
            return self.load_kw * _LOAD_TAN_PHI
        return 0.0  # inverters run at unity power factor

    # ------------------------------------------------------------------ writes

    def write(self, name: str, value: float | int | str) -> None:
        """Apply a write to a battery register (name as in the profile), at ``self.at``."""
        b = self.battery
        self.version += 1
        if isinstance(value, str):
            return
        if name == "power_command":
            b.setpoint_kw = float(value)
        elif name == "heartbeat":
            if int(value) != b.heartbeat:
                b.last_heartbeat_change = self.at
                b.heartbeat_lost = False
            b.heartbeat = int(value)
        elif name == "heartbeat_timeout":
            b.heartbeat_timeout_s = int(value)
        elif name == "real_power_mode":
            if int(value) == 1 and not b.direct:
                # The timeout runs from when direct mode starts, not from the last beat.
                b.last_heartbeat_change = self.at
                b.heartbeat_lost = False
            b.real_power_mode = int(value)
        elif name == "always_active":
            b.always_active = int(value)
        elif name == "peak_power_mode":
            b.peak_power_mode = int(value)
        elif name == "ramp_up":
            b.ramp_up_kw_per_s = float(value)
        elif name == "ramp_down":
            b.ramp_down_kw_per_s = float(value)

    def restart_battery(self) -> None:
        """The battery controller reboots: its writable registers go back to their
        power-on defaults (local mode, no power-saving override, its own ramps, a 10 s
        heartbeat timeout, no setpoint) and it stops; the stored energy stays."""
        b = self.battery
        self.version += 1
        b.setpoint_kw = 0.0
        b.power_kw = 0.0
        b.real_power_mode = 0
        b.always_active = 0
        b.peak_power_mode = 0
        b.heartbeat = 0
        b.heartbeat_timeout_s = 10
        b.ramp_up_kw_per_s = b.ramp_down_kw_per_s = b.nameplate_power_kw
        b.last_heartbeat_change = None
        b.heartbeat_lost = False
        self._update_flows()

    # ------------------------------------------------------------------ physics

    def advance_to(self, when: datetime) -> None:
        """Run the physics up to ``when`` (no-op if it is not later than ``self.at``)."""
        while when > self.at:
            dt = min(MAX_STEP_S, (when - self.at).total_seconds())
            if dt <= 1e-6:
                self.at = when
                self.version += 1
                break
            self._step(dt)

    def frequency_event(
        self, kind: FrequencyEventKind, at: datetime | None = None, hold_s: float = 60.0
    ) -> None:
        """Start a grid event now (or at ``at``); see :class:`FrequencyEvent`."""
        start = at or self.at
        self.frequency_events.append(FrequencyEvent(kind, start, hold_s))
        if start <= self.at:  # under way now: the meters show it at once, not next step
            freq = self.frequency_hz
            for m in self.meters.values():
                m.frequency_hz = freq
            self.version += 1
        if len(self.frequency_events) > 100:  # only the latest can still be running
            del self.frequency_events[:-10]

    @property
    def frequency_hz(self) -> float:
        """Grid frequency now: the wander's, or an event's with a tenth of the wander
        on it (a real frequency never holds still to the millihertz: a meter that does
        is frozen)."""
        for event in reversed(self.frequency_events):
            hz = event.hz_at(self.at)
            if hz is not None:
                return hz + 0.1 * (self.wander_hz - NOMINAL_FREQUENCY_HZ)
        return self.wander_hz

    def _wander(self, dt: float) -> None:
        """One exact step of the Ornstein-Uhlenbeck process over ``dt`` seconds."""
        keep, noise = _wander_terms(dt)
        offset = (self.wander_hz - NOMINAL_FREQUENCY_HZ) * keep
        self.wander_hz = NOMINAL_FREQUENCY_HZ + offset + noise * self.frequency_rng.gauss(0, 1)

    def _step(self, dt: float) -> None:
        self.version += 1
        self.at += _duration(dt)
        self._wander(dt)
        b = self.battery
        direct = b.real_power_mode == 1  # b.direct
        if (
            direct
            and not b.heartbeat_lost
            and b.last_heartbeat_change is not None
            and (self.at - b.last_heartbeat_change).total_seconds() > b.heartbeat_timeout_s
        ):
            b.heartbeat_lost = True
            b.setpoint_kw = 0.0
        # b.target_kw, without two property calls a second of physics
        if not direct or b.heartbeat_lost:
            target = 0.0
        else:
            max_kw = b.nameplate_power_kw * b.available_blocks / max(1, b.total_blocks)
            target = max(-max_kw, min(max_kw, b.setpoint_kw))
        power = b.power_kw
        rising = abs(target) > abs(power) and target * power >= 0
        rate = b.ramp_up_kw_per_s if rising else b.ramp_down_kw_per_s
        limit = rate * dt
        power += max(-limit, min(limit, target - power))
        # Energy bounds: the battery cannot deliver more than it holds, nor store more
        # than it has room for (charging stores power * efficiency).
        if power > 0:
            power = min(power, b.soe_kwh * 3600.0 / dt)
            b.soe_kwh -= power * dt / 3600.0
        elif power < 0:
            room = b.nameplate_energy_kwh - b.soe_kwh
            power = max(power, -room * 3600.0 / (dt * b.charge_efficiency))
            b.soe_kwh -= power * b.charge_efficiency * dt / 3600.0
        b.soe_kwh = max(0.0, min(b.nameplate_energy_kwh, b.soe_kwh))
        b.power_kw = power
        self._update_flows()
        hours = dt / 3600.0
        for m in self.meters.values():
            if m.power_kw >= 0:
                m.energy_import_kwh += m.power_kw * hours
            else:
                m.energy_export_kwh -= m.power_kw * hours
            if m.reactive_kvar >= 0:
                m.reactive_import_kvarh += m.reactive_kvar * hours
            else:
                m.reactive_export_kvarh -= m.reactive_kvar * hours

    def _noise(self) -> float:
        pct = self.site.simulation.noise_pct
        return 1.0 + self.rng.gauss(0.0, pct / 100.0) if pct > 0 else 1.0

    def _update_flows(self) -> None:
        at = self.at
        self.load_kw = load_kw = max(0.0, self.load.at(at) * self._noise())
        self.solar_kw = solar_kw = max(0.0, self.solar.at(at) * self._noise())
        t = at.timestamp()
        freq = self.frequency_hz if self.frequency_events else self.wander_hz
        # The voltage sags with import.
        grid_kw = load_kw - solar_kw - self.battery.power_kw  # self.grid_kw
        volts = NOMINAL_VOLTAGE_V + 3.0 * math.sin(2 * math.pi * t / 3600.0)
        volts -= 0.01 * grid_kw
        reactive_kvar = load_kw * _LOAD_TAN_PHI  # self.role_reactive_kvar of grid and load
        for m in self.meters.values():
            # What role_power_kw and role_reactive_kvar give, without two calls per meter
            # per second of physics.
            role = m.role
            if role == "battery":
                m.power_kw = 0.0 - self.battery.power_kw
                m.reactive_kvar = 0.0
            elif role == "solar":
                m.power_kw = 0.0 - solar_kw
                m.reactive_kvar = 0.0
            elif role == "load":
                m.power_kw = load_kw
                m.reactive_kvar = reactive_kvar
            else:
                m.power_kw = grid_kw
                m.reactive_kvar = reactive_kvar if role in ("grid", "feeder") else 0.0
            m.frequency_hz = freq
            m.voltage_v = volts


@lru_cache(maxsize=64)  # a wall clock steps by any fraction of a second
def _duration(dt: float) -> timedelta:
    """A physics step of ``dt`` s as a timedelta (steps are nearly always 1 s)."""
    return timedelta(seconds=dt)


@lru_cache(maxsize=64)
def _wander_terms(dt: float) -> tuple[float, float]:
    """How much of the wander's offset a ``dt`` s step keeps, and its noise (Hz)."""
    keep = math.exp(-dt / FREQUENCY_TAU_S)
    return keep, FREQUENCY_STD_HZ * math.sqrt(1.0 - keep * keep)
