"""Typed device errors: each names the device, the register and what happened.

The agent turns these into observation errors and status conditions, and the CLI prints
them; so every message says what is wrong and, where it can, what to do.
"""

from __future__ import annotations

#: Standard Modbus exception codes and what they mean.
MODBUS_EXCEPTIONS: dict[int, str] = {
    1: "illegal function (the device does not support this request)",
    2: "illegal data address (the register does not exist on this device)",
    3: "illegal data value (the value or register count is not accepted)",
    4: "server device failure",
    5: "acknowledge (the request is accepted but will take long)",
    6: "server device busy",
    7: "negative acknowledge",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond (check the unit id)",
}


class DeviceError(Exception):
    """A device could not be read or written.

    ``device`` is the device's name in the site file; ``register`` the register name
    involved (or a description such as ``"registers 200..218"``), if any.
    """

    def __init__(self, device: str, message: str, register: str | None = None) -> None:
        self.device = device
        self.register = register
        self.detail = message
        where = f"{device}" + (f" ({register})" if register else "")
        super().__init__(f"{where}: {message}")


class DeviceTimeout(DeviceError):
    """No connection or no reply within the device's ``timeout_s``."""


class ConnectionRefused(DeviceError):
    """The device could not be connected to (refused, unreachable, unknown host)."""


class ConnectionLost(DeviceError):
    """The connection broke while a request was in flight."""


class ModbusExceptionReply(DeviceError):
    """The device answered with a Modbus exception (``code``, ``meaning``)."""

    def __init__(
        self, device: str, code: int, register: str | None = None, request: str = ""
    ) -> None:
        self.code = code
        self.meaning = MODBUS_EXCEPTIONS.get(code, "unknown exception code")
        what = f"{request}: " if request else ""
        super().__init__(
            device, f"{what}Modbus exception {code}: {self.meaning}", register=register
        )


class MalformedReply(DeviceError):
    """A reply that is short (fewer registers than asked) or cannot be decoded."""


class WriteRefused(DeviceError):
    """A write Flux will not send: read-only register, value out of range, or read-only
    session. Raised before any byte goes on the wire."""
