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
from collections.abc import Awaitable, Callable
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
from reconciler.devices.codec import UNITY, Ratios
from reconciler.devices.errors import (
    ConnectionLost,
    ConnectionRefused,
    DeviceTimeout,
    MalformedReply,
    ModbusExceptionReply,
)
from reconciler.devices.plan import Block
from reconciler.devices.registers import MAX_WRITE_WORDS, NamedRegisters
from reconciler.logs import quiet_pymodbus

quiet_pymodbus()

__all__ = ["MAX_WRITE_WORDS", "ModbusTransport"]
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


class ModbusTransport(NamedRegisters):
    """Reads and writes one device's registers by name, over Modbus TCP (a
    :class:`~reconciler.devices.registers.RegisterTransport`).

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
        super().__init__(name, profile, ratios=ratios, read_only=read_only)
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.timeout_s = timeout_s
        self.connect_attempts = connect_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.requests = 0
        self.connects = 0
        self._client: AsyncModbusTcpClient | None = None
        #: Completed when the current connection closes (set by pymodbus's trace_connect).
        self._lost: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()

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

    async def write_words(self, address: int, words: list[int], names: str) -> None:
        """Write ``words`` from ``address`` in one request (function 16)."""

        def send(c: AsyncModbusTcpClient) -> Any:
            return c.write_registers(address, words, device_id=self.unit_id)

        await self._execute(names, send)
