"""`flux devices`: talk to a site's devices from the command line (read-only)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from reconciler.config.commands import find_site, sites_dir_option
from reconciler.config.loader import SiteFileError, load_site
from reconciler.config.model import Site
from reconciler.config.profiles import Profile
from reconciler.config.resolve import resolve_profile
from reconciler.devices.codec import Value
from reconciler.devices.errors import DeviceError
from reconciler.devices.transport import ModbusTransport

EXIT_DEVICE_ERROR = 1
EXIT_USAGE = 2


@dataclass
class DeviceRead:
    """The outcome of reading one device once."""

    name: str
    kind: str
    address: str
    profile: Profile
    values: dict[str, Value] = field(default_factory=dict)
    error: str | None = None


def load_site_or_exit(path: str) -> Site:
    """The site of ``path``, or every problem on stderr and exit code 2."""
    try:
        return load_site(path)
    except SiteFileError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{path}: not a usable site file; fix the problems above", err=True)
        sys.exit(EXIT_USAGE)


async def read_device(transport: ModbusTransport, kind: str) -> DeviceRead:
    result = DeviceRead(transport.name, kind, transport.address, transport.profile)
    try:
        result.values = await transport.read()
    except DeviceError as exc:
        result.error = exc.detail if exc.register is None else f"{exc.register}: {exc.detail}"
    finally:
        await transport.close()
    return result


async def read_site(site: Site, *, only: tuple[str, ...] = ()) -> list[DeviceRead]:
    """Read every register of every device (or of those named in ``only``) once, at the
    same time. Never writes: the transports are read-only."""
    bat = site.devices.battery
    devices: list[tuple[str, str, Any]] = [(bat.name, "battery", bat)]
    devices += [(name, f"meter ({m.role})", m) for name, m in site.devices.meters.items()]
    jobs = []
    for name, kind, dev in devices:
        if only and name not in only:
            continue
        transport = ModbusTransport.for_device(
            name, dev, resolve_profile(site, dev.profile), read_only=True, connect_attempts=2
        )
        jobs.append(read_device(transport, kind))
    return list(await asyncio.gather(*jobs))


def _show(value: Value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1e9 else f"{value:.6g}"
    return str(value)


def as_json(site: Site, reads: list[DeviceRead]) -> dict[str, Any]:
    return {
        "site": site.site.id,
        "devices": [
            {
                "device": r.name,
                "kind": r.kind,
                "address": r.address,
                "profile": r.profile.name,
                "ok": r.error is None,
                "error": r.error,
                "registers": [
                    {
                        "name": name,
                        "value": value,
                        "unit": r.profile.registers[name].unit,
                        "address": r.profile.registers[name].address,
                    }
                    for name, value in sorted(
                        r.values.items(), key=lambda kv: r.profile.registers[kv[0]].address
                    )
                ],
            }
            for r in reads
        ],
    }


def as_table(site: Site, reads: list[DeviceRead]) -> Table:
    table = Table(title=f"{site.site.name} ({site.site.id})")
    table.add_column("device")
    table.add_column("name")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("register", justify="right")
    for r in reads:
        if r.error is not None:
            table.add_row(r.name, "[red]error[/red]", f"[red]{r.error}[/red]", "", r.address)
            continue
        rows = sorted(r.values.items(), key=lambda kv: r.profile.registers[kv[0]].address)
        for i, (name, value) in enumerate(rows):
            reg = r.profile.registers[name]
            table.add_row(r.name if i == 0 else "", name, _show(value), reg.unit, str(reg.address))
        table.add_section()
    return table


@click.group()
def devices() -> None:
    """Read a site's devices (battery and meters) over Modbus TCP."""


@devices.command("read")
@click.argument("site")
@sites_dir_option
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--device", "only", multiple=True, help="Only this device (repeatable).")
def read(site: str, sites_dir: Path, output: str, only: tuple[str, ...]) -> None:
    """Read every register of every device of SITE once and print it.

    SITE is a site file or a site id looked up in --sites-dir. Read-only (never writes),
    so it is safe to run beside the agent. Exit code 1 when a device cannot be read, 2
    when the site file is unusable.
    """
    # Device errors are reported per device below; pymodbus's log lines would repeat them.
    logging.getLogger("pymodbus.logging").setLevel(logging.CRITICAL)
    site_file = str(find_site(site, sites_dir))
    _read(load_site_or_exit(site_file), output, only)


def _read(site: Site, output: str, only: tuple[str, ...]) -> None:
    known = {site.devices.battery.name, *site.devices.meters}
    unknown = [d for d in only if d not in known]
    if unknown:
        raise click.BadParameter(
            f"no device {', '.join(unknown)}; the site has {', '.join(sorted(known))}",
            param_hint="--device",
        )
    reads = asyncio.run(read_site(site, only=only))
    if output == "json":
        click.echo(json.dumps(as_json(site, reads), indent=2))
    else:
        Console(soft_wrap=False).print(as_table(site, reads))
    failed = [r for r in reads if r.error is not None]
    for r in failed:
        click.echo(
            f"error: {r.name} at {r.address}: {r.error}",
            err=True,
        )
    if failed:
        sys.exit(EXIT_DEVICE_ERROR)
