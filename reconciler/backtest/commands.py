"""`flux backtest`: what a site file would have done on the simulated site, and its worth.

With ``--base`` the same days run twice, once on the file before a change and once on the
file after it, and the difference is shown: the pull-request preview of the change's
effect, next to `flux schedule`'s preview of who wins when.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from reconciler.agent.ports import SignalSource
from reconciler.backtest.chart import INSTEAD, WHAT, draw_backtest
from reconciler.backtest.engine import run_backtest
from reconciler.backtest.prices import (
    PriceFileError,
    PriceSeries,
    named,
    parse_prices,
    shipped_months,
)
from reconciler.backtest.profiles import SiteProfiles, site_profiles
from reconciler.backtest.recorded import RecordedDataError, load_recorded
from reconciler.backtest.report import (
    FREQUENCY_TITLES,
    METRIC_TITLES,
    BacktestResult,
    Comparison,
    Metrics,
    Reference,
    captured_pct,
    compare,
    headline,
)
from reconciler.backtest.runs import SimulatedRun, simulate_all, with_references
from reconciler.clierrors import fail
from reconciler.cliparams import DAY, FiniteRange
from reconciler.config.commands import find_site, load_valid_site, sites_dir_option
from reconciler.config.model import Site
from reconciler.control.schedule import local_midnight, zone
from reconciler.control.signals import FeedSignals
from reconciler.markets.memory import ReplayDayAheadFeed, ReplayImbalanceFeed
from reconciler.plots import check_plot_path
from reconciler.sim.plant import RepeatedEvent
from reconciler.telemetry.errors import DatabaseUnreachable

DEFAULT_FROM = "2024-01-15"  # a Monday inside the shipped January 2024 prices
PRICES = ("january-2024", "none")
#: The longest run --days allows: a leap year.
MAX_DAYS = 366


def signals_for(prices: str) -> SignalSource | None:
    """The market signals of a ``--prices`` choice (``none``: no signals at all)."""
    if prices == "january-2024":
        return FeedSignals(imbalance=ReplayImbalanceFeed.january_2024(wrap=True))
    return None


def price_choices() -> list[str]:
    """Every named ``--prices`` choice: january-2024, none and the shipped months."""
    return [*PRICES, *shipped_months()]


def price_series(choice: tuple[str, ...], option: str = "--prices") -> PriceSeries | None:
    """The series of ``--prices`` (a named choice, or one or more files; None for none).

    Raises :class:`click.BadParameter` for an unknown name, :class:`PriceFileError` for a
    file that cannot be read.
    """
    if len(choice) == 1 and choice[0] == "none":
        return None
    if len(choice) == 1 and choice[0] in price_choices():
        return named(choice[0])
    missing = [c for c in choice if not Path(c).is_file()]
    if missing:
        raise click.BadParameter(
            f"{missing[0]!r} is neither a file nor one of {', '.join(price_choices())}",
            param_hint=f"'{option}'",
        )
    return parse_prices(*choice)


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
    type=DAY,
    default=None,
    help=f"First local day, YYYY-MM-DD [default: the first day of --prices, {DEFAULT_FROM} "
    "for january-2024 or none].",
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
    multiple=True,
    default=("january-2024",),
    show_default=True,
    help="Imbalance prices and NIV replayed to the control: january-2024, a shipped month "
    "YYYY-MM (2016-07 to 2019-01), none (no market signals), or a file (the Elexon "
    "SSPSBPNIV file, BMRS B1770 and B1780 (give --prices twice), or "
    "time,price_p_per_kwh[,niv_mwh]).",
)
@click.option(
    "--day-ahead",
    "day_ahead",
    multiple=True,
    default=(),
    help="Day-ahead prices for an `optimise` entry's plans, in --prices' forms, each local "
    "day's published at 12:00 the day before. A named month gives that month's imbalance "
    "prices themselves: a perfect day-ahead forecast, the most such a feed could add.",
)
@click.option(
    "--frequency-events",
    "frequency_events",
    multiple=True,
    metavar="KIND:EVERY_S[:HOLD_S]",
    help="Repeat a grid frequency event in the simulated frequency (step: 49.5 Hz, high: "
    "50.5 Hz, drop: to 48.8 Hz over a minute and back) every EVERY_S seconds, as `flux sim "
    "--frequency-events`; e.g. step:3600:60.",
)
@click.option(
    "--load",
    "load_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Load CSV (time and kw or kwh per row, 30 minutes or finer) instead of the shipped "
    "year; scaled from --load-homes homes to the site's.",
)
@click.option(
    "--load-homes",
    # At least one home: the file is scaled by homes / this, and a sliver of a home
    # would turn a household's load into figures no site could have.
    type=FiniteRange(min=1),
    default=1.0,
    show_default=True,
    help="How many homes the --load file measures.",
)
@click.option(
    "--solar",
    "solar_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Solar CSV (as --load) instead of the shipped year; scaled from --solar-kwp.",
)
@click.option(
    "--solar-kwp",
    # As --load-homes: the file is scaled by the site's kWp / this.
    type=FiniteRange(min=0.1),
    default=1.0,
    show_default=True,
    help="How many kWp the --solar file measures.",
)
@click.option(
    "--from-db",
    "from_db",
    default=None,
    metavar="URL",
    help="Replay what the site recorded in this telemetry database (PostgreSQL URL): its "
    "load (from grid, solar and battery readings), solar and market data, with what its "
    "control did as the base. Needs --from.",
)
@click.option(
    "--site",
    "db_site",
    default=None,
    metavar="ID",
    help="The site id in --from-db's database (default: the site file's id).",
)
@click.option(
    "--optimum/--no-optimum",
    default=True,
    show_default=True,
    help="Solve the perfect-foresight and same-day optima beside the result.",
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
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Also draw each settlement period's price, the SoE and the battery's value so "
    "far of this file, the base and the optimum to FILE (.png, .svg or .pdf; needs the "
    "plot extra).",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 2),
    default=min(2, os.cpu_count() or 1),
    show_default="2 on a machine of 2 or more CPUs",
    help="With --base: run the base and this file side by side in this many processes "
    "(1: one after the other, in this process). The figures are the same either way.",
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
    first: datetime | None,
    days: int,
    prices: tuple[str, ...],
    day_ahead: tuple[str, ...],
    frequency_events: tuple[str, ...],
    load_file: Path | None,
    load_homes: float,
    solar_file: Path | None,
    solar_kwp: float,
    optimum: bool,
    from_db: str | None,
    db_site: str | None,
    base: str | None,
    base_label: str | None,
    plot: Path | None,
    jobs: int,
    sites_dir: Path,
    output: str,
) -> None:
    """Run SITE's control against the simulated site and report energy, money and limits.

    SITE (and --base) is a site file or a site id (sites/<id>.yaml). The site's homes and
    solar follow the shipped year of load and solar profiles (or --load/--solar); the
    control sees the replayed imbalance prices. Beside the result: the most the battery
    could have earned with perfect foresight of the same inputs (a linear programme), the
    same with each day's foresight only, and the share the control captured. Reported per
    local day and in total; with --base, base, this file and the difference. With
    --from-db, the site's recorded days replace the simulated inputs and what its control
    did is the base. Exit 0 with a report (limit breaches are in it), 2 on a usage error,
    an unreadable price/load/solar file, missing recorded data, an unreachable database or
    an invalid site file.
    """
    # The agent's loop logs safe stops and settings as a site's journal would; here they
    # are in the report (hours in safe stop), and the lines would only clutter stderr.
    agent_log = logging.getLogger("flux.agent")
    level = agent_log.level
    agent_log.setLevel(logging.CRITICAL)
    # Put back when the command ends, however it ends: a process that runs more than one
    # command (a test run, a notebook) must not lose the agent's warnings.
    click.get_current_context().call_on_close(lambda: agent_log.setLevel(level))
    if plot is not None:
        check_plot_path(plot, WHAT, INSTEAD)
    if from_db is not None:
        first = _from_db_usage(base, first, simulated_only=bool(day_ahead or frequency_events))
        source = click.get_current_context().get_parameter_source("prices")
        explicit = source is not None and source != click.core.ParameterSource.DEFAULT
        replay_recorded(
            find_site(site, sites_dir),
            from_db,
            db_site,
            first.date(),
            days,
            prices if explicit else None,
            (load_file, load_homes, solar_file, solar_kwp),
            optimum,
            output,
            plot,
        )
        return
    try:
        events = tuple(RepeatedEvent.parse(text) for text in frequency_events)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--frequency-events") from None
    path = find_site(site, sites_dir)
    base_path = find_site(base, sites_dir) if base is not None else None
    this_site = load_valid_site(path)
    base_site = load_valid_site(base_path) if base_path is not None else None
    try:
        series = price_series(prices)
        published = price_series(day_ahead, "--day-ahead") if day_ahead else None
    except PriceFileError as exc:
        fail(str(exc))
    label = ", ".join(prices)
    if first is not None:
        day: date = first.date()
    elif series is not None and label != "january-2024":
        day = (series.first + timedelta(hours=12)).astimezone(zone(this_site.site.timezone)).date()
    else:
        day = date.fromisoformat(DEFAULT_FROM)
    signals = series.signals(wrap=True) if series is not None else None
    if published is not None:
        signals = FeedSignals(
            imbalance=series.feed(wrap=True) if series is not None else None,
            day_ahead=ReplayDayAheadFeed(published.prices, wrap=True),
        )

    def prepared(s: Site) -> SimulatedRun:
        start = local_midnight(s, day)
        end = local_midnight(s, day + timedelta(days=days))
        try:
            profiles = site_profiles(
                start,
                end,
                load=load_file,
                load_homes=load_homes,
                solar=solar_file,
                solar_kwp=solar_kwp,
            )
        except PriceFileError as exc:
            fail(str(exc))
        return SimulatedRun(
            s, start, end, signals, profiles, events, series, optimum, periods=plot is not None
        )

    runs = [prepared(s) for s in (base_site, this_site) if s is not None]
    labels = [*([f"base {base_path}"] if base_path else []), f"backtest {path}"]
    with progress_bar(labels) as callbacks:
        *before, result = simulate_all(runs, callbacks, jobs)
    base_result = before[0] if before else None

    wrapped = series is not None and not series.covers(runs[-1].start, runs[-1].end)
    note = _note(series, runs[-1].profiles.source, optimum, wrapped=wrapped)
    if base_result is None:
        emit_single(result, path, label, note, output)
        drawn(plot, result, path)
        return
    base_name = base_label or str(base_path)
    emit_comparison(compare(base_result, result), path, base_name, label, note, output)
    drawn(plot, result, path, base_result, base_name)


def drawn(
    plot: Path | None,
    result: BacktestResult,
    path: Path,
    base: BacktestResult | None = None,
    base_name: str | None = None,
) -> None:
    """Draw the run to ``plot`` (if given) and say so on stderr (stdout may be JSON)."""
    if plot is None:
        return
    draw_backtest(plot, result, path.name, base, base_name)
    click.echo(f"plot written to {plot}", err=True)


def _from_db_usage(base: str | None, first: datetime | None, *, simulated_only: bool) -> datetime:
    """The first day of a ``--from-db`` run, or a usage error for options it cannot take."""
    if base is not None:
        raise click.UsageError("--from-db compares with what the site did; leave out --base")
    if first is None:
        raise click.UsageError("--from-db needs --from DATE (the first local day to replay)")
    if simulated_only:
        raise click.UsageError(
            "--day-ahead and --frequency-events are for simulated runs; leave them out "
            "with --from-db"
        )
    return first


def replay_recorded(
    path: Path,
    url: str,
    db_site: str | None,
    day: date,
    days: int,
    prices: tuple[str, ...] | None,
    files: tuple[Path | None, float, Path | None, float],
    with_optimum: bool,
    output: str,
    plot: Path | None = None,
) -> None:
    """``flux backtest --from-db``: the site file run on a site's recorded days, against
    what its control did there (the base column)."""
    this_site = load_valid_site(path)
    start = local_midnight(this_site, day)
    end = local_midnight(this_site, day + timedelta(days=days))
    try:
        rec = load_recorded(url, this_site, start, end, db_site=db_site)
        series = price_series(prices) if prices is not None else rec.prices
    except (RecordedDataError, PriceFileError, DatabaseUnreachable) as exc:
        fail(str(exc))
    load_file, load_homes, solar_file, solar_kwp = files
    profiles = rec.profiles
    try:
        if load_file is not None or solar_file is not None:
            own = site_profiles(
                start, end, load=load_file, load_homes=load_homes, solar=solar_file,
                solar_kwp=solar_kwp,
            )  # fmt: skip
            profiles = SiteProfiles(
                own.load_per_home if load_file is not None else profiles.load_per_home,
                own.solar_per_kwp if solar_file is not None else profiles.solar_per_kwp,
                f"{profiles.source}; {own.source}",
            )
    except PriceFileError as exc:
        fail(str(exc))
    # The simulated battery starts where the real one was.
    simulation = this_site.simulation.model_copy(update={"initial_soe": rec.soe_start_kwh})
    run_site = this_site.model_copy(update={"simulation": simulation})
    with progress_bar([f"backtest {path} on recorded days"]) as callbacks:
        result = run_backtest(
            run_site,
            start,
            end,
            signals=series.signals(wrap=False) if series is not None else None,
            progress=callbacks[0],
            load=profiles.load_per_home,
            solar=profiles.solar_per_kwp,
        )
    base_result = rec.base
    if with_optimum or plot:
        result = with_references(result, this_site, series, profiles, solve=with_optimum)
        base_result = with_references(base_result, this_site, series, profiles, solve=with_optimum)
    base_name = f"recorded on site {rec.site_id}"
    emit_comparison(
        compare(base_result, result),
        path,
        base_name,
        ", ".join(prices) if prices is not None else "recorded",
        _note(series, profiles.source, with_optimum, wrapped=False),
        output,
    )
    drawn(plot, result, path, base_result, base_name)


def emit_single(result: BacktestResult, path: Path, label: str, note: str, output: str) -> None:
    """One run's report on stdout as ``output`` (table, json or markdown)."""
    if output == "json":
        click.echo(json.dumps({"file": str(path), "prices": label, **result.as_json()}, indent=2))
    elif output == "markdown":
        click.echo(markdown_single(result, str(path), note))
    else:
        print_single(result, str(path), note)


def emit_comparison(
    cmp: Comparison, path: Path, base_name: str, label: str, note: str, output: str
) -> None:
    """Base against this file on stdout as ``output`` (table, json or markdown)."""
    if output == "json":
        doc = {"file": str(path), "base_file": base_name, "prices": label, **cmp.as_json()}
        click.echo(json.dumps(doc, indent=2))
    elif output == "markdown":
        click.echo(markdown_comparison(cmp, str(path), base_name, note))
    else:
        print_comparison(cmp, str(path), base_name, note)


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
    rows += frequency_rows(result, cols)
    if result.reference_total is not None and len(result.references) == len(result.days):
        refs = list(result.references)
        if len(result.days) > 1:
            refs.append(result.reference_total)
        rows += reference_rows(cols, refs)
    return header, rows


def frequency_rows(result: BacktestResult, cols: list[Metrics]) -> list[list[str]]:
    """With a frequency_response entry: each entry's SoE band, the hours of frequency
    response and the minutes the SoE was outside the band meanwhile, per column."""
    if not result.frequency_bands:
        return []
    rows = [
        [f"SoE band kWh: {b.entry}", *(f"{b.low_kwh:,.0f}-{b.high_kwh:,.0f}" for _ in cols)]
        for b in result.frequency_bands
    ]
    rows += [
        [title, *(fmt(name, getattr(m, name)) for m in cols)] for name, title in FREQUENCY_TITLES
    ]
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def reference_rows(cols: list[Metrics], refs: list[Reference]) -> list[list[str]]:
    """The strategy beside the optima, one column per stretch (day or total)."""
    pairs = list(zip(cols, refs, strict=True))
    return [
        ["strategy £ (battery value)", *(fmt("_gbp", m.battery_value_gbp) for m, _ in pairs)],
        ["optimum £ (perfect foresight)", *(fmt("_gbp", r.optimum_gbp) for _, r in pairs)],
        [
            "captured % of optimum",
            *(_pct(captured_pct(m.battery_value_gbp, r.optimum_gbp)) for m, r in pairs),
        ],
        ["same-day optimum £", *(fmt("_gbp", r.same_day_gbp) for _, r in pairs)],
        [
            "captured % of same-day optimum",
            *(_pct(captured_pct(m.battery_value_gbp, r.same_day_gbp)) for m, r in pairs),
        ],
        [
            "cycles: strategy",
            *(fmt("equivalent_full_cycles", m.equivalent_full_cycles) for m, _ in pairs),
        ],
        [
            "cycles: optimum",
            *(fmt("equivalent_full_cycles", r.optimum_cycles) for _, r in pairs),
        ],
        [
            "cycles: same-day optimum",
            *(fmt("equivalent_full_cycles", r.same_day_cycles) for _, r in pairs),
        ],
    ]


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
    if cmp.base.frequency_bands or cmp.this.frequency_bands:
        before = {band.entry: band for band in cmp.base.frequency_bands}
        for band in cmp.this.frequency_bands:
            was = before.get(band.entry)
            rows.append(
                [
                    f"SoE band kWh: {band.entry}",
                    f"{was.low_kwh:,.0f}-{was.high_kwh:,.0f}" if was else "-",
                    f"{band.low_kwh:,.0f}-{band.high_kwh:,.0f}",
                    "",
                ]
            )
        for name, title in FREQUENCY_TITLES:
            rows.append(
                [
                    title,
                    fmt(name, getattr(b, name)),
                    fmt(name, getattr(t, name)),
                    fmt(name, d[name], signed=True),
                ]
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
    rb, rt = cmp.base.reference_total, cmp.this.reference_total
    if rb is not None and rt is not None:
        for (title, vb, vt), digits in zip(
            (
                ("strategy £ (battery value)", b.battery_value_gbp, t.battery_value_gbp),
                ("optimum £ (perfect foresight)", rb.optimum_gbp, rt.optimum_gbp),
                ("same-day optimum £", rb.same_day_gbp, rt.same_day_gbp),
                ("cycles: optimum", rb.optimum_cycles, rt.optimum_cycles),
            ),
            ("_gbp", "_gbp", "_gbp", "equivalent_full_cycles"),
            strict=True,
        ):
            rows.append([title, fmt(digits, vb), fmt(digits, vt), fmt(digits, vt - vb, True)])
        pb, pt = cmp.base.captured_pct(), cmp.this.captured_pct()
        diff = "-" if pb is None or pt is None else f"{pt - pb:+.1f} pts"
        rows.append(["captured % of optimum", _pct(pb), _pct(pt), diff])
        sb = captured_pct(b.battery_value_gbp, rb.same_day_gbp)
        st = captured_pct(t.battery_value_gbp, rt.same_day_gbp)
        diff = "-" if sb is None or st is None else f"{st - sb:+.1f} pts"
        rows.append(["captured % of same-day optimum", _pct(sb), _pct(st), diff])
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


def _note(series: PriceSeries | None, profiles: str, with_optimum: bool, *, wrapped: bool) -> str:
    """The closing note of a report: where its inputs came from and what £ means.
    ``wrapped``: the run's days lie (partly) outside the series, which is replayed
    onto them."""
    if series is None:
        source = "no market prices"
    elif wrapped:
        source = f"{series.source} replayed, wrapped onto dates outside it"
    else:
        source = f"{series.source} replayed on its own dates"
    elexon = f" {series.attribution}" if series is not None else ""
    optimum = (
        " The optimum is the most the battery could have made with perfect foresight of the "
        "same load, solar and prices (a linear programme per settlement period); the "
        "same-day optimum knows one local day at a time; captured % is the control's "
        "battery value over theirs."
        if with_optimum
        else ""
    )
    return (
        f"Simulated site (load and solar: {profiles}), {source}. "
        "The imbalance value is an indicator of NIV chase (battery kW x h x imbalance price), "
        "not a settlement; battery value is imbalance value plus the bill saved against an "
        f"idle battery.{optimum}{elexon}"
    )


def markdown_single(result: BacktestResult, title: str, note: str) -> str:
    lines = [
        f"#### Backtest of `{result.site_id}` ({title}), {_span(result)}, in {result.timezone}",
        "",
        *_md_table(*single_rows(result)),
        "",
        note,
    ]
    return "\n".join(lines)


def markdown_comparison(cmp: Comparison, title: str, base_title: str, note: str) -> str:
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
    lines += ["", note]
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


def print_single(result: BacktestResult, title: str, note: str) -> None:
    console = _console()
    console.print(
        _rich_table(
            f"{result.site_id}: backtest {_span(result)} in {result.timezone} ({title})",
            *single_rows(result),
        )
    )
    console.print(note, soft_wrap=True)


def print_comparison(cmp: Comparison, title: str, base_title: str, note: str) -> None:
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
    console.print(note, soft_wrap=True)
