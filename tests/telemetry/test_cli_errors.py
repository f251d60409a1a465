"""`flux db` refuses what the user got wrong in one line with exit 2, before it touches
anything: an empty database URL, an outbox that is not one, an unknown device, a time
outside the years Flux works with."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import cli
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
