"""Flux as a user installs it: the wheel, built from a copy of the source and installed
into a fresh venv, with no source tree importable. Its migrations, register maps and data
must ship inside it: `flux db migrate` applies the schema, and `flux sim` plus `flux agent
run` put readings into PostgreSQL, all run from a folder outside the repository."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import psycopg
import pytest

from reconciler.telemetry.migrations import known_version
from tests.net import free_port
from tests.shared import once_a_run, run_folder

from .conftest import url_for

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "sites" / "demo.yaml"
DEMO_PORTS = {"bess": 15020, "site": 15021, "battery_meter": 15022, "solar": 15023}

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Installed:
    venv: Path
    python: Path
    flux: Path
    purelib: Path
    env: dict[str, str]
    cwd: Path  # a folder outside the repository to run from


def _run(args: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result


def _dependency_dirs() -> list[str]:
    """Where this interpreter finds flux's dependencies: the new venv reuses them instead of
    downloading them again. Only these folders are added, never the source tree."""
    dirs: set[str] = set()
    for requirement in metadata.requires("flux-reconciler") or []:
        if "extra ==" in requirement:
            continue
        name = requirement.split(";")[0].split("[")[0]
        for sep in "<>=!~ ":
            name = name.split(sep)[0]
        dirs.add(str(metadata.distribution(name).locate_file("")))
    return sorted(dirs)


def _install(tmp: Path) -> tuple[Path, Path]:
    """The wheel built from a copy of the checkout and installed into a new venv in
    ``tmp``: the venv and its purelib folder."""
    # Build from a copy: an in-tree build would leave build/ and *.egg-info in the repo,
    # and a copy holds only what the sdist would.
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "reconciler", src / "reconciler", ignore=shutil.ignore_patterns("__pycache__")
    )
    dist = tmp / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, src])
    (wheel,) = dist.glob("flux_reconciler-*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    purelib = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
        ).stdout.strip()
    )
    # A plain folder line in a .pth file: those folders' own .pth files (an editable
    # install's finder among them) are not processed, so the checkout stays invisible.
    (purelib / "flux-test-deps.pth").write_text("\n".join(_dependency_dirs()) + "\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            wheel,
        ]
    )
    return venv, purelib


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The installed wheel: built once a run for every xdist worker (the tests only run
    it), with this worker's environment and its own folder to run from."""
    venv, purelib = once_a_run(
        run_folder(tmp_path_factory.getbasetemp()),
        "installed-wheel",
        lambda: _install(tmp_path_factory.mktemp("wheel")),
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
        and not k.startswith("FLUX_")  # e.g. FLUX_SQL_DIR would point back into the repo
    }
    cwd = tmp_path_factory.mktemp("elsewhere")
    python = venv / "bin" / "python"
    return Installed(venv, python, venv / "bin" / "flux", purelib, env, cwd)


PROBE = """
import json, pathlib, sys
import reconciler
holders = [p for p in sys.path if (pathlib.Path(p or ".") / "reconciler").exists()]
print(json.dumps({"file": reconciler.__file__, "holders": holders}))
"""


def test_the_installed_package_is_the_one_that_runs(installed: Installed) -> None:
    out = _run([installed.python, "-c", PROBE], cwd=installed.cwd, env=installed.env).stdout
    probe = json.loads(out)
    assert Path(probe["file"]).is_relative_to(installed.purelib)
    # No other folder on the path holds a reconciler package (the checkout least of all).
    assert [Path(p) for p in probe["holders"]] == [installed.purelib]


BACKTEST_DATA = """
import json
from datetime import UTC, datetime
from reconciler.backtest import prices, profiles
july = prices.shipped_month("2018-07")
year = profiles.shipped_year(datetime(2018, 7, 1, tzinfo=UTC), datetime(2018, 7, 2, tzinfo=UTC))
load, solar = year.period_means([datetime(2018, 7, 1, 12, tzinfo=UTC)], 1, 1)
print(json.dumps({"periods": len(july.prices), "load": load[0], "solar": solar[0]}))
"""


def test_installed_backtest_data_ships_in_the_wheel(installed: Installed) -> None:
    out = _run([installed.python, "-c", BACKTEST_DATA], cwd=installed.cwd, env=installed.env)
    doc = json.loads(out.stdout)
    assert doc["periods"] == 31 * 48
    assert doc["load"] > 0 and doc["solar"] > 0


def test_installed_flux_migrates_a_fresh_database(installed: Installed, pg_url: str) -> None:
    done = _run(
        [installed.flux, "db", "migrate", "--database-url", pg_url],
        cwd=installed.cwd,
        env=installed.env,
    )
    assert "applied 0001" in done.stdout
    with psycopg.connect(pg_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM flux.schema_migrations")]
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'flux'"
            )
        }
    assert sorted(versions) == list(range(1, known_version() + 1))
    assert {"bess_readings", "meter_readings", "control_decisions", "bess_5m"} <= tables


def test_installed_demo_runs_outside_a_checkout(installed: Installed) -> None:
    store = installed.cwd / "demo.sqlite"
    done = _run(
        [installed.flux, "demo", "--no-live", "--minutes", "2", "--speed", "600",
         "--store", store],
        cwd=installed.cwd,
        env=installed.env,
    )  # fmt: skip
    assert "demo stopped after" in done.stdout and store.exists()


def _site_file(folder: Path) -> Path:
    """The demo site on free ports, without its market APIs (the test stays offline)."""
    text = DEMO.read_text(encoding="utf-8")
    for port in DEMO_PORTS.values():
        assert f"port: {port}\n" in text
        text = text.replace(f"port: {port}\n", f"port: {free_port()}\n")
    head, sep, rest = text.partition("\nmarkets:\n")
    _, sep2, tail = rest.partition("\ncontrol:\n")
    assert sep and sep2
    path = folder / "demo.yaml"
    path.write_text(head + sep2 + tail, encoding="utf-8")
    return path


def _wait_for(
    what: str,
    check: Callable[[], bool],
    procs: list[subprocess.Popen[bytes]],
    logs: list[Path],
    timeout: float = 45,
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        for proc, log in zip(procs, logs, strict=True):
            assert proc.poll() is None, f"{proc.args} ended early:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"{what}:\n" + "\n".join(p.read_text() for p in logs)
        time.sleep(0.3)


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM flux.{table} WHERE site_id = 'demo'").fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_installed_sim_and_agent_upload_readings(
    installed: Installed,
    pg_url: str,
    dbname: str,
    role_names: Callable[[], str],
    procs: list[subprocess.Popen[bytes]],
) -> None:
    run = installed.cwd / "run"
    run.mkdir()
    flux, env = installed.flux, installed.env
    _run([flux, "db", "migrate", "--database-url", pg_url], cwd=run, env=env)
    agent_role = role_names()
    _run(
        [flux, "db", "add-agent", agent_role, "--site", "demo", "--database-url", pg_url],
        cwd=run,
        env=env,
    )
    site = _site_file(run)

    sim_log, agent_log = run / "sim.log", run / "agent.log"
    with sim_log.open("wb") as out:
        sim = subprocess.Popen(
            [flux, "sim", site, "--status-every", "0.5"],
            cwd=run,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    procs.append(sim)
    _wait_for("flux sim never served", lambda: " soe " in sim_log.read_text(), [sim], [sim_log])

    with agent_log.open("wb") as out:
        agent = subprocess.Popen(
            [
                flux,
                "agent",
                "run",
                "--site",
                site,
                "--state-dir",
                run / "state",
                "--http-port",
                str(free_port()),
                "--replay-prices",
                "january-2024",
                "--database-url",
                url_for(dbname, agent_role),
            ],
            cwd=run,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    procs.append(agent)
    _wait_for(
        "no readings reached PostgreSQL",
        lambda: _count(pg_url, "bess_readings") > 0 and _count(pg_url, "meter_readings") > 0,
        [sim, agent],
        [sim_log, agent_log],
    )
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=30) == 0, agent_log.read_text()
    sim.send_signal(signal.SIGINT)
    assert sim.wait(timeout=30) == 0, sim_log.read_text()
    assert _count(pg_url, "control_decisions") > 0
    # Every device's meter readings arrived, not only the first one uploaded.
    with psycopg.connect(pg_url) as conn:
        devices = {r[0] for r in conn.execute("SELECT device FROM flux.meter_readings")}
    assert devices == {"site", "battery_meter", "solar"}
