"""One simulated Modbus TCP device: a pymodbus server whose registers come from the plant.

Addresses follow the profile: every register exists; unmapped gaps up to the profile's
``max_gap_words`` read as 0 (as on a device that tolerates them); wider gaps are invalid
and answer exception 2 (illegal data address), so a read plan that crosses one fails
here as it would on the device. Read-only registers refuse writes.

Values are refreshed from the plant on every read (unless frozen); writes go to the plant.
Every request received is logged, so tests can prove what was (not) sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from reconciler.config.profiles import Profile
from reconciler.devices.codec import Ratios, Value
from reconciler.logs import quiet_pymodbus
from reconciler.sim.bank import Refused, RegisterBank, address_runs
from reconciler.sim.faults import DeviceFaults

quiet_pymodbus()

READ_CODES = (3,)
WRITE_CODES = (6, 16)


@dataclass(frozen=True)
class Request:
    """A request a simulated device received."""

    device: str
    function_code: int
    address: int
    count: int
    values: tuple[int, ...] = ()
    #: Simulator clock at arrival.
    at: datetime | None = None


class DeviceServer:
    """A Modbus TCP server for one device of the site, on ``host:port`` (0 = any free)."""

    def __init__(
        self,
        name: str,
        profile: Profile,
        *,
        unit_id: int,
        ratios: Ratios,
        host: str,
        port: int,
        values: Callable[[], dict[str, Value]],
        on_write: Callable[[str, Value], None],
        version: Callable[[], int] | None = None,
        before_request: Callable[[], None],
        faults: DeviceFaults,
        now: Callable[[], datetime],
        log: list[Request],
    ) -> None:
        self.name = name
        self.profile = profile
        self.unit_id = unit_id
        self.ratios = ratios
        self.host = host
        self.port = port
        #: The register map, shared with the in-process transport (no socket).
        self.bank = RegisterBank(
            name, profile, ratios=ratios, values=values, on_write=on_write, version=version
        )
        self._before_request = before_request
        self.faults = faults
        self._now = now
        self._log = log
        self._server: ModbusTcpServer | None = None

    # ------------------------------------------------------------------ lifecycle

    def _device(self) -> SimDevice:
        data = [
            SimData(start, values=[0] * n, datatype=DataType.REGISTERS, readonly=not w)
            for start, n, w in address_runs(self.profile)
        ]
        return SimDevice(self.unit_id, simdata=data, action=self._action)

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Listen (raises OSError if the port is taken); learns the bound port."""
        server = ModbusTcpServer(
            self._device(),
            address=(self.host, self.port),
            trace_pdu=self._trace_pdu,
        )
        server.comm_params.comm_name = self.name
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus reports a failed bind this way
            raise OSError(str(exc)) from None
        if not server.transport:
            raise OSError(f"{self.name}: cannot listen on {self.host}:{self.port}")
        sockets = getattr(server.transport, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._server = server

    def drop_connections(self) -> None:
        """Close every open client connection (the listener stays)."""
        if self._server is None:
            return
        for conn in list(self._server.active_connections.values()):
            conn.close()

    def close_now(self) -> None:
        """Stop listening and drop every connection, at once (the port is kept)."""
        server, self._server = self._server, None
        if server is not None:
            for conn in list(server.active_connections.values()):
                conn.close()
            server.close()
            if not server.serving.done():
                server.serving.set_result(True)

    async def stop(self) -> None:
        self.close_now()
        await asyncio.sleep(0)

    # ------------------------------------------------------------------ requests

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            values = tuple(getattr(pdu, "registers", None) or ())
            count = int(getattr(pdu, "count", 0) or len(values))
            self._log.append(
                Request(self.name, pdu.function_code, pdu.address, count, values, at=self._now())
            )
        elif pdu.function_code in READ_CODES and self.faults.short_replies > 0:
            self.faults.short_replies -= 1
            pdu.registers = list(pdu.registers)[:-1]
        return pdu

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        faults = self.faults
        if faults.delay_s > 0:
            await asyncio.sleep(faults.delay_s)
        if faults.drop_requests > 0:
            faults.drop_requests -= 1
            self.drop_connections()
            return None
        if faults.exception_code is not None:
            return ExcCodes(faults.exception_code)
        self._before_request()
        if set_values is not None and function_code in WRITE_CODES:
            offset = address - start_address
            registers[offset : offset + len(set_values)] = [int(v) for v in set_values]
            try:
                self.bank.apply_write(registers, start_address, address, len(set_values))
            except Refused as exc:
                return ExcCodes(exc.code)
            return None
        if not faults.frozen:
            self.bank.fill(registers, start_address, address, count)
        return None
