"""One simulated device's holding registers: the register map a device server serves over
Modbus TCP and the in-process transport serves with no socket, in one place.

Addresses follow the profile: every register exists; unmapped gaps up to the profile's
``max_gap_words`` read as 0 (as on a device that tolerates them); wider gaps are invalid
(Modbus exception 2, illegal data address). Read-only registers refuse writes. Values are
encoded from the plant (engineering units, with the device's PT/CT ratios) when read;
written words are decoded and handed to the plant.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, MutableSequence, Sequence

from reconciler.config.profiles import Profile
from reconciler.devices.codec import (
    BlockCodec,
    CodecError,
    Ratios,
    RegisterCodec,
    Value,
    words_struct,
)

#: Modbus exception codes the bank answers with.
ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3


class Refused(Exception):
    """A request the device answers with a Modbus exception ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(f"Modbus exception {code}")
        self.code = code


def address_runs(profile: Profile) -> list[tuple[int, int, bool]]:
    """(start, words, writable) runs of valid addresses: registers plus tolerated gaps."""
    writable: dict[int, bool] = {}
    for reg in profile.registers.values():
        for a in range(reg.address, reg.address + reg.words):
            writable[a] = writable.get(a, False) or reg.writable
    addresses = sorted(writable)
    for a, b in itertools.pairwise(addresses):
        if 1 < b - a <= profile.max_gap_words + 1:
            for gap in range(a + 1, b):
                writable[gap] = False
    runs: list[tuple[int, int, bool]] = []
    for a in sorted(writable):
        if runs and runs[-1][0] + runs[-1][1] == a and runs[-1][2] == writable[a]:
            start, n, w = runs[-1]
            runs[-1] = (start, n + 1, w)
        else:
            runs.append((a, 1, writable[a]))
    return runs


class RegisterBank:
    """The registers of one device of the site, by profile.

    ``values`` gives the device's register values now (engineering units, by register
    name); ``on_write`` takes each register a write touched, decoded. ``version``, when
    given, changes whenever those values may have (the plant's :attr:`version`): the
    values are then worked out once per version, not once per request.
    """

    def __init__(
        self,
        name: str,
        profile: Profile,
        *,
        ratios: Ratios,
        values: Callable[[], dict[str, Value]],
        on_write: Callable[[str, Value], None],
        version: Callable[[], int] | None = None,
    ) -> None:
        self.name = name
        self.profile = profile
        self.ratios = ratios
        self._values = values
        self._version = version
        self._memo: tuple[int, dict[str, Value]] | None = None
        self.on_write = on_write
        self.runs = address_runs(profile)
        self._regs = sorted(
            ((n, RegisterCodec(r, ratios)) for n, r in profile.registers.items()),
            key=lambda kv: kv[1].reg.address,
        )
        self._touched: dict[tuple[int, int], list[tuple[str, int, RegisterCodec]]] = {}
        #: The words of every valid address, as last filled or written (in-process only;
        #: the TCP server keeps its own in pymodbus's SimData).
        self._words: dict[int, int] = {}
        self._writable: set[int] = set()
        #: The words each read request was last answered with (what a frozen device
        #: keeps answering).
        self._answered: dict[tuple[int, int], bytes] = {}
        self._blocks: dict[tuple[int, int], BlockCodec] = {}
        #: The [lo, hi) words to decode after a write of (address, count), once the write
        #: is known to touch only writable addresses (which never changes).
        self._write_spans: dict[tuple[int, int], tuple[int, int]] = {}
        for start, n, w in self.runs:
            for a in range(start, start + n):
                self._words[a] = 0
                if w:
                    self._writable.add(a)

    def values(self) -> dict[str, Value]:
        """The device's register values now (engineering units, by name)."""
        if self._version is None:
            return self._values()
        version = self._version()
        memo = self._memo
        if memo is None or memo[0] != version:
            memo = self._memo = (version, self._values())
        return memo[1]

    def touched(self, address: int, count: int) -> list[tuple[str, int, RegisterCodec]]:
        """The registers (name, address, codec) that ``count`` words from ``address``
        touch."""
        key = (address, count)
        found = self._touched.get(key)
        if found is None:
            end = address + count
            found = [
                (name, c.reg.address, c)
                for name, c in self._regs
                if c.reg.address < end and c.reg.address + c.words > address
            ]
            self._touched[key] = found
        return found

    # ------------------------------------------------------------------ word arrays

    def fill(
        self, registers: MutableSequence[int], start_address: int, address: int, count: int
    ) -> None:
        """Put the current values of the registers ``count`` words from ``address`` touch
        into ``registers`` (whose first word is ``start_address``)."""
        values = self.values()
        for name, at, codec in self.touched(address, count):
            current = values.get(name)
            if current is None:
                continue
            off = at - start_address
            try:
                registers[off : off + codec.words] = codec.encode(current)
            except CodecError:
                # A physical value the register cannot carry: the device saturates.
                registers[off : off + codec.words] = [0xFFFF] * codec.words

    def apply_write(
        self, registers: Sequence[int], start_address: int, address: int, count: int
    ) -> None:
        """Hand every register ``count`` words from ``address`` touch, decoded from
        ``registers`` (already holding the written words), to ``on_write``. Raises
        Refused(3) when one cannot be decoded."""
        for name, at, codec in self.touched(address, count):
            off = at - start_address
            try:
                value = codec.decode(registers[off : off + codec.words])
            except CodecError:
                raise Refused(ILLEGAL_VALUE) from None
            self.on_write(name, value)

    # ------------------------------------------------------------------ requests

    def read(self, address: int, count: int, *, fresh: bool = True) -> list[int]:
        """Read holding registers (function 3): ``count`` words from ``address``; the
        values as last read when not ``fresh`` (a frozen device)."""
        return list(words_struct(count).unpack(self.read_data(address, count, fresh=fresh)))

    def read_data(self, address: int, count: int, *, fresh: bool = True) -> bytes:
        """:meth:`read` as the big-endian bytes of the words (what the in-process
        transport decodes from: no list of words in between)."""
        key = (address, count)
        last = self._answered.get(key)
        if last is None:
            words = self._words
            try:
                last = words_struct(count).pack(
                    *(words[a] for a in range(address, address + count))
                )
            except KeyError:
                raise Refused(ILLEGAL_ADDRESS) from None
        if not fresh:
            return last
        # As fill() does, on the block's bytes: in one call when the block allows it.
        data = bytearray(last)
        values = self.values()
        block = self._blocks.get(key)
        if block is None:
            members = [(n, at - address, c) for n, at, c in self.touched(address, count)]
            block = self._blocks[key] = BlockCodec(count, members)
        if block.pack_into(data, values):
            answer = self._answered[key] = bytes(data)
            return answer
        for name, at, codec in self.touched(address, count):
            current = values.get(name)
            if current is None:
                continue
            off = at - address
            if off >= 0 and off + codec.words <= count:
                try:
                    codec.encode_into(data, off, current)
                except CodecError:
                    # A physical value the register cannot carry: the device saturates.
                    data[2 * off : 2 * (off + codec.words)] = b"\xff" * (2 * codec.words)
                continue
            # A register cut by the block's edge: the words of it inside the block.
            try:
                cut = codec.encode(current)
            except CodecError:
                cut = [0xFFFF] * codec.words
            for i, word in enumerate(cut):
                if 0 <= off + i < count:
                    data[2 * (off + i) : 2 * (off + i + 1)] = word.to_bytes(2, "big")
        answer = self._answered[key] = bytes(data)
        return answer

    def write(self, address: int, words: Sequence[int]) -> None:
        """Write multiple registers (function 16)."""
        count = len(words)
        key = (address, count)
        span = self._write_spans.get(key)
        if span is None:
            if any(a not in self._writable for a in range(address, address + count)):
                raise Refused(ILLEGAL_ADDRESS)
            # A register may start before or end after the words written: it is decoded
            # from the words it holds now.
            touched = self.touched(address, count)
            span = self._write_spans[key] = (
                min([address, *(at for _, at, _ in touched)]),
                max([address + count, *(at + c.words for _, at, c in touched)]),
            )
        memory = self._words
        for i, w in enumerate(words):
            memory[address + i] = int(w)
        # The words last answered hold the write too (what a frozen device shows next).
        for (start, n), answered in list(self._answered.items()):
            if start < address + count and address < start + n:
                data = bytearray(answered)
                for a in range(max(start, address), min(start + n, address + count)):
                    data[2 * (a - start) : 2 * (a - start + 1)] = memory[a].to_bytes(2, "big")
                self._answered[(start, n)] = bytes(data)
        lo, hi = span
        self.apply_write([memory.get(a, 0) for a in range(lo, hi)], lo, address, count)
