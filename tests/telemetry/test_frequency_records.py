"""Frequency response's one-second records: written by the agent's loop against the
simulator, uploaded like the readings into flux.frequency_records and its 5 m, 30 m and
1 h rollups (on the server's flavour), read by a reader through api and by an agent only
for its own site; a malformed record is quarantined, not uploaded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from reconciler.agent.loop import ReconcileLoop
from reconciler.cli import cli
from reconciler.config.loader import check_site_text
from reconciler.config.model import Site
from reconciler.control.types import FrequencyRecord
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.records import to_us
from reconciler.telemetry.uploader import Uploader
from tests.agent.test_frequency import FR_TEXT
from tests.pg import Server
from tests.rigs import run_in_process

from .conftest import url_for

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
#: 10 minutes of frequency response, an under-frequency step a minute in (held 60 s).
SECONDS = 600
#: The response the step asks for (500 kW) exports far more than this site may (100 kW):
#: the envelope cuts it.
CUT_TEXT = FR_TEXT.replace("low_kw: 300", "low_kw: 500").replace(
    "site_export_kw: 475", "site_export_kw: 100"
)


def _site(text: str) -> Site:
    site, problems = check_site_text(text, "fr.yaml")
    assert site is not None, problems
    return site


def _rows(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[Outbox, ReconcileLoop]]:
    """The outbox of the loop's run (fast path every 0.5 s between 4 s ticks)."""
    outbox = Outbox(tmp_path / "outbox.sqlite")
    loop = run_in_process(_site(CUT_TEXT), outbox, T0, SECONDS, fast_s=0.5, events=[(60, "step")])
    yield outbox, loop
    outbox.close()


def test_the_agents_records_reach_the_table_and_the_rollups(
    recorded: tuple[Outbox, ReconcileLoop], migrated_url: str
) -> None:
    outbox, loop = recorded
    block = loop.frequency.block
    assert block is not None
    assert outbox.counts()["frequency"] == block.seconds == SECONDS  # one a second
    result = Uploader(outbox, migrated_url).drain()
    assert result.ok, result.error
    assert result.sent["frequency"] == SECONDS and outbox.pending() == 0

    ((n, first, last, due, within, cut),) = _rows(
        migrated_url,
        "SELECT count(*), min(time), max(time), count(expected_kw),"
        " count(*) FILTER (WHERE abs(delivered_kw - expected_kw) <= tolerance_kw),"
        " count(*) FILTER (WHERE envelope_cut)"
        " FROM flux.frequency_records WHERE site_id = 'demo' AND device = 'bess'",
    )
    assert (n, first, last) == (SECONDS, T0, T0 + timedelta(seconds=SECONDS - 1))
    # The database counts the seconds as the agent's status does.
    assert within == block.seconds_within and n - due == block.seconds_stale
    assert 0 < within < n  # the ramp's seconds and the cut ones miss
    # The step asked for 500 kW (and a little of the wander): the export limit cut it.
    assert 30 <= cut <= 60
    ((cut_min, cut_expected, cut_delivered),) = _rows(
        migrated_url,
        "SELECT min(time), min(expected_kw), max(delivered_kw) FROM flux.frequency_records"
        " WHERE envelope_cut",
    )
    assert T0 + timedelta(seconds=60) <= cut_min <= T0 + timedelta(seconds=62)
    assert cut_expected > 450 and cut_delivered < 400

    # Every rollup adds up to the raw seconds, whatever its width.
    raw = _rows(
        migrated_url,
        "SELECT count(*), count(expected_kw),"
        " count(*) FILTER (WHERE abs(delivered_kw - expected_kw) <= tolerance_kw),"
        " count(*) FILTER (WHERE envelope_cut), avg(abs(delivered_kw - expected_kw)),"
        " max(abs(delivered_kw - expected_kw)), min(frequency_hz), max(frequency_hz),"
        " sum(expected_kw) / 3600, sum(delivered_kw) / 3600 FROM flux.frequency_records",
    )[0]
    for width in ("5m", "30m", "1h"):
        got = _rows(
            migrated_url,
            "SELECT sum(samples), sum(due_samples), sum(within_samples), sum(cut_samples),"
            " sum(abs_error_avg_kw * due_samples) / sum(due_samples), max(abs_error_max_kw),"
            " min(frequency_min_hz), max(frequency_max_hz), sum(expected_kwh),"
            f" sum(delivered_kwh) FROM flux.frequency_{width}",
        )[0]
        assert [int(v) for v in got[:4]] == [int(v) for v in raw[:4]], width
        assert [float(v) for v in got[4:]] == pytest.approx([float(v) for v in raw[4:]]), width
    assert len(_rows(migrated_url, "SELECT 1 FROM flux.frequency_5m")) == 2  # 09:00, 09:05
    # The battery is a device of the site once (its frequency records do not add one).
    assert _rows(migrated_url, "SELECT kind FROM flux.devices WHERE device = 'bess'") == [("bess",)]


def test_a_resent_batch_is_skipped_and_a_late_one_rolled_up(
    migrated_url: str, outbox: Outbox
) -> None:
    def records(seconds: range) -> list[FrequencyRecord]:
        return [
            FrequencyRecord(T0 + timedelta(seconds=s), 49.8, 10.0, 10.0 + s % 3, 1.0)
            for s in seconds
        ]

    uploader = Uploader(outbox, migrated_url)
    outbox.add_frequency_many("demo", "bess", records(range(100, 200)))
    assert uploader.drain().inserted == {"frequency": 100}
    outbox.add_frequency_many("demo", "bess", records(range(150, 250)))  # half re-sent
    assert uploader.drain().inserted == {"frequency": 50}
    outbox.add_frequency_many("demo", "bess", records(range(100)))  # late
    assert uploader.drain().inserted == {"frequency": 100}
    (row,) = _rows(
        migrated_url, "SELECT samples, due_samples, within_samples FROM flux.frequency_1h"
    )
    # delivered - expected is 0, 1 or 2 kW in turn; within 1 kW: 2 in 3 seconds.
    assert [int(v) for v in row] == [250, 250, len([s for s in range(250) if s % 3 < 2])]


def test_a_malformed_record_is_quarantined_not_uploaded(migrated_url: str, outbox: Outbox) -> None:
    good = FrequencyRecord(T0, 49.9, 5.0, 5.0, 1.0)
    outbox.add_frequency_many("demo", "bess", [good])
    # What the encoder never writes: envelope_cut 2 (it takes the fast path all the same).
    second = to_us(T0 + timedelta(seconds=1))
    outbox._add("frequency", "demo", "bess", f"[{second},49.9,5,5,1,2]")
    result = Uploader(outbox, migrated_url).drain()
    assert result.ok and result.quarantined == 1 and result.sent == {"frequency": 1}
    (bad,) = outbox.quarantined()
    assert "envelope_cut must be 0 or 1" in bad.error
    assert _rows(migrated_url, "SELECT count(*) FROM flux.frequency_records") == [(1,)]


@pytest.fixture
def agent_url(migrated_url: str, dbname: str, make_role: Callable[[str], str]) -> str:
    """An agent role for site_a; site_b's records written by an administrator."""
    role = make_role("flux_agent")
    with psycopg.connect(migrated_url) as conn:
        conn.execute("SELECT flux.register_agent(%s, 'site_a')", (role,))
        conn.execute(
            "INSERT INTO flux.frequency_records VALUES (%s, 'site_b', 'bess', 49.9, 5, 5, 1,"
            " false)",
            (T0,),
        )
    return url_for(dbname, role)


def test_the_reader_reads_every_site_through_api_and_an_agent_only_its_own(
    agent_url: str,
    migrated_url: str,
    dbname: str,
    outbox: Outbox,
    make_role: Callable[[str], str],
    flux_server: Server,
) -> None:
    outbox.add_frequency_many(
        "site_a",
        "bess",
        [FrequencyRecord(T0 + timedelta(seconds=s), 49.7, 20.0, 19.5, 1.0) for s in range(30)],
    )
    result = Uploader(outbox, agent_url).drain()
    assert result.ok and result.sent == {"frequency": 30}, result.error
    with psycopg.connect(agent_url) as conn:
        sites = conn.execute("SELECT DISTINCT site_id FROM flux.frequency_records").fetchall()
        assert sites == [("site_a",)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "INSERT INTO flux.frequency_records VALUES (%s, 'site_b', 'bess', 50, NULL, 0,"
                " 1, false)",
                (T0 + timedelta(seconds=1),),
            )
    if flux_server.flavour == "timescale":
        # Only the aggregates' owner refreshes them (see test_roles).
        refreshed = CliRunner().invoke(cli, ["db", "refresh", "--database-url", migrated_url])
        assert refreshed.exit_code == 0, refreshed.output
    else:
        with psycopg.connect(migrated_url) as conn:
            conn.execute("SELECT flux.refresh_rollups()")
    reader = url_for(dbname, make_role("flux_reader"))
    with psycopg.connect(reader) as conn:
        counts = conn.execute(
            "SELECT site_id, count(*) FROM api.frequency_records GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert counts == [("site_a", 30), ("site_b", 1)]
        rolled = conn.execute(
            "SELECT site_id, samples, within_samples FROM api.frequency_30m ORDER BY 1"
        ).fetchall()
        assert [(s, int(n), int(w)) for s, n, w in rolled] == [("site_a", 30, 30), ("site_b", 1, 1)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO flux.frequency_records VALUES (%s, 'site_a', 'bess', 50, NULL, 0,"
                " 1, false)",
                (T0 + timedelta(hours=1),),
            )
    anon = url_for(dbname, make_role("flux_anon"))
    with psycopg.connect(anon) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM api.frequency_records")
