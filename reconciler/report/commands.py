"""`flux report`: one site's (or the fleet's) record over a range of local days, as HTML,
PDF (the HTML printed by headless Chromium), markdown or JSON.

Exit codes: 0 a report was written (gaps and missing prices are sentences in it); 1 a tool
the output needs is missing (matplotlib for charts, Chromium for PDF); 2 a
usage error, an invalid site file, an unknown site, an --out that cannot be written or an
unreachable database or one without the flux schema; 3 the range holds no readings of the
site at all (a fleet: of any of its sites; its report is still written, saying so per
site).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from reconciler.clierrors import fail, user_errors
from reconciler.cliparams import DAY, check_output_path
from reconciler.config.commands import find_site, load_valid_site, sites_dir_option
from reconciler.config.model import Site
from reconciler.control.schedule import local_midnight
from reconciler.report.data import ReportDataError, read_record
from reconciler.report.figures import RateMemo, compute
from reconciler.report.fleet import CHARTS_MAX_SITES, OPTIMUM_MAX_SITES
from reconciler.telemetry.database import ENV_URL, check_url, connect
from reconciler.telemetry.errors import DatabaseUnreachable

EXIT_NO_DATA = 3


def site_figures(
    site: Site,
    url: str,
    first: date,
    last: date,
    db_site: str | None,
    with_optimum: bool,
    memo: RateMemo | None = None,
    conn: Any = None,
) -> dict[str, Any]:
    """The figures of ``site`` over local days [first, last); ``conn``: an open connection
    to ``url`` to read with."""
    start, end = local_midnight(site, first), local_midnight(site, last)
    rec = read_record(url, site, start, end, db_site or site.site.id, conn)
    return compute(site, rec, with_optimum=with_optimum, memo=memo)


_HTML = ("html", "pdf")
# Rates evaluated for one site serve the next with the same rates (per process).
_MEMO = RateMemo()
# A fleet's process reads all its sites on one connection per database URL.
_CONNECTIONS: dict[str, Any] = {}


def _connection(url: str) -> Any:
    conn = _CONNECTIONS.get(url)
    if conn is None or conn.closed or conn.broken:
        conn = _CONNECTIONS[url] = connect(url)
    return conn


def _close_connections() -> None:
    while _CONNECTIONS:
        _CONNECTIONS.popitem()[1].close()


@dataclass(frozen=True)
class _Job:
    """One site to report (sent to a worker process: everything in it pickles)."""

    site: Site
    url: str
    first: date
    last: date
    db_site: str | None
    with_optimum: bool
    html: bool
    charts: bool


def _one(job: _Job, raise_errors: bool = False) -> tuple[dict[str, Any], str | None]:
    """A site's figures and, for HTML or PDF, its rendered section; a fleet's site that
    cannot be reported is ``{"site", "error"}`` (a single site's error is raised)."""
    try:
        conn = None if raise_errors else _connection(job.url)
        figures = site_figures(
            job.site, job.url, job.first, job.last, job.db_site, job.with_optimum, _MEMO, conn
        )
    except ReportDataError as exc:
        if raise_errors:
            raise
        return {"site": job.site.site.id, "error": str(exc)}, None
    if not job.html:
        return figures, None
    from reconciler.report.html import section

    return figures, section(figures, charts=job.charts)


def _fleet_files(sites_dir: Path) -> list[Path]:
    files = sorted(sites_dir.glob("*.yaml"))
    if not files:
        raise click.UsageError(f"--fleet: there is no site file (*.yaml) in {sites_dir}")
    return files


@click.command("report")
@click.argument("site", required=False)
@sites_dir_option
@click.option("--fleet", is_flag=True, help="Every site file in --sites-dir, one document.")
@click.option(
    "--from", "first", required=True, type=DAY, help="The first local day (YYYY-MM-DD).",
)  # fmt: skip
@click.option(
    "--to", "last", required=True, type=DAY,
    help="The day after the last (exclusive, YYYY-MM-DD): --from 2024-08-01 --to 2024-09-01 "
    "is August.",
)  # fmt: skip
@click.option("--database-url", envvar=ENV_URL, help=f"The telemetry database (or ${ENV_URL}).")
@click.option("--db-site", help="The site id in the database (default: the site file's id).")
@click.option(
    "--output", type=click.Choice(["html", "pdf", "markdown", "json"]), default="html",
    show_default=True, help="pdf: the HTML printed by headless Chromium (needs --out).",
)  # fmt: skip
@click.option(
    "--out", "out", type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report here (default: standard output; PDF needs a file).",
)  # fmt: skip
@click.option(
    "--optimum/--no-optimum", default=None,
    help="Compute the perfect-foresight optimum (the market opportunity; about 20 s a "
    f"site-year). Default: on, but off for fleets of more than {OPTIMUM_MAX_SITES} sites.",
)  # fmt: skip
@click.option(
    "--jobs",
    "workers",
    type=click.IntRange(min=1),
    default=os.cpu_count() or 1,
    show_default=True,
    help="--fleet: report this many sites at once (processes).",
)
@user_errors(ReportDataError, DatabaseUnreachable)
def report(
    site: str | None,
    sites_dir: Path,
    fleet: bool,
    first: datetime,
    last: datetime,
    database_url: str | None,
    db_site: str | None,
    output: str,
    out: Path | None,
    optimum: bool | None,
    workers: int,
) -> None:
    """What sites really did over a range of local days, from their telemetry database:
    energy, money, battery, red-band peaks, the market opportunity, frequency response per
    EFA block and data quality.

    Exit 0 with a report, 1 when a tool the output needs is missing (Chromium for pdf), 2 on
    a usage error or an unknown site, 3 when the range holds no readings of the site (of
    any site, for a fleet: its report is still written).
    """
    _check_usage(site, fleet, first, last, database_url, db_site, output, out)
    assert database_url is not None
    check_url(database_url)  # an empty or malformed URL is said before the sites are read
    if output == "pdf":
        from reconciler.report.pdf import chromium

        chromium()  # no browser: say so before reading the database
    paths = _fleet_files(sites_dir) if fleet else [find_site(str(site), sites_dir)]
    sites = [load_valid_site(p) for p in paths]
    charts = len(sites) <= CHARTS_MAX_SITES
    optimum_skipped = optimum is None and fleet and len(sites) > OPTIMUM_MAX_SITES
    optimum = not optimum_skipped if optimum is None else optimum
    jobs = [
        _Job(s, database_url, first.date(), last.date(), db_site, optimum, output in _HTML,
             charts)
        for s in sites
    ]  # fmt: skip
    done = _run(jobs, fleet, workers)
    docs = [d for d, _ in done]
    if not fleet and docs[0]["complete_periods"] == 0:
        fail(
            f"the database holds no grid meter and battery readings of site "
            f"{docs[0]['db_site']!r} from {docs[0]['from'][:10]} to {docs[0]['to'][:10]} "
            "(exclusive); choose days it recorded (`flux db gaps` lists what is missing)",
            EXIT_NO_DATA,
        )
    title = (
        f"Flux fleet report {first:%Y-%m-%d} to {last:%Y-%m-%d}"
        if fleet
        else f"Flux report: {docs[0]['site']}"
    )
    sections = [h for d, h in done if h is not None and "error" not in d]
    if output == "pdf":
        from reconciler.report.pdf import write_pdf

        assert out is not None
        with _writing(out):
            write_pdf(render(docs, "html", title, fleet, sections, optimum_skipped), out)
        click.echo(f"wrote {out}", err=True)
    else:
        text = render(
            docs, output, title, fleet, sections if output in _HTML else None, optimum_skipped
        )
        if out is None:
            click.echo(text)
        else:
            with _writing(out):
                out.write_text(text, encoding="utf-8")
            click.echo(f"wrote {out}", err=True)
    if fleet and not any(d.get("complete_periods") for d in docs):
        # The document says it per site; the exit code says it to a script, as for one site.
        fail(
            f"the database holds no grid meter and battery readings of any of the {len(docs)} "
            f"site(s) from {first:%Y-%m-%d} to {last:%Y-%m-%d} (exclusive); choose days they "
            "recorded (`flux db gaps` lists what is missing)",
            EXIT_NO_DATA,
        )


@contextmanager
def _writing(out: Path) -> Iterator[None]:
    """Writing the report to ``out``: an error (a full disk, a file made read-only since
    it was checked) is one line and exit 2."""
    try:
        yield
    except OSError as exc:
        fail(f"--out {out}: cannot write the report ({exc.strerror or exc})")


def _check_usage(
    site: str | None,
    fleet: bool,
    first: datetime,
    last: datetime,
    database_url: str | None,
    db_site: str | None,
    output: str,
    out: Path | None,
) -> None:
    """The option combinations that cannot make a report, as usage errors (exit 2)."""
    if fleet == (site is not None):
        raise click.UsageError("give a SITE (file or id) or --fleet, not both and not neither")
    if first >= last:
        raise click.UsageError(
            f"--from {first:%Y-%m-%d} is not before --to {last:%Y-%m-%d}: the range is empty "
            "(--to is the day after the last)"
        )
    if not database_url:
        raise click.UsageError(f"give --database-url URL (or ${ENV_URL})")
    if db_site is not None and fleet:
        raise click.UsageError("--db-site names one site; leave it out with --fleet")
    if output == "pdf" and out is None:
        raise click.UsageError("--output pdf writes a file: give --out FILE.pdf")
    if out is not None:
        check_output_path(out, "--out")


def _run(jobs: list[_Job], fleet: bool, workers: int) -> list[tuple[dict[str, Any], str | None]]:
    """Each site's figures (and rendered section), with a progress bar on a terminal: one
    site here (its errors raised), a fleet in ``workers`` processes (errors per site)."""
    done: list[tuple[dict[str, Any], str | None]] = []
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty(),
    ) as bar:  # fmt: skip
        task = bar.add_task(f"report ({workers} processes)", total=len(jobs))
        if not fleet:
            done.append(_one(jobs[0], raise_errors=True))
        elif workers == 1 or len(jobs) == 1:
            try:
                for job in jobs:
                    done.append(_one(job))
                    bar.advance(task)
            finally:
                _close_connections()
        else:
            # Sites are independent: each worker reads, computes and renders whole sites.
            spawn = multiprocessing.get_context("spawn")  # no fork under rich's thread
            with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=spawn) as pool:
                for result in pool.map(_one, jobs, chunksize=1):
                    done.append(result)
                    bar.advance(task)
    return done


def render(
    docs: list[dict[str, Any]],
    output: str,
    title: str,
    fleet: bool,
    sections: list[str] | None = None,
    optimum_skipped: bool = False,
) -> str:
    ok = [d for d in docs if "error" not in d]
    errors = {d["site"]: d["error"] for d in docs if "error" in d}
    from reconciler.report.fleet import summary

    totals = summary(ok, errors, optimum_skipped) if fleet else None
    if output == "json":
        doc: dict[str, Any] = {"fleet": totals, "sites": ok, "errors": errors} if fleet else ok[0]
        return json.dumps(doc, indent=2, ensure_ascii=False)
    if output == "markdown":
        from reconciler.report.markdown import markdown

        tail = "".join(f"\n> {site}: {error}\n" for site, error in errors.items())
        return f"# {title}\n\n{markdown(ok, totals)}{tail}"
    from reconciler.report.html import html

    return html(ok, title, errors=errors, sections=sections, fleet=totals)
