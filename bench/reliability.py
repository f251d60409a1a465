"""Reliability of the production path, run as a user would: real `flux` processes, the
simulator over Modbus TCP on loopback, PostgreSQL, and faults injected from outside.

    .venv/bin/python bench/reliability.py [--only db-down,sigkill,sim-restart,config-apply]

Four scenarios, each printing its figures:

- db-down: `flux demo --database-url` (60x) through a loopback TCP proxy that black-holes
  the database for 30 simulated minutes (connections accepted, nothing answered: a silent
  partition), then lets it through again. Rows recorded by the agent (the outbox's own
  sequence), stored in PostgreSQL per table, left in the outbox, lost, and duplicated
  (the same natural key stored twice), and minutes with no battery reading.
- sigkill: `flux agent run` with a backlog of readings in its outbox, killed with SIGKILL
  three times mid-drain and restarted; the same counts.
- sim-restart: `flux sim` killed (SIGKILL) under a running agent and started again 20 s
  later: ticks from the kill to the first safe stop, ticks from the simulator answering
  again to the first setpoint that is not a safe stop, and what the agent re-applied.
- config-apply: the agent following a git repository is killed while a new commit is in
  its health gate; what it runs after the restart, and what it runs once settled.

Makes its own database (unique name) on --admin-url and drops it after; every file goes
to a temporary folder. Takes about four minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from readings import bess_readings, meter_readings

from reconciler.telemetry.outbox import Outbox

ROOT = Path(__file__).resolve().parents[1]
FLUX = [sys.executable, "-m", "reconciler"]
DEMO_TEXT = (ROOT / "sites" / "demo.yaml").read_text(encoding="utf-8")
DEMO_PORTS = {"bess": 15020, "site": 15021, "battery_meter": 15022, "solar": 15023}
TICK_S = 4.0
#: The natural key of each table: the same key twice is a duplicate, whatever else differs.
NATURAL_KEYS = {
    "bess_readings": "site_id, device, time",
    "meter_readings": "site_id, device, time",
    "control_decisions": "site_id, time",
    "agent_status": "site_id, time",
    "config_revisions": "site_id, sha, state, message",
    "market_data": "site_id, type, source, time, value",
}


# --------------------------------------------------------------------------- plumbing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def site_file(folder: Path, *, markets: bool = False) -> tuple[Path, dict[str, int]]:
    """The demo site on free ports (no market API: nothing here reaches the internet)."""
    ports = {name: free_port() for name in DEMO_PORTS}
    text = DEMO_TEXT
    for name, port in DEMO_PORTS.items():
        text = text.replace(f"port: {port}\n", f"port: {ports[name]}\n")
    if not markets:
        text = text.replace("  modo: {}\n", "  modo: null\n")
    path = folder / "demo.yaml"
    path.write_text(text, encoding="utf-8")
    return path, ports


def start(*args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [*FLUX, *args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout=timeout)


def wait_for(
    what: str, check: Callable[[], bool], timeout: float = 120, every: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


def status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as reply:
        return dict(json.loads(reply.read()))


#: Outbox record kinds and the tables they are stored in.
KIND_TABLES = {
    "bess": "bess_readings",
    "meter": "meter_readings",
    "decision": "control_decisions",
    "status": "agent_status",
    "revision": "config_revisions",
    "market": "market_data",
}


def tally_outbox(outbox: Path) -> None:
    """Make the outbox (as the agent would) and count every row put in it, by kind, in a
    table of the bench's own: the agent deletes rows once they are stored."""
    Outbox(outbox).close()
    with contextlib.closing(sqlite3.connect(outbox)) as db:
        db.executescript(
            "CREATE TABLE IF NOT EXISTS bench_tally (kind TEXT PRIMARY KEY, n INTEGER);"
            "CREATE TRIGGER IF NOT EXISTS bench_count AFTER INSERT ON outbox BEGIN"
            " INSERT INTO bench_tally VALUES (NEW.kind, 1)"
            " ON CONFLICT (kind) DO UPDATE SET n = n + 1; END;"
        )


def recorded(outbox: Path) -> dict[str, int]:
    """Rows the agent put in its outbox, by table."""
    with contextlib.closing(sqlite3.connect(outbox)) as db:
        rows = db.execute("SELECT kind, n FROM bench_tally").fetchall()
    return {KIND_TABLES.get(str(kind), str(kind)): int(n) for kind, n in rows}


def outbox_rows(outbox: Path, table: str = "outbox") -> int:
    with contextlib.closing(sqlite3.connect(outbox)) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


class Database:
    """A fresh database on the admin server, migrated with `flux db migrate`."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"flux_rel_{uuid.uuid4().hex[:10]}"
        self.url = admin_url.rsplit("/", 1)[0] + f"/{self.name}"

    def __enter__(self) -> Database:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        out = subprocess.run(
            [*FLUX, "db", "migrate", "--database-url", self.url],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise SystemExit(f"flux db migrate failed: {out.stderr}")
        return self

    def __exit__(self, *exc: object) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def counts(self) -> dict[str, tuple[int, int]]:
        """(rows, duplicated natural keys) per table."""
        out: dict[str, tuple[int, int]] = {}
        with psycopg.connect(self.url) as conn:
            for table, key in NATURAL_KEYS.items():
                rows = conn.execute(f"SELECT count(*) FROM flux.{table}").fetchone()
                dups = conn.execute(
                    f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM "
                    f"flux.{table} GROUP BY {key}) g"
                ).fetchone()
                out[table] = (int(rows[0]) if rows else 0, int(dups[0]) if dups else 0)
        return out

    def readings(self) -> int:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM flux.bess_readings)"
                " + (SELECT count(*) FROM flux.meter_readings)"
            ).fetchone()
            return int(row[0]) if row else 0

    def minutes_missing(self, device: str) -> int:
        """Minutes between the first and last reading of ``device`` with none in them."""
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "WITH m AS (SELECT DISTINCT date_trunc('minute', time) AS t"
                " FROM flux.bess_readings WHERE device = %s)"
                " SELECT (extract(epoch FROM max(t) - min(t)) / 60 + 1)::int - count(*)"
                " FROM m",
                (device,),
            ).fetchone()
            return int(row[0]) if row and row[0] is not None else 0


class Proxy:
    """A loopback TCP proxy to PostgreSQL that can black-hole: while cut, it accepts
    connections and forwards nothing (and drops what it carried), so the client sees a
    silent partition, not a refusal."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self.cut = False
        self._loop = asyncio.new_event_loop()
        self._pipes: set[asyncio.StreamWriter] = set()
        # Connections cancelled at exit are the point of the proxy, not errors to print.
        self._loop.set_exception_handler(lambda _loop, _context: None)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> Proxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def shut() -> None:
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def set_cut(self, cut: bool) -> None:
        def apply() -> None:
            self.cut = cut
            if cut:  # established connections go silent too
                for writer in list(self._pipes):
                    writer.transport.pause_reading()

        self._loop.call_soon_threadsafe(apply)

    async def _serve(self) -> None:
        await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            await asyncio.sleep(3600)  # accepted, never answered
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.close()
            return
        self._pipes |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if self.cut:
                        await asyncio.sleep(3600)
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._pipes -= {writer, up_writer}


def report_counts(title: str, db: Database, outbox: Path, extra: str = "") -> None:
    """Per table: rows recorded by the agent, stored, duplicated (a natural key twice),
    and what is neither stored nor left in the outbox. For market data and revisions that
    includes values recorded again after a restart and stored once on purpose (the same
    price or revision as the row before it)."""
    counts = db.counts()
    made = recorded(outbox)
    left = outbox_rows(outbox)
    quarantined = outbox_rows(outbox, "quarantine")
    print(f"\n{title}")
    print(f"  {'table':<18} {'recorded':>9} {'stored':>9} {'duplicated':>10} {'not stored':>10}")
    for table, (rows, dups) in counts.items():
        gone = made.get(table, 0) - rows
        print(f"  {table:<18} {made.get(table, 0):>9,} {rows:>9,} {dups:>10} {gone:>10,}")
    print(f"  left in the outbox: {left:,}; quarantined as malformed: {quarantined:,}")
    if extra:
        print(f"  {extra}")


# --------------------------------------------------------------------------- scenarios


def db_down(folder: Path, admin_url: str) -> None:
    """30 simulated minutes of silent partition in a 75-minute demo at 60x."""
    pg_port = int(admin_url.rsplit(":", 1)[1].split("/")[0])
    store = folder / "demo.sqlite"
    tally_outbox(store)
    with Database(admin_url) as db, Proxy(pg_port) as proxy:
        url = db.url.replace(f":{pg_port}/", f":{proxy.port}/")
        demo = start(
            "demo", "--no-live", "--speed", "60", "--minutes", "75", "--store", str(store),
            "--database-url", url, log=folder / "demo.log",
        )  # fmt: skip
        time.sleep(15)  # 15 simulated minutes through
        proxy.set_cut(True)
        stored_at_cut = db.readings()
        peak = 0
        for _ in range(30):  # 30 simulated minutes black-holed
            time.sleep(1)
            peak = max(peak, outbox_rows(store))
        stored_at_end_of_cut = db.readings()
        proxy.set_cut(False)
        code = demo.wait(timeout=180)
        if code != 0:
            raise SystemExit(f"flux demo exited {code}; see {folder / 'demo.log'}")
        missing = db.minutes_missing("bess")
        report_counts(
            "db-down: 30 simulated minutes of silent partition in 75 (flux demo, 60x)",
            db,
            store,
            f"minutes with no battery reading between the first and the last: {missing}; "
            f"readings stored during the cut: {stored_at_end_of_cut - stored_at_cut}; the "
            f"outbox held up to {peak} rows then",
        )


def backlog(outbox_path: Path, rows: int) -> None:
    """``rows`` old readings (half battery, half grid meter) already in the outbox."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with Outbox(outbox_path) as box:
        box.add_bess_many("demo", "bess", bess_readings(rows // 2, start))
        box.add_meter_many("demo", "site", meter_readings(rows // 2, start))


def sigkill(folder: Path, admin_url: str, rows: int) -> None:
    site, _ = site_file(folder)
    state = folder / "sigkill-state"
    state.mkdir()
    outbox = state / "outbox.sqlite"
    tally_outbox(outbox)
    backlog(outbox, rows)
    sim = start("sim", str(site), log=folder / "sim.log")
    kills = 0
    try:
        with Database(admin_url) as db:
            args = (
                "agent", "run", "--site", str(site), "--state-dir", str(state), "--http-port",
                "0", "--database-url", db.url, "--replay-prices", "january-2024",
            )  # fmt: skip
            for _ in range(3):
                before = db.readings()
                agent = start(*args, log=folder / "agent.log")
                # Kill as soon as the drain has visibly started, and before it has finished.
                wait_for("the drain to start", lambda b=before: db.readings() > b, 120, 0.05)
                if db.readings() < rows:
                    stop(agent, signal.SIGKILL)
                    kills += 1
                else:
                    stop(agent)
            agent = start(*args, log=folder / "agent.log")
            wait_for("the outbox to empty", lambda: outbox_rows(outbox) == 0, 300, 0.5)
            time.sleep(2)
            code = stop(agent)
            report_counts(
                f"sigkill: {rows:,} readings of backlog, the agent SIGKILLed {kills} times "
                "mid-drain and restarted",
                db,
                outbox,
                f"backlog rows stored: {db.readings():,} of {rows:,} (plus live readings); "
                f"last stop exited {code}",
            )
    finally:
        stop(sim)


def decisions(outbox: Path) -> list[tuple[datetime, bool, str]]:
    """(at, safe stop, reason) of every decision still in the outbox, oldest first."""
    with Outbox(outbox) as box:
        found = box.latest("decision", limit=100_000)
    return sorted(
        (r.at, bool(r.values.get("safe_stop")), str(r.values.get("reason"))) for r in found
    )


def sim_restart(folder: Path) -> None:
    site, _ = site_file(folder)
    state = folder / "sim-state"
    http = free_port()
    sim = start("sim", str(site), log=folder / "sim.log")
    agent = start(
        "agent", "run", "--site", str(site), "--state-dir", str(state), "--http-port",
        str(http), "--replay-prices", "january-2024", log=folder / "agent.log",
    )  # fmt: skip
    try:
        wait_for("the agent to be Ready", lambda: _ready(http), 60)
        time.sleep(2 * TICK_S)
        killed_at = datetime.now(UTC)
        stop(sim, signal.SIGKILL)
        time.sleep(20)
        sim = start("sim", str(site), log=folder / "sim.log")
        wait_for("the simulator to listen", lambda: _listening(site), 30, 0.05)
        back_at = datetime.now(UTC)
        wait_for("a setpoint after the restart", lambda: _moving_since(http, back_at), 60)
        time.sleep(2 * TICK_S)
        snap = status(http)
        stop(agent)
    finally:
        stop(sim)
    seen = decisions(state / "outbox.sqlite")
    safe_at = next(at for at, safe, _ in seen if safe and at >= killed_at)
    resumed_at = next(at for at, safe, _ in seen if not safe and at >= back_at)
    reapplied = [t["message"] for t in snap["transitions"] if t["type"] == "BatterySettings"]
    print("\nsim-restart: `flux sim` SIGKILLed under the agent, started again 20 s later")
    print(
        f"  safe stop {(safe_at - killed_at).total_seconds():.1f} s after the kill "
        f"({_ticks(safe_at - killed_at)} ticks of {TICK_S:g} s; reading-age limit 12 s)"
    )
    print(
        f"  first setpoint that is not a safe stop {(resumed_at - back_at).total_seconds():.1f}"
        f" s after the simulator listened again ({_ticks(resumed_at - back_at)} ticks)"
    )
    print(f"  BatterySettings transitions: {reapplied or 'none'}")
    print(f"  battery following again: {snap['loop']['last_decision_reason']}")


def _ticks(delta: timedelta) -> int:
    return int(-(-delta.total_seconds() // TICK_S))


def _ready(http: int) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status(http)["conditions"])


def _listening(site: Path) -> bool:
    text = site.read_text()
    port = int(text.split("port: ", 1)[1].split("\n", 1)[0])
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def _moving_since(http: int, since: datetime) -> bool:
    loop = status(http)["loop"]
    last = datetime.fromisoformat(loop["last_tick_at"])
    return last > since and "safe stop" not in str(loop["last_decision_reason"])


def config_apply(folder: Path) -> None:
    site, _ = site_file(folder)
    repo = folder / "config"
    (repo / "sites").mkdir(parents=True)
    text = site.read_text()

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()

    git("init", "-q", "-b", "main")
    git("config", "user.email", "bench@example.invalid")
    git("config", "user.name", "bench")
    (repo / "sites" / "demo.yaml").write_text(text)
    git("add", "-A")
    git("commit", "-q", "-m", "A")
    first = git("rev-parse", "HEAD")
    state = folder / "apply-state"
    http = free_port()
    args = (
        "agent", "run", "--repo", str(repo), "--site", "demo", "--state-dir", str(state),
        "--http-port", str(http), "--interval", "2", "--jitter", "0",
        "--replay-prices", "january-2024",
    )  # fmt: skip
    sim = start("sim", str(site), log=folder / "sim.log")
    agent = start(*args, log=folder / "agent.log")
    try:
        wait_for(
            "A to become last-known-good",
            lambda: status(http)["revisions"]["last_known_good"] == first,
            90,
        )
        (repo / "sites" / "demo.yaml").write_text(text.replace("homes: 54", "homes: 60"))
        git("commit", "-qam", "B")
        second = git("rev-parse", "HEAD")
        wait_for("B to be staged", lambda: status(http)["revisions"]["staged"] == second, 60)
        gate = status(http)
        stop(agent, signal.SIGKILL)
        gate_file = json.loads((state / "gate.json").read_text())
        agent = start(*args, log=folder / "agent.log")
        wait_for("the restarted agent to tick", lambda: status(http)["loop"]["ticks_total"] > 0)
        after = status(http)["revisions"]
        wait_for("B to be staged again", lambda: status(http)["revisions"]["staged"] == second)
        restaged = json.loads((state / "gate.json").read_text())
        wait_for(
            "B to become last-known-good",
            lambda: status(http)["revisions"]["last_known_good"] == second,
            90,
        )
        settled = status(http)["revisions"]
        stop(agent)
    finally:
        stop(sim)
    name = {first: "A (last-known-good)", second: "B (the new commit)", None: "nothing"}
    print("\nconfig-apply: SIGKILL while commit B was in its health gate")
    print(
        f"  killed at {gate['health_gate_passed']}/{gate['health_gate_required']} healthy "
        f"ticks of B"
    )
    print(
        f"  on disk at the kill: gate of {name.get(gate_file['sha'])} started "
        f"{gate_file['starts']} time(s); staged again after the restart: start "
        f"{restaged['starts']} (a third start without an end would quarantine it)"
    )
    print(f"  right after the restart it ran {name.get(after['applied'], after['applied'])}")
    print(
        f"  then: applied {name.get(settled['applied'])}, last-known-good "
        f"{name.get(settled['last_known_good'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--only", default="db-down,sigkill,sim-restart,config-apply")
    parser.add_argument("--backlog", type=int, default=1_000_000, help="sigkill's rows")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env_lock = folder / "locks"
        os.environ["FLUX_LOCK_DIR"] = str(env_lock)  # not the machine's /run/lock/flux
        for name, run in (
            ("db-down", lambda: db_down(folder / "db-down", args.admin_url)),
            ("sigkill", lambda: sigkill(folder / "sigkill", args.admin_url, args.backlog)),
            ("sim-restart", lambda: sim_restart(folder / "sim-restart")),
            ("config-apply", lambda: config_apply(folder / "config-apply")),
        ):
            if name in wanted:
                (folder / name).mkdir()
                started = time.perf_counter()
                run()
                print(f"  ({name}: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
