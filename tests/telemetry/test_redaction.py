"""A database password never shows: not in errors, logs, the agent's status nor CLI
output, however the URL is broken and whatever the driver quotes."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import psycopg
import pytest
from click.testing import CliRunner

from reconciler import logs
from reconciler.cli import cli
from reconciler.clierrors import user_errors
from reconciler.redact import redact
from reconciler.telemetry import database
from reconciler.telemetry.errors import DatabaseUnreachable
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader
from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]
SECRET = "Sup3r-Secret.pw"
# Broken in a way the driver reports by quoting the whole URL back.
MALFORMED = f"postgresql://flux_wlce:{SECRET}@[db.example.org/flux"


def test_a_malformed_url_is_refused_without_its_password() -> None:
    with pytest.raises(DatabaseUnreachable) as caught:
        database.connect(MALFORMED)
    assert "not valid" in str(caught.value)
    assert "flux_wlce:***@" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_the_cli_never_prints_the_password_of_a_malformed_url() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "db", "status", "--database-url", MALFORMED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "not valid" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_an_upload_to_a_malformed_url_keeps_the_password_out_of_the_status(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    uploader = Uploader(outbox, MALFORMED, attempts=1)
    outbox.add_status("s", datetime.now(UTC), {})
    with caplog.at_level(logging.WARNING, logger="flux.telemetry"):
        result = uploader.upload_once()
    assert not result.ok
    shown = json.dumps(uploader.conditions()) + (result.error or "") + caplog.text
    shown += json.dumps([getattr(r, "fields", {}) for r in caplog.records])
    assert "not valid" in shown
    assert SECRET not in shown


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://flux_wlce:{SECRET}@db.example.org:5432/flux?sslmode=require",
        f"host=db.example.org user=flux_wlce password={SECRET} dbname=flux",
        f"host=db.example.org user=flux_wlce password='{SECRET}' dbname=flux",
    ],
)
def test_a_driver_error_quoting_the_dsn_is_redacted_wherever_it_is_shown(dsn: str) -> None:
    # Drivers and proxies may quote the connection string they were given.
    error = psycopg.OperationalError(f'connection to "{dsn}" failed: timeout expired')

    @click.command()
    @user_errors()
    def failing() -> None:
        raise error

    result = CliRunner().invoke(failing, [])
    assert result.exit_code == 2
    assert "database error" in result.output and "db.example.org" in result.output
    assert SECRET not in result.output

    stream = io.StringIO()
    logger = logging.getLogger("flux.test_redaction")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonLineFormatter())
    logger.addHandler(handler)
    try:
        logs.log_event(logger, "upload_failed", logging.WARNING, error=str(error), url=dsn)
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue()
    assert "upload_failed" in line and "db.example.org" in line
    assert SECRET not in line

    assert SECRET not in database.driver_message(error, dsn)
    assert SECRET not in database.driver_message(error)  # even without knowing the URL


@pytest.mark.parametrize(
    ("url", "wrong"),
    [
        ("mysql://flux@db.example.org/flux", "is a mysql:// URL, not a postgresql:// URL"),
        (
            f"mysql://flux:{SECRET}@db.example.org/flux",
            "is a mysql:// URL, not a postgresql:// URL",
        ),
        ("postgresql://flux@[db.example.org/flux", 'in URI: "postgresql://flux@[db.example.org'),
        (MALFORMED, 'in URI: "postgresql://flux_wlce:***@[db.example.org/flux"'),
    ],
)
def test_the_advice_for_a_bad_url_survives_redaction(url: str, wrong: str) -> None:
    # Masking a "user:password@" pattern used to take postgresql://USER@ for one.
    result = CliRunner().invoke(cli, ["db", "status", "--database-url", url])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert wrong in line, line
    assert line.endswith("; give postgresql://USER@HOST:PORT/DBNAME"), line
    assert "(--database-url or FLUX_DATABASE_URL)" in line
    assert SECRET not in result.output


def test_a_url_without_password_is_shown_as_written() -> None:
    for text in ("postgresql://flux@db.example.org/flux", "postgres://flux@h:5432/db?x=1"):
        assert redact(text) == text
        assert redact(f"quoted {text!r} back", text) == f"quoted {text!r} back"
    assert redact("postgresql://flux:s3cret@h/db") == "postgresql://flux:***@h/db"
    assert redact("flux:s3cret@h/db") == "flux:***@h/db"  # libpq may quote it without scheme


def test_a_command_whose_option_is_not_database_url_is_named_in_the_errors() -> None:
    with pytest.raises(
        DatabaseUnreachable, match=r"^--from-db is empty; give postgresql://USER@HOST:PORT/DBNAME$"
    ):
        database.connect(" ", option="--from-db")
    with pytest.raises(DatabaseUnreachable, match=r"the database URL \(--from-db\) is not valid"):
        database.connect(MALFORMED, option="--from-db")
    port = free_port()
    with pytest.raises(DatabaseUnreachable) as caught:
        database.connect(f"postgresql://flux@127.0.0.1:{port}/flux", option="--from-db")
    assert str(caught.value).endswith("the URL (--from-db) is right.")
