"""`flux report`'s frequency response section: per 4-hour EFA block (local time), the
share of the active seconds delivered within tolerance, read as a reader from the rollups
of the records the agent's loop wrote against the simulator; one sentence when the site
gave none."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.config.loader import check_site_text
from reconciler.config.model import Site
from reconciler.report.figures import NO_FREQUENCY_RESPONSE
from reconciler.report.html import html
from reconciler.report.markdown import markdown
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader
from tests.agent.test_frequency import FR_TEXT
from tests.pg import Server, database, url_for
from tests.rigs import run_in_process
from tests.source.conftest import DEMO_TEXT

#: 10:50 to 11:10 GMT on a Monday: the end of EFA block 07:00-11:00 and the start of
#: 11:00-15:00. The export limit cuts the response to the step at 11:02.
START = datetime(2026, 3, 2, 10, 50, tzinfo=UTC)
SECONDS = 1200
FR_CUT_TEXT = FR_TEXT.replace("low_kw: 300", "low_kw: 500").replace(
    "site_export_kw: 475", "site_export_kw: 100"
)
DAY = ("--from", "2026-03-02", "--to", "2026-03-03")


def _site(text: str) -> Site:
    site, problems = check_site_text(text, "demo.yaml")
    assert site is not None, problems
    return site


def _recorded(flux_server: Server, template: str, tmp: Path, text: str) -> Iterator[str]:
    """A database holding the loop's run of ``text`` over SECONDS from START (its
    readings, decisions and frequency records), uploaded as an agent would."""
    with database(flux_server, template) as name:
        url = url_for(name)
        outbox = Outbox(tmp / "outbox.sqlite")
        try:
            run_in_process(_site(text), outbox, START, SECONDS, fast_s=0.5, events=[(720, "step")])
            uploader = Uploader(outbox, url)
            result = uploader.drain()
            uploader.close()
            assert result.ok, result.error
        finally:
            outbox.close()
        yield url


@pytest.fixture
def fr_url(template_db: str, flux_server: Server, tmp_path: Path) -> Iterator[str]:
    yield from _recorded(flux_server, template_db, tmp_path, FR_CUT_TEXT)


@pytest.fixture
def plain_url(template_db: str, flux_server: Server, tmp_path: Path) -> Iterator[str]:
    yield from _recorded(flux_server, template_db, tmp_path, DEMO_TEXT)


def _reader(url: str) -> str:
    name = f"flux_t_{uuid.uuid4().hex[:10]}"
    result = CliRunner().invoke(cli, ["db", "add-reader", name, "--database-url", url])
    assert result.exit_code == 0, result.output
    return url_for(url.rsplit("/", 1)[1], name)


def _drop(url: str, reader: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(reader)["user"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,)
        )
        conn.execute(f'DROP OWNED BY "{name}"')
        conn.execute(f'DROP ROLE IF EXISTS "{name}"')


def _report(tmp: Path, text: str, url: str, output: str) -> str:
    site_file = tmp / "demo.yaml"
    site_file.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["report", str(site_file), *DAY, "--database-url", url, "--output", output,
              "--no-optimum"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.stdout


def _raw_blocks(url: str) -> dict[str, tuple[int, int, int]]:
    """Per EFA block (its UTC start hour: 07 or 11 on this GMT day): seconds, those
    within tolerance, those cut by the envelope, counted from the raw records."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT CASE WHEN time < '2026-03-02 11:00+00' THEN '07' ELSE '11' END, count(*),"
            " count(*) FILTER (WHERE abs(delivered_kw - expected_kw) <= tolerance_kw),"
            " count(*) FILTER (WHERE envelope_cut) FROM flux.frequency_records GROUP BY 1"
        ).fetchall()
    return {str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def test_the_per_block_performance_is_the_records_share_within_tolerance(
    fr_url: str, tmp_path: Path
) -> None:
    reader = _reader(fr_url)
    try:
        doc: dict[str, Any] = json.loads(_report(tmp_path, FR_CUT_TEXT, reader, "json"))
        md = _report(tmp_path, FR_CUT_TEXT, reader, "markdown")
    finally:
        _drop(fr_url, reader)
    fr = doc["frequency_response"]
    assert fr["recorded"] and fr["note"] is None
    raw = _raw_blocks(fr_url)
    assert raw["07"][0] == 600 and raw["11"][0] == 600  # one record a second
    assert [(b["block_start"], b["block_end"]) for b in fr["blocks"]] == [
        ("2026-03-02T07:00:00+00:00", "2026-03-02T11:00:00+00:00"),
        ("2026-03-02T11:00:00+00:00", "2026-03-02T15:00:00+00:00"),
    ]
    for block, hour in zip(fr["blocks"], ("07", "11"), strict=True):
        seconds, within, cut = raw[hour]
        assert (block["seconds"], block["seconds_within"]) == (seconds, within)
        assert block["seconds_cut_by_envelope"] == cut
        assert block["performance_pct"] == pytest.approx(100 * within / seconds, abs=0.005)
    first, second = fr["blocks"]
    # Before the step the battery follows the wander's small response; the step's 500 kW
    # is cut to what the export limit allows, so the second block falls short.
    assert first["seconds_cut_by_envelope"] == 0 and first["performance_pct"] > 95
    assert second["seconds_cut_by_envelope"] >= 30 and second["performance_pct"] < 95
    assert fr["total"]["seconds"] == 1200
    assert fr["total"]["seconds_within"] == first["seconds_within"] + second["seconds_within"]
    assert "### Frequency response per EFA block (local time)" in md
    assert "| 2026-03-02 11:00-15:00 | 600 |" in md


def test_a_site_without_frequency_response_says_so_in_one_sentence(
    plain_url: str, tmp_path: Path
) -> None:
    doc = json.loads(_report(tmp_path, DEMO_TEXT, plain_url, "json"))
    fr = doc["frequency_response"]
    assert fr["recorded"] is False and fr["blocks"] == []
    assert fr["note"] == NO_FREQUENCY_RESPONSE and fr["total"]["seconds"] == 0
    md = markdown([doc])
    section = md.split("### Frequency response per EFA block (local time)\n\n", 1)[1]
    assert section.startswith(NO_FREQUENCY_RESPONSE + "\n\n###")
    page = html([doc], "report")
    assert (
        f"<h3>Frequency response per EFA block (local time)</h3><p>{NO_FREQUENCY_RESPONSE}</p>"
        in page
    )
