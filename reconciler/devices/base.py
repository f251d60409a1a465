"""The device seam the agent depends on: one small interface per kind of device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from reconciler.control.types import BatteryReading, MeterReading


@dataclass(frozen=True)
class SettingChange:
    """A battery setting that differed from the desired one and was rewritten (its
    register name, the value found and the value written)."""

    name: str
    found: float
    wanted: float

    def __str__(self) -> str:
        return f"{self.name} {self.found:g} -> {self.wanted:g}"


class Battery(Protocol):
    """A battery the agent commands. Power in kW, + discharge."""

    name: str

    async def start(self) -> None:
        """Connect and write the start-up settings (ramp rates, always-active)."""
        ...

    async def read(self) -> BatteryReading:
        """Read SoE (kWh), target power (kW), available blocks and command source."""
        ...

    async def read_settings(self) -> dict[str, float]:
        """The writable settings read back (ramp kW/s, heartbeat timeout s, flags)."""
        ...

    async def command(self, power_kw: float) -> None:
        """Write a real-power setpoint, kW (+ discharge), with the heartbeat that keeps the
        battery following it. Must be called at least once per heartbeat timeout."""
        ...

    async def ensure_settings(self) -> tuple[SettingChange, ...]:
        """Read back the mode and settings (direct mode, ramps, heartbeat timeout,
        always-active) and rewrite any that differ; what was rewritten."""
        ...

    async def close(self) -> None: ...


class Meter(Protocol):
    """A power meter. ``read().power_kw`` is + import at the meter's point."""

    name: str

    async def read(self) -> MeterReading: ...

    async def close(self) -> None: ...
