"""`flux agent run` and `flux demo` as a new user types them: real processes, real
signals, the simulator on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from reconciler.agent.demo import default_start
from reconciler.agent.lock import BatteryLock
from reconciler.config import load_site
from reconciler.sim.simulator import SiteSimulator
from tests.source.conftest import Upstream

ROOT = Path(__file__).resolve().parents[2]
FLUX = [sys.executable, "-m", "reconciler"]
DEMO = ROOT / "sites" / "demo.yaml"


def flux(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # as piped to a file
    return subprocess.run(
        [*FLUX, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
        env=env,
    )  # fmt: skip


def test_demo_runs_and_fills_the_embedded_store(tmp_path: Path) -> None:
    store = tmp_path / "demo.sqlite"
    result = flux("demo", "--no-live", "--minutes", "10", "--speed", "300", "--store", str(store))
    assert result.returncode == 0, result.stderr
    assert "demo stopped after" in result.stdout
    # The agent's log goes to a file beside the store, as JSON lines, not onto the screen
    # (a fresh agent's conditions start False: they are logged as warnings).
    log_file = tmp_path / "demo.sqlite.log"
    assert f"the agent's log is {log_file}" in result.stdout
    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert any(e.get("event") == "condition" for e in events), events[:3]
    assert "condition" not in result.stderr.split()
    with sqlite3.connect(store) as db:
        kinds = dict(db.execute("SELECT kind, count(*) FROM outbox GROUP BY kind").fetchall())
    # One reading per device per simulated minute, and a decision at least as often.
    assert kinds["bess"] >= 9
    assert kinds["meter"] >= 27
    assert kinds["decision"] >= 9
    assert kinds["revision"] == 1
    # A fresh demo starts yesterday afternoon: its readings are in a dashboard's last 24 h.
    with sqlite3.connect(store) as db:
        (first,) = db.execute("SELECT payload FROM outbox WHERE kind='bess' LIMIT 1").fetchone()
    started = datetime.fromtimestamp(json.loads(first)[0] / 1e6, UTC)
    assert timedelta(hours=2) < datetime.now(UTC) - started < timedelta(hours=36)


def test_the_piped_live_demo_ends_with_its_summary_on_a_line_of_its_own(tmp_path: Path) -> None:
    # A live table piped to a file (a log, `| tee`) still ends readable.
    store = tmp_path / "demo.sqlite"
    result = flux("demo", "--minutes", "2", "--speed", "600", "--store", str(store))
    assert result.returncode == 0, result.stderr
    last = result.stdout.rstrip("\n").splitlines()
    summary = [line for line in last if "demo stopped after" in line]
    assert summary and summary[0].startswith("demo stopped after"), result.stdout[-400:]
    # Wide enough for whole headers (rich would assume 80 columns and cut them).
    assert "battery measured kW" in result.stdout and "site kW (+ import)" in result.stdout


def test_the_default_demo_start_is_yesterday_afternoon_across_a_clock_change() -> None:
    london = ZoneInfo("Europe/London")
    # The Monday after the spring change: yesterday (Sunday) is the 23-hour day.
    at = default_start(london, datetime(2026, 3, 30, 9, 0, tzinfo=UTC))
    assert at.isoformat() == "2026-03-29T15:30:00+01:00"


def test_agent_run_with_an_invalid_site_file_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEMO.read_text().replace("  tick_s: 4\n", "  tick_s: soon\n"))
    result = flux("agent", "run", "--site", str(bad), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 1
    assert f"{bad}:" in result.stderr and "control.tick_s" in result.stderr
    assert "Traceback" not in result.stderr


async def test_agent_run_controls_the_simulator_and_stops_cleanly_on_sigterm(
    tmp_path: Path,
) -> None:
    site = load_site(DEMO)
    async with SiteSimulator(site, ports="ephemeral") as sim:
        text = DEMO.read_text()
        ports = {"bess": 15020, "site": 15021, "battery_meter": 15022, "solar": 15023}
        for name, port in ports.items():
            text = text.replace(f"port: {port}\n", f"port: {sim.port_of(name)}\n")
        site_file = tmp_path / "demo.yaml"
        site_file.write_text(text)
        state = tmp_path / "state"
        proc = await asyncio.create_subprocess_exec(
            *FLUX,
            "agent",
            "run",
            "--site",
            str(site_file),
            "--state-dir",
            str(state),
            "--http-port",
            "0",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            # Wait until the agent has commanded the battery (direct mode on) a few times.
            for _ in range(200):
                await asyncio.sleep(0.1)
                if len(sim.writes("bess")) >= 6 and sim.plant.battery.direct:
                    break
            assert sim.plant.battery.direct, "the agent never took control"
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err.decode()
    events = [
        json.loads(line)["event"] for line in err.decode().splitlines() if line.startswith("{")
    ]
    assert "revision_in_control" in events and events[-1] == "agent_stopped"
    status = json.loads((state / "status.json").read_text())
    assert status["loop"]["ticks_total"] >= 1
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"


async def test_a_second_agent_refuses_and_leaves_the_running_one_alone(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = await asyncio.create_subprocess_exec(
        *FLUX,
        "agent",
        "run",
        "--site",
        str(DEMO),
        "--state-dir",
        str(state),
        "--http-port",
        "0",
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        status_file = state / "status.json"
        for _ in range(100):
            if status_file.exists():
                break
            await asyncio.sleep(0.1)
        before = json.loads(status_file.read_text())
        assert before["pid"] == first.pid
        second = await asyncio.to_thread(
            flux, "agent", "run", "--site", str(DEMO), "--state-dir", str(state)
        )
        assert second.returncode == 3
        assert f"the agent (pid {first.pid}) holds the battery lock" in second.stderr
        assert json.loads(status_file.read_text())["pid"] == first.pid
        # A file agent has no source: suspend and reconcile say so at once (no 60 s wait).
        for command in ("suspend", "reconcile"):
            refused = await asyncio.to_thread(
                flux, "agent", command, "--state-dir", str(state), timeout=20
            )
            assert refused.returncode == 2, refused.stderr
            assert f"runs the site file {DEMO}" in refused.stderr
            assert f"nothing to {command}" in refused.stderr
        assert not (state / "suspend.json").exists()
    finally:
        first.send_signal(signal.SIGTERM)
        await asyncio.wait_for(first.wait(), timeout=30)


def test_demo_user_errors_name_the_problem(tmp_path: Path) -> None:
    missing = flux("demo", "--site", str(tmp_path / "nope.yaml"), "--no-live")
    assert missing.returncode == 2
    assert "nope.yaml: no such file" in missing.stderr
    invalid_site = tmp_path / "invalid.yaml"
    invalid_site.write_text(DEMO.read_text().replace("  tick_s: 4\n", "  tick_s: fast\n"))
    invalid = flux("demo", "--site", str(invalid_site), "--no-live")
    assert invalid.returncode == 2, invalid.stderr
    assert f"{invalid_site} is not a valid site file" in invalid.stderr
    assert "control.tick_s" in invalid.stderr
    not_a_db = tmp_path / "store.sqlite"
    not_a_db.write_text("this is not SQLite")
    bad_store = flux("demo", "--store", str(not_a_db), "--minutes", "1", "--no-live")
    assert bad_store.returncode == 1
    assert f"cannot open {not_a_db}: file is not a database" in bad_store.stderr
    for result in (missing, invalid, bad_store):
        assert "Traceback" not in result.stderr


def test_a_shadow_agent_refuses_a_running_agents_state_folder(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with BatteryLock(state):  # as a running agent holds it
        result = flux("agent", "run", "--site", str(DEMO), "--state-dir", str(state), "--shadow")
    assert result.returncode == 3
    assert f"--state-dir {state}-shadow" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (state / "status.json").exists()  # the running agent's file is untouched


async def test_a_second_writer_to_the_same_battery_is_refused_whatever_its_state_folder(
    tmp_path: Path,
) -> None:
    """Two agents, two state folders and status ports, one battery: the second is refused
    (exit 3, naming the holder) and never writes; a shadow agent beside it is allowed."""
    site = load_site(DEMO)
    async with SiteSimulator(site, ports="ephemeral") as sim:
        text = DEMO.read_text()
        for name, port in {
            "bess": 15020,
            "site": 15021,
            "battery_meter": 15022,
            "solar": 15023,
        }.items():
            text = text.replace(f"port: {port}\n", f"port: {sim.port_of(name)}\n")
        site_file = tmp_path / "demo.yaml"
        site_file.write_text(text)
        first = await asyncio.create_subprocess_exec(
            *FLUX, "agent", "run", "--site", str(site_file), "--state-dir", str(tmp_path / "a"),
            "--http-port", "0", cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(200):
                await asyncio.sleep(0.1)
                if sim.plant.battery.direct:
                    break
            assert sim.plant.battery.direct, "the first agent never took control"
            second = await asyncio.to_thread(
                flux, "agent", "run", "--site", str(site_file), "--state-dir",
                str(tmp_path / "b"), "--http-port", "0",
            )  # fmt: skip
            assert second.returncode == 3, second.stderr
            assert f"the agent (pid {first.pid}, site demo)" in second.stderr
            assert "127.0.0.1" in second.stderr and "Traceback" not in second.stderr
            # refused before its devices were opened: it never took control
            assert "revision_in_control" not in second.stderr
            # A shadow agent decides beside it and writes nothing.
            shadow = await asyncio.create_subprocess_exec(
                *FLUX, "agent", "run", "--site", str(site_file), "--state-dir",
                str(tmp_path / "c"), "--http-port", "0", "--shadow", cwd=ROOT,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            status = tmp_path / "c" / "status.json"
            for _ in range(200):
                await asyncio.sleep(0.1)
                if status.exists() and json.loads(status.read_text())["loop"]["ticks_total"]:
                    break
            shadow.send_signal(signal.SIGTERM)
            _, shadow_err = await asyncio.wait_for(shadow.communicate(), timeout=30)
            assert shadow.returncode == 0, shadow_err.decode()
            assert json.loads(status.read_text())["loop"]["ticks_total"] >= 1
        finally:
            first.send_signal(signal.SIGTERM)
            await asyncio.wait_for(first.wait(), timeout=30)
        assert first.returncode == 0


def test_a_taken_status_port_is_one_line_and_its_own_exit_code(tmp_path: Path) -> None:
    """A shadow agent started beside a running one, on the same status port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = flux(
            "agent", "run", "--site", str(DEMO), "--state-dir", str(tmp_path / "s"),
            "--shadow", "--http-port", str(port),
        )  # fmt: skip
    assert result.returncode == 4, result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and "--http-port" in result.stderr
    assert "Traceback" not in result.stderr
    events = [json.loads(x)["event"] for x in result.stderr.splitlines() if x.startswith("{")]
    assert events[-1] == "agent_stopped"  # the cleanup ran


def test_a_wrong_site_id_at_first_start_in_git_mode_is_a_usage_error(
    tmp_path: Path, upstream: Upstream
) -> None:
    upstream.commit(DEMO.read_text(), "demo")
    upstream.commit(DEMO.read_text(), "another", path="sites/wlce.yaml")
    state = tmp_path / "state"
    result = flux(
        "agent",
        "run",
        "--repo",
        str(upstream.path),
        "--site",
        "dmeo",
        "--state-dir",
        str(state),
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Error: --site dmeo: there is no sites/dmeo.yaml in branch main of" in result.stderr
    assert "the site ids there: demo, wlce" in result.stderr
    assert "Traceback" not in result.stderr


def test_agent_run_help_lists_the_variables_it_reads() -> None:
    from click.testing import CliRunner

    from reconciler.agent.commands import run
    from reconciler.cli import cli

    out = CliRunner().invoke(cli, ["agent", "run", "--help"], terminal_width=100).output
    envvars = [p.envvar for p in run.params if isinstance(p.envvar, str)]
    assert len(envvars) >= 15
    for name in envvars:
        assert name in out, name
    assert "FLUX_SITE" in out and "FLUX_DATABASE_URL" in out and "FLUX_HTTP_PORT" in out
    assert "0: any free port" in " ".join(out.split())
    assert "-1: no endpoint" in " ".join(out.split())


def test_top_level_help_does_not_cut_summaries() -> None:
    from click.testing import CliRunner

    from reconciler.cli import COMMANDS, cli, first_sentence

    out = CliRunner().invoke(cli, ["--help"], terminal_width=200).output
    assert "..." not in out.split("Commands:")[1]
    flat = " ".join(out.split())
    for name in COMMANDS:
        command = cli.get_command(None, name)  # type: ignore[arg-type]
        assert command is not None and command.help
        assert first_sentence(command.help) in flat, name


def test_a_second_demo_continues_where_the_first_stopped(tmp_path: Path) -> None:
    store = tmp_path / "demo.sqlite"
    args = ("demo", "--no-live", "--minutes", "5", "--speed", "300", "--store", str(store))
    first = flux(*args)
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(store) as db:
        before = [
            json.loads(p)[0] for (p,) in db.execute("SELECT payload FROM outbox WHERE kind='bess'")
        ]
    second = flux(*args)
    assert second.returncode == 0, second.stderr
    assert "continuing the last demo with" in second.stdout
    with sqlite3.connect(store) as db:
        after = [
            json.loads(p)[0] for (p,) in db.execute("SELECT payload FROM outbox WHERE kind='bess'")
        ]
    new = after[len(before) :]
    assert before and new
    # Each run its own time range: no minute holds readings of both runs.
    assert min(new) > max(before)
    minutes = [t // 60_000_000 for t in after]
    assert len(minutes) == len(set(minutes))


def test_a_demo_whose_database_refuses_says_nothing_was_uploaded(tmp_path: Path) -> None:
    from tests.net import free_port

    store = tmp_path / "demo.sqlite"
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/flux"
    result = flux(
        "demo", "--no-live", "--minutes", "3", "--speed", "300", "--store", str(store),
        "--database-url", url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "nothing was uploaded to" in out, out
    assert "what was not uploaded stays in the store" in out
    assert "uploaded 0" not in out


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--speed", "0", "0.0 is not in the range 0<x<=86400.0."),
        ("--speed", "-60", "-60.0 is not in the range 0<x<=86400.0."),
        ("--speed", "nan", "'nan' is not a finite number"),
        ("--speed", "inf", "'inf' is not a finite number"),
        ("--minutes", "1e300", "1e+300 is not in the range 0<x<=525600."),
    ],
)
def test_demo_refuses_a_clock_that_cannot_run(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    store = tmp_path / "demo.sqlite"
    args = ("demo", "--no-live", "--minutes", "1", "--store", str(store), option, value)
    result = flux(*args, timeout=30)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == f"Error: Invalid value for '{option}': {message}"
    assert not store.exists()  # refused before anything ran


def test_demo_start_is_read_as_every_command_reads_an_instant(tmp_path: Path) -> None:
    store = tmp_path / "demo.sqlite"
    args = ("demo", "--no-live", "--minutes", "1", "--store", str(store))
    result = flux(*args, "--start", "9999-12-31T23:00", timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: Invalid value for --start: '9999-12-31T23:00' is outside the years Flux "
        "works with (1970-2199)"
    )
