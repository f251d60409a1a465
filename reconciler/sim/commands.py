"""`flux sim SITE`: run the simulated devices of a site until Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from ruamel.yaml import YAML

from reconciler.cliparams import FiniteRange, check_output_path, instant
from reconciler.clock import Clock, ScaledClock, WallClock, sleep_unless_stopped
from reconciler.config.commands import find_site, sites_dir_option
from reconciler.config.loader import SiteFileError, load_site
from reconciler.config.model import Site
from reconciler.sim.faults import Faults
from reconciler.sim.markets import Dispatch, MarketSimulator
from reconciler.sim.plant import RepeatedEvent
from reconciler.sim.simulator import SiteSimulator
from reconciler.stopping import run_until_signalled, sleep_or_stop

EXIT_RUNTIME = 1
EXIT_USAGE = 2
#: Fastest clock: a simulated day per real second. The physics steps a simulated second
#: at a time (some 10^5 steps a real second on a laptop), so a faster clock would only run
#: ahead of the plant; and far faster (1e308) the clock's arithmetic overflows.
MAX_SPEED = 86_400.0

F = TypeVar("F", bound=Callable[..., Any])


def speed_option(default: float) -> Callable[[F], F]:
    """--speed, simulated seconds per real second: above 0 (0 or less would stop or
    reverse time), finite, at most MAX_SPEED. Shared by `flux sim` and `flux demo`."""
    return click.option(
        "--speed",
        type=FiniteRange(min=0, min_open=True, max=MAX_SPEED),
        default=default,
        show_default=True,
        help=f"Simulated seconds per real second (at most {MAX_SPEED:g}: a day per second).",
    )


def parse_start(text: str, tz: str) -> datetime:
    """An ISO instant; without an offset it is local time in the site's timezone."""
    return instant(text, ZoneInfo(tz), "--start", "2024-01-15T06:00").astimezone(UTC)


def status_line(sim: SiteSimulator, tz: str) -> str:
    p = sim.plant
    b = p.battery
    local = sim.now.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z")
    pct = 100.0 * b.soe_kwh / b.nameplate_energy_kwh
    hb = " [red]heartbeat lost[/red]" if b.heartbeat_lost else ""
    faulty = [(n, sim.faults[n].describe(sim.now)) for n in sim.servers]
    notes = "; ".join(f"{n}: {d}" for n, d in faulty if d)
    tail = f"  [yellow]faults: {notes}[/yellow]" if notes else ""
    mode = "direct" if b.direct else "idle"
    return (
        f"{local}  soe {b.soe_kwh:.1f} kWh ({pct:.1f}%)  battery {p.battery_kw:+.1f} kW "
        f"({mode}){hb}  load {p.load_kw:.1f}  solar {p.solar_kw:.1f}  grid {p.grid_kw:+.1f} kW"
        f"{tail}"
    )


def _refuse_shared_ports(site: Site, site_file: str) -> None:
    """Every simulated device listens on 127.0.0.1: devices that share a port on different
    hosts (a real site's usual 502) cannot all be served there. Say so, and the way out."""
    devices = [(site.devices.battery.name, site.devices.battery.port)] + [
        (name, m.port) for name, m in site.devices.meters.items()
    ]
    by_port: dict[int, list[str]] = {}
    for name, port in devices:
        by_port.setdefault(port, []).append(name)
    shared = {port: names for port, names in by_port.items() if len(names) > 1}
    if not shared:
        return
    said = "; ".join(f"{', '.join(n)} all use port {p}" for p, n in sorted(shared.items()))
    click.echo(
        f"flux sim: {said} (on different hosts). The simulator serves every device on "
        "127.0.0.1, so each needs a port of its own: run\n"
        f"  flux sim {site_file} --ports 15020 --site-out sim-site.yaml\n"
        "(devices on 15020, 15021, ...) and point the agent or `flux devices read` at "
        "sim-site.yaml.",
        err=True,
    )
    sys.exit(EXIT_USAGE)


def _check_faults(specs: tuple[str, ...], names: set[str], now: datetime) -> None:
    """Refuse a --fault before any simulator starts (exit 2): each is applied to a
    throwaway set of faults, the way the simulator will apply it."""
    trial = Faults(sorted(names), lambda: now, lambda _: None, lambda _: None, lambda _: None)
    for spec in specs:
        device = spec.partition(":")[0]
        if device not in names:
            raise click.BadParameter(
                f"{spec!r}: no device {device!r}; the site has {', '.join(sorted(names))}",
                param_hint="--fault",
            )
        try:
            trial.apply(spec)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--fault") from None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    return value


def write_site_for(sim: SiteSimulator, path: Path) -> None:
    """A copy of the site file with every device at 127.0.0.1 and its simulated port."""
    site = sim.site_for_ephemeral_ports()
    # Python mode keeps -inf in curves (JSON mode would make it null); dates and enums
    # are written as the text a site file has.
    data = _plain(site.model_dump(by_alias=True, exclude_defaults=True))
    data["devices"] = _plain(site.devices.model_dump(by_alias=True))
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    try:
        with path.open("w", encoding="utf-8") as out:
            out.write(f"# {site.site.id} for `flux sim --ports`: every device on 127.0.0.1\n")
            yaml.dump(data, out)
    except OSError as exc:
        # Exit 2, not 1 (which README keeps for a busy port): the path was checked before
        # the start, so this is a folder that went away since, or a full disk.
        raise ValueError(f"--site-out: cannot write {path}: {exc.strerror or exc}") from None


async def _repeat(
    event: RepeatedEvent, sim: SiteSimulator, clock: Clock, stop: asyncio.Event
) -> None:
    while not await sleep_unless_stopped(clock, event.every_s, stop):
        sim.catch_up()
        sim.plant.frequency_event(event.kind, hold_s=event.hold_s)


async def run(
    site: Site,
    clock: Clock,
    faults: tuple[str, ...],
    every_s: float,
    markets: MarketSimulator | None = None,
    *,
    stop: asyncio.Event,
    ports: Literal["site"] | int = "site",
    site_out: Path | None = None,
    events: tuple[RepeatedEvent, ...] = (),
) -> None:
    console = Console(highlight=False)
    async with SiteSimulator(site, clock=clock, ports=ports) as sim:
        repeating = [asyncio.create_task(_repeat(e, sim, clock, stop)) for e in events]
        if site_out is not None:
            write_site_for(sim, site_out)
            console.print(f"  wrote {site_out}: the site file pointing at these ports")
        for spec in faults:
            sim.faults.apply(spec)
        speed = getattr(clock, "speed", 1.0)
        console.print(f"[bold]flux sim[/bold] {site.site.name}: {speed:g}x, Ctrl-C to stop")
        bat = site.devices.battery
        console.print(f"  {bat.name:<14} battery         127.0.0.1:{sim.port_of(bat.name)}")
        for name, m in site.devices.meters.items():
            console.print(f"  {name:<14} meter ({m.role:<7}) 127.0.0.1:{sim.port_of(name)}")
        for spec in faults:
            console.print(f"  fault: {spec}")
        if markets is not None:
            for api in ("modo", "elexon", "axle"):
                console.print(f"  {api:<14} market API      {markets.base_url(api)}")
            for d in markets.dispatches:
                console.print(f"  axle dispatch: {d.action} {d.start:%H:%M}-{d.end:%H:%M} daily")
        for e in events:
            console.print(f"  frequency: {e.kind} every {e.every_s:g} s, held {e.hold_s:g} s")
        try:
            while True:
                console.print(status_line(sim, site.site.timezone), soft_wrap=True)
                if await sleep_or_stop(every_s, stop):
                    return
        finally:
            for task in repeating:
                task.cancel()
            await asyncio.gather(*repeating, return_exceptions=True)


@click.command()
@click.argument("site_arg", metavar="SITE")
@sites_dir_option
@speed_option(default=1.0)
@click.option(
    "--start",
    "start_text",
    metavar="ISO",
    help="Simulated start instant (default now); local site time if no offset given.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="DEVICE:KIND[:ARG]",
    help=(
        "Inject a fault (repeatable): drop[:N], delay:SECONDS, exception[:CODE], frozen, "
        "away:SECONDS, short[:N], frequency:step|drop|high (a grid event every meter "
        "sees); e.g. --fault solar:away:60, --fault site:frequency:drop"
    ),
)
@click.option(
    "--markets",
    "markets_port",
    type=click.IntRange(0, 65535),
    default=None,
    metavar="PORT",
    help="Also serve simulated Modo, Elexon and Axle APIs on this port (0: any free one); "
    "point the site file's markets base_url at them.",
)
@click.option(
    "--axle-dispatch",
    "dispatches",
    multiple=True,
    metavar="'HH:MM-HH:MM ACTION'",
    help="A daily Axle schedule step (local time) for --markets, e.g. '17:00-17:30 "
    "discharge_max' (repeatable).",
)
@click.option(
    "--ports",
    "base_port",
    type=click.IntRange(1, 65535),
    default=None,
    metavar="BASE",
    help="Serve the devices on 127.0.0.1 at BASE, BASE+1, ... (battery first, then the "
    "meters in file order) instead of the site file's ports: for sites whose devices share "
    "one port on different hosts.",
)
@click.option(
    "--site-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --ports: write a copy of the site file pointing at the simulator (127.0.0.1 "
    "and those ports), for `flux agent run` and `flux devices read`.",
)
@click.option(
    "--status-every",
    type=FiniteRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Real seconds between status lines.",
)
@click.option(
    "--frequency-events",
    "frequency_events",
    multiple=True,
    metavar="KIND:EVERY_S[:HOLD_S]",
    help="Repeat a grid frequency event (step: 49.5 Hz, high: 50.5 Hz, drop: to 48.8 Hz "
    "over a minute and back) every EVERY_S simulated seconds; e.g. step:600:60.",
)
def sim(
    site_arg: str,
    sites_dir: Path,
    speed: float,
    start_text: str | None,
    faults: tuple[str, ...],
    markets_port: int | None,
    dispatches: tuple[str, ...],
    base_port: int | None,
    site_out: Path | None,
    status_every: float,
    frequency_events: tuple[str, ...],
) -> None:
    """Simulate the battery and meters of SITE on loopback Modbus TCP.

    SITE is a site file or a site id looked up in --sites-dir. Each device listens on
    127.0.0.1 at the port the site file gives it; the agent and `flux devices read SITE`
    talk to it as to the real site.
    """
    # Our own messages say what went wrong; pymodbus's log lines would only repeat it.
    logging.getLogger("pymodbus.logging").setLevel(logging.CRITICAL)
    site_file = str(find_site(site_arg, sites_dir))
    try:
        site = load_site(site_file)
    except SiteFileError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{site_file}: not a usable site file; fix the problems above", err=True)
        sys.exit(EXIT_USAGE)
    ports: Literal["site"] | int = "site" if base_port is None else base_port
    if base_port is None:
        _refuse_shared_ports(site, site_file)
    elif base_port + len(site.devices.meters) > 65535:
        raise click.BadParameter("the devices' ports would pass 65535", param_hint="--ports")
    if site_out is not None and base_port is None:
        raise click.UsageError("--site-out needs --ports BASE")
    if site_out is not None:
        check_output_path(site_out, "--site-out")
    try:
        steps = [Dispatch.parse(text) for text in dispatches]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--axle-dispatch") from None
    try:
        events = tuple(RepeatedEvent.parse(text) for text in frequency_events)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--frequency-events") from None
    if steps and markets_port is None:
        raise click.UsageError("--axle-dispatch needs --markets PORT")
    clock: Clock
    if start_text is None and speed == 1.0:
        clock = WallClock()
    else:
        start = parse_start(start_text, site.site.timezone) if start_text else datetime.now(UTC)
        clock = ScaledClock(start, speed)
    _check_faults(faults, {site.devices.battery.name, *site.devices.meters}, clock.now())

    markets: MarketSimulator | None = None
    try:
        if markets_port is not None:
            try:
                markets = MarketSimulator(
                    clock, timezone=site.site.timezone, dispatches=steps, port=markets_port
                )
            except OSError as exc:
                raise OSError(
                    f"--markets {markets_port}: {exc.strerror}; choose another port (0: any)"
                ) from None
            markets.start()
        run_until_signalled(
            lambda stop: run(
                site,
                clock,
                faults,
                status_every,
                markets,
                stop=stop,
                ports=ports,
                site_out=site_out,
                events=events,
            )
        )
        click.echo("flux sim: stopped")
    except OSError as exc:
        click.echo(f"flux sim: {exc}", err=True)
        sys.exit(EXIT_RUNTIME)
    except ValueError as exc:
        click.echo(f"flux sim: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    finally:
        if markets is not None:
            markets.stop()
