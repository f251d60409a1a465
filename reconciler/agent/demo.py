"""`flux demo`: the simulator and the agent together, at an accelerated clock, with the
embedded store. The same code path as a site: only the clock and the devices differ."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable
from datetime import datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from reconciler import logs
from reconciler.agent.commands import open_outbox
from reconciler.agent.loop import TickResult
from reconciler.agent.run import Agent, AgentOptions
from reconciler.cliparams import FiniteRange, instant
from reconciler.clock import ScaledClock
from reconciler.config.loader import SiteFileError
from reconciler.config.model import Site
from reconciler.control.guard import measured_battery_power
from reconciler.control.signals import FeedSignals
from reconciler.devices.factory import open_site_devices
from reconciler.markets.memory import ReplayImbalanceFeed
from reconciler.markets.replay import Replay
from reconciler.sim.commands import speed_option
from reconciler.sim.simulator import SiteSimulator
from reconciler.source.controller import FileSource
from reconciler.stopping import run_until_signalled
from reconciler.telemetry.database import describe
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader

#: The demo site, inside the package so an installed flux runs the demo from any folder
#: (the repository's sites/demo.yaml is a link to it).
SHIPPED_DEMO = resources.files("reconciler.agent") / "demo.yaml"
#: Where a fresh demo starts: yesterday at this local time, so the red band comes soon and
#: its readings fall in a dashboard's default last 24 hours (and never near a retention
#: limit); January 2024's prices and the January load are replayed onto any date.
DEFAULT_START_TIME = time(15, 30)
#: Columns of the table when the output is not a terminal (and COLUMNS does not say).
PIPED_WIDTH = 140
#: Longest --minutes: a year.
MAX_MINUTES = 365 * 24 * 60


def default_start(tz: ZoneInfo, now: datetime | None = None) -> datetime:
    """Yesterday at DEFAULT_START_TIME, local to ``tz``."""
    today = (now or datetime.now(tz)).astimezone(tz).date()
    return datetime.combine(today - timedelta(days=1), DEFAULT_START_TIME, tzinfo=tz)


def _demo_site_path(given: Path | None) -> Path:
    if given is not None:
        if not given.exists():
            raise click.UsageError(f"--site {given}: no such file")
        return given
    here = Path("sites/demo.yaml")
    if here.exists():
        return here
    # A real file for as long as the command runs, even when the package is a zip.
    return click.get_current_context().with_resource(resources.as_file(SHIPPED_DEMO))


def _fmt_kw(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


class LiveView:
    """The table `flux demo` shows: newest tick first, a few recent ones below."""

    def __init__(
        self,
        tz: ZoneInfo,
        outbox: Outbox,
        rows: int = 12,
        *,
        site: Site | None = None,
        speed: float = 1.0,
    ) -> None:
        self.tz = tz
        self.outbox = outbox
        self.recent: deque[TickResult] = deque(maxlen=rows)
        self.ticks = 0
        self.site = site
        self.speed = speed

    def add(self, result: TickResult) -> None:
        self.recent.appendleft(result)
        self.ticks += 1

    def _measured_kw(self, r: TickResult) -> float | None:
        if self.site is None or r.observation.battery is None:
            return None
        return measured_battery_power(self.site, r.observation, r.at)[0]

    def title(self) -> str:
        """The simulated date and time, the speed, and what control sees of the market."""
        if not self.recent:
            return f"flux demo at {self.speed:g}x: starting"
        r = self.recent[0]
        when = r.at.astimezone(self.tz).strftime("%a %d %b %Y %H:%M:%S %Z")
        price = r.signals.imbalance_price
        niv = r.signals.imbalance_volume
        market = (
            f"imbalance price {price.value:.2f} p/kWh" if price is not None else "no price yet"
        ) + (f", NIV {niv.value:+.0f} MWh" if niv is not None else "")
        return f"flux demo (simulated {when}, {self.speed:g}x): control sees {market}"

    def render(self) -> Group:
        table = Table(title=self.title(), expand=True)
        for name, justify in (
            ("local time", "left"),
            ("SoE kWh", "right"),
            ("site kW (+ import)", "right"),
            ("battery target kW", "right"),
            ("battery measured kW", "right"),
            ("mode", "left"),
            ("reason", "left"),
        ):
            table.add_column(name, justify=justify, no_wrap=name != "reason")  # type: ignore[arg-type]
        for r in self.recent:
            d = r.decision
            style = "bold red" if d.safe_stop else None
            table.add_row(
                r.at.astimezone(self.tz).strftime("%a %H:%M:%S"),
                _fmt_kw(d.soe_kwh),
                _fmt_kw(d.site_power_kw),
                _fmt_kw(d.target_kw),
                _fmt_kw(self._measured_kw(r)),
                d.winner or ("safe stop" if d.safe_stop else "idle"),
                d.reason,
                style=style,
            )
        counts = self.outbox.counts()
        stored = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))
        legend = Text(LEGEND, style="dim")
        footer = Text(
            f"{self.ticks:,} ticks · stored in the embedded outbox: {stored} · Ctrl-C to stop",
            style="dim",
        )
        return Group(table, legend, footer)


LEGEND = (
    "Battery kW: + discharge, - charge (a negative target charges the battery). A mode's "
    "own kW in the reason (e.g. 3,786 kW on a 565 kW battery) is the rate it would need to "
    "close its energy gap within this settlement period; the envelope caps what is written "
    "at the battery's and the site's limits."
)


class InvalidSiteFile(click.ClickException):
    """A user error (exit 2), as every command's invalid site file is."""

    exit_code = 2


@click.command("demo")
@click.option("--site", "site_path", type=click.Path(dir_okay=False, path_type=Path))
@speed_option(default=60.0)
@click.option(
    "--start",
    default=None,
    help=f"Simulated local start time (site timezone). Default: where the last demo with "
    f"this --store stopped (each run its own time range), else yesterday at "
    f"{DEFAULT_START_TIME:%H:%M}.",
)
@click.option(
    "--minutes",
    # At most a year: plenty for a demo, and far more (1e300) overflows the clock's time.
    type=FiniteRange(min=0, min_open=True, max=MAX_MINUTES),
    help="Stop after this many simulated minutes (default: run until Ctrl-C).",
)
@click.option(
    "--store",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("var/demo-outbox.sqlite"),
    show_default=True,
    help="The embedded store (SQLite outbox).",
)
@click.option("--database-url", envvar="FLUX_DATABASE_URL", help="Also upload to PostgreSQL.")
@click.option("--live/--no-live", default=True, show_default=True, help="Show the live table.")
def demo(
    site_path: Path | None,
    speed: float,
    start: str | None,
    minutes: float | None,
    store: Path,
    database_url: str | None,
    live: bool,
) -> None:
    """Start the simulator and the agent on sites/demo.yaml at an accelerated clock, and
    show what the battery does and why, until Ctrl-C."""
    path = _demo_site_path(site_path)
    try:
        file_source = FileSource(path)
    except SiteFileError as exc:
        raise InvalidSiteFile(f"{path} is not a valid site file:\n{exc}") from None
    site = file_source.current().site
    tz = ZoneInfo(site.site.timezone)
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped to a file or `tee`, rich would assume 80 columns and cut every header;
        # a log is read in an editor, wide enough for the whole table.
        console = Console(width=PIPED_WIDTH)
    last_file = store.with_name(store.name + ".last-run")
    resumed = _last_end(last_file) if start is None else None
    if resumed is not None:
        local_start = resumed
        console.print(
            f"continuing the last demo with {store} from "
            f"{resumed.astimezone(tz):%a %d %b %Y %H:%M %Z} (--start to choose another time)"
        )
    elif start is None:
        local_start = default_start(tz)
    else:
        local_start = instant(start, tz, "--start")
    clock = ScaledClock(local_start, speed=speed)
    outbox = open_outbox(store, "choose another --store")
    # The agent's log lines (conditions, safe stops) would land between the live table's
    # frames as bare words through logging's last resort: they go to a file beside the
    # store instead, as JSON lines like an agent's journal.
    log_file = store.with_name(store.name + ".log")
    log_stream = log_file.open("a", encoding="utf-8")
    click.get_current_context().call_on_close(_logs_to(log_stream))
    view = LiveView(tz, outbox, site=site, speed=speed)
    agents: list[Agent] = []

    async def work(stop: asyncio.Event) -> None:
        async with SiteSimulator(site, clock=clock, ports="ephemeral") as sim:
            source = FileSource(path, clock=clock)
            agent = Agent(
                source,
                clock=clock,
                store=outbox,
                uploader=Uploader(outbox, database_url),
                options=AgentOptions(http_port=None),
                signals=Replay(
                    FeedSignals(imbalance=ReplayImbalanceFeed.january_2024(publish_delay_s=60)),
                    sink=outbox,
                ),
                # The simulator listens on free ports: the devices connect there.
                devices=lambda _site, c: open_site_devices(sim.site_for_ephemeral_ports(), clock=c),
                on_tick=view.add,
            )
            agents.append(agent)
            end = None if minutes is None else clock.now() + timedelta(minutes=minutes)

            async def watch() -> None:
                ctx = (
                    Live(view.render(), console=console, refresh_per_second=4)
                    if live
                    else contextlib.nullcontext()
                )
                with ctx as display:
                    while not stop.is_set():
                        if display is not None:
                            display.update(view.render())
                        if end is not None and clock.now() >= end:
                            stop.set()
                        await asyncio.sleep(0.25)

            await asyncio.gather(agent.run(stop), watch())

    try:
        run_until_signalled(work)
    finally:
        counts = outbox.counts()
        outbox.close()
        _save_end(last_file, clock.now())
    if live and not console.is_terminal:
        # Rich ends its last frame with a newline only on a terminal: piped, the summary
        # would run on from the table's footer.
        console.line()
    held = ", ".join(f"{v:,} {k}" for k, v in sorted(counts.items()) if v and k != "pending")
    where = _upload_summary(agents[0] if agents else None, database_url)
    console.print(
        f"demo stopped after {view.ticks:,} ticks; {where}the embedded store {store} holds "
        + (held or "nothing pending")
        + f"; the agent's log is {log_file}",
        soft_wrap=True,  # one line, however long the paths: scripts and tests read it
    )


def _logs_to(stream: TextIO) -> Callable[[], None]:
    """Send the flux.* loggers to ``stream`` as JSON lines; the returned call puts back
    what was there (a process may run more than one command) and closes the stream."""
    flux = logging.getLogger("flux")
    before = flux.handlers[:], flux.level, flux.propagate
    logs.configure("info", stream)

    def restore() -> None:
        flux.handlers[:], flux.level, flux.propagate = before[0], before[1], before[2]
        stream.close()

    return restore


def _upload_summary(agent: Agent | None, database_url: str | None) -> str:
    """What reached the database and what did not (never "uploaded" when nothing was)."""
    if not database_url or agent is None:
        return ""
    state = agent.uploader.state
    final = agent.final_upload
    error = (final.error if final is not None else None) or state.last_error
    sent = state.sent_total
    target = describe(database_url)
    if error is None:
        return f"uploaded {sent:,} rows to {target}; "
    done = (
        f"uploaded {sent:,} rows to {target} before it failed"
        if sent
        else (f"nothing was uploaded to {target}")
    )
    return f"{done} ({error}); what was not uploaded stays in the store, and "


def _last_end(path: Path) -> datetime | None:
    """Where the last demo with this store stopped, to the next whole minute."""
    try:
        at = datetime.fromisoformat(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    if at.tzinfo is None:
        return None
    return at.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _save_end(path: Path, at: datetime) -> None:
    with contextlib.suppress(OSError):  # only a convenience for the next run
        path.write_text(at.isoformat() + "\n", encoding="utf-8")
