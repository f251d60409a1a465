"""Faults on demand for the simulated devices.

Every fault is per device (by its name in the site file) and stays until cleared, except
the counted ones (``drop``, ``short_reply``), which fire on the next N requests, and
``away``, which ends by itself after its time (simulator clock).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from reconciler.devices.errors import MODBUS_EXCEPTIONS
from reconciler.sim.plant import FREQUENCY_EVENTS, FrequencyEventKind

KINDS = ("drop", "delay", "exception", "frozen", "away", "short", "frequency")


@dataclass
class DeviceFaults:
    """The faults active on one device."""

    #: Seconds (real time) every reply is held back.
    delay_s: float = 0.0
    #: Modbus exception code every request is answered with (None: normal replies).
    exception_code: int | None = None
    #: Register values stop changing (the physics carries on underneath).
    frozen: bool = False
    #: The next N requests are answered by closing the connection.
    drop_requests: int = 0
    #: The next N read replies carry one register fewer than asked.
    short_replies: int = 0
    #: The device is gone (connections refused) until this instant (simulator clock).
    away_until: datetime | None = None

    def describe(self, now: datetime) -> str:
        """The active faults in a few words ("" when none)."""
        parts = []
        if self.away_until is not None and now < self.away_until:
            parts.append(f"away {(self.away_until - now).total_seconds():.0f}s")
        if self.delay_s:
            parts.append(f"delay {self.delay_s:g}s")
        if self.exception_code is not None:
            parts.append(f"exception {self.exception_code}")
        if self.frozen:
            parts.append("frozen")
        if self.drop_requests:
            parts.append(f"drop {self.drop_requests}")
        if self.short_replies:
            parts.append(f"short {self.short_replies}")
        return ", ".join(parts)

    def clear(self) -> None:
        self.delay_s = 0.0
        self.exception_code = None
        self.frozen = False
        self.drop_requests = 0
        self.short_replies = 0
        self.away_until = None


class Faults:
    """Faults of every device of a simulated site: ``sim.faults``."""

    def __init__(
        self,
        devices: list[str],
        now: Callable[[], datetime],
        on_drop: Callable[[str], None],
        on_away: Callable[[str], None],
        on_frequency: Callable[[FrequencyEventKind], None] | None = None,
    ) -> None:
        self._devices = {name: DeviceFaults() for name in devices}
        self._now = now
        self._on_drop = on_drop
        self._on_away = on_away
        self._on_frequency = on_frequency

    def __getitem__(self, device: str) -> DeviceFaults:
        try:
            return self._devices[device]
        except KeyError:
            raise KeyError(
                f"no device {device!r}; the site has {', '.join(self._devices)}"
            ) from None

    def drop(self, device: str, requests: int = 1) -> None:
        """Answer the next ``requests`` requests by closing the connection."""
        self[device].drop_requests = requests

    def drop_now(self, device: str) -> None:
        """Close every open connection to the device now."""
        self[device]
        self._on_drop(device)

    def delay(self, device: str, seconds: float) -> None:
        """Hold every reply back for ``seconds`` of real time (0 clears)."""
        self[device].delay_s = max(0.0, seconds)

    def exception(self, device: str, code: int = 4) -> None:
        """Answer every request with Modbus exception ``code`` (e.g. 2, 4, 6)."""
        if code not in MODBUS_EXCEPTIONS:
            raise ValueError(f"{code} is not a Modbus exception code; use one of 1-8, 10, 11")
        self[device].exception_code = code

    def freeze(self, device: str, frozen: bool = True) -> None:
        """Stale values: the registers stop changing while the physics goes on."""
        self[device].frozen = frozen

    def short_reply(self, device: str, replies: int = 1) -> None:
        """The next ``replies`` read replies carry one register fewer than asked."""
        self[device].short_replies = replies

    def away(self, device: str, seconds: float) -> None:
        """The device goes away (connections dropped and refused) for ``seconds`` of
        simulator time, then comes back on the same port."""
        self[device].away_until = self._now() + timedelta(seconds=seconds)
        self._on_away(device)

    def frequency(self, device: str, kind: str) -> None:
        """A grid frequency event (step, drop or high; see sim.plant.FrequencyEvent), seen
        by every meter of the site: ``device`` names the meter it is asked of."""
        self[device]
        if kind not in FREQUENCY_EVENTS or self._on_frequency is None:
            raise ValueError(f"{kind!r} is not a frequency event; use one of step, drop, high")
        self._on_frequency(kind)  # type: ignore[arg-type]

    def clear(self, device: str | None = None) -> None:
        """Clear the faults of one device, or of all. A device that is away comes back
        at the simulator's next tick."""
        for name, faults in self._devices.items():
            if device is None or name == device:
                faults.clear()

    def apply(self, spec: str) -> None:
        """Apply a fault written as ``DEVICE:KIND[:ARG]`` (the `flux sim --fault` form):
        drop[:N], delay:SECONDS, exception[:CODE], frozen, away:SECONDS, short[:N],
        frequency:step|drop|high."""
        parts = spec.split(":")
        if len(parts) < 2 or parts[1] not in KINDS:
            raise ValueError(
                f"{spec!r}: write DEVICE:KIND[:ARG] with KIND one of {', '.join(KINDS)}"
            )
        device, kind, arg = parts[0], parts[1], parts[2] if len(parts) > 2 else None
        try:
            if kind == "drop":
                self.drop(device, int(arg or 1))
            elif kind == "delay":
                self.delay(device, _seconds(kind, arg, 1.0))
            elif kind == "exception":
                self.exception(device, int(arg or 4))
            elif kind == "frozen":
                self.freeze(device)
            elif kind == "away":
                self.away(device, _seconds(kind, arg, 30.0))
            elif kind == "frequency":
                self.frequency(device, arg or "step")
            else:
                self.short_reply(device, int(arg or 1))
        except (ValueError, KeyError) as exc:
            raise ValueError(f"{spec!r}: {exc.args[0]}") from None


#: The longest delay or absence a fault may ask for, s: a year (longer would overflow the
#: simulator's clock arithmetic, and no test needs it).
MAX_FAULT_S = 365 * 86_400


def _seconds(kind: str, arg: str | None, default: float) -> float:
    """A timed fault's seconds, 0 to MAX_FAULT_S (a negative one is not 'none')."""
    if not arg:
        return default
    try:
        seconds = float(arg)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_FAULT_S:  # nan fails this too
        raise ValueError(
            f"{kind} takes a number of seconds from 0 to {MAX_FAULT_S} (a year); got {arg!r}"
        )
    return seconds
