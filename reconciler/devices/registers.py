"""The register-transport seam the drivers are written against, and the by-name layer
every transport shares.

:class:`RegisterTransport` is what a driver (PowerPack, Acuvim) needs of a device: read
holding registers by name, write registers by name, connect and close. Failures are the
typed errors of :mod:`reconciler.devices.errors` (DeviceTimeout, ConnectionRefused,
ConnectionLost, ModbusExceptionReply, MalformedReply, WriteRefused), whatever carries the
words. Two transports implement it:

- :class:`reconciler.devices.transport.ModbusTransport`: Modbus TCP (pymodbus), on a site
  and against ``flux sim``;
- :class:`reconciler.sim.inprocess.InProcessTransport`: the simulator's register banks in
  the same process, with no socket (backtests, socket-free driver tests).

Both derive from :class:`NamedRegisters`, which turns names into planned blocks of words
and back (the profile's codec, PT/CT ratios) and refuses, before any word is sent, a write
the profile does not allow. A transport only supplies the two word-level requests:
read holding registers (function 3) and write multiple registers (function 16).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from reconciler.config.profiles import Profile
from reconciler.devices.codec import (
    UNITY,
    BlockCodec,
    CodecError,
    Ratios,
    RegisterCodec,
    Value,
    check_range,
    pack_words,
)
from reconciler.devices.errors import MalformedReply, WriteRefused
from reconciler.devices.plan import Block, plan_reads

#: Most registers one write request (function 16) may carry.
MAX_WRITE_WORDS = 123


class RegisterTransport(Protocol):
    """One device's registers by name, in engineering units (the profile's units).

    Every method raises a :class:`~reconciler.devices.errors.DeviceError` subclass on
    failure; writes the profile does not allow raise WriteRefused before anything is sent.
    """

    name: str
    profile: Profile

    async def connect(self) -> None:
        """Be ready for requests (a transport also connects on first use)."""
        ...

    async def read(self, names: Iterable[str] | None = None) -> dict[str, Value]:
        """The named holding registers' values (all of the profile's when None)."""
        ...

    async def write(self, name: str, value: Value) -> None:
        """Write one register."""
        ...

    async def write_many(self, values: Mapping[str, Value]) -> None:
        """Write several registers; every one is checked before the first is sent."""
        ...

    async def close(self) -> None: ...


class NamedRegisters:
    """Registers by name over two word-level requests a subclass supplies:
    :meth:`read_block` (read holding registers) and :meth:`write_words` (write registers).

    ``read_only=True`` refuses every write (``flux devices read`` runs beside the agent).
    """

    def __init__(
        self,
        name: str,
        profile: Profile,
        *,
        ratios: Ratios = UNITY,
        read_only: bool = False,
    ) -> None:
        self.name = name
        self.profile = profile
        self.ratios = ratios
        self.read_only = read_only
        self._plans: dict[tuple[str, ...] | None, list[Block]] = {}
        #: Each register's compiled codec, and each block's (decoded in one call).
        self._codecs = {n: RegisterCodec(r, ratios) for n, r in profile.registers.items()}
        self._layout: dict[Block, BlockCodec] = {}
        self._layouts: dict[tuple[str, ...] | None, tuple[tuple[Block, BlockCodec], ...]] = {}

    # ------------------------------------------------------------------ word level

    async def read_block(self, block: Block) -> list[int]:
        """The ``block.count`` words from ``block.start`` (holding registers)."""
        raise NotImplementedError

    async def read_block_data(self, block: Block) -> bytes:
        """:meth:`read_block` as the words' big-endian bytes, which the codecs decode
        from (a transport that holds bytes already hands them over as they are)."""
        words = await self.read_block(block)
        try:
            return pack_words(words)
        except CodecError as exc:
            raise MalformedReply(self.name, f"cannot decode: {exc}") from None

    #: True for a transport with nothing to wait on (in-process): reads then call
    #: :meth:`read_block_now` with no coroutine per block.
    answers_at_once = False

    def read_block_now(self, block: Block) -> bytes:
        """:meth:`read_block_data` of a transport that :attr:`answers_at_once`."""
        raise NotImplementedError

    async def write_words(self, address: int, words: list[int], names: str) -> None:
        """Write ``words`` from ``address`` in one request (``names`` for messages)."""
        raise NotImplementedError

    async def connect(self) -> None:
        """Nothing to connect by default."""

    async def close(self) -> None:
        """Nothing to close by default."""

    # ------------------------------------------------------------------ reads

    def plan(self, names: Iterable[str] | None = None) -> list[Block]:
        """The blocks that read ``names`` (memoised: a driver asks for the same names on
        every tick)."""
        key = None if names is None else tuple(names)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = plan_reads(self.profile, key)
        return plan

    def _layout_of(self, block: Block) -> BlockCodec:
        """The codec of every register in ``block``, at its offset (made once per block)."""
        layout = self._layout.get(block)
        if layout is None:
            layout = self._layout[block] = BlockCodec(
                block.count,
                [
                    (n, self._codecs[n].reg.address - block.start, self._codecs[n])
                    for n in block.names
                ],
            )
        return layout

    def _planned(self, names: Iterable[str] | None) -> tuple[tuple[Block, BlockCodec], ...]:
        """The blocks that read ``names`` with their codecs (memoised by names, so a read
        of the same names, every tick, hashes no block)."""
        key = None if names is None else tuple(names)
        found = self._layouts.get(key)
        if found is None:
            found = self._layouts[key] = tuple((b, self._layout_of(b)) for b in self.plan(key))
        return found

    async def read(
        self, names: Iterable[str] | None = None, *, blocks: Sequence[Block] | None = None
    ) -> dict[str, Value]:
        """Values (engineering units) of the named registers, all of them when None."""
        planned = (
            self._planned(names)
            if blocks is None
            else tuple((b, self._layout_of(b)) for b in blocks)
        )
        values: dict[str, Value] = {}
        now = self.read_block_now if self.answers_at_once else None
        for block, layout in planned:
            data = now(block) if now is not None else await self.read_block_data(block)
            try:
                values.update(zip(layout.names, layout.decode(data), strict=True))
            except CodecError as exc:
                raise MalformedReply(self.name, f"cannot decode: {exc}") from None
        return values

    # ------------------------------------------------------------------ writes

    def _refuse(self, name: str, why: str) -> WriteRefused:
        return WriteRefused(self.name, f"write refused, nothing sent: {why}", register=name)

    def encode_writes(self, values: Mapping[str, Value]) -> list[tuple[int, list[int], str]]:
        """Check and encode writes into (address, words, names) runs, contiguous registers
        joined. Raises WriteRefused (nothing is sent) for any write that is not allowed."""
        encoded: list[tuple[int, list[int], str]] = []
        for name, value in values.items():
            reg = self.profile.registers.get(name)
            if reg is None:
                raise self._refuse(name, f"profile {self.profile.name!r} has no such register")
            if self.read_only:
                raise self._refuse(name, "this session is read-only")
            if not reg.writable:
                raise self._refuse(name, f"register {reg.address} is read-only (access: r)")
            try:
                check_range(reg, value)
                words = self._codecs[name].encode(value)
            except CodecError as exc:
                raise self._refuse(name, str(exc)) from None
            encoded.append((reg.address, words, name))
        encoded.sort()
        runs: list[tuple[int, list[int], str]] = []
        for address, words, name in encoded:
            if runs:
                start, run, names = runs[-1]
                if start + len(run) == address and len(run) + len(words) <= MAX_WRITE_WORDS:
                    runs[-1] = (start, run + words, f"{names}, {name}")
                    continue
            runs.append((address, list(words), name))
        return runs

    async def write(self, name: str, value: Value) -> None:
        """Write one register (engineering units)."""
        await self.write_many({name: value})

    async def write_many(self, values: Mapping[str, Value]) -> None:
        """Write several registers; contiguous ones go in one request. Every write is
        checked before the first is sent."""
        for address, words, names in self.encode_writes(values):
            await self.write_words(address, words, names)
