"""`flux schedule`: which entry wins when, as a table, Markdown or JSON."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import click

from reconciler.cliparams import DAY
from reconciler.config.commands import find_site, load_valid_site, sites_dir_option
from reconciler.control.schedule import zone
from reconciler.preview.build import Day, Preview, build_preview, hours, label, local, preview_json


@click.command()
@click.argument("site")
@click.option(
    "--from",
    "first",
    type=DAY,
    default=None,
    help="First local day, YYYY-MM-DD (default: today in the site's timezone).",
)
@click.option("--days", type=click.IntRange(1, 366), default=1, show_default=True)
@click.option(
    "--output",
    type=click.Choice(["table", "json", "markdown"]),
    default="table",
    show_default=True,
)
@sites_dir_option
def schedule(site: str, first: datetime | None, days: int, output: str, sites_dir: Path) -> None:
    """Show which schedule entry wins when, in the site's local time.

    SITE is a site file or a site id (sites/<id>.yaml). Rows split at every window edge,
    rate change and local midnight; each day's total shows its real length (23 or 25 h on
    clock-change days). Exit codes: 0, 2 usage or a site file that is not valid.
    """
    path = find_site(site, sites_dir)
    loaded = load_valid_site(path)
    day: date = (
        first.date() if first is not None else datetime.now(zone(loaded.site.timezone)).date()
    )
    preview = build_preview(loaded, day, days)
    if output == "json":
        click.echo(json.dumps(preview_json(preview), indent=2))
    elif output == "markdown":
        click.echo(_markdown(preview, str(path)))
    else:
        _print_table(preview, str(path))


def _markdown(preview: Preview, title: str) -> str:
    lines = [
        f"#### Schedule of `{preview.site_id}` ({preview.timezone}) from {title}",
        "",
        "| local start | local end | duration | winner (priority) | also active "
        "| import p/kWh | export p/kWh |",
        "|---|---|---|---|---|---|---|",
    ]
    by_day = {d.day: d for d in preview.days}
    current = None
    for r in preview.rows:
        day = r.start.date()
        if current is not None and day != current:
            lines.append(_md_total(by_day[current]))
        current = day
        others = _cell(", ".join(label(a) for a in r.others) or "-")
        lines.append(
            f"| {local(r.start)} | {local(r.end)} | {hours(r.seconds)} | {_cell(label(r.winner))} "
            f"| {others} | {r.import_p_per_kwh:g} | {r.export_p_per_kwh:g} |"
        )
    if current is not None:
        lines.append(_md_total(by_day[current]))
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text for a markdown table cell: an entry's name may hold | (a column break) or a
    newline (the row's end)."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_total(d: Day) -> str:
    return (
        f"| **{d.day.isoformat()} total** | | **{hours(d.seconds)}** "
        f"| {d.settlement_periods} settlement periods | | | |"
    )


def _print_table(preview: Preview, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=180)
    table = Table(
        title=f"{preview.site_id}: schedule in {preview.timezone} ({title})",
        title_justify="left",
    )
    for name, justify in (
        ("local start", "left"),
        ("local end", "left"),
        ("duration", "right"),
        ("winner (priority)", "left"),
        ("also active", "left"),
        ("import p/kWh", "right"),
        ("export p/kWh", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=name != "also active")  # type: ignore[arg-type]
    by_day = {d.day: d for d in preview.days}
    current = None

    def total(day: date) -> None:
        d = by_day[day]
        table.add_row(
            f"{day.isoformat()} total",
            "",
            hours(d.seconds),
            f"{d.settlement_periods} settlement periods",
            "",
            "",
            "",
            style="bold",
        )
        table.add_section()

    for r in preview.rows:
        day = r.start.date()
        if current is not None and day != current:
            total(current)
        current = day
        table.add_row(
            local(r.start),
            local(r.end, with_date=r.end.date() != day),
            hours(r.seconds),
            label(r.winner),
            ", ".join(label(a) for a in r.others) or "-",
            f"{r.import_p_per_kwh:g}",
            f"{r.export_p_per_kwh:g}",
        )
    if current is not None:
        total(current)
    console.print(table)
