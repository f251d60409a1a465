"""Register codec: wire words <-> engineering values, driven by a profile's `Register`.

``value = raw * scale * ratios`` where ``ratios`` are the device's PT and/or CT ratios named
in the register's ``scale_by``. Integer types round to the nearest raw step when encoding.
The word conversions themselves are pymodbus's ``convert_from_registers`` /
``convert_to_registers``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pymodbus.client.mixin import ModbusClientMixin

from reconciler.config.model import MeterDevice
from reconciler.config.profiles import Register, RegisterType

#: A decoded register value: int for unscaled integer registers, float for scaled or
#: floating-point ones, str for strings.
Value = int | float | str

_DT = ModbusClientMixin.DATATYPE
_DATATYPES: dict[RegisterType, ModbusClientMixin.DATATYPE] = {
    RegisterType.u16: _DT.UINT16,
    RegisterType.i16: _DT.INT16,
    RegisterType.u32: _DT.UINT32,
    RegisterType.i32: _DT.INT32,
    RegisterType.f32: _DT.FLOAT32,
    RegisterType.string: _DT.STRING,
}
_INT_RANGE: dict[RegisterType, tuple[int, int]] = {
    RegisterType.u16: (0, 0xFFFF),
    RegisterType.i16: (-0x8000, 0x7FFF),
    RegisterType.u32: (0, 0xFFFF_FFFF),
    RegisterType.i32: (-0x8000_0000, 0x7FFF_FFFF),
}
_F32_MAX = 3.4028234663852886e38


class CodecError(ValueError):
    """A value that cannot be encoded into, or decoded from, a register's words."""


@dataclass(frozen=True)
class Ratios:
    """A device's instrument-transformer ratios (dimensionless): PT1/PT2 and CT1/CT2."""

    pt: float = 1.0
    ct: float = 1.0

    @classmethod
    def of(cls, device: object) -> Ratios:
        """The ratios of a site device (meters have them; other devices are 1:1)."""
        if isinstance(device, MeterDevice):
            return cls(pt=device.pt_ratio, ct=device.ct_ratio)
        return cls()


UNITY = Ratios()


def factor(reg: Register, ratios: Ratios = UNITY) -> float:
    """Multiplier from the raw wire number to the engineering unit."""
    f = reg.scale
    for name in reg.scale_by:
        f *= ratios.pt if name == "pt" else ratios.ct
    return f


def is_integer(reg: Register) -> bool:
    return reg.type in _INT_RANGE


def decode(reg: Register, words: Sequence[int], ratios: Ratios = UNITY) -> Value:
    """The engineering value held in ``words`` (exactly ``reg.words`` 16-bit words)."""
    if len(words) != reg.words:
        raise CodecError(f"{reg.type.value} needs {reg.words} words, got {len(words)}")
    if reg.type is RegisterType.string:
        try:
            text = ModbusClientMixin.convert_from_registers(list(words), _DT.STRING)
        except UnicodeDecodeError as exc:
            raise CodecError(f"string is not valid UTF-8: {exc.reason}") from None
        assert isinstance(text, str)
        return text
    raw = ModbusClientMixin.convert_from_registers(
        list(words), _DATATYPES[reg.type], word_order=reg.word_order
    )
    assert isinstance(raw, int | float)
    f = factor(reg, ratios)
    if is_integer(reg) and f == 1.0:
        return int(raw)
    return float(raw) * f


def encode(reg: Register, value: Value, ratios: Ratios = UNITY) -> list[int]:
    """The words that carry ``value`` (engineering units). No min/max check: see
    :func:`check_range` for what a write may carry."""
    if reg.type is RegisterType.string:
        if not isinstance(value, str):
            raise CodecError(f"a string register needs text, got {value!r}")
        data = value.encode("utf-8")
        if len(data) > 2 * reg.words or (data and data[-1:] == b"\x00"):
            raise CodecError(f"text of {len(data)} bytes does not fit {reg.words} words")
        data = data.ljust(2 * reg.words, b"\x00")
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if isinstance(value, (str, bool)):
        raise CodecError(f"a {reg.type.value} register needs a number, got {value!r}")
    if not math.isfinite(value):
        raise CodecError(f"{value} is not a finite number")
    raw = value / factor(reg, ratios)
    if reg.type is RegisterType.f32:
        if abs(raw) > _F32_MAX:
            raise CodecError(f"{value} is too large for a 32-bit float")
        return ModbusClientMixin.convert_to_registers(
            float(raw), _DT.FLOAT32, word_order=reg.word_order
        )
    lo, hi = _INT_RANGE[reg.type]
    iraw = round(raw)
    if not lo <= iraw <= hi:
        raise CodecError(
            f"{value} is raw {iraw}, outside what a {reg.type.value} holds ({lo}..{hi})"
        )
    return ModbusClientMixin.convert_to_registers(
        iraw, _DATATYPES[reg.type], word_order=reg.word_order
    )


def check_range(reg: Register, value: Value) -> None:
    """Raise CodecError unless ``value`` lies within the register's declared min/max."""
    if isinstance(value, str):
        return
    if reg.min is not None and value < reg.min:
        raise CodecError(f"{value:g} {reg.unit} is below the allowed minimum {reg.min:g}")
    if reg.max is not None and value > reg.max:
        raise CodecError(f"{value:g} {reg.unit} is above the allowed maximum {reg.max:g}")
