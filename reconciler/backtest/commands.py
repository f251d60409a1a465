"""`flux backtest`: what a site file would have done on the simulated site, and its worth.

With ``--base`` the same days run twice, once on the file before a change and once on the
file after it, and the difference is shown: the pull-request preview of the change's
effect, next to `flux schedule`'s preview of who wins when.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from reconciler.agent.ports import SignalSource
from reconciler.backtest.engine import run_backtest
from reconciler.backtest.report import (
    METRIC_TITLES,
    BacktestResult,
    Comparison,
    Metrics,
    compare,
    headline,
)
from reconciler.config.commands import find_site, load_valid_site, sites_dir_option
from reconciler.config.model import Site
from reconciler.control.schedule import local_midnight
from reconciler.control.signals import FeedSignals
from reconciler.markets.memory import ReplayImbalanceFeed

DEFAULT_FROM = "2024-01-15"  # a Monday inside the shipped January 2024 prices
PRICES = ("january-2024", "none")
#: The longest run --days allows: a leap year.
MAX_DAYS = 366


def signals_for(prices: str) -> SignalSource | None:
    """The market signals of a ``--prices`` choice (``none``: no signals at all)."""
    if prices == "january-2024":
        return FeedSignals(imbalance=ReplayImbalanceFeed.january_2024(wrap=True))
    return None


@contextmanager
def progress_bar(labels: list[str]) -> Iterator[list[Callable[[float], None]]]:
    """One progress callback per label; a rich bar on stderr only when it is a terminal."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield [lambda _f: None for _ in labels]
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks = [bar.add_task(label, total=1.0) for label in labels]

        def updater(task: Any) -> Callable[[float], None]:
            return lambda fraction: bar.update(task, completed=fraction)

        yield [updater(t) for t in tasks]


@click.command()
@click.argument("site")
@click.option(
    "--from",
    "first",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=DEFAULT_FROM,
    show_default=True,
    help="First local day, YYYY-MM-DD.",
)
@click.option(
    "--days",
    type=click.IntRange(1, MAX_DAYS),
    default=1,
    show_default=True,
    help=f"Local days to run, up to {MAX_DAYS} (a year); a progress bar on a terminal.",
)
@click.option(
    "--prices",
    type=click.Choice(PRICES),
    default="january-2024",
    show_default=True,
    help="Imbalance prices and NIV replayed to the control (none: no market signals).",
)
@click.option(
    "--base",
    default=None,
    help="Another version of the site file (path or id) to compare against: the base of a PR.",
)
@click.option(
    "--base-label",
    default=None,
    help="How to name the base in the output (default: its path), e.g. origin/main:FILE.",
)
@sites_dir_option
@click.option(
    "--output",
    type=click.Choice(["table", "json", "markdown"]),
    default="table",
    show_default=True,
)
def backtest(
    site: str,
    first: datetime,
    days: int,
    prices: str,
    base: str | None,
    base_label: str | None,
    sites_dir: Path,
    output: str,
) -> None:
    """Run SITE's control against the simulated site and report energy, money and limits.

    SITE (and --base) is a site file or a site id (sites/<id>.yaml). The site's homes and
    solar follow the shipped January profiles; the control sees the replayed imbalance
    prices. Reported per local day and in total; with --base, base, this file and the
    difference. Exit 0 with a report (limit breaches are in it), 2 on a usage error or an
    invalid site file.
    """
    # The agent's loop logs safe stops and settings as a site's journal would; here they
    # are in the report (hours in safe stop), and the lines would only clutter stderr.
    logging.getLogger("flux.agent").setLevel(logging.CRITICAL)
    path = find_site(site, sites_dir)
    base_path = find_site(base, sites_dir) if base is not None else None
    this_site = load_valid_site(path)
    base_site = load_valid_site(base_path) if base_path is not None else None
    day: date = first.date()

    def run(s: Site, progress: Callable[[float], None]) -> BacktestResult:
        start = local_midnight(s, day)
        end = local_midnight(s, day + timedelta(days=days))
        return run_backtest(s, start, end, signals=signals_for(prices), progress=progress)

    labels = [*([f"base {base_path}"] if base_path else []), f"backtest {path}"]
    with progress_bar(labels) as callbacks:
        base_result = run(base_site, callbacks[0]) if base_site is not None else None
        result = run(this_site, callbacks[-1])

    if base_result is None:
        if output == "json":
            click.echo(
                json.dumps({"file": str(path), "prices": prices, **result.as_json()}, indent=2)
            )
        elif output == "markdown":
            click.echo(markdown_single(result, str(path), prices))
        else:
            print_single(result, str(path), prices)
        return
    cmp = compare(base_result, result)
    base_name = base_label or str(base_path)
    if output == "json":
        doc = {"file": str(path), "base_file": base_name, "prices": prices, **cmp.as_json()}
        click.echo(json.dumps(doc, indent=2))
    elif output == "markdown":
        click.echo(markdown_comparison(cmp, str(path), base_name, prices))
    else:
        print_comparison(cmp, str(path), base_name, prices)


# --------------------------------------------------------------------------- formatting


def fmt(name: str, value: float, signed: bool = False) -> str:
    """A metric for a table: £ to the penny, hours and cycles to 0.01, the rest to 0.1;
    ``signed`` puts + on a positive difference. A value that rounds to zero has no sign."""
    digits = 2 if name.endswith(("_gbp", "hours")) or name == "equivalent_full_cycles" else 1
    text = f"{abs(value):,.{digits}f}"
    if name.endswith("_gbp"):
        text = f"£{text}"
    if float(text.lstrip("£").replace(",", "")) == 0:
        return text
    if value < 0:
        return f"-{text}"
    return f"+{text}" if signed else text


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.strftime("%Y-%m-%d %H:%M")


def _labels(*metrics: Metrics) -> list[str]:
    seen: dict[str, None] = {}
    for m in metrics:
        for label, _ in m.hours_by_winner:
            seen.setdefault(label, None)
    return list(seen)


def single_rows(result: BacktestResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a run: one column per local day, then the total."""
    cols: list[Metrics] = [d.metrics for d in result.days]
    header = ["metric", *(d.day.isoformat() for d in result.days)]
    if len(result.days) > 1:
        cols.append(result.total)
        header.append("total")
    rows: list[list[str]] = []
    for name, title in METRIC_TITLES:
        rows.append([title, *(fmt(name, getattr(m, name)) for m in cols)])
        if name == "peak_import_kw":
            rows.append(["peak import at (local)", *(_when(m.peak_import_at) for m in cols)])
    for label in _labels(*cols):
        rows.append([f"hours won: {label}", *(fmt("hours", m.winner_hours(label)) for m in cols)])
    return header, rows


def comparison_rows(cmp: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and rows of base, this and difference over the whole run."""
    b, t, d = cmp.base.total, cmp.this.total, cmp.total
    rows: list[list[str]] = []
    for name, title in METRIC_TITLES:
        rows.append(
            [
                title,
                fmt(name, getattr(b, name)),
                fmt(name, getattr(t, name)),
                fmt(name, d[name], signed=True),
            ]
        )
        if name == "peak_import_kw":
            rows.append(
                ["peak import at (local)", _when(b.peak_import_at), _when(t.peak_import_at), ""]
            )
    diff_hours = dict(d.hours_by_winner)
    for label in _labels(b, t):
        rows.append(
            [
                f"hours won: {label}",
                fmt("hours", b.winner_hours(label)),
                fmt("hours", t.winner_hours(label)),
                fmt("hours", diff_hours.get(label, 0.0), signed=True),
            ]
        )
    return ["metric", "base", "this file", "difference"], rows


def per_day_difference_rows(cmp: Comparison) -> tuple[list[str], list[list[str]]]:
    header = ["difference (this - base)", *(day.isoformat() for day, _ in cmp.days)]
    rows = [
        [title, *(fmt(name, diff[name], signed=True) for _, diff in cmp.days)]
        for name, title in METRIC_TITLES
    ]
    return header, rows


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" + "---:|" * (len(header) - 1),
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _span(result: BacktestResult) -> str:
    first, last = result.days[0].day, result.days[-1].day
    n = len(result.days)
    days = f"{n} day{'s' if n != 1 else ''}"
    if first == last:
        return f"{first.isoformat()} ({days})"
    return f"{first.isoformat()} to {last.isoformat()} ({days})"


def _note(prices: str) -> str:
    source = (
        "GB imbalance prices and NIV of January 2024 (BMRS data) replayed, "
        "wrapped onto dates outside that month"
        if prices == "january-2024"
        else "no market prices"
    )
    return (
        f"Simulated site (shipped January load and solar profiles), {source}. "
        "The imbalance value is an indicator of NIV chase (battery kW x h x imbalance price), "
        "not a settlement."
    )


def markdown_single(result: BacktestResult, title: str, prices: str) -> str:
    lines = [
        f"#### Backtest of `{result.site_id}` ({title}), {_span(result)}, in {result.timezone}",
        "",
        *_md_table(*single_rows(result)),
        "",
        _note(prices),
    ]
    return "\n".join(lines)


def markdown_comparison(cmp: Comparison, title: str, base_title: str, prices: str) -> str:
    lines = [
        f"#### Backtest of `{cmp.this.site_id}`: `{base_title}` (base) against `{title}`, "
        f"{_span(cmp.this)}, in {cmp.this.timezone}",
        "",
        headline(cmp),
        "",
        *_md_table(*comparison_rows(cmp)),
    ]
    if len(cmp.days) > 1:
        lines += [
            "",
            "<details><summary>Difference per local day</summary>",
            "",
            *_md_table(*per_day_difference_rows(cmp)),
            "",
            "</details>",
        ]
    lines += ["", _note(prices)]
    return "\n".join(lines)


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=160)


def _rich_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def print_single(result: BacktestResult, title: str, prices: str) -> None:
    console = _console()
    console.print(
        _rich_table(
            f"{result.site_id}: backtest {_span(result)} in {result.timezone} ({title})",
            *single_rows(result),
        )
    )
    console.print(_note(prices), soft_wrap=True)


def print_comparison(cmp: Comparison, title: str, base_title: str, prices: str) -> None:
    console = _console()
    console.print(
        _rich_table(
            f"{cmp.this.site_id}: backtest {_span(cmp.this)} in {cmp.this.timezone}, "
            f"base {base_title} against {title}",
            *comparison_rows(cmp),
        )
    )
    if len(cmp.days) > 1:
        console.print(_rich_table("difference per local day", *per_day_difference_rows(cmp)))
    console.print(headline(cmp), soft_wrap=True)
    console.print(_note(prices), soft_wrap=True)
