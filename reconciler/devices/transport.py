"""Modbus TCP transport for one device, on pymodbus's AsyncModbusTcpClient.

One request in flight per device. Connect and request timeouts are the device's
``timeout_s``, and they are ours: each pymodbus call is raced against that deadline and
against the connection closing, so a broken connection is noticed at once (not only at
the next timeout). pymodbus gets a longer timeout and no retries, so its own no-reply
path never runs first, and errors are told apart by type, never by message. The next
request reconnects, with exponential backoff between attempts (tenacity). Requests are
never retried here: the caller sees the typed error and decides (the agent reads again
next tick). Writes are checked against the profile (``access: rw`` and min/max) before
anything is sent.

What this relies on in pymodbus is pinned by tests/devices/test_pymodbus_contract.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from reconciler.config.model import BatteryDevice, MeterDevice
from reconciler.config.profiles import Profile
from reconciler.devices.codec import UNITY, CodecError, Ratios, Value, check_range, encode
from reconciler.devices.errors import (
    ConnectionLost,
    ConnectionRefused,
    DeviceTimeout,
    MalformedReply,
    ModbusExceptionReply,
    WriteRefused,
)
from reconciler.devices.plan import Block, pick, plan_reads
from reconciler.logs import quiet_pymodbus

quiet_pymodbus()

#: Most registers one write request (function 16) may carry.
MAX_WRITE_WORDS = 123
#: How much longer than ours pymodbus's own timeout is, s: ours always fires first.
PYMODBUS_SLACK_S = 1.0

T = TypeVar("T")


class _Closed(Exception):
    """The connection closed while a call was waiting on it."""


def _settle(task: asyncio.Future[Any]) -> None:
    """Collect the end of a call given up on: pymodbus may end a cancelled request with
    its own error instead of CancelledError, and nobody waits for it any more."""
    if not task.cancelled():
        task.exception()


class ModbusTransport:
    """Reads and writes one device's registers by name.

    ``requests`` counts Modbus requests put on the wire (for benchmarks and tests).
    ``read_only=True`` refuses every write (``flux devices read`` runs beside the agent).
    """

    def __init__(
        self,
        name: str,
        profile: Profile,
        *,
        host: str,
        port: int,
        unit_id: int = 1,
        timeout_s: float = 1.0,
        ratios: Ratios = UNITY,
        read_only: bool = False,
        connect_attempts: int = 3,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 1.0,
    ) -> None:
        self.name = name
        self.profile = profile
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.timeout_s = timeout_s
        self.ratios = ratios
        self.read_only = read_only
        self.connect_attempts = connect_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.requests = 0
        self.connects = 0
        self._client: AsyncModbusTcpClient | None = None
        #: Completed when the current connection closes (set by pymodbus's trace_connect).
        self._lost: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()
        self._plans: dict[tuple[str, ...] | None, list[Block]] = {}

    @classmethod
    def for_device(
        cls,
        name: str,
        device: BatteryDevice | MeterDevice,
        profile: Profile,
        **options: Any,
    ) -> ModbusTransport:
        """A transport for a device of the site file (host, port, unit id, timeout, ratios)."""
        settings: dict[str, Any] = {
            "host": device.host,
            "port": device.port,
            "unit_id": device.unit_id,
            "timeout_s": device.timeout_s,
            "ratios": Ratios.of(device),
        }
        return cls(name, profile, **(settings | options))

    # ------------------------------------------------------------------ connection

    @property
    def connected(self) -> bool:
        lost = self._lost
        client = self._client
        return client is not None and client.connected and lost is not None and not lost.done()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def _bounded(self, call: Awaitable[T], lost: asyncio.Future[None]) -> T:
        """The result of ``call`` within ``timeout_s``: TimeoutError after it, _Closed as
        soon as ``lost`` completes. The call is cancelled when given up on.

        Not asyncio.wait_for: some pymodbus releases (3.13 among them) end a cancelled
        request with a ModbusIOException, which wait_for would hand on in place of
        TimeoutError.
        """
        work = asyncio.ensure_future(call)
        either: set[asyncio.Future[Any]] = {work, lost}
        try:
            done, _ = await asyncio.wait(
                either, timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not work.done():
                work.cancel()
                work.add_done_callback(_settle)
        if work in done:
            return work.result()
        if lost in done:
            raise _Closed
        raise TimeoutError

    async def _connect_once(self) -> None:
        self._drop()
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[None] = loop.create_future()

        def on_connect(up: bool) -> None:
            if not up and not lost.done():
                lost.set_result(None)  # wakes the request in flight (see _bounded)

        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            name=self.name,
            timeout=self.timeout_s + PYMODBUS_SLACK_S,
            retries=0,
            reconnect_delay=0,  # reconnecting is ours (with backoff), not pymodbus's
            trace_connect=on_connect,
        )
        try:
            ok = await self._bounded(client.connect(), loop.create_future())  # nothing to lose yet
        except TimeoutError:
            client.close()
            raise DeviceTimeout(
                self.name,
                f"no connection to {self.address} within {self.timeout_s:g} s; "
                "check the host and port in the site file and the network",
            ) from None
        if not ok or not client.connected:
            # pymodbus answers False for a refused or unreachable address (an OSError)
            client.close()
            raise ConnectionRefused(
                self.name,
                f"cannot connect to {self.address} (refused or unreachable); check the host "
                "and port in the site file and that the device (or `flux sim`) is running",
            )
        self._client, self._lost = client, lost
        self.connects += 1

    async def connect(self) -> None:
        """Connect (retrying with exponential backoff); raises ConnectionRefused or
        DeviceTimeout when every attempt failed."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, self.connect_attempts)),
            wait=wait_exponential(multiplier=self.backoff_initial_s, max=self.backoff_max_s),
            retry=retry_if_exception_type((ConnectionRefused, DeviceTimeout)),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self._connect_once()

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def close(self) -> None:
        """Close the connection (a later request reconnects)."""
        self._drop()

    # ------------------------------------------------------------------ requests

    async def _execute(
        self, what: str, call: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]]
    ) -> ModbusPDU:
        async with self._lock:
            if not self.connected:
                await self.connect()
            client, lost = self._client, self._lost
            assert client is not None and lost is not None
            self.requests += 1
            try:
                pdu = await self._bounded(call(client), lost)
            except TimeoutError:
                # A stale reply may still be on its way: start afresh on a new connection.
                self._drop()
                raise DeviceTimeout(
                    self.name, f"no reply within {self.timeout_s:g} s", register=what
                ) from None
            except (_Closed, ConnectionException):
                self._drop()
                raise ConnectionLost(
                    self.name, f"{self.address} closed the connection", register=what
                ) from None
            except ModbusException as exc:
                # ModbusIOException (a reply for another unit or transaction) and the rest
                self._drop()
                raise MalformedReply(self.name, f"bad reply: {exc}", register=what) from None
            if isinstance(pdu, ExceptionResponse):
                raise ModbusExceptionReply(self.name, int(pdu.exception_code), register=what)
            if not isinstance(pdu, ModbusPDU):
                raise MalformedReply(self.name, "empty reply", register=what)
            return pdu

    async def read_block(self, block: Block) -> list[int]:
        """The words of one block (raises a DeviceError subclass)."""
        what = f"{', '.join(block.names)} @ {block}"
        pdu = await self._execute(
            what,
            lambda c: c.read_holding_registers(
                block.start, count=block.count, device_id=self.unit_id
            ),
        )
        words = list(getattr(pdu, "registers", None) or [])
        if len(words) != block.count:
            raise MalformedReply(
                self.name,
                f"short reply: asked for {block.count} registers, got {len(words)}",
                register=what,
            )
        return words

    def plan(self, names: Iterable[str] | None = None) -> list[Block]:
        key = None if names is None else tuple(names)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = plan_reads(self.profile, key)
        return plan

    async def read(
        self, names: Iterable[str] | None = None, *, blocks: Sequence[Block] | None = None
    ) -> dict[str, Value]:
        """Values (engineering units) of the named registers, all of them when None."""
        blocks = self.plan(names) if blocks is None else blocks
        replies = [await self.read_block(b) for b in blocks]
        try:
            return pick(self.profile, blocks, replies, self.ratios)
        except CodecError as exc:
            raise MalformedReply(self.name, f"cannot decode: {exc}") from None

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
                words = encode(reg, value, self.ratios)
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

            def send(c: AsyncModbusTcpClient, a: int = address, w: list[int] = words) -> Any:
                return c.write_registers(a, w, device_id=self.unit_id)

            await self._execute(names, send)
