"""`flux db` refuses what the user got wrong in one line with exit 2, before it touches
anything: an empty database URL, an outbox that is not one, an unknown device, a time
outside the years Flux works with."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import cli
from reconciler.control.types import BatteryReading, MeterReading
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader
from tests.net import free_port

EMPTY = "--database-url is empty; give postgresql://USER@HOST:PORT/DBNAME or set FLUX_DATABASE_URL"


def db(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(cli, ["db", *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def refused(result: Result, text: str) -> None:
    """Exit 2 with ``text`` on one line of stderr."""
    assert result.exit_code == 2, result.output
    assert any(text in line for line in result.stderr.splitlines()), result.stderr


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "command",
    [["migrate"], ["status"], ["refresh"], ["policy"], ["roles"], ["gaps", "--site", "x"]],
)
@pytest.mark.parametrize("url", ["", "  "])
def test_an_empty_database_url_is_refused(
    command: list[str], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libpq's defaults for an empty URL point at a port nobody listens on: were it used,
    # this would say "cannot connect" rather than touch the local server's databases.
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(free_port()))
    refused(db(*command, "--database-url", url), EMPTY)
    # From the environment variable (click leaves out an empty one: the option is missing).
    refused(db(*command, env={"FLUX_DATABASE_URL": "  "}), EMPTY)


def _outbox_file(path: Path) -> Path:
    with Outbox(path) as box:
        box.add_meter("wlce", "site", MeterReading(datetime(2026, 1, 1, tzinfo=UTC), 1.0))
    return path


def test_status_reads_an_outbox_without_changing_it(pg_url: str, tmp_path: Path) -> None:
    box = _outbox_file(tmp_path / "outbox.db")
    before = digest(box)
    result = db("status", "--database-url", pg_url, "--outbox", str(box), "--output", "json")
    assert result.exit_code == 0, result.output
    assert '"pending": 1' in result.stdout
    assert digest(box) == before


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "it has no outbox table"),
        (b"site,device\nwlce,site\n", "file is not a database"),
        (bytes(range(256)) * 64, "file is not a database"),
    ],
)
def test_status_and_upload_refuse_a_file_that_is_not_an_outbox(
    migrated_url: str, tmp_path: Path, content: bytes, reason: str
) -> None:
    wrong = tmp_path / "readings.csv"
    wrong.write_bytes(content)
    refused(
        db("status", "--database-url", migrated_url, "--outbox", str(wrong)),
        f"{wrong} is not a flux outbox ({reason}); give the agent's outbox file",
    )
    assert wrong.read_bytes() == content  # not made into an outbox
    refused(
        db("upload", "--database-url", migrated_url, "--outbox", str(wrong)),
        f"{wrong} is not a flux outbox ({reason})",
    )
    assert wrong.read_bytes() == content


def test_status_refuses_a_missing_outbox_and_creates_none(pg_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "outbox.db"
    refused(db("status", "--database-url", pg_url, "--outbox", str(missing)), "does not exist")
    assert not missing.exists()


def test_a_sqlite_file_of_something_else_is_not_an_outbox(pg_url: str, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    before = digest(other)
    refused(
        db("status", "--database-url", pg_url, "--outbox", str(other)),
        "is not a flux outbox (it has no outbox table)",
    )
    assert digest(other) == before


def test_gaps_refuses_a_device_the_site_does_not_have(migrated_url: str, outbox: Outbox) -> None:
    at = datetime(2026, 3, 29, tzinfo=UTC)
    outbox.add_bess_many("wlce", "bess", [BatteryReading(at, 100.0, 0.0)])
    outbox.add_meter_many("wlce", "site", [MeterReading(at, 1.0)])
    outbox.add_meter_many("other", "solar", [MeterReading(at, 1.0)])
    assert Uploader(outbox, migrated_url).drain().ok
    gaps = ("gaps", "--database-url", migrated_url, "--site", "wlce")
    refused(
        db(*gaps, "--device", "nosuch", "--since", "2026-03-29"),
        "site 'wlce' has no device 'nosuch' in ",
    )
    assert "(its devices: bess, site)" in db(*gaps, "--device", "solar").stderr
    known = db(*gaps, "--device", "site", "--since", "2026-03-29", "--until", "2026-03-29T00:05")
    assert known.exit_code == 0 and "4 missing minute(s) in 1 gap(s)" in known.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["gaps", "--site", "wlce", "--since", "0001-01-01"],
        ["gaps", "--site", "wlce", "--until", "9999-12-31T23:59"],
        ["refresh", "--from", "0001-01-01T00:00Z"],
        ["refresh", "--from", "2024-01-01", "--to", "9999-12-31"],
    ],
)
def test_times_outside_the_years_flux_works_with_are_refused(
    migrated_url: str, args: list[str]
) -> None:
    refused(
        db(*args, "--database-url", migrated_url),
        "is outside the years Flux works with (1970-2199)",
    )
