"""The site simulator: one Modbus TCP server per device of a site, sharing one plant.

    async with SiteSimulator(site, clock=ManualClock(start), ports="ephemeral") as sim:
        battery, meters = open_site_devices(sim.site_for_ephemeral_ports())
        await battery.start(); await battery.command(100)
        await sim.step(10)               # step mode: physics advances 10 s
        sim.plant.battery_kw, sim.faults.away("solar", 30), sim.writes("bess")

The physics follows the clock: in real or accelerated time (WallClock, ScaledClock) a
background task advances it every ``tick_s`` of real time; with a ManualClock it moves when
``step()`` is called or when the clock was advanced by someone else (every request first
catches the plant up with the clock).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from types import TracebackType
from typing import Literal

from reconciler.clock import Clock, ManualClock, WallClock
from reconciler.config.model import Site
from reconciler.config.resolve import resolve_profile
from reconciler.devices.acuvim import AcuvimMeter
from reconciler.devices.codec import Ratios, Value
from reconciler.devices.factory import open_site_devices
from reconciler.devices.powerpack import PowerPackBattery
from reconciler.sim.curves import HalfHourly
from reconciler.sim.faults import Faults
from reconciler.sim.inprocess import InProcessTransport
from reconciler.sim.plant import FrequencyEventKind, Plant
from reconciler.sim.registers import battery_values, meter_values
from reconciler.sim.server import DeviceServer, Request

LOOPBACK = "127.0.0.1"


class SiteSimulator:
    """Simulated devices of ``site`` on loopback.

    ``ports="site"`` listens on the ports of the site file; ``"ephemeral"`` on free ports;
    an int on consecutive ports from it (battery first, then the meters in file order), for
    sites whose devices share one port on different hosts (see :meth:`port_of` and
    :meth:`site_for_ephemeral_ports`).
    """

    def __init__(
        self,
        site: Site,
        *,
        clock: Clock | None = None,
        ports: Literal["site", "ephemeral"] | int = "site",
        host: str = LOOPBACK,
        tick_s: float = 0.1,
        load: HalfHourly | None = None,
        solar: HalfHourly | None = None,
        cache_values: bool = False,
    ) -> None:
        self.site = site
        self.clock: Clock = clock or WallClock()
        self.tick_s = tick_s
        self.plant = Plant.for_site(site, self.clock.now(), load=load, solar=solar)
        # Register values worked out once per plant version rather than per request: only
        # for a plant changed through its methods (a backtest), not one a test pokes.
        version = self._plant_version if cache_values else None
        self.requests: list[Request] = []
        self._task: asyncio.Task[None] | None = None
        bat = site.devices.battery
        names = [bat.name, *site.devices.meters]
        self.faults = Faults(
            names, self.clock.now, self._drop, self._go_away, self._frequency_event
        )
        self.servers: dict[str, DeviceServer] = {}

        def port(index: int, own: int) -> int:
            if ports == "ephemeral":
                return 0
            return own if ports == "site" else ports + index

        self.servers[bat.name] = DeviceServer(
            bat.name,
            resolve_profile(site, bat.profile),
            unit_id=bat.unit_id,
            ratios=Ratios.of(bat),
            host=host,
            port=port(0, bat.port),
            values=lambda: battery_values(self.plant),
            on_write=self.plant.write,
            version=version,
            before_request=self.catch_up,
            faults=self.faults[bat.name],
            now=self.clock.now,
            log=self.requests,
        )
        for index, (name, dev) in enumerate(site.devices.meters.items(), start=1):
            state = self.plant.meters[name]
            self.servers[name] = DeviceServer(
                name,
                resolve_profile(site, dev.profile),
                unit_id=dev.unit_id,
                ratios=Ratios.of(dev),
                host=host,
                port=port(index, dev.port),
                values=lambda m=state: meter_values(m),  # type: ignore[misc]
                on_write=lambda _n, _v: None,
                version=version,
                before_request=self.catch_up,
                faults=self.faults[name],
                now=self.clock.now,
                log=self.requests,
            )

    def _plant_version(self) -> int:
        return self.plant.version

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start every device server and the physics task. Raises OSError naming the
        device whose port cannot be listened on."""
        try:
            for server in self.servers.values():
                try:
                    await server.start()
                except OSError as exc:
                    raise OSError(
                        f"simulated device {server.name}: cannot listen on "
                        f"{server.host}:{server.port}; is another simulator running, or is "
                        f"the port in use? ({exc.strerror or exc})"
                    ) from None
        except BaseException:
            await self.stop()
            raise
        self._task = asyncio.create_task(self._run(), name="flux-sim physics")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for server in self.servers.values():
            await server.stop()

    async def __aenter__(self) -> SiteSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ time

    def catch_up(self) -> None:
        """Advance the physics to the clock's now."""
        now = self.clock.now()
        if now > self.plant.at:  # before every request: usually caught up already
            self.plant.advance_to(now)

    async def tick(self) -> None:
        """Catch the physics up with the clock and bring back devices whose time away is
        over (the physics task does this every ``tick_s``)."""
        self.catch_up()
        now = self.clock.now()
        for name, server in self.servers.items():
            f = self.faults[name]
            if server.listening or (f.away_until is not None and now < f.away_until):
                continue
            try:
                await server.start()
            except OSError:
                continue  # the port is still busy: try again at the next tick
            f.away_until = None

    async def step(self, seconds: float) -> None:
        """Step mode: advance the ManualClock by ``seconds`` and the physics with it."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError("step() needs the simulator to run on a ManualClock")
        self.clock.advance(seconds)
        await self.tick()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            await self.tick()

    # ------------------------------------------------------------------ faults

    def restart_battery(self) -> None:
        """Power-cycle the battery: its connections drop and its settings go back to
        their defaults (what a reboot of a real battery controller does)."""
        self.catch_up()
        self.plant.restart_battery()
        self.servers[self.site.devices.battery.name].drop_connections()

    def _frequency_event(self, kind: FrequencyEventKind) -> None:
        self.catch_up()
        self.plant.frequency_event(kind)

    def _drop(self, device: str) -> None:
        self.servers[device].drop_connections()

    def _go_away(self, device: str) -> None:
        # The listener closes now; its port is kept so the device comes back there.
        self.servers[device].close_now()

    # ------------------------------------------------------------------ views

    def port_of(self, device: str) -> int:
        """The TCP port the device listens on (the bound one for ephemeral ports)."""
        return self.servers[device].port

    def site_for_ephemeral_ports(self) -> Site:
        """The site with every device's host and port rewritten to the simulator's, so
        drivers built from it connect here."""
        bat = self.site.devices.battery
        bat = bat.model_copy(update={"host": LOOPBACK, "port": self.port_of(bat.name)})
        meters = {
            name: dev.model_copy(update={"host": LOOPBACK, "port": self.port_of(name)})
            for name, dev in self.site.devices.meters.items()
        }
        devices = self.site.devices.model_copy(update={"battery": bat, "meters": meters})
        return self.site.model_copy(update={"devices": devices})

    def in_process_devices(
        self, *, log: bool = True, read_only: bool = False
    ) -> tuple[PowerPackBattery, dict[str, AcuvimMeter]]:
        """The site's real drivers on this simulator's register banks, with no socket
        (the servers need not be started). Every request first catches the physics up
        with the clock, as over TCP; with ``log`` it is logged in :attr:`requests` too
        (a backtest turns that off)."""

        def transport(name: str, _dev: object, _profile: object) -> InProcessTransport:
            return InProcessTransport(
                self.servers[name].bank,
                before_request=self.catch_up,
                faults=self.faults[name],
                log=self.requests if log else None,
                clock=self.clock,
                read_only=read_only,
            )

        return open_site_devices(self.site, clock=self.clock, transports=transport)

    def values(self, device: str) -> dict[str, Value]:
        """What the device's registers hold now (engineering units), by register name."""
        if device == self.site.devices.battery.name:
            return battery_values(self.plant)
        return meter_values(self.plant.meters[device])

    def writes(self, device: str | None = None) -> list[Request]:
        """Write requests received (by one device, or all)."""
        return [
            r
            for r in self.requests
            if r.function_code in (6, 16) and (device is None or r.device == device)
        ]

    @property
    def now(self) -> datetime:
        return self.clock.now()
