"""Battery driver for the Tesla PowerPack / MegaPack register map (profile kind battery).

The command sequence is the one docs/domain.md gives: ramp rates and always-active at start;
every command writes the power setpoint with the heartbeat toggled (0xAA55 / 0x55AA);
after the first command, the heartbeat timeout and direct real-power mode.

The settings are desired state like any other: :meth:`PowerPackBattery.ensure_settings`
reads them back after each command and writes again whatever differs, so a battery that
restarted (its registers back to their defaults) or left direct mode by itself is taken
back within a tick instead of ignoring every setpoint written to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reconciler.clock import Clock, WallClock
from reconciler.config.model import BatteryDevice
from reconciler.config.profiles import Profile
from reconciler.control.types import BatteryReading
from reconciler.devices.base import SettingChange
from reconciler.devices.registers import RegisterTransport
from reconciler.devices.transport import ModbusTransport

HEARTBEAT_VALUES = (0xAA55, 0x55AA)
#: Register value of real_power_mode that makes the battery follow power_command.
DIRECT_MODE = 1
READ_REGISTERS = ("soe", "target_power", "available_blocks", "command_source")
NAMEPLATE_REGISTERS = ("max_charge_power", "max_discharge_power", "nameplate_energy")
#: The settings Flux writes, read back so drift (a change behind the agent's back) shows.
SETTINGS_REGISTERS = (
    "ramp_up",
    "ramp_down",
    "always_active",
    "heartbeat_timeout",
    "real_power_mode",
    "peak_power_mode",
)


@dataclass(frozen=True)
class Nameplate:
    """What the battery reports about itself: kW and kWh."""

    max_charge_kw: float
    max_discharge_kw: float
    energy_kwh: float


class PowerPackBattery:
    """A battery spoken to through a PowerPack-like profile. Power in kW, + discharge."""

    def __init__(
        self,
        device: BatteryDevice,
        profile: Profile,
        *,
        clock: Clock | None = None,
        transport: RegisterTransport | None = None,
    ) -> None:
        self.name = device.name
        self.device = device
        self.profile = profile
        self.clock: Clock = clock or WallClock()
        self.transport: RegisterTransport = transport or ModbusTransport.for_device(
            device.name, device, profile
        )
        self.commands = 0
        self._heartbeat_index = 0
        self._desired: dict[bool, dict[str, float]] = {}
        #: The settings the profile has (read back after every command).
        self._settings_names = tuple(n for n in SETTINGS_REGISTERS if n in profile.registers)

    def _start_settings(self) -> dict[str, float]:
        """Ramp rates (kW/s) and always-active: written at start, before any command."""
        settings: dict[str, float] = {}
        if self.device.ramp_up_kw_per_s is not None:
            settings["ramp_up"] = self.device.ramp_up_kw_per_s
        if self.device.ramp_down_kw_per_s is not None:
            settings["ramp_down"] = self.device.ramp_down_kw_per_s
        settings["always_active"] = 1.0 if self.device.always_active else 0.0
        return settings

    def desired_settings(self) -> dict[str, float]:
        """Every setting Flux wants the battery to hold now (kW/s, s, flags). Direct mode
        and the heartbeat timeout only once a command has been written: the reference
        switches to direct mode after the first power command, never before."""
        commanded = bool(self.commands)
        wanted = self._desired.get(commanded)
        if wanted is None:  # the device and profile are fixed: two answers, made once
            settings = self._start_settings()
            if commanded:
                settings["heartbeat_timeout"] = float(self.device.heartbeat_timeout_s)
                settings["real_power_mode"] = float(DIRECT_MODE)
            wanted = self._desired[commanded] = {
                name: v for name, v in settings.items() if name in self.profile.registers
            }
        return dict(wanted)

    async def start(self) -> None:
        """Connect and write the start-up settings: ramp rates (kW/s) and always-active."""
        await self.transport.connect()
        await self.transport.write_many(self._start_settings())

    async def read(self) -> BatteryReading:
        """SoE (kWh), target power (kW, + discharge), available blocks, command source."""
        values = await self.transport.read(READ_REGISTERS)
        return BatteryReading(
            at=self.clock.now(),
            soe_kwh=float(values["soe"]),
            target_power_kw=float(values["target_power"]),
            available_blocks=int(values["available_blocks"]),
            command_source=int(values["command_source"]),
        )

    async def read_nameplate(self) -> Nameplate:
        """Power limits (kW) and energy (kWh) the battery reports."""
        values = await self.transport.read(NAMEPLATE_REGISTERS)
        return Nameplate(
            max_charge_kw=float(values["max_charge_power"]),
            max_discharge_kw=float(values["max_discharge_power"]),
            energy_kwh=float(values["nameplate_energy"]),
        )

    async def read_settings(self) -> dict[str, float]:
        """The writable settings as the battery holds them (kW/s, s, flags), by register
        name; registers the profile does not have are left out."""
        names = self._settings_names
        values = await self.transport.read(names)
        return {name: float(values[name]) for name in names}

    def next_heartbeat(self) -> int:
        return HEARTBEAT_VALUES[self._heartbeat_index % 2]

    async def command(self, power_kw: float) -> None:
        """Write a setpoint (kW, + discharge) with the next heartbeat value. Raises
        WriteRefused, before anything is sent, if it is outside the register's range."""
        beat = self.next_heartbeat()
        # power_command and heartbeat are neighbours: one request carries both.
        await self.transport.write_many({"power_command": power_kw, "heartbeat": beat})
        self._heartbeat_index += 1
        self.commands += 1

    async def ensure_settings(self) -> tuple[SettingChange, ...]:
        """Read the settings back and rewrite those that differ from :meth:`desired_settings`;
        the changes made (none when the battery already held them). One read, and one
        write per group of neighbouring registers that differ."""
        wanted = self.desired_settings()
        held = await self.read_settings()
        changes = tuple(
            SettingChange(name, held[name], value)
            for name, value in wanted.items()
            if name in held and not math.isclose(held[name], value, rel_tol=1e-6, abs_tol=1e-6)
        )
        if changes:
            await self.transport.write_many({c.name: c.wanted for c in changes})
        return changes

    async def close(self) -> None:
        await self.transport.close()
