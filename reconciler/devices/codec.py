"""Register codec: wire words <-> engineering values, driven by a profile's `Register`.

``value = raw * scale * ratios`` where ``ratios`` are the device's PT and/or CT ratios named
in the register's ``scale_by``. Integer types round to the nearest raw step when encoding.

The word layout is pymodbus's (``convert_from_registers`` / ``convert_to_registers``: big
endian within a word, ``word_order`` between words), done here with precompiled structs
in a :class:`RegisterCodec` per register: every read of every device goes through this,
and a backtest does it millions of times. tests/devices/test_codec.py holds it to
pymodbus's conversions for every type and word order. Strings use pymodbus's directly.
"""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from pymodbus.client.mixin import ModbusClientMixin

from reconciler.config.model import MeterDevice
from reconciler.config.profiles import Register, RegisterType

#: A decoded register value: int for unscaled integer registers, float for scaled or
#: floating-point ones, str for strings.
Value = int | float | str

_DT = ModbusClientMixin.DATATYPE
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


#: The struct of each numeric type's big-endian bytes.
_STRUCTS: dict[RegisterType, struct.Struct] = {
    RegisterType.u16: struct.Struct(">H"),
    RegisterType.i16: struct.Struct(">h"),
    RegisterType.u32: struct.Struct(">I"),
    RegisterType.i32: struct.Struct(">i"),
    RegisterType.f32: struct.Struct(">f"),
}


class RegisterCodec:
    """One register's words <-> engineering value, with its factor and layout worked out
    once (see the module's docstring). ``decode_at`` and ``encode_into`` work on the
    big-endian bytes of a whole block of words, so a block is packed or unpacked once."""

    __slots__ = (
        "factor",
        "integer",
        "little",
        "plain_int",
        "range",
        "reg",
        "struct",
        "words",
        "words_struct",
    )

    def __init__(self, reg: Register, ratios: Ratios = UNITY) -> None:
        self.reg = reg
        self.words = reg.words
        self.factor = factor(reg, ratios)
        self.little = reg.word_order == "little" and self.words == 2
        self.integer = is_integer(reg)
        #: Integers without scaling decode as int, the rest as float.
        self.plain_int = self.integer and self.factor == 1.0
        self.range = _INT_RANGE.get(reg.type)
        self.struct = _STRUCTS.get(reg.type)
        self.words_struct = words_struct(self.words)

    def decode(self, words: Sequence[int]) -> Value:
        """The engineering value held in ``words`` (exactly ``self.words`` words)."""
        if len(words) != self.words:
            raise CodecError(f"{self.reg.type.value} needs {self.words} words, got {len(words)}")
        return self.decode_at(pack_words(words), 0)

    def decode_at(self, data: bytes | bytearray, offset: int) -> Value:
        """The value held at word ``offset`` of ``data`` (big-endian bytes of words)."""
        fmt = self.struct
        o = 2 * offset
        if fmt is None:
            return _decode_string(self.words_struct.unpack_from(data, o))
        if self.little:
            raw: int | float = fmt.unpack(bytes(data[o + 2 : o + 4] + data[o : o + 2]))[0]
        else:
            raw = fmt.unpack_from(data, o)[0]
        if self.plain_int:
            return raw
        return float(raw) * self.factor

    def encode(self, value: Value) -> list[int]:
        """The words that carry ``value`` (engineering units). No min/max check: see
        :func:`check_range` for what a write may carry."""
        data = bytearray(2 * self.words)
        self.encode_into(data, 0, value)
        return list(self.words_struct.unpack(data))

    def encode_into(self, data: bytearray, offset: int, value: Value) -> None:
        """Put the words of ``value`` at word ``offset`` of ``data`` (big-endian bytes);
        raises CodecError (and writes nothing) when the register cannot carry it."""
        fmt = self.struct
        o = 2 * offset
        if fmt is None:
            self.words_struct.pack_into(data, o, *_encode_string(self.reg, value))
            return
        if isinstance(value, (str, bool)):
            raise CodecError(f"a {self.reg.type.value} register needs a number, got {value!r}")
        if not math.isfinite(value):
            raise CodecError(f"{value} is not a finite number")
        raw = value / self.factor
        bounds = self.range
        if bounds is None:
            if abs(raw) > _F32_MAX:
                raise CodecError(f"{value} is too large for a 32-bit float")
            fmt.pack_into(data, o, float(raw))
        else:
            iraw = round(raw)
            lo, hi = bounds
            if not lo <= iraw <= hi:
                raise CodecError(
                    f"{value} is raw {iraw}, outside what a {self.reg.type.value} holds "
                    f"({lo}..{hi})"
                )
            fmt.pack_into(data, o, iraw)
        if self.little:
            data[o : o + 4] = data[o + 2 : o + 4] + data[o : o + 2]


@cache
def words_struct(count: int) -> struct.Struct:
    """The struct of ``count`` big-endian 16-bit words."""
    return struct.Struct(f">{count}H")


def pack_words(words: Sequence[int]) -> bytes:
    """The big-endian bytes of ``words``; CodecError if one is not a 16-bit value."""
    try:
        return words_struct(len(words)).pack(*words)
    except struct.error:
        raise CodecError(f"words {list(words)} are not all 16-bit values") from None


def _decode_string(words: Sequence[int]) -> str:
    try:
        text = ModbusClientMixin.convert_from_registers(list(words), _DT.STRING)
    except UnicodeDecodeError as exc:
        raise CodecError(f"string is not valid UTF-8: {exc.reason}") from None
    assert isinstance(text, str)
    return text


def _encode_string(reg: Register, value: Value) -> list[int]:
    if not isinstance(value, str):
        raise CodecError(f"a string register needs text, got {value!r}")
    data = value.encode("utf-8")
    if len(data) > 2 * reg.words or (data and data[-1:] == b"\x00"):
        raise CodecError(f"text of {len(data)} bytes does not fit {reg.words} words")
    data = data.ljust(2 * reg.words, b"\x00")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def decode(reg: Register, words: Sequence[int], ratios: Ratios = UNITY) -> Value:
    """The engineering value held in ``words`` (exactly ``reg.words`` 16-bit words)."""
    return RegisterCodec(reg, ratios).decode(words)


def encode(reg: Register, value: Value, ratios: Ratios = UNITY) -> list[int]:
    """The words that carry ``value`` (engineering units). No min/max check: see
    :func:`check_range` for what a write may carry."""
    return RegisterCodec(reg, ratios).encode(value)


def check_range(reg: Register, value: Value) -> None:
    """Raise CodecError unless ``value`` lies within the register's declared min/max."""
    if isinstance(value, str):
        return
    if reg.min is not None and value < reg.min:
        raise CodecError(f"{value:g} {reg.unit} is below the allowed minimum {reg.min:g}")
    if reg.max is not None and value > reg.max:
        raise CodecError(f"{value:g} {reg.unit} is above the allowed maximum {reg.max:g}")


class BlockCodec:
    """The registers at fixed word offsets of one block, unpacked or packed with one struct
    call: what each :class:`RegisterCodec` gives, register by register, at a fraction of
    the calls (a block is read every tick of every device). Blocks that do not allow it
    (a string, little word order, a register cut by the block's edge) go one by one.

    The per-member work is done with C-level ``map`` calls where the result is the same:
    ``raw * factor`` is ``float(raw) * factor`` for any raw integer a register holds (an
    int below 2**53 converts to float exactly), and a block of 32-bit floats is checked
    for range with min, max and a NaN test of the sum instead of member by member.
    """

    def __init__(self, count: int, members: Sequence[tuple[str, int, RegisterCodec]]) -> None:
        self.count = count
        self.members = tuple(sorted(members, key=lambda m: m[1]))
        self.names = tuple(name for name, _, _ in self.members)
        self._plain = tuple(c.plain_int for _, _, c in self.members)
        self._factors = tuple(c.factor for _, _, c in self.members)
        #: Decoding: every member is a raw integer as it is (all plain), or every member
        #: is scaled (none plain); else member by member.
        self._all_plain = all(self._plain)
        self._none_plain = not any(self._plain)
        #: (name, factor, integer bounds or None for f32) of each member, for pack_into.
        self._packing = tuple((name, c.factor, c.range) for name, _, c in self.members)
        #: Packing: the members' values in one call, and whether all are 32-bit floats.
        self._values_of = _getter(self.names)
        self._all_f32 = all(c.range is None for _, _, c in self.members)
        self.struct: struct.Struct | None = None
        self.start = 0
        parts: list[str] = []
        end = self.members[0][1] if self.members else 0
        for _, offset, codec in self.members:
            fmt = codec.struct
            if fmt is None or codec.little or offset < max(end, 0) or offset + codec.words > count:
                return
            parts.append("x" * (2 * (offset - end)) + fmt.format.lstrip(">"))
            end = offset + codec.words
        if parts:
            self.start = 2 * self.members[0][1]
            self.struct = struct.Struct(">" + "".join(parts))

    def decode(self, data: bytes | bytearray) -> list[Value]:
        """Every member's value, in offset order (as :attr:`names`)."""
        fmt = self.struct
        if fmt is None:
            return [codec.decode_at(data, offset) for _, offset, codec in self.members]
        raws = fmt.unpack_from(data, self.start)
        if self._none_plain:
            return list(map(operator.mul, raws, self._factors))
        if self._all_plain:
            return list(raws)
        return [
            raw if plain else raw * f
            for raw, plain, f in zip(raws, self._plain, self._factors, strict=True)
        ]

    def pack_into(self, data: bytearray, values: Mapping[str, Value]) -> bool:
        """Put every member's value from ``values`` into ``data`` in one call: True. False,
        with nothing written, when one is missing or one would be refused (the caller
        then goes register by register, with its own answer to a refusal)."""
        fmt = self.struct
        if fmt is None:
            return False
        try:
            picked = self._values_of(values)
        except KeyError:  # one is missing
            return False
        # Numbers only (no str, no bool; a subclass of float goes one by one, as safely).
        if not _NUMBERS.issuperset(map(type, picked)):
            return False
        raws: list[int | float] = list(map(operator.truediv, picked, self._factors))
        if self._all_f32:
            # A NaN anywhere makes the sum NaN (and min/max unreliable: refused first).
            total = sum(raws)
            if total != total or min(raws) < -_F32_MAX or max(raws) > _F32_MAX:
                return False
        else:
            try:
                for i, (_, _, bounds) in enumerate(self._packing):
                    raw = raws[i]
                    if bounds is None:
                        if not -_F32_MAX <= raw <= _F32_MAX:  # also false for NaN
                            return False
                    else:
                        iraw = round(raw)
                        if not bounds[0] <= iraw <= bounds[1]:
                            return False
                        raws[i] = iraw
            except (OverflowError, ValueError):  # round() of inf or NaN
                return False
        fmt.pack_into(data, self.start, *raws)
        return True


#: The value types a block packs in one call.
_NUMBERS = frozenset((int, float))


def _getter(names: Sequence[str]) -> Callable[[Mapping[str, Value]], tuple[Value, ...]]:
    """A function from a mapping to the values of ``names`` as a tuple, in one C call
    (``itemgetter`` of one name gives the bare value: wrapped here)."""
    if len(names) == 1:
        one = operator.itemgetter(names[0])
        return lambda values: (one(values),)
    if not names:
        return lambda _values: ()
    return operator.itemgetter(*names)
