"""Fixtures shared across areas."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from tests.pg import ENV_TIMESCALE, PLAIN, SERVERS, Server, drop_shared
from tests.shared import run_folder
from tests.source.conftest import Upstream, git

# CI explores the same examples on every run, so a red build reproduces; at a desk each run
# explores new ones (and a failure found there becomes an @example).
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    """An empty config repository (branch main) in a temporary folder."""
    path = tmp_path / "config-repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return Upstream(path)


@pytest.fixture(autouse=True)
def _private_lock_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Battery locks of agents the tests start (in this process or as subprocesses, which
    inherit the environment) go to a temporary folder: never the machine's /run/lock/flux,
    where an agent running beside the suite holds its own."""
    monkeypatch.setenv("FLUX_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))


#: Test files whose every test is slow (each runs simulated days of control).
SLOW_FOLDERS = ("backtest",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The backtests run whole simulated days: `-m "not slow"` is the quick set."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "tests" in parts and parts[parts.index("tests") + 1] in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", params=sorted(SERVERS))
def flux_server(request: pytest.FixtureRequest) -> Server:
    """The server a database test runs on: plain PostgreSQL, and TimescaleDB too when
    FLUX_TEST_TIMESCALE_URL is set (tests/pg.py)."""
    return SERVERS[str(request.param)]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The run's shared templates (tests/pg.py) are dropped when it ends: in the xdist
    controller (no ``workerinput``), after every worker has finished."""
    if hasattr(session.config, "workerinput"):
        return
    factory: pytest.TempPathFactory = session.config._tmp_path_factory  # type: ignore[attr-defined]
    drop_shared(run_folder(factory.getbasetemp()))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if "timescale" in SERVERS:
        where = SERVERS["timescale"]
        terminalreporter.write_line(
            f"TimescaleDB flavour exercised on {where.host}:{where.port} "
            f"(plain PostgreSQL on {PLAIN.host}:{PLAIN.port})"
        )
    else:
        terminalreporter.write_line(
            f"TimescaleDB flavour NOT exercised: only plain PostgreSQL ({PLAIN.host}:"
            f"{PLAIN.port}); set {ENV_TIMESCALE} to a server with TimescaleDB preloaded "
            "to run the database tests on it too",
            yellow=True,
            bold=True,
        )
