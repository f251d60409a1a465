"""The register codec: every type and word order round-trips; scaling; range checks."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin

from reconciler.config.profiles import Register, RegisterType
from reconciler.devices.codec import (
    BlockCodec,
    CodecError,
    Ratios,
    RegisterCodec,
    check_range,
    decode,
    encode,
)

INT_BOUNDS = {
    RegisterType.u16: (0, 0xFFFF),
    RegisterType.i16: (-0x8000, 0x7FFF),
    RegisterType.u32: (0, 0xFFFF_FFFF),
    RegisterType.i32: (-0x8000_0000, 0x7FFF_FFFF),
}
ORDERS = st.sampled_from(["big", "little"])
SCALES = st.sampled_from([1.0, 0.1, 0.001, 10.0, 0.5])
RATIOS = st.builds(
    Ratios, pt=st.sampled_from([1.0, 2.5, 100.0]), ct=st.sampled_from([1.0, 80.0, 200.0])
)
SCALE_BY = st.sampled_from([[], ["pt"], ["ct"], ["pt", "ct"]])


@st.composite
def int_case(draw: st.DrawFn) -> tuple[Register, int, Ratios]:
    kind = draw(st.sampled_from(list(INT_BOUNDS)))
    lo, hi = INT_BOUNDS[kind]
    order = draw(ORDERS)
    reg = Register(
        address=0, type=kind, word_order=order, scale=draw(SCALES), scale_by=draw(SCALE_BY)
    )
    return reg, draw(st.integers(lo, hi)), draw(RATIOS)


@given(int_case())
def test_integers_round_trip_raw(case: tuple[Register, int, Ratios]) -> None:
    reg, raw, ratios = case
    words = encode(reg, raw * reg.scale * _ratio(reg, ratios), ratios)
    assert len(words) == reg.words
    assert all(0 <= w <= 0xFFFF for w in words)
    value = decode(reg, words, ratios)
    assert encode(reg, value, ratios) == words
    assert math.isclose(float(value), raw * reg.scale * _ratio(reg, ratios), rel_tol=1e-12)


def _ratio(reg: Register, ratios: Ratios) -> float:
    f = 1.0
    for name in reg.scale_by:
        f *= ratios.pt if name == "pt" else ratios.ct
    return f


@given(
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    ORDERS,
)
def test_f32_round_trips_exactly(value: float, order: str) -> None:
    reg = Register(address=0, type=RegisterType.f32, word_order=order)  # type: ignore[arg-type]
    words = encode(reg, value)
    assert decode(reg, words) == value


@given(st.floats(-1e6, 1e6, allow_nan=False), SCALE_BY, RATIOS)
def test_f32_scaled_by_ratios(value: float, scale_by: list[str], ratios: Ratios) -> None:
    reg = Register(address=0, type=RegisterType.f32, scale=0.001, scale_by=scale_by)  # type: ignore[arg-type]
    decoded = decode(reg, encode(reg, value, ratios), ratios)
    assert math.isclose(float(decoded), value, rel_tol=1e-6, abs_tol=1e-9)


@given(
    st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF), max_size=16),
    st.integers(8, 16),
)
def test_strings_round_trip(text: str, length: int) -> None:
    reg = Register(address=0, type=RegisterType.string, length=length)
    if len(text.encode()) > 2 * length:
        with pytest.raises(CodecError):
            encode(reg, text)
        return
    words = encode(reg, text)
    assert len(words) == length
    assert decode(reg, words) == text


def test_word_order_puts_high_word_first_for_big() -> None:
    big = Register(address=0, type=RegisterType.u32)
    little = Register(address=0, type=RegisterType.u32, word_order="little")
    assert encode(big, 0x12345678) == [0x1234, 0x5678]
    assert encode(little, 0x12345678) == [0x5678, 0x1234]
    f32 = Register(address=0, type=RegisterType.f32)
    assert encode(f32, 50.0) == list(struct.unpack(">HH", struct.pack(">f", 50.0)))


def test_acuvim_power_scales_by_pt_and_ct_into_kw() -> None:
    # 1,000 W on the secondary of a 400/5 CT is 80 kW on the primary.
    reg = Register(address=0, type=RegisterType.f32, scale=0.001, scale_by=["pt", "ct"])
    words = encode(Register(address=0, type=RegisterType.f32), 1000.0)  # the raw watts
    assert decode(reg, words, Ratios(ct=80.0)) == pytest.approx(80.0)


def test_energy_counter_in_tenths_of_kwh() -> None:
    reg = Register(address=0, type=RegisterType.i32, scale=0.1, unit="kWh")
    assert encode(reg, 1234.5) == [0, 12345]
    assert decode(reg, [0, 12345]) == pytest.approx(1234.5)


def test_unscaled_integers_decode_as_int() -> None:
    reg = Register(address=0, type=RegisterType.u16)
    value = decode(reg, [10])
    assert value == 10 and isinstance(value, int)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (RegisterType.u16, -1),
        (RegisterType.u16, 65536),
        (RegisterType.i16, 40000),
        (RegisterType.i32, 2**31),
        (RegisterType.u32, -5),
    ],
)
def test_encode_refuses_values_the_type_cannot_hold(kind: RegisterType, value: int) -> None:
    with pytest.raises(CodecError, match="outside what"):
        encode(Register(address=0, type=kind), value)


def test_encode_refuses_non_numbers_and_non_finite() -> None:
    reg = Register(address=0, type=RegisterType.i32)
    with pytest.raises(CodecError):
        encode(reg, "12")
    with pytest.raises(CodecError):
        encode(reg, float("nan"))
    with pytest.raises(CodecError):
        encode(Register(address=0, type=RegisterType.f32), 1e39)


def test_decode_refuses_wrong_word_count_and_bad_text() -> None:
    with pytest.raises(CodecError, match="needs 2 words"):
        decode(Register(address=0, type=RegisterType.i32), [1])
    with pytest.raises(CodecError, match="UTF-8"):
        decode(Register(address=0, type=RegisterType.string, length=1), [0xFFFE])


def test_range_check_uses_engineering_units() -> None:
    reg = Register(address=0, type=RegisterType.i32, scale=0.001, access="rw", min=-5000, max=5000)
    check_range(reg, 5000)
    check_range(reg, -5000)
    with pytest.raises(CodecError, match="above the allowed maximum 5000"):
        check_range(reg, 5000.5)
    with pytest.raises(CodecError, match="below the allowed minimum"):
        check_range(reg, -6000)


PYMODBUS_TYPES = {
    RegisterType.u16: ModbusClientMixin.DATATYPE.UINT16,
    RegisterType.i16: ModbusClientMixin.DATATYPE.INT16,
    RegisterType.u32: ModbusClientMixin.DATATYPE.UINT32,
    RegisterType.i32: ModbusClientMixin.DATATYPE.INT32,
    RegisterType.f32: ModbusClientMixin.DATATYPE.FLOAT32,
}


@given(
    st.sampled_from(list(PYMODBUS_TYPES)),
    ORDERS,
    st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2),
)
def test_the_compiled_codec_lays_words_out_as_pymodbus_does(
    kind: RegisterType, order: str, words: list[int]
) -> None:
    reg = Register(address=0, type=kind, word_order=order)
    words = words[: reg.words]
    dt = PYMODBUS_TYPES[kind]
    theirs = ModbusClientMixin.convert_from_registers(words, dt, word_order=order)  # type: ignore[arg-type]
    ours = decode(reg, words)
    if isinstance(theirs, float) and math.isnan(theirs):
        assert isinstance(ours, float) and math.isnan(ours)
        return
    assert ours == theirs and type(ours) is type(theirs)
    if not (isinstance(theirs, float) and math.isinf(theirs)):
        again = ModbusClientMixin.convert_to_registers(theirs, dt, word_order=order)  # type: ignore[arg-type]
        assert encode(reg, ours) == again


def test_words_that_are_not_16_bit_do_not_decode() -> None:
    reg = Register(address=0, type=RegisterType.u32)
    with pytest.raises(CodecError, match="16-bit"):
        decode(reg, [0x1_0000, 0])


NUMERIC = [RegisterType.u16, RegisterType.i16, RegisterType.u32, RegisterType.i32, RegisterType.f32]


@st.composite
def block_case(
    draw: st.DrawFn,
) -> tuple[int, list[tuple[str, int, RegisterCodec]], dict[str, float]]:
    """Registers laid out with gaps in one block, and values for them (some the
    registers cannot carry: too large, not finite)."""
    members: list[tuple[str, int, RegisterCodec]] = []
    values: dict[str, float] = {}
    offset = draw(st.integers(0, 3))
    for i in range(draw(st.integers(1, 6))):
        reg = Register(
            address=0,
            type=draw(st.sampled_from(NUMERIC)),
            word_order=draw(st.sampled_from(["big", "big", "big", "little"])),
            scale=draw(SCALES),
        )
        codec = RegisterCodec(reg, draw(RATIOS))
        members.append((f"r{i}", offset, codec))
        values[f"r{i}"] = draw(
            st.one_of(
                st.floats(-1e5, 1e5),
                st.integers(-(2**31), 2**32).map(float),
                st.sampled_from([math.inf, math.nan, 1e39]),
            )
        )
        offset += reg.words + draw(st.integers(0, 2))
    return offset + draw(st.integers(0, 2)), members, values


@given(block_case())
def test_a_block_codec_gives_what_each_register_gives(
    case: tuple[int, list[tuple[str, int, RegisterCodec]], dict[str, float]],
) -> None:
    count, members, values = case
    block = BlockCodec(count, members)
    one_by_one = bytearray(2 * count)
    refused = False
    for name, offset, codec in members:
        try:
            codec.encode_into(one_by_one, offset, values[name])
        except CodecError:
            refused = True
    at_once = bytearray(2 * count)
    packed = block.pack_into(at_once, values)
    little = any(c.little for _, _, c in members)
    assert packed == (not refused and not little)
    if packed:
        assert at_once == one_by_one
    else:
        assert at_once == bytearray(2 * count)  # nothing written
    decoded = block.decode(bytes(one_by_one))
    for (name, offset, codec), value in zip(members, decoded, strict=True):
        mine = codec.decode_at(bytes(one_by_one), offset)
        assert value == mine or (math.isnan(float(value)) and math.isnan(float(mine))), name
        assert type(value) is type(mine)
