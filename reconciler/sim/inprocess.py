"""The simulated devices without sockets: the real drivers (PowerPack, Acuvim) on the
simulator's register banks, in this process.

:class:`InProcessTransport` is a :class:`~reconciler.devices.registers.RegisterTransport`
like the Modbus TCP one: the drivers plan the same blocks, encode and decode the same
words with the same profile and PT/CT ratios, and get the same typed errors (a Modbus
exception from the bank, WriteRefused before anything is "sent"). Only the wire is gone,
so a backtest runs the site's code path at the speed of the plant, and driver tests need
no port.

Faults: an exception code and frozen registers apply as over TCP; delays, dropped
connections and devices going away are about the wire and have no meaning here.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.clock import Clock
from reconciler.devices.codec import words_struct
from reconciler.devices.errors import ModbusExceptionReply
from reconciler.devices.plan import Block
from reconciler.devices.registers import NamedRegisters
from reconciler.sim.bank import Refused, RegisterBank
from reconciler.sim.faults import DeviceFaults
from reconciler.sim.server import Request

ADDRESS = "in-process"


class InProcessTransport(NamedRegisters):
    """One device's registers, read from and written to its bank directly.

    ``before_request`` runs before every request (the simulator catches its physics up
    with the clock there); ``log`` receives every request as the TCP server logs it (None:
    no log, as in a backtest); ``requests`` counts them.
    """

    def __init__(
        self,
        bank: RegisterBank,
        *,
        before_request: Callable[[], None] | None = None,
        faults: DeviceFaults | None = None,
        log: list[Request] | None = None,
        clock: Clock | None = None,
        read_only: bool = False,
    ) -> None:
        super().__init__(bank.name, bank.profile, ratios=bank.ratios, read_only=read_only)
        self.bank = bank
        self.requests = 0
        self._before = before_request
        self._faults = faults
        self._log = log
        self._clock = clock

    @property
    def address(self) -> str:
        return ADDRESS

    def _request(self, code: int, address: int, count: int, words: tuple[int, ...] = ()) -> None:
        self.requests += 1
        if self._log is not None:
            at = self._clock.now() if self._clock is not None else None
            self._log.append(Request(self.name, code, address, count, words, at=at))
        faults = self._faults
        if faults is not None and faults.exception_code is not None:
            raise Refused(faults.exception_code)
        if self._before is not None:
            self._before()

    async def read_block(self, block: Block) -> list[int]:
        return list(words_struct(block.count).unpack(await self.read_block_data(block)))

    #: The bank answers within the call: NamedRegisters.read needs no coroutine per block.
    answers_at_once = True

    async def read_block_data(self, block: Block) -> bytes:
        return self.read_block_now(block)

    def read_block_now(self, block: Block) -> bytes:
        try:
            self._request(3, block.start, block.count)
            frozen = self._faults is not None and self._faults.frozen
            return self.bank.read_data(block.start, block.count, fresh=not frozen)
        except Refused as exc:
            what = f"{', '.join(block.names)} @ {block}"
            raise ModbusExceptionReply(self.name, exc.code, register=what) from None

    async def write_words(self, address: int, words: list[int], names: str) -> None:
        try:
            self._request(16, address, len(words), tuple(words))
            self.bank.write(address, words)
        except Refused as exc:
            raise ModbusExceptionReply(self.name, exc.code, register=names) from None
