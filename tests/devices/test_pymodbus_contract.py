"""What reconciler/devices/transport.py relies on in pymodbus, pinned against a real server.

pyproject allows a range of pymodbus releases; when an upgrade changes one of these, this
file fails first and names what moved, before the fault tests fail for reasons that are
harder to read. The server is the project's simulator on loopback.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ExceptionResponse, ModbusPDU

from reconciler.config.model import Site
from reconciler.config.resolve import resolve_profile
from reconciler.devices.errors import DeviceTimeout
from reconciler.devices.transport import ModbusTransport
from reconciler.sim.simulator import SiteSimulator
from tests.net import free_port

KEYWORD = inspect.Parameter.KEYWORD_ONLY
#: The Acuvim's frequency: one float32, two holding registers.
FREQUENCY, WORDS = 12288, 2


def _parameters(function: Callable[..., object]) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(function).parameters)


# --------------------------------------------------------------------------- the API


def test_the_client_takes_the_settings_the_transport_gives_it() -> None:
    params = _parameters(AsyncModbusTcpClient.__init__)
    assert list(params)[:2] == ["self", "host"]
    for name in ("port", "name", "timeout", "retries", "reconnect_delay", "trace_connect"):
        assert name in params, f"AsyncModbusTcpClient no longer takes {name}="
        assert params[name].kind is KEYWORD


def test_reads_and_writes_take_the_unit_as_device_id() -> None:
    read = _parameters(AsyncModbusTcpClient.read_holding_registers)
    assert list(read)[:2] == ["self", "address"]
    assert read["count"].kind is KEYWORD
    assert read["device_id"].kind is KEYWORD
    write = _parameters(AsyncModbusTcpClient.write_registers)
    assert list(write)[:3] == ["self", "address", "values"]
    assert write["device_id"].kind is KEYWORD


def test_the_errors_the_transport_tells_apart_are_modbus_exceptions() -> None:
    assert issubclass(ConnectionException, ModbusException)
    assert issubclass(ModbusIOException, ModbusException)
    assert not issubclass(ModbusException, TimeoutError)
    assert issubclass(ExceptionResponse, ModbusPDU)


# --------------------------------------------------------------------------- behaviour


class Client:
    """A client on the simulated grid meter, set up as the transport sets up its own."""

    def __init__(self, site: Site, *, timeout: float = 5.0, port: int | None = None) -> None:
        meter = site.devices.meters["site"]
        self.unit = meter.unit_id
        self.events: list[bool] = []
        self.client = AsyncModbusTcpClient(
            meter.host,
            port=meter.port if port is None else port,
            name="contract",
            timeout=timeout,
            retries=0,
            reconnect_delay=0,
            trace_connect=self.events.append,
        )

    def read(self) -> asyncio.Future[ModbusPDU]:
        return asyncio.ensure_future(
            self.client.read_holding_registers(FREQUENCY, count=WORDS, device_id=self.unit)
        )


@pytest.fixture
async def meter(sim_site: Site) -> AsyncIterator[Client]:
    c = Client(sim_site)
    assert await c.client.connect() is True
    assert c.client.connected
    yield c
    c.client.close()


async def test_a_reply_carries_the_registers_asked_for(meter: Client) -> None:
    pdu = await meter.read()
    assert isinstance(pdu, ModbusPDU) and not isinstance(pdu, ExceptionResponse)
    assert len(pdu.registers) == WORDS


async def test_an_exception_reply_is_returned_as_an_exception_response(
    sim: SiteSimulator, meter: Client
) -> None:
    sim.faults.exception("site", 6)
    pdu = await meter.read()
    assert isinstance(pdu, ExceptionResponse)
    assert pdu.exception_code == 6


async def test_a_short_reply_is_returned_for_the_transport_to_check(
    sim: SiteSimulator, meter: Client
) -> None:
    sim.faults.short_reply("site")
    pdu = await meter.read()
    assert len(pdu.registers) == WORDS - 1


async def test_a_closed_connection_is_reported_and_the_next_request_raises(
    sim: SiteSimulator, meter: Client
) -> None:
    sim.faults.drop_now("site")
    for _ in range(200):
        if False in meter.events:
            break
        await asyncio.sleep(0.01)
    assert meter.events[-1] is False  # trace_connect(False): the transport's _lost event
    assert not meter.client.connected
    with pytest.raises(ConnectionException):
        await meter.read()


async def test_a_request_cancelled_while_it_waits_ends(sim: SiteSimulator, meter: Client) -> None:
    """The transport cancels a request it gives up on (timeout, closed connection); the
    request must end, as CancelledError or (some releases) a ModbusIOException."""
    sim.faults.delay("site", 30)
    sent = len(sim.requests)
    request = meter.read()
    for _ in range(200):
        if len(sim.requests) > sent:
            break
        await asyncio.sleep(0.01)
    request.cancel()
    done, _ = await asyncio.wait({request}, timeout=5)
    assert request in done
    assert request.cancelled() or isinstance(request.exception(), ModbusIOException)


async def test_no_retries_means_one_request_and_a_modbus_error_not_timeout_error(
    sim: SiteSimulator, sim_site: Site
) -> None:
    """pymodbus's own no-reply path (which the transport keeps from running first by
    giving pymodbus the longer timeout) sends once with retries=0 and raises a
    ModbusIOException: so only the transport's own deadline means DeviceTimeout."""
    c = Client(sim_site, timeout=0.2)
    assert await c.client.connect()
    sim.faults.delay("site", 1.0)
    sent = len(sim.requests)
    with pytest.raises(ModbusIOException):
        await c.read()
    assert len(sim.requests) - sent == 1
    c.client.close()


async def test_nothing_listening_connect_answers_false() -> None:
    """A refused connection is a False from connect(), not an exception."""
    from reconciler.config.loader import load_site
    from tests.devices.conftest import DEMO

    c = Client(load_site(DEMO), port=free_port())
    assert await c.client.connect() is False
    assert not c.client.connected
    c.client.close()


async def test_the_transports_timeout_holds_however_a_cancelled_request_ends(
    sim: SiteSimulator, sim_site: Site
) -> None:
    """Some releases (3.13 among them) end a request cancelled while it waits with a
    ModbusIOException instead of CancelledError: the transport still reports a timeout."""
    meter = sim_site.devices.meters["site"]
    t = ModbusTransport.for_device(
        "site", meter, resolve_profile(sim_site, meter.profile), timeout_s=0.2
    )

    async def as_some_releases_do(client: AsyncModbusTcpClient) -> ModbusPDU:
        try:
            return await client.read_holding_registers(
                FREQUENCY, count=WORDS, device_id=meter.unit_id
            )
        except asyncio.CancelledError as exc:
            raise ModbusIOException("Request cancelled outside library.") from exc

    sim.faults.delay("site", 1.0)
    with pytest.raises(DeviceTimeout, match=r"no reply within 0\.2 s"):
        await t._execute("frequency", as_some_releases_do)
    await t.close()
