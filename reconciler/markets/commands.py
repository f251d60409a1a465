"""`flux markets`: the market APIs a site file configures.

Exit codes: 0 every API answered with usable data, 1 at least one did not (each says
why), 2 a user error (no such site, invalid site file).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import httpx
from rich.console import Console
from rich.table import Table

from reconciler.config.commands import find_site, load_valid_site, sites_dir_option
from reconciler.markets.check import CheckResult, check_markets
from reconciler.markets.live import TIMEOUT_S


@click.group()
def markets() -> None:
    """The market APIs (Modo, Elexon, Axle) of a site."""


async def _check(path: Path) -> tuple[str, list[CheckResult]]:
    site = load_valid_site(path)
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
        return site.site.id, await check_markets(site, os.environ, http, datetime.now(UTC))


@markets.command("check")
@click.argument("site")
@sites_dir_option
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def check(site: str, sites_dir: Path, output: str) -> None:
    """Call each market API SITE configures once, with the credentials of this
    environment (as the agent would), and show what came back."""
    path = find_site(site, sites_dir)
    site_id, results = asyncio.run(_check(path))
    failed = [r for r in results if not r.ok]
    if output == "json":
        doc = {"site": site_id, "ok": not failed, "apis": [r.as_json() for r in results]}
        click.echo(json.dumps(doc, indent=2))
    elif not results:
        click.echo(f"{path}: no market APIs configured (markets: is empty)")
    else:
        table = Table(title=f"market APIs of {site_id}", title_justify="left")
        for column in ("source", "result", "detail"):
            table.add_column(column, overflow="fold")
        for r in results:
            table.add_row(r.source, "[green]ok[/]" if r.ok else "[red]failed[/]", r.detail)
        Console().print(table)
    sys.exit(1 if failed else 0)
